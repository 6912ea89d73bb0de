/**
 * The construction of a `PgSql` client over the pool in context ({@link makeClient}): its
 * `SqlClient.make` options (acquirers over the pool, the borrower, compiler, commit, span
 * attributes), the ownership of a session shared across fibers by a transaction or `reserve`,
 * the pipelined mode's lanes, and the `PgClient` fields (`config`, `json`, `listen`, `notify`).
 * `PgSql.make` builds a client with it; `PgReplicas` builds one per pool with a transaction
 * service of its own and routes over their options.
 *
 * @internal
 */
import { PgClient } from "@effect/sql-pg"
import type { PgConnection } from "@effect/sql-pg"
import { Context, Duration, Effect } from "effect"
import type { Scope, Stream } from "effect"
import type * as Reactivity from "effect/reactivity/Reactivity"
import * as SqlClient from "effect/sql/SqlClient"
import type { Borrower, Connection as SqlConnection } from "effect/sql/SqlConnection"
import type { SqlError } from "effect/sql/SqlError"
import * as Statement from "effect/sql/Statement"
import { typed } from "../../ConnectionPool.ts"
import type { ConnectionPool, PooledConnection, Service as PoolService } from "../../ConnectionPool.ts"
import { driverOf } from "../../internal/service.ts"
import type { CheckoutError } from "../../PoolError.ts"
import { settingsOf } from "./config.ts"
import { connector } from "./connect.ts"
import type { ConnectionImpl } from "./connection.ts"
import { channelNameError, isDisconnect, unknownError } from "./errors.ts"
import * as HostList from "./host-list.ts"
import { Lanes } from "./pipeline.ts"
import type { LaneEvent, LaneStatus } from "./pipeline.ts"
import { PooledSql } from "./pooled-sql.ts"
import * as Pooler from "./pooler.ts"
import { PgDriver } from "./settings.ts"
import type { Config } from "./settings.ts"
import { Session } from "./shared-session.ts"
import { borrower as borrowerOf } from "./sql-borrower.ts"
import { checkoutError, selfDeadlock } from "./sql-errors.ts"
import { defaultMaxInFlight, PgSqlConfigError, validateOptions } from "./sql-options.ts"
import type { Options } from "./sql-options.ts"

/** The service of a transaction's connection: statements find their transaction's connection by it. */
export type TransactionService = Context.Service<
  SqlClient.TransactionConnection,
  SqlClient.TransactionConnection.Service
>

/** A client and the options it built its `SqlClient` with (a router builds one over several pools'). */
export interface Client {
  readonly client: PgClient.PgClient & SqlClient.SqlClient
  readonly makeOptions: SqlClient.SqlClient.MakeOptions
}

/**
 * The pool in context, its connections typed as the driver's own. A pool over another driver
 * is refused at its first statement (`PooledSql`: "PgSql needs a ConnectionPool over PgDriver").
 */
const Pool: Context.Service<ConnectionPool, PoolService<ConnectionImpl>> = typed<ConnectionImpl>()

/** Each client's own transaction service (statements find their transaction's connection by it). */
let clientIds = 0

/**
 * What `PgSql.pipelineStatus` and `PgSql.pipelineEvents` read of a client in pipelined mode: its
 * lanes, or a `PgReplicas` router's view over its pools' lanes.
 */
export interface PipelineView {
  status(): ReadonlyArray<LaneStatus>
  readonly events: Stream.Stream<LaneEvent>
}

/** The pipeline of each client that has one. */
const clientPipelines = new WeakMap<object, PipelineView>()

/** The pipeline of `client` (`undefined`: it does not pipeline). */
export const pipelineOf = (client: SqlClient.SqlClient): PipelineView | undefined => clientPipelines.get(client)

/** Make `view` the pipeline of `client` (a router over clients that pipeline). */
export const setPipeline = (client: SqlClient.SqlClient, view: PipelineView): void => {
  clientPipelines.set(client, view)
}

/** PostgreSQL answers `COMMIT` with `ROLLBACK` when the transaction was aborted: that must fail. */
const commit = (conn: SqlConnection): Effect.Effect<void, SqlError> =>
  Effect.flatMap(
    conn.executeRaw("COMMIT", []),
    (result) =>
      (result as PgConnection.Result | undefined)?.command === "ROLLBACK"
        ? Effect.fail(unknownError(
          new Error("COMMIT rolled back an aborted transaction"),
          "PgSql: COMMIT rolled back an aborted transaction",
          "commit"
        ))
        : Effect.void
  )

interface PgJson extends Statement.Custom<"PgJson", unknown> {}
/** The same custom kind `PgClient.makeCompiler` encodes as jsonb. */
const PgJson = Statement.custom<PgJson>("PgJson")

/**
 * The settings of the driver the pool connects with: read from the pool itself, so a pool
 * provided on its own (`PoolManager.provide`) is described by its own settings, never by a
 * `PgDriver` of the surrounding program. A pool service made by hand: the `PgDriver` in context.
 */
const driverConfig = (pool: PoolService<ConnectionImpl>): Effect.Effect<Config> => {
  const own = settingsOf(driverOf(pool as PoolService<unknown>))
  if (own !== undefined) return Effect.succeed(own)
  return Effect.flatMap(Effect.serviceOption(PgDriver), (driver) =>
    driver._tag === "Some"
      ? Effect.succeed(driver.value.config)
      : Effect.die(
        new Error("PgSql needs a ConnectionPool over PgDriver (the pool's driver has no PgDriver settings)")
      ))
}

/** The sessions of a pool whose checkouts share them, by checkout. */
class Sessions {
  private readonly sessions = new WeakMap<PooledConnection<ConnectionImpl>, Session<PooledSql>>()
  constructor(private readonly acrossFibers: boolean) {}
  of(pooled: PooledConnection<ConnectionImpl>): Session<PooledSql> {
    let session = this.sessions.get(pooled)
    if (session === undefined) {
      session = new Session<PooledSql>(this.acrossFibers, selfDeadlock)
      this.sessions.set(pooled, session)
    }
    return session
  }
}

/** What a transaction's checkout on a session shared across fibers needs. */
interface Owning {
  readonly pool: PoolService<ConnectionImpl>
  readonly poolCheckout: Effect.Effect<PooledConnection<ConnectionImpl>, CheckoutError, Scope.Scope>
  readonly sessions: Sessions
  readonly transactionService: TransactionService
  readonly bounded: (conn: PooledSql) => PooledSql
}

/**
 * A transaction or `reserve` on a session shared across fibers owns it until its scope closes
 * (after COMMIT / ROLLBACK): other fibers' statements, streams and transactions wait. Its
 * connection ends with it: a statement sent through it later (a fiber forked inside it, a
 * `reserve`d connection kept past its scope) fails as on a returned connection, and never runs
 * inside the transaction that owns the session next.
 */
const ownedCheckout = (o: Owning): Effect.Effect<SqlConnection, SqlError, Scope.Scope> =>
  Effect.uninterruptibleMask((restore) =>
    Effect.withFiber((fiber) => {
      // From inside a transaction that owns the session (a `reserve` in it): it would wait
      // for that transaction. Refused before the checkout, which would wait for the session
      // itself when it was retired (a new holder waits for its holders to leave).
      const inTransaction = Context.getOrUndefined(fiber.context, o.transactionService)?.[0]
      return inTransaction instanceof PooledSql && inTransaction.pool === o.pool && inTransaction.owns &&
          !inTransaction.ended
        ? Effect.fail(selfDeadlock("owned", "transaction"))
        : Effect.mapError(restore(o.poolCheckout), checkoutError)
    }).pipe(Effect.flatMap((pooled) => {
      const session = o.sessions.of(pooled)
      const owner = o.bounded(new PooledSql(pooled, o.pool, session, true))
      return Effect.withFiber((fiber) =>
        session.own(owner, fiber, restore, Context.getOrUndefined(fiber.context, o.transactionService)?.[0])
      ).pipe(
        Effect.andThen(Effect.addFinalizer(() =>
          Effect.sync(() => {
            owner.ended = true
            session.disown()
          })
        )),
        Effect.as(owner)
      )
    }))
  )

/**
 * A listener's session: its own, outside the pool (a listener pins its session until its scope
 * closes: holding a pool slot would starve the pool, and under FiberPool the fiber's next
 * statement would be handed the same, pinned session and wait forever). Through a
 * transaction-mode pooler a LISTEN never hears a notification: the listener goes straight to
 * the server (`listenUrl`), or fails at once saying so. Several hosts / targetSessionAttrs: the
 * listener connects as the pool's sessions do.
 */
const listenerSession = (config: Config) => {
  const {
    alwaysReset: _alwaysReset,
    sessionReset: _sessionReset,
    cancelTimeout: _cancelTimeout,
    pooler,
    listenUrl,
    ...sessionConfig
  } = config
  return listenUrl !== undefined
    ? connector(Pooler.listenAt(sessionConfig, listenUrl), isDisconnect)
    : pooler === "transaction"
    ? Effect.fail(Pooler.listenUnsupported())
    : connector(sessionConfig, isDisconnect)
}

/** What the `PgClient` fields of a client are made of. */
interface PgClientParts {
  readonly config: Config
  /** The first host, its port and the database (span attributes, `config.port`). */
  readonly target: { readonly host: string; readonly port: number; readonly database: string }
  readonly options: Options<unknown>
  readonly onAcquire: Effect.Effect<void> | undefined
  readonly pool: PoolService<ConnectionImpl>
  readonly borrower: Borrower
}

/** `sqlClient` as a `PgClient`: `config`, `json`, `poolStats`, `listen` and `notify`. */
const asPgClient = (sqlClient: SqlClient.SqlClient, parts: PgClientParts): PgClient.PgClient & SqlClient.SqlClient => {
  const { borrower, config, onAcquire, target } = parts
  const listenConnect = listenerSession(config)
  const listenSession = onAcquire === undefined ? listenConnect : Effect.tap(listenConnect, onAcquire)
  // `onAcquire` as the client runs it (a field of PgClientConfig since @effect/sql-pg 4.1).
  const reported = { ...parts.options, onAcquire }
  const pgConfig: PgClient.PgClientConfig = {
    ...config,
    // A port list ("5432,5433", one per host): the first host's.
    port: typeof config.port === "string" ? target.port : config.port,
    ...reported
  }
  return Object.assign(sqlClient, {
    [PgClient.TypeId]: PgClient.TypeId,
    config: pgConfig,
    json: (value: unknown) => Statement.fragment([PgJson(value, undefined, undefined)]),
    poolStats: parts.pool.stats,
    // A channel name over 63 bytes is refused before anything is sent (no session opened).
    listen: (channel: string) => {
      const invalid = channelNameError(channel, "listen")
      return invalid !== undefined
        ? Effect.fail(invalid)
        : Effect.flatMap(listenSession, (session) => session.listen(channel))
    },
    notify: (channel: string, payload: string) => {
      const invalid = channelNameError(channel, "notify")
      return invalid !== undefined
        ? Effect.fail(invalid)
        : Effect.asVoid(borrower((conn) => conn.executeRaw("SELECT pg_notify($1, $2)", [channel, payload])))
    }
  }) as PgClient.PgClient & SqlClient.SqlClient
}

/** The pipelined mode's lanes of a client over `pool`, closed with the client's scope. */
const makeLanes = (
  pool: PoolService<ConnectionImpl>,
  pipeline: NonNullable<Options["pipeline"]>,
  connect: (pooled: PooledConnection<ConnectionImpl>) => PooledSql
): Effect.Effect<Lanes, never, Scope.Scope> =>
  Effect.gen(function*() {
    const lanes = new Lanes(
      pool,
      {
        maxInFlight: pipeline.maxInFlight ?? defaultMaxInFlight,
        // The pool's size where it has one (QueuePool), else 1 (NullPool, AssertionPool).
        maxConnections: pipeline.maxConnections ?? Math.max(1, pool.settings.poolSize ?? 1)
      },
      connect,
      checkoutError
    )
    const unregister = lanes.register(pool.settings.name, yield* Effect.context<never>())
    yield* Effect.addFinalizer(() => Effect.andThen(lanes.closeAll, Effect.sync(unregister)))
    return lanes
  })

/**
 * Build a client over the pool in context. `transactionService`: the one a router gives all of
 * its pools' clients (a transaction opened through the router is the one each pool's acquirers
 * see); `undefined`: the client's own.
 */
export const makeClient = <R = never>(
  options: Options<R>,
  transactionService: TransactionService | undefined
): Effect.Effect<Client, PgSqlConfigError, ConnectionPool | Scope.Scope | Reactivity.Reactivity | R> =>
  Effect.gen(function*() {
    const valid = yield* validateOptions(options)
    // `onAcquire` with the services captured now; the consuming fiber's own take precedence.
    const hook = valid.onAcquire
    const captured = yield* Effect.context<R>()
    const onAcquire = hook &&
      Effect.updateContext(hook, (current: Context.Context<never>) => Context.merge(captured, current))
    const pool = yield* Pool
    const config = yield* driverConfig(pool)
    // Server address and database, for span attributes (several hosts: the first).
    const target = HostList.describe(config)

    // Transaction control is bounded by `transactionControlTimeout`, else the pool's `resetTimeout`.
    const controlBound = valid.transactionControlTimeout === undefined
      ? pool.settings.resetTimeout
      : Duration.fromInputUnsafe(valid.transactionControlTimeout)
    const controlMillis = Duration.isFinite(controlBound) ? Duration.toMillis(controlBound) : Infinity
    const bounded = (conn: PooledSql): PooledSql => {
      conn.controlMillis = controlMillis
      return conn
    }

    // Checkouts that share one session: across fibers (StaticPool) or within one (reentrant
    // leases). Decided once: a pool that shares nothing never looks a session up.
    const sharing = pool.settings.sharing
    const sessions = new Sessions(sharing === "pool")
    const connect = sharing === undefined
      ? (pooled: PooledConnection<ConnectionImpl>) => bounded(new PooledSql(pooled, pool))
      : (pooled: PooledConnection<ConnectionImpl>) => bounded(new PooledSql(pooled, pool, sessions.of(pooled)))
    const transactions = transactionService ?? Context.Service<
      SqlClient.TransactionConnection,
      SqlClient.TransactionConnection.Service
    >(`effect-db-pool/pg/PgSql/TransactionConnection/${clientIds++}`)

    // Pipelined mode: lanes of shared connections; exclusive checkouts go first (see `Lanes`).
    if (valid.pipeline !== undefined && sharing !== undefined) {
      return yield* Effect.fail(
        new PgSqlConfigError({
          field: "pipeline",
          value: valid.pipeline,
          reason: `needs a pool that lends a connection to one borrower at a time (not ${
            sharing === "pool" ? "StaticPool" : "FiberPool or reentrant leases: a fiber's checkouts share one"
          })`
        })
      )
    }
    const lanes = valid.pipeline === undefined
      ? undefined
      : yield* makeLanes(pool, valid.pipeline, (pooled) => bounded(new PooledSql(pooled, pool)))
    // Exclusive checkouts go first: shared connections take no new statement while one waits.
    const poolCheckout = lanes === undefined ? pool.checkout : lanes.exclusive(pool.checkout)

    const checkout: Effect.Effect<SqlConnection, SqlError, Scope.Scope> = poolCheckout.pipe(
      Effect.map((pooled): SqlConnection => connect(pooled)),
      Effect.mapError(checkoutError)
    )
    const acquirer = onAcquire === undefined ? checkout : Effect.tap(checkout, onAcquire)
    const borrower = borrowerOf({ pool, lanes, poolCheckout, connect, acquirer, onAcquire })
    const owned = sharing !== "pool"
      ? checkout
      : ownedCheckout({ pool, poolCheckout, sessions, transactionService: transactions, bounded })
    const transactionAcquirer = onAcquire === undefined ? owned : Effect.tap(owned, onAcquire)

    const makeOptions: SqlClient.SqlClient.MakeOptions = {
      acquirer,
      borrower,
      transactionAcquirer,
      transactionService: transactions,
      compiler: PgClient.makeCompiler(valid.transformQueryNames, valid.transformJson),
      driver: "pg",
      prepareTransactionControls: true,
      commit,
      // Once the connection was invalidated (its session died), there is nothing to roll back.
      isTransaction: (conn) => (conn as PooledSql).pooled.isValid,
      releaseSavepoint: (name) => `RELEASE SAVEPOINT ${name}`,
      spanAttributes: [
        ...(valid.spanAttributes ? Object.entries(valid.spanAttributes) : []),
        ["db.system.name", "postgresql"],
        ["db.namespace", target.database],
        ["server.address", target.host],
        ["server.port", target.port]
      ],
      transformRows: valid.transformResultNames
        ? Statement.defaultTransforms(valid.transformResultNames, valid.transformJson).array
        : undefined
    }
    const sqlClient = yield* SqlClient.make(makeOptions)

    const client = asPgClient(sqlClient, { config, target, options: valid, onAcquire, pool, borrower })
    if (lanes !== undefined) setPipeline(client, lanes)
    return { client, makeOptions }
  })
