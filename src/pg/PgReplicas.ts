/**
 * One `SqlClient` (and `PgClient`) over a primary pool and read-replica pools.
 *
 * - Writes, transactions, streams and `reserve` go to the primary.
 * - Work marked read-only — `PgSql.readOnly(effect)`, or a transaction begun read-only
 *   (`SqlClient.BeginTransaction` `"BEGIN READ ONLY"` / `"START TRANSACTION READ ONLY"`) — goes to
 *   a healthy replica, chosen round robin or least busy, and to the primary when none is healthy.
 * - A replica is marked down when a checkout from its pool fails (it cannot be reached, refuses,
 *   or times out connecting): the work that met the failure goes to the next healthy replica or
 *   the primary at once (nothing had run yet), and the replica is probed (`SELECT 1`) every
 *   `healthCheckInterval` until it answers. A statement that fails once it runs fails as it
 *   would over one pool (typed `SqlError`), and is not run again.
 * - Each pool keeps its own strategy layer (`QueuePool`, `NullPool`, ...) and driver settings.
 * - `listen`, `notify`, `json` and `config` are the primary's. `poolStats` sums every pool's
 *   (the connections behind this client: `idle`, `used`, `pending`, `min` and `max` added up);
 *   each pool's own is in {@link PgReplicas}' `status`.
 *
 * A replica may lag the primary: read-your-writes needs the primary (leave such reads unmarked).
 *
 * @since 0.1.0
 */
import { PgClient } from "@effect/sql-pg"
import { Context, Duration, Effect, Layer, Result } from "effect"
import type { Fiber, Scope } from "effect"
import * as Reactivity from "effect/reactivity/Reactivity"
import * as SqlClient from "effect/sql/SqlClient"
import type { Acquirer, Borrower, Connection } from "effect/sql/SqlConnection"
import { isSqlError } from "effect/sql/SqlError"
import type { SqlError } from "effect/sql/SqlError"
import { ConnectionPool } from "../ConnectionPool.ts"
import type { PoolStats, Service as PoolService } from "../ConnectionPool.ts"
import type { Driver } from "../Driver.ts"
import { PoolClosedError, PoolTimeoutError } from "../PoolError.ts"
import * as V from "../internal/validate.ts"
import * as Routing from "./internal/routing.ts"
import * as PgDriver from "./PgDriver.ts"
import * as PgSql from "./PgSql.ts"

// ---------------------------------------------------------------------------------- options

/**
 * How reads pick a healthy replica: `"round-robin"` (default) in turn; `"least-busy"` the one
 * with the fewest checkouts in flight through this layer (ties in turn).
 *
 * @category models
 * @since 0.1.0
 */
export type Balance = "round-robin" | "least-busy"

/**
 * @category models
 * @since 0.1.0
 */
export interface Options {
  /** How reads pick a replica. Default `"round-robin"`. */
  readonly balance?: Balance | undefined
  /** How often a replica marked down is probed (`SELECT 1`) to bring it back. Default 1 second. */
  readonly healthCheckInterval?: Duration.Input | undefined
  /** Bound on one probe (a replica that does not answer stays down). Default 5 seconds. */
  readonly healthCheckTimeout?: Duration.Input | undefined
  /** `PgSql` options (name transforms, span attributes, `transactionControlTimeout`) for every pool. */
  readonly sql?: PgSql.Options | undefined
}

const check = V.validator((invalid) => new PgDriver.PgConfigError(invalid))

const optionRules = V.rulesFor<Options>()({
  balance: V.literal<Balance>(["round-robin", "least-busy"], "round-robin"),
  healthCheckInterval: V.duration(Duration.seconds(1), { positive: true, finite: true }),
  healthCheckTimeout: V.duration(Duration.seconds(5), { positive: true, finite: true }),
  sql: V.custom<PgSql.Options | undefined>(
    (value) =>
      typeof value === "object" && value !== null && !Array.isArray(value)
        ? Result.succeed(value as PgSql.Options)
        : Result.fail("must be PgSql options (an object)"),
    undefined
  )
})

const optionKeys = V.keysOfRules(optionRules)

// ----------------------------------------------------------------------------------- status

/**
 * One pool as the router sees it.
 *
 * @category models
 * @since 0.1.0
 */
export interface PoolStatus {
  /** `"primary"`, or `"replica <index>"`. */
  readonly name: string
  /** A replica marked down gets no reads until a probe answers; the primary is always `true`. */
  readonly healthy: boolean
  /** Checkouts in flight through this layer. */
  readonly inFlight: number
  /** Statements, streams, transactions and `reserve`s routed to this pool so far. */
  readonly routed: number
  /** Why a replica was marked down (its last checkout failure), while it is. */
  readonly lastError: SqlError | undefined
  /** The pool's occupancy (`ConnectionPool.PoolStats`). */
  readonly stats: PoolStats
}

/**
 * The router's view of its pools.
 *
 * @category models
 * @since 0.1.0
 */
export interface Status {
  readonly primary: PoolStatus
  readonly replicas: ReadonlyArray<PoolStatus>
}

/**
 * The router service (provided with `SqlClient` by {@link layer}): the pools' health and load,
 * and a way to take a replica out of (or back into) rotation.
 *
 * @category services
 * @since 0.1.0
 */
export class PgReplicas extends Context.Service<PgReplicas, {
  readonly status: Effect.Effect<Status>
  /** Mark replica `index` down (no reads until a probe answers) or up. */
  readonly setHealthy: (index: number, healthy: boolean) => Effect.Effect<void>
}>()("effect-db-pool/pg/PgReplicas") {}

// ----------------------------------------------------------------------------------- router

interface Target {
  readonly name: string
  /** -1: the primary. */
  readonly index: number
  readonly client: PgClient.PgClient & SqlClient.SqlClient
  readonly pool: PoolService
  readonly options: SqlClient.SqlClient.MakeOptions
  readonly borrower: Borrower
  healthy: boolean
  inFlight: number
  routed: number
  lastError: SqlError | undefined
}

const makeOptionsOf = (client: PgClient.PgClient): SqlClient.SqlClient.MakeOptions => {
  const options = (client as unknown as Record<string, SqlClient.SqlClient.MakeOptions | undefined>)[Routing.optionsKey]
  if (options === undefined) throw new Error("PgReplicas: the client was not built by PgSql.make")
  return options
}

/**
 * A checkout failure that says the replica cannot serve (unreachable, refusing, timing out
 * connecting): not a full pool (it waited its `timeout` already) nor a closing one.
 */
/** Several pools' stats added up (`max` is `Infinity` when one pool is unbounded). */
const sumStats = (all: ReadonlyArray<PoolStats>): PoolStats =>
  all.reduce((sum, s) => ({
    idle: sum.idle + s.idle,
    used: sum.used + s.used,
    pending: sum.pending + s.pending,
    min: sum.min + s.min,
    max: sum.max + s.max
  }), { idle: 0, used: 0, pending: 0, min: 0, max: 0 })

const isUnreachable = (error: unknown): error is SqlError =>
  isSqlError(error) &&
  !(error.reason.cause instanceof PoolTimeoutError) &&
  !(error.reason.cause instanceof PoolClosedError)

let routerIds = 0

/**
 * Build the router over already built pools (`primary` and `replicas`: contexts holding a
 * `ConnectionPool` and a `PgDriver`). Used by {@link layer}.
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = (
  pools: {
    readonly primary: Context.Context<ConnectionPool | PgDriver.PgDriver>
    readonly replicas: ReadonlyArray<Context.Context<ConnectionPool | PgDriver.PgDriver>>
  },
  options: Options = {}
): Effect.Effect<
  { readonly client: PgClient.PgClient & SqlClient.SqlClient; readonly service: PgReplicas["Service"] },
  PgDriver.PgConfigError,
  Scope.Scope | Reactivity.Reactivity
> =>
  Effect.gen(function*() {
    yield* check.check(V.notAnObject(options))
    yield* check.check(V.unknownKey(options, optionKeys, "PgReplicas.layer"))
    const valid = yield* check.decode(optionRules, options)
    const transactionService = Context.Service<SqlClient.TransactionConnection, SqlClient.TransactionConnection.Service>(
      `effect-db-pool/pg/PgReplicas/TransactionConnection/${routerIds++}`
    )
    const clientOf = (context: Context.Context<ConnectionPool | PgDriver.PgDriver>) =>
      PgSql.make(valid.sql ?? {}).pipe(
        Effect.provideContext(context),
        Effect.provideService(Routing.SharedTransactionService, transactionService)
      )
    const target = (
      name: string,
      index: number,
      client: PgClient.PgClient & SqlClient.SqlClient,
      context: Context.Context<ConnectionPool | PgDriver.PgDriver>
    ): Target => {
      const makeOptions = makeOptionsOf(client)
      return {
        name,
        index,
        client,
        pool: Context.get(context, ConnectionPool),
        options: makeOptions,
        borrower: makeOptions.borrower ?? ((f) => Effect.scoped(Effect.flatMap(makeOptions.acquirer, f))),
        healthy: true,
        inFlight: 0,
        routed: 0,
        lastError: undefined
      }
    }
    const primary = target("primary", -1, yield* clientOf(pools.primary), pools.primary)
    const replicas: ReadonlyArray<Target> = yield* Effect.forEach(
      pools.replicas,
      (context, i) => Effect.map(clientOf(context), (client) => target(`replica ${i}`, i, client, context))
    )

    // ------------------------------------------------------------------------ choosing
    let cursor = 0
    /** The replica for the next read: healthy, in turn or least busy; the primary when none is. */
    const pick = (): Target => {
      const n = replicas.length
      let chosen: Target | undefined
      for (let k = 0; k < n; k++) {
        const candidate = replicas[(cursor + k) % n]!
        if (!candidate.healthy) continue
        if (valid.balance === "round-robin") {
          chosen = candidate
          break
        }
        if (chosen === undefined || candidate.inFlight < chosen.inFlight) chosen = candidate
      }
      if (chosen === undefined) return primary
      cursor = (chosen.index + 1) % n
      return chosen
    }
    const readOnlyOf = (fiber: Fiber.Fiber<unknown, unknown>, transaction: boolean): boolean =>
      fiber.getRef(Routing.ReadOnly) || (transaction && Routing.isReadOnlyBegin(fiber.getRef(SqlClient.BeginTransaction)))

    const markDown = (replica: Target, error: SqlError): Effect.Effect<void> =>
      Effect.suspend(() => {
        replica.lastError = error
        if (!replica.healthy) return Effect.void
        replica.healthy = false
        return Effect.logWarning(
          `PgReplicas: replica ${replica.index} is down (reads go to the other replicas or the primary until it answers): ${error.message}`
        )
      })

    // ------------------------------------------------------------------------ routing
    /** One statement on `at`; a replica whose checkout fails is marked down and the next tried. */
    const borrowOn = <A, E, R>(at: Target, f: (connection: Connection) => Effect.Effect<A, E, R>): Effect.Effect<A, E | SqlError, R> =>
      Effect.suspend(() => {
        let entered = false
        at.routed++
        // Counted and uncounted in one uninterruptible step: an interrupt cannot leave the count off.
        const run = Effect.uninterruptibleMask((restore) => {
          at.inFlight++
          return Effect.ensuring(
            restore(at.borrower((connection) => {
              entered = true
              return f(connection)
            })),
            Effect.sync(() => at.inFlight--)
          )
        })
        if (at === primary) return run
        return Effect.catchIf(
          run,
          (error): error is SqlError & E => !entered && isUnreachable(error),
          // The next pick runs after `at` is marked down (not when this effect is built).
          (error) => Effect.andThen(markDown(at, error), Effect.suspend(() => borrowOn(pick(), f)))
        )
      })

    /** A scoped checkout on `at` (stream, transaction, `reserve`), with the same fallback. */
    const acquireOn = (at: Target, transaction: boolean): Acquirer =>
      Effect.suspend(() => {
        const acquire = transaction ? at.options.transactionAcquirer ?? at.options.acquirer : at.options.acquirer
        at.routed++
        const counted = Effect.tap(acquire, () =>
          Effect.uninterruptible(Effect.andThen(
            Effect.sync(() => at.inFlight++),
            Effect.addFinalizer(() => Effect.sync(() => at.inFlight--))
          )))
        if (at === primary) return counted
        return Effect.catchIf(
          counted,
          isUnreachable,
          (error) => Effect.andThen(markDown(at, error), Effect.suspend(() => acquireOn(pick(), transaction)))
        )
      })

    const borrower: Borrower = (f) =>
      Effect.withFiber((fiber) => borrowOn(readOnlyOf(fiber, false) ? pick() : primary, f))
    const acquirer: Acquirer = Effect.withFiber((fiber) => acquireOn(readOnlyOf(fiber, false) ? pick() : primary, false))
    const transactionAcquirer: Acquirer = Effect.withFiber((fiber) =>
      acquireOn(readOnlyOf(fiber, true) ? pick() : primary, true)
    )

    const router = yield* SqlClient.make({
      ...primary.options,
      acquirer,
      borrower,
      transactionAcquirer,
      transactionService
    })

    // ------------------------------------------------------------------------ health
    const probeMillis = Duration.toMillis(valid.healthCheckTimeout)
    const probe = (replica: Target): Effect.Effect<void> =>
      replica.borrower((connection) => connection.executeRaw("SELECT 1", [])).pipe(
        Effect.timeout(probeMillis),
        Effect.matchEffect({
          onFailure: () => Effect.void,
          onSuccess: () =>
            Effect.suspend(() => {
              if (replica.healthy) return Effect.void
              replica.healthy = true
              replica.lastError = undefined
              return Effect.logInfo(`PgReplicas: replica ${replica.index} answers again: back in rotation`)
            })
        })
      )
    if (replicas.length > 0) {
      yield* Effect.forkScoped(
        Effect.forever(
          Effect.andThen(
            Effect.sleep(valid.healthCheckInterval),
            Effect.suspend(() =>
              Effect.forEach(replicas.filter((r) => !r.healthy), probe, { concurrency: "unbounded", discard: true })
            )
          )
        )
      )
    }

    const statusOf = (t: Target): Effect.Effect<PoolStatus> =>
      Effect.map(t.pool.stats, (stats) => ({
        name: t.name,
        healthy: t.healthy,
        inFlight: t.inFlight,
        routed: t.routed,
        lastError: t.lastError,
        stats
      }))
    const targets = [primary, ...replicas]
    const service: PgReplicas["Service"] = {
      status: Effect.map(
        Effect.forEach(targets, statusOf),
        ([primaryStatus, ...replicaStatus]) => ({ primary: primaryStatus!, replicas: replicaStatus })
      ),
      setHealthy: (index, healthy) =>
        Effect.sync(() => {
          const replica = replicas[index]
          if (replica === undefined) return
          replica.healthy = healthy
          if (healthy) replica.lastError = undefined
        })
    }

    const { client: primaryClient } = primary
    const client = Object.assign(router, {
      [PgClient.TypeId]: PgClient.TypeId,
      config: primaryClient.config,
      json: primaryClient.json,
      poolStats: Effect.map(Effect.forEach(targets, (t) => t.pool.stats), sumStats),
      listen: primaryClient.listen,
      notify: primaryClient.notify
    }) as PgClient.PgClient & SqlClient.SqlClient
    return { client, service }
  })

/**
 * A pool for {@link layer}: a strategy layer over a `PgDriver` (both in its output).
 *
 * @example
 * ```ts
 * import { Redacted } from "effect"
 * import { QueuePool } from "effect-db-pool"
 * import { PgReplicas } from "effect-db-pool/pg"
 *
 * const replica = PgReplicas.pool(QueuePool.layer({ poolSize: 10 }), {
 *   url: Redacted.make("postgres://app@replica-1:5432/app")
 * })
 * ```
 *
 * @category constructors
 * @since 0.1.0
 */
export const pool = <E, R>(
  strategy: Layer.Layer<ConnectionPool, E, R>,
  driver: PgDriver.Config
): Layer.Layer<ConnectionPool | PgDriver.PgDriver, E | PgDriver.PgConfigError, Exclude<R, PgDriver.PgDriver | Driver>> =>
  Layer.provideMerge(strategy, PgDriver.layer(driver)) as Layer.Layer<
    ConnectionPool | PgDriver.PgDriver,
    E | PgDriver.PgConfigError,
    Exclude<R, PgDriver.PgDriver | Driver>
  >

/**
 * Provide `SqlClient` and `PgClient` over a primary pool and replica pools, and the
 * {@link PgReplicas} service. Each pool is a layer of its own (a strategy over a `PgDriver`:
 * {@link pool}), built once; writes go to the primary, work marked with `PgSql.readOnly` to a
 * healthy replica (the module doc has the rules). With no replicas every read goes to the primary.
 *
 * @example
 * ```ts
 * import { Effect, Redacted } from "effect"
 * import { SqlClient } from "effect/sql"
 * import { QueuePool } from "effect-db-pool"
 * import { PgReplicas, PgSql } from "effect-db-pool/pg"
 *
 * const Sql = PgReplicas.layer({
 *   primary: PgReplicas.pool(QueuePool.layer({ poolSize: 10 }), { url: Redacted.make("postgres://app@db-1/app") }),
 *   replicas: [
 *     PgReplicas.pool(QueuePool.layer({ poolSize: 10 }), { url: Redacted.make("postgres://app@db-2/app") }),
 *     PgReplicas.pool(QueuePool.layer({ poolSize: 10 }), { url: Redacted.make("postgres://app@db-3/app") })
 *   ]
 * }, { balance: "least-busy" })
 *
 * const program = Effect.gen(function*() {
 *   const sql = yield* SqlClient.SqlClient
 *   yield* sql`insert into events (kind) values ('login')` // the primary
 *   return yield* PgSql.readOnly(sql`select count(*) as n from events`) // a replica
 * }).pipe(Effect.provide(Sql))
 * ```
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = <EP, RP, ER = never, RR = never>(
  pools: {
    readonly primary: Layer.Layer<ConnectionPool | PgDriver.PgDriver, EP, RP>
    readonly replicas: ReadonlyArray<Layer.Layer<ConnectionPool | PgDriver.PgDriver, ER, RR>>
  },
  options: Options = {}
): Layer.Layer<PgClient.PgClient | SqlClient.SqlClient | PgReplicas, EP | ER | PgDriver.PgConfigError, RP | RR> =>
  Layer.effectContext(
    Effect.gen(function*() {
      const scope = yield* Effect.scope
      const primary = yield* Layer.buildWithScope(pools.primary, scope)
      const replicas = yield* Effect.forEach(pools.replicas, (replica) => Layer.buildWithScope(replica, scope))
      const { client, service } = yield* make({ primary, replicas }, options)
      return Context.make(PgClient.PgClient, client).pipe(
        Context.add(SqlClient.SqlClient, client),
        Context.add(PgReplicas, service)
      )
    })
  ).pipe(Layer.provide(Reactivity.layer))
