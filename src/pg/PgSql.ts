/**
 * `SqlClient` and `PgClient` (from `effect/sql` / `@effect/sql-pg`) over the `ConnectionPool`
 * in context, whatever its strategy. The pool's raw connections must come from `PgDriver`.
 *
 * - A single statement borrows a connection for exactly that statement (`pool.use`, no scope).
 * - A transaction, a stream and `reserve` check one out for their scope (`pool.checkout`);
 *   nested transactions are savepoints on that connection.
 * - `listen` opens a session of its own (outside the pool) for its scope: a listener pins its
 *   session, which must not hold a pool slot or be handed to the listening fiber's statements.
 * - `COMMIT` of an aborted transaction fails (PostgreSQL answers it with `ROLLBACK`).
 * - A statement that fails because the session died invalidates its connection and stamps a
 *   pool-wide invalidation (every older connection is recycled at its next checkout), and fails
 *   with a `SqlError` whose reason is `ConnectionError` (see `PgDriver.disconnected`).
 * - Reset on return costs no round trip when the connection is known to be outside a
 *   transaction (see `PgDriver.Connection`).
 *
 * @since 0.1.0
 */
import { PgClient, PgConnection } from "@effect/sql-pg"
import { Effect, Layer, Redacted, Stream } from "effect"
import type { Scope } from "effect"
import type * as Reactivity from "effect/reactivity/Reactivity"
import * as SqlClient from "effect/sql/SqlClient"
import type { Connection as SqlConnection } from "effect/sql/SqlConnection"
import { ConnectionError, isSqlError, SqlError } from "effect/sql/SqlError"
import * as Statement from "effect/sql/Statement"
import { ConnectionPool } from "../ConnectionPool.ts"
import type { PooledConnection, Service as PoolService } from "../ConnectionPool.ts"
import {
  AssertionPoolError,
  ConnectError,
  ConnectionInvalidatedError,
  ConnectTimeoutError,
  DriverError,
  PoolClosedError,
  PoolTimeoutError
} from "../PoolError.ts"
import type { CheckoutError } from "../PoolError.ts"
import * as V from "../internal/validate.ts"
import * as PgDriver from "./PgDriver.ts"

/**
 * Client options (the statement-level part of `PgClient.PgClientConfig`).
 *
 * @category models
 * @since 0.1.0
 */
export interface Options {
  /** Rename result columns, e.g. snake_case → camelCase. */
  readonly transformResultNames?: ((name: string) => string) | undefined
  /** Rename identifiers in queries, e.g. camelCase → snake_case. */
  readonly transformQueryNames?: ((name: string) => string) | undefined
  /** Apply the name transforms inside JSON values too. Default true. */
  readonly transformJson?: boolean | undefined
  /** Extra span attributes on every statement. */
  readonly spanAttributes?: Record<string, unknown> | undefined
}

// ------------------------------------------------------------------------------- errors

const isCheckoutError = (e: unknown): e is CheckoutError =>
  e instanceof PoolTimeoutError || e instanceof ConnectError || e instanceof ConnectTimeoutError ||
  e instanceof ConnectionInvalidatedError || e instanceof DriverError || e instanceof PoolClosedError ||
  e instanceof AssertionPoolError

/**
 * A failed checkout as the `SqlError` the SQL layer speaks. A connect failure keeps the driver's
 * own `SqlError` (refused, authentication, unknown database, ...); the rest become a
 * `ConnectionError` whose cause is the pool's error.
 *
 * @category errors
 * @since 0.1.0
 */
export const checkoutError = (error: CheckoutError): SqlError => {
  if (error instanceof ConnectError && isSqlError(error.cause)) {
    // A server starting up or shutting down answers 57P03 (an UnknownError): report it as the
    // retryable ConnectionError it is. Refused, authentication, unknown database pass through.
    const cause = error.cause
    return cause.reason._tag === "UnknownError" && PgDriver.isDisconnect(cause)
      ? PgDriver.disconnected(cause, "checkout")
      : cause
  }
  return new SqlError({ reason: new ConnectionError({ cause: error, message: error.message, operation: "checkout" }) })
}

const handleClosed = (operation: string) =>
  new SqlError({
    reason: new ConnectionError({
      cause: new ConnectionInvalidatedError({}),
      message: "PgSql: This connection is closed",
      operation
    })
  })

/** Transaction cleanup statements: after the session died, there is nothing left to roll back. */
const rollbackStatement = /^\s*rollback(?:\s+to\s+savepoint\s+\w+)?\s*;?\s*$/i

// ---------------------------------------------------------------------------- connection

/** `SqlConnection` over one checkout; disconnects invalidate the checkout and the pool. */
class PooledSql implements SqlConnection {
  constructor(
    readonly pooled: PooledConnection<PgDriver.Connection>,
    readonly pool: PoolService<PgDriver.Connection>
  ) {}

  private guard<A>(
    sql: string,
    run: (c: PgDriver.Connection) => Effect.Effect<A, SqlError>,
    onDeadRollback: A
  ): Effect.Effect<A, SqlError> {
    if (!this.pooled.isValid) {
      return rollbackStatement.test(sql) ? Effect.succeed(onDeadRollback) : Effect.fail(handleClosed("execute"))
    }
    const connection = this.pooled.connection
    if (!(connection instanceof PgDriver.Connection)) {
      return Effect.die(new Error("PgSql needs a ConnectionPool over PgDriver (the raw connection is not a PgDriver.Connection)"))
    }
    return Effect.catchIf(
      run(connection),
      PgDriver.isDisconnect,
      (error) =>
        Effect.andThen(
          Effect.andThen(this.pooled.invalidate(error, "statement"), this.pool.invalidateAll),
          rollbackStatement.test(sql) ? Effect.succeed(onDeadRollback) : Effect.fail(PgDriver.disconnected(error, "execute"))
        )
    )
  }

  execute(
    sql: string,
    params: ReadonlyArray<unknown>,
    transformRows: (<A extends object>(row: ReadonlyArray<A>) => ReadonlyArray<A>) | undefined
  ) {
    return this.guard(sql, (c) =>
      Effect.map(c.query(sql, params), (r) =>
        transformRows ? transformRows(r.rows as ReadonlyArray<object>) : r.rows), [] as ReadonlyArray<any>)
  }
  executeUnprepared(
    sql: string,
    params: ReadonlyArray<unknown>,
    transformRows: (<A extends object>(row: ReadonlyArray<A>) => ReadonlyArray<A>) | undefined
  ) {
    return this.guard(sql, (c) =>
      Effect.map(c.query(sql, params, false), (r) =>
        transformRows ? transformRows(r.rows as ReadonlyArray<object>) : r.rows), [] as ReadonlyArray<any>)
  }
  executeRaw(sql: string, params: ReadonlyArray<unknown>) {
    return this.guard(sql, (c) => c.query(sql, params) as Effect.Effect<unknown, SqlError>, undefined as unknown)
  }
  executeValues(sql: string, params: ReadonlyArray<unknown>) {
    return this.guard(sql, (c) => c.queryValues(sql, params), [] as ReadonlyArray<ReadonlyArray<unknown>>)
  }
  executeValuesUnprepared(sql: string, params: ReadonlyArray<unknown>) {
    return this.guard(sql, (c) => c.queryValues(sql, params, false), [] as ReadonlyArray<ReadonlyArray<unknown>>)
  }
  executeStream(
    sql: string,
    params: ReadonlyArray<unknown>,
    transformRows: (<A extends object>(row: ReadonlyArray<A>) => ReadonlyArray<A>) | undefined
  ): Stream.Stream<any, SqlError> {
    return Stream.unwrap(Effect.sync(() => {
      if (!this.pooled.isValid) return Stream.fail(handleClosed("stream"))
      const rows = (this.pooled.connection as PgDriver.Connection).stream(sql, params).pipe(
        Stream.catchIf(PgDriver.isDisconnect, (error) =>
          Stream.fromEffect(Effect.andThen(
            Effect.andThen(this.pooled.invalidate(error, "statement"), this.pool.invalidateAll),
            Effect.fail(PgDriver.disconnected(error, "stream"))
          )))
      )
      return transformRows
        ? Stream.mapArray(rows, (chunk) => transformRows(chunk) as any)
        : rows
    }))
  }
}

/** PostgreSQL answers `COMMIT` with `ROLLBACK` when the transaction was aborted: that must fail. */
const commit = (conn: SqlConnection): Effect.Effect<void, SqlError> =>
  Effect.flatMap(conn.executeRaw("COMMIT", []), (result) =>
    (result as PgConnection.Result | undefined)?.command === "ROLLBACK"
      ? Effect.fail(PgDriver.unknownError(
        new Error("COMMIT rolled back an aborted transaction"),
        "PgSql: COMMIT rolled back an aborted transaction",
        "commit"
      ))
      : Effect.void)

interface PgJson extends Statement.Custom<"PgJson", unknown> {}
/** The same custom kind `PgClient.makeCompiler` encodes as jsonb. */
const PgJson = Statement.custom<PgJson>("PgJson")

const sql = V.validator((invalid) => new PgDriver.PgConfigError(invalid))

/** The rules of every {@link Options} field (an option without one does not compile). */
const optionRules = V.rulesFor<Options>()({
  transformResultNames: V.func<(name: string) => string>(),
  transformQueryNames: V.func<(name: string) => string>(),
  transformJson: V.boolean(),
  spanAttributes: V.record<Record<string, unknown>>("must be a record")
})

const optionKeys = V.keysOfRules(optionRules)

const validateOptions = (options: Options): Effect.Effect<Options, PgDriver.PgConfigError> =>
  Effect.gen(function*() {
    yield* sql.check(V.notAnObject(options))
    yield* sql.check(V.unknownKey(options, optionKeys, "PgSql.layerWith"))
    yield* sql.decode(optionRules, options)
    return options
  })

/** Server address and database, for span attributes. */
const hostOf = (config: PgDriver.Config): { host: string; port: number; database: string } => {
  let url: URL | undefined
  try {
    url = config.url === undefined ? undefined : new URL(String(Redacted.value(config.url)))
  } catch {
    url = undefined
  }
  const fromUrl = url?.pathname.slice(1)
  return {
    host: config.host ?? (url?.hostname || "localhost"),
    port: config.port ?? (url?.port ? Number(url.port) : 5432),
    database: config.database ?? (fromUrl || config.username || url?.username || "postgres")
  }
}

/**
 * Build the client over the pool in context (used by {@link layer}).
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = (
  options: Options = {}
): Effect.Effect<
  PgClient.PgClient,
  PgDriver.PgConfigError,
  ConnectionPool | PgDriver.PgDriver | Scope.Scope | Reactivity.Reactivity
> =>
  Effect.gen(function*() {
    const valid = yield* validateOptions(options)
    const pool = yield* PgDriver.Pool
    const { config } = yield* Effect.service(PgDriver.PgDriver)
    const target = hostOf(config)
    const compiler = PgClient.makeCompiler(valid.transformQueryNames, valid.transformJson)
    const transformRows = valid.transformResultNames
      ? Statement.defaultTransforms(valid.transformResultNames, valid.transformJson).array
      : undefined

    const acquirer: Effect.Effect<SqlConnection, SqlError, Scope.Scope> = pool.checkout.pipe(
      Effect.map((pooled): SqlConnection => new PooledSql(pooled, pool)),
      Effect.mapError(checkoutError)
    )
    const borrower = <A, E, R>(f: (connection: SqlConnection) => Effect.Effect<A, E, R>) =>
      pool.use((pooled) => f(new PooledSql(pooled, pool))).pipe(
        Effect.catchIf(isCheckoutError, (e) => Effect.fail(checkoutError(e)))
      ) as Effect.Effect<A, E | SqlError, R>

    const client = yield* SqlClient.make({
      acquirer,
      borrower,
      transactionAcquirer: acquirer,
      compiler,
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
      transformRows
    })

    // A listener pins its session until its scope closes. It gets a session of its own, outside
    // the pool: holding a pool slot would starve the pool, and under FiberPool the fiber's next
    // statement would be handed the same, pinned session and wait forever.
    const { alwaysReset: _alwaysReset, ...sessionConfig } = config
    const listenSession = PgConnection.make(sessionConfig)
    const pgConfig: PgClient.PgClientConfig = {
      ...config,
      ...valid
    }
    return Object.assign(client, {
      [PgClient.TypeId]: PgClient.TypeId,
      config: pgConfig,
      json: (value: unknown) => Statement.fragment([PgJson(value, undefined, undefined)]),
      listen: (channel: string) => Effect.flatMap(listenSession, (session) => session.listen(channel)),
      notify: (channel: string, payload: string) =>
        Effect.asVoid(borrower((conn) => conn.executeRaw("SELECT pg_notify($1, $2)", [channel, payload])))
    }) as PgClient.PgClient
  })

/**
 * Provide `SqlClient` and `PgClient` over the `ConnectionPool` and `PgDriver` in context.
 *
 * @example
 * ```ts
 * import { Effect, Layer, Redacted } from "effect"
 * import { SqlClient } from "effect/sql"
 * import { QueuePool } from "effect-db-pool"
 * import { PgDriver, PgSql } from "effect-db-pool/pg"
 *
 * const Sql = PgSql.layer.pipe(
 *   Layer.provide(QueuePool.layer({ poolSize: 5, prePing: true })),
 *   Layer.provide(PgDriver.layer({ url: Redacted.make("postgres://postgres@127.0.0.1:5432/test") }))
 * )
 * const program = Effect.gen(function*() {
 *   const sql = yield* SqlClient.SqlClient
 *   return yield* sql`select 1 as one`
 * }).pipe(Effect.provide(Sql))
 * ```
 *
 * @category layers
 * @since 0.1.0
 */
export const layer: Layer.Layer<PgClient.PgClient | SqlClient.SqlClient, never, ConnectionPool | PgDriver.PgDriver> = PgClient
  .layerFrom(Effect.orDie(make()))

/**
 * As {@link layer}, with name transforms and span attributes. Options are validated when the
 * layer builds.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerWith = (
  options: Options
): Layer.Layer<PgClient.PgClient | SqlClient.SqlClient, PgDriver.PgConfigError, ConnectionPool | PgDriver.PgDriver> =>
  PgClient.layerFrom(make(options))
