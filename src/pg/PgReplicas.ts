/**
 * One `SqlClient` (and `PgClient`) over a primary pool and read-replica pools.
 *
 * - Writes, transactions, streams and `reserve` go to the primary.
 * - Work marked read-only — `PgSql.readOnly(effect)`, or a transaction begun read-only
 *   (`SqlClient.BeginTransaction` `"BEGIN READ ONLY"` / `"START TRANSACTION READ ONLY"`) — goes to
 *   a replica that serves reads, chosen round robin or least busy, and to the primary when none
 *   does.
 * - Every `healthCheckInterval` each pool is checked on one of its sessions: its role
 *   (`pg_is_in_recovery()`), and its WAL position (the primary's insert position, a replica's
 *   replay position). A replica found promoted (not in recovery), or a primary found in recovery,
 *   leaves its role (a replica gets no reads) and its pool is invalidated: its sessions are
 *   retired. A replica that cannot be checked out (unreachable, refusing, timing out connecting)
 *   is marked down, by the check or by the read that met it (which goes on at once to the next
 *   replica or the primary: nothing had run yet), until a check answers again. A statement that
 *   fails once it runs fails as it would over one pool (typed `SqlError`), and is not run again.
 * - `maxLag` (bounded staleness): a replica whose lag at the last check exceeds it gets no reads
 *   until it catches up; with every replica behind, reads go to the primary.
 * - `consistency: "read-your-writes"` (per layer, or per effect with {@link consistency} and
 *   {@link session}): after work of a session commits on the primary, the session's reads go to a
 *   replica only once it has replayed that commit, waiting at most `maxReplayWait`, else to the
 *   primary.
 * - Each pool keeps its own strategy layer (`QueuePool`, `NullPool`, ...) and driver settings.
 * - `listen`, `notify`, `json` and `config` are the primary's. `poolStats` sums every pool's
 *   (the connections behind this client: `idle`, `used`, `pending`, `min` and `max` added up);
 *   each pool's own is in {@link PgReplicas}' `status`.
 *
 * @since 0.1.0
 */
import { PgClient } from "@effect/sql-pg"
import { Context, Data, Duration, Effect, Layer, Metric, Result, Stream } from "effect"
import type { Scope } from "effect"
import * as Reactivity from "effect/reactivity/Reactivity"
import * as SqlClient from "effect/sql/SqlClient"
import type { SqlError } from "effect/sql/SqlError"
import { ConnectionPool } from "../ConnectionPool.ts"
import type { PoolStats } from "../ConnectionPool.ts"
import type { Driver } from "../Driver.ts"
import * as V from "../internal/validate.ts"
import * as PoolMetrics from "../PoolMetrics.ts"
import * as HostList from "./internal/host-list.ts"
import * as ReadYourWrites from "./internal/read-your-writes.ts"
import type { Consistency } from "./internal/read-your-writes.ts"
import { checkEvery } from "./internal/replica-health.ts"
import * as Router from "./internal/replica-router.ts"
import * as ReplicaSet from "./internal/replica-set.ts"
import type { Balance, Member } from "./internal/replica-set.ts"
import * as Replication from "./internal/replication.ts"
import { makeClient, pipelineOf, setPipeline } from "./internal/sql-client.ts"
import type { TransactionService } from "./internal/sql-client.ts"
import * as PgDriver from "./PgDriver.ts"
import * as PgSql from "./PgSql.ts"

// ---------------------------------------------------------------------------------- options

export type { Consistency } from "./internal/read-your-writes.ts"
export type { Balance } from "./internal/replica-set.ts"

/**
 * Options of {@link layer}: how reads are balanced, what they may see, and how pools are checked.
 *
 * @category models
 * @since 0.1.0
 */
export interface Options {
  /** How reads pick a replica. Default `"round-robin"`. */
  readonly balance?: Balance | undefined
  /**
   * How often every pool is checked (role, WAL position, lag) and a replica marked down probed.
   * A promoted replica or a demoted primary leaves its role within one interval (plus the
   * check's round trip). At least 100 ms. Default 1 second.
   */
  readonly healthCheckInterval?: Duration.Input | undefined
  /** Bound on one check (a replica that does not answer stays as it was, its lag unknown). Default 5 seconds. */
  readonly healthCheckTimeout?: Duration.Input | undefined
  /** What reads may see (see {@link Consistency}); per effect: {@link consistency}. Default `"eventual"`. */
  readonly consistency?: Consistency | undefined
  /**
   * Read-your-writes: how long a read waits for a replica to replay its session's writes before
   * it runs on the primary (meanwhile one fiber polls the replicas' positions for every waiting
   * read). `0`: no wait, a replica only when its last known position (health check, poll) has
   * passed them. Default 100 ms.
   */
  readonly maxReplayWait?: Duration.Input | undefined
  /**
   * Bounded staleness: a replica whose lag at the last health check exceeds this gets no reads
   * until a check finds it within; while a replica's lag is not known (before its first check,
   * after a failed one) it gets none either. Lag is measured per check, never per read (see
   * {@link PoolStatus.lagMillis}). Default: no bound.
   */
  readonly maxLag?: Duration.Input | undefined
  /** Names the router in metrics (`db.client.replicas.name`, see `PoolMetrics.replicaNames`). Default `"PgReplicas"`. */
  readonly name?: string | undefined
  /**
   * `PgSql` options (name transforms, span attributes, `transactionControlTimeout`, `pipeline`)
   * for every pool. With `pipeline`, each pool pipelines the statements routed to it over its own
   * shared connections (`maxConnections` per pool); {@link PoolStatus} `pipeline` shows them.
   */
  readonly sql?: PgSql.Options | undefined
}

/**
 * An option of {@link layer} was invalid. Raised when the layer is built, naming the option, its
 * value and the reason, as the pool's `PoolConfigError` does for pool options. (The `sql` options
 * fail with `PgSql.PgSqlConfigError`, each pool's driver settings with `PgDriver.PgConfigError`.)
 *
 * @category errors
 * @since 0.2.0
 */
export class PgReplicasConfigError extends Data.TaggedError("PgReplicasConfigError")<{
  /** The option's name, as given (a misspelled name too). */
  readonly field: string
  /** The value given. */
  readonly value: unknown
  /** What is wrong with it. */
  readonly reason: string
}> {
  /** Names the option, its value and the reason. */
  override get message(): string {
    return `Invalid PgReplicas option "${this.field}" = ${V.showValue(this.value)}: ${this.reason}`
  }
}

const check = V.validator((invalid) => new PgReplicasConfigError(invalid))

const optionRules = V.rulesFor<Options>()({
  balance: V.literal<Balance>(["round-robin", "least-busy"], "round-robin"),
  healthCheckInterval: V.period(Duration.seconds(1)),
  healthCheckTimeout: V.duration(Duration.seconds(5), { positive: true, finite: true }),
  consistency: V.literal<Consistency>(["eventual", "read-your-writes"], "eventual"),
  maxReplayWait: V.duration(Duration.millis(100), { finite: true }),
  maxLag: V.duration(undefined, { finite: true }),
  name: V.string({ nonEmpty: true }),
  sql: V.custom<PgSql.Options | undefined>(
    (value) =>
      typeof value === "object" && value !== null && !Array.isArray(value)
        ? Result.succeed(value as PgSql.Options)
        : Result.fail("must be PgSql options (an object)"),
    undefined
  )
})

const optionKeys = V.keysOfRules(optionRules)

// -------------------------------------------------------------------------- consistency marks

/**
 * Run `effect` with consistency `mode` (see {@link Consistency}), whatever the layer's option.
 * With `"read-your-writes"` the whole of `effect` (every fiber it forks) is one session, fresh
 * each time it runs: its reads see its writes.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { SqlClient } from "effect/sql"
 * import { PgReplicas, PgSql } from "effect-db-pool/pg"
 *
 * const placeOrder = Effect.gen(function*() {
 *   const sql = yield* SqlClient.SqlClient
 *   yield* sql`insert into orders (item) values ('book')`
 *   // A replica that has replayed the insert, else the primary.
 *   return yield* PgSql.readOnly(sql`select count(*) as n from orders`)
 * }).pipe(PgReplicas.consistency("read-your-writes"))
 * ```
 *
 * @see {@link session} a session across effects, named by a key
 * @category combinators
 * @since 0.1.0
 */
export const consistency: {
  (mode: Consistency): <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  <A, E, R>(effect: Effect.Effect<A, E, R>, mode: Consistency): Effect.Effect<A, E, R>
} = ReadYourWrites.consistency

/**
 * Run `effect` as part of read-your-writes session `key` (a user id, a request id...): its reads
 * see what any work of the same key committed before they started, across effects and fibers.
 * Keys are kept per router, at most 10,000 (the least recently written first out, and those every
 * replica has replayed past); a key no longer kept reads as if it wrote when the last forgotten
 * key did, so forgetting never loses a write.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { SqlClient } from "effect/sql"
 * import { PgReplicas, PgSql } from "effect-db-pool/pg"
 *
 * const handle = (userId: string) =>
 *   Effect.gen(function*() {
 *     const sql = yield* SqlClient.SqlClient
 *     return yield* PgSql.readOnly(sql`select * from carts where user_id = ${userId}`)
 *   }).pipe(PgReplicas.session(`user:${userId}`))
 * ```
 *
 * @see {@link consistency}
 * @category combinators
 * @since 0.1.0
 */
export const session: {
  (key: string): <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  <A, E, R>(effect: Effect.Effect<A, E, R>, key: string): Effect.Effect<A, E, R>
} = ReadYourWrites.session

// ----------------------------------------------------------------------------------- status

export type { Role } from "./internal/replication.ts"
type Role = Replication.Role

/**
 * One pool as the router sees it.
 *
 * @category models
 * @since 0.1.0
 */
export interface PoolStatus {
  /** `"primary"`, or `"replica <index>"`. */
  readonly name: string
  /**
   * A replica: reachable and a standby at the last check (a replica marked down, or found
   * promoted, gets no reads until a check finds it a reachable standby again). The primary: a
   * primary at the last check (informational: writes and fallback reads still go to it).
   */
  readonly healthy: boolean
  /** Gets reads now: healthy and, with `maxLag`, its lag known and within. The primary: `healthy`. */
  readonly serving: boolean
  /** What the last check found the server to be; `undefined` before one answered. */
  readonly role: Role | undefined
  /**
   * A replica's staleness at its last check, in ms: an upper bound on how long ago the primary
   * last held nothing the replica lacks. Each check reads the replicas' replay positions, then
   * the primary's position: a replica that had replayed that is caught up (0); one behind gets
   * the time since the newest earlier sample of the primary's position it had passed, or since
   * the commit time of the last transaction it replayed (on the primary's clock), the smaller.
   * An idle primary keeps a caught-up replica at 0. `undefined`: not known (no check yet, the
   * check failed, no sample of the primary). The primary: `undefined`.
   */
  readonly lagMillis: number | undefined
  /** WAL position at the last check (`X/Y`): the primary's insert position, a replica's replay position. */
  readonly lsn: string | undefined
  /** Checkouts in flight through this layer. */
  readonly inFlight: number
  /** Statements, streams, transactions and `reserve`s routed to this pool so far. */
  readonly routed: number
  /** Why it is not healthy (its last checkout failure, or the role it was found in), while it is not. */
  readonly lastError: SqlError | undefined
  /** The pool's occupancy (`ConnectionPool.PoolStats`). */
  readonly stats: PoolStats
  /**
   * With `sql: { pipeline }`: the pool's shared connections now (as `PgSql.pipelineStatus`);
   * `undefined` without it.
   */
  readonly pipeline: ReadonlyArray<PgSql.PipelineConnectionStatus> | undefined
}

/**
 * Read-your-writes reads so far that followed a write of their session, by where they ran.
 *
 * @category models
 * @since 0.1.0
 */
export interface ReadYourWritesStatus {
  /** A replica had replayed the session's writes already. */
  readonly replica: number
  /** A replica replayed them while the read waited. */
  readonly waited: number
  /** No replica in time (or the position could not be read): the primary. */
  readonly primary: number
  /** Round trips reading the primary's position (reads needing one at once share it). */
  readonly positionReads: number
}

/**
 * The router's view of its pools.
 *
 * @category models
 * @since 0.1.0
 */
export interface Status {
  /** The primary pool. */
  readonly primary: PoolStatus
  /** The replica pools, in the order given to {@link layer}. */
  readonly replicas: ReadonlyArray<PoolStatus>
  /** Where read-your-writes reads ran, and how many primary positions were read. */
  readonly readYourWrites: ReadYourWritesStatus
}

/**
 * The router service (provided with `SqlClient` by {@link layer}): the pools' roles, lag, health
 * and load, and a way to take a replica out of (or back into) rotation.
 *
 * @category services
 * @since 0.1.0
 */
export class PgReplicas extends Context.Service<PgReplicas, {
  /** Health, in-flight work and routed counts of every pool. */
  readonly status: Effect.Effect<Status>
  /** Mark replica `index` down (no reads until a health check finds it a reachable standby) or up. */
  readonly setHealthy: (index: number, healthy: boolean) => Effect.Effect<void>
}>()("effect-db-pool/pg/PgReplicas") {}

// ----------------------------------------------------------------------------------- router

/** Several pools' stats added up (`max` is `Infinity` when one pool is unbounded). */
const sumStats = (all: ReadonlyArray<PoolStats>): PoolStats =>
  all.reduce((sum, s) => ({
    idle: sum.idle + s.idle,
    used: sum.used + s.used,
    pending: sum.pending + s.pending,
    min: sum.min + s.min,
    max: sum.max + s.max
  }), { idle: 0, used: 0, pending: 0, min: 0, max: 0 })

let routerIds = 0

/** A pool's member of the router: its `PgSql` client (sharing the router's transaction service) and where it connects. */
const memberOf = (
  name: string,
  index: number,
  context: Context.Context<ConnectionPool | PgDriver.PgDriver>,
  sql: PgSql.Options,
  transactionService: TransactionService
): Effect.Effect<Member, PgSql.PgSqlConfigError, Scope.Scope | Reactivity.Reactivity> =>
  Effect.map(
    Effect.provideContext(makeClient(sql, transactionService), context),
    ({ client, makeOptions }) => {
      const described = HostList.describe(Context.get(context, PgDriver.PgDriver).config)
      return ReplicaSet.member(name, index, client, Context.get(context, ConnectionPool), makeOptions, {
        host: described.host,
        port: described.port
      })
    }
  )

/** One pool as {@link PoolStatus} shows it. */
const statusOf = (set: ReplicaSet.ReplicaSet, member: Member): Effect.Effect<PoolStatus> =>
  Effect.map(member.pool.stats, (stats) => ({
    name: member.name,
    healthy: member.healthy,
    serving: member.index < 0 ? member.healthy : ReplicaSet.serving(set, member),
    role: member.role,
    lagMillis: member.index < 0 ? undefined : member.lagMillis,
    lsn: member.lsn === Replication.zero ? undefined : Replication.format(member.lsn),
    inFlight: member.inFlight,
    routed: member.routed,
    lastError: member.lastError,
    stats,
    pipeline: pipelineOf(member.client)?.status()
  }))

/** The {@link PgReplicas} service of a router. */
const serviceOf = (set: ReplicaSet.ReplicaSet, state: ReadYourWrites.ReadYourWrites): PgReplicas["Service"] => ({
  status: Effect.map(
    Effect.forEach([set.primary, ...set.replicas], (member) => statusOf(set, member)),
    ([primaryStatus, ...replicaStatus]) => ({
      primary: primaryStatus!,
      replicas: replicaStatus,
      readYourWrites: { ...state.counts }
    })
  ),
  setHealthy: (index, healthy) =>
    Effect.sync(() => {
      const replica = set.replicas[index]
      if (replica === undefined) return
      replica.healthy = healthy
      if (healthy) {
        replica.lastError = undefined
        replica.misplaced = false
      }
    })
})

/** The router's gauges and counters (`PoolMetrics.forReplica`, `PoolMetrics.readYourWrites`), removed with the scope. */
const registerMetrics = (
  set: ReplicaSet.ReplicaSet,
  state: ReadYourWrites.ReadYourWrites,
  routerName: string
): Effect.Effect<void, never, Scope.Scope> =>
  Effect.gen(function*() {
    const context = yield* Effect.context<never>()
    const observe = <S>(metric: Metric.Metric<never, S>, get: () => S) =>
      Metric.registerUnsafe(metric, context, { get, update: () => {}, modify: () => {} })
    const registrations = [set.primary, ...set.replicas].flatMap((t) => {
      const m = PoolMetrics.forReplica(routerName, t.name)
      return [
        ...(t.index < 0 ? [] : [observe(m.lag, () => ({ value: t.lagMillis ?? -1 }))]),
        observe(m.serving, () => ({ value: (t.index < 0 ? t.healthy : ReplicaSet.serving(set, t)) ? 1 : 0 })),
        observe(m.routed, () => ({ count: t.routed, incremental: true }))
      ]
    })
    for (const outcome of PoolMetrics.readYourWritesOutcomes) {
      const field = outcome === "replica" ? "replica" : outcome === "waited" ? "waited" : "primary"
      registrations.push(
        observe(
          PoolMetrics.readYourWrites(routerName, outcome),
          () => ({ count: state.counts[field], incremental: true })
        )
      )
    }
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        for (const r of registrations) r.remove()
      })
    )
  })

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
  {
    /** The routing `SqlClient` / `PgClient`. */
    readonly client: PgClient.PgClient & SqlClient.SqlClient
    /** The {@link PgReplicas} service of this router. */
    readonly service: PgReplicas["Service"]
  },
  PgReplicasConfigError | PgSql.PgSqlConfigError,
  Scope.Scope | Reactivity.Reactivity
> =>
  Effect.gen(function*() {
    yield* check.check(V.notAnObject(options))
    yield* check.check(V.unknownKey(options, optionKeys, "PgReplicas.layer"))
    const valid = yield* check.decode(optionRules, options)
    const transactionService: TransactionService = Context.Service<
      SqlClient.TransactionConnection,
      SqlClient.TransactionConnection.Service
    >(`effect-db-pool/pg/PgReplicas/TransactionConnection/${routerIds++}`)
    const sql = valid.sql ?? {}
    const primary = yield* memberOf("primary", -1, pools.primary, sql, transactionService)
    const replicas = yield* Effect.forEach(
      pools.replicas,
      (context, i) => memberOf(`replica ${i}`, i, context, sql, transactionService)
    )
    const set: ReplicaSet.ReplicaSet = {
      primary,
      replicas,
      balance: valid.balance,
      maxLagMillis: valid.maxLag === undefined ? undefined : Duration.toMillis(valid.maxLag),
      probeMillis: Duration.toMillis(valid.healthCheckTimeout),
      lag: new Replication.LagEstimator(),
      scope: yield* Effect.scope,
      cursor: 0
    }
    const state = ReadYourWrites.make(set, valid)
    const router = yield* SqlClient.make({
      ...primary.options,
      acquirer: Router.acquirer(set, state, false),
      borrower: Router.borrower(set, state),
      transactionAcquirer: Router.acquirer(set, state, true),
      transactionService
    })
    if (replicas.length > 0) yield* Effect.forkScoped(checkEvery(set, state.sessions, valid.healthCheckInterval))
    const service = serviceOf(set, state)
    yield* registerMetrics(set, state, valid.name ?? "PgReplicas")

    const { client: primaryClient } = primary
    const client = Object.assign(router, {
      [PgClient.TypeId]: PgClient.TypeId,
      config: primaryClient.config,
      json: primaryClient.json,
      poolStats: Effect.map(Effect.forEach([primary, ...replicas], (t) => t.pool.stats), sumStats),
      listen: primaryClient.listen,
      notify: primaryClient.notify
    }) as PgClient.PgClient & SqlClient.SqlClient
    // With `sql: { pipeline }`: `PgSql.pipelineStatus` / `pipelineEvents` of the router are its pools'.
    const pipelines = [primary, ...replicas].flatMap((m) => pipelineOf(m.client) ?? [])
    if (pipelines.length > 0) {
      setPipeline(client, {
        status: () => pipelines.flatMap((p) => p.status()),
        events: Stream.mergeAll(pipelines.map((p) => p.events), { concurrency: "unbounded" })
      })
    }
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
): Layer.Layer<
  ConnectionPool | PgDriver.PgDriver,
  E | PgDriver.PgConfigError,
  Exclude<R, PgDriver.PgDriver | Driver>
> =>
  Layer.provideMerge(strategy, PgDriver.layer(driver)) as Layer.Layer<
    ConnectionPool | PgDriver.PgDriver,
    E | PgDriver.PgConfigError,
    Exclude<R, PgDriver.PgDriver | Driver>
  >

/**
 * Provide `SqlClient` and `PgClient` over a primary pool and replica pools, and the
 * {@link PgReplicas} service. Each pool is a layer of its own (a strategy over a `PgDriver`:
 * {@link pool}), built once; writes go to the primary, work marked with `PgSql.readOnly` to a
 * replica that serves reads (the module doc has the rules). With no replicas every read goes to
 * the primary.
 *
 * Give replica drivers `targetSessionAttrs: "standby"` (and the primary's `"read-write"`): a
 * session then also notices a promotion itself, at its next statement (see
 * `PgDriver.Config.TargetSessionAttrs`), besides the router's health check.
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
 * }, { balance: "least-busy", consistency: "read-your-writes", maxLag: "5 seconds" })
 *
 * const program = Effect.gen(function*() {
 *   const sql = yield* SqlClient.SqlClient
 *   yield* sql`insert into events (kind) values ('login')` // the primary
 *   // a replica that has replayed the insert (else, after 100 ms, the primary)
 *   return yield* PgSql.readOnly(sql`select count(*) as n from events`)
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
): Layer.Layer<
  PgClient.PgClient | SqlClient.SqlClient | PgReplicas,
  EP | ER | PgReplicasConfigError | PgSql.PgSqlConfigError,
  RP | RR
> =>
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
