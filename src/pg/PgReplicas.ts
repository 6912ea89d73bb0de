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
import { Clock, Context, Deferred, Duration, Effect, Exit, Layer, Metric, Result } from "effect"
import type { Fiber, Scope } from "effect"
import { dual } from "effect/Function"
import * as Reactivity from "effect/reactivity/Reactivity"
import * as SqlClient from "effect/sql/SqlClient"
import type { Acquirer, Borrower, Connection } from "effect/sql/SqlConnection"
import { ConnectionError, isSqlError, SqlError } from "effect/sql/SqlError"
import { ConnectionPool } from "../ConnectionPool.ts"
import type { PoolStats, Service as PoolService } from "../ConnectionPool.ts"
import type { Driver } from "../Driver.ts"
import * as V from "../internal/validate.ts"
import { PoolClosedError, PoolTimeoutError } from "../PoolError.ts"
import * as PoolMetrics from "../PoolMetrics.ts"
import * as HostList from "./internal/host-list.ts"
import * as Replication from "./internal/replication.ts"
import * as Routing from "./internal/routing.ts"
import * as PgDriver from "./PgDriver.ts"
import * as PgSql from "./PgSql.ts"

// ---------------------------------------------------------------------------------- options

/**
 * How reads pick a replica that serves reads: `"round-robin"` (default) in turn; `"least-busy"`
 * the one with the fewest checkouts in flight through this layer (ties in turn).
 *
 * @category models
 * @since 0.1.0
 */
export type Balance = "round-robin" | "least-busy"

/**
 * What a read-only read may see:
 *
 * - `"eventual"` (default): whatever the replica it lands on has replayed (replication is
 *   asynchronous: a read right after a write may miss it).
 * - `"read-your-writes"`: everything its session committed before it started. After a session's
 *   work on the primary ends, its next read reads the primary's WAL insert position (one round
 *   trip on a primary session, shared by the reads that need it at once) and goes to a replica
 *   whose replay position has passed it; when none has, it waits for one at most `maxReplayWait`
 *   (the replicas' positions are polled, by one fiber for all waiting reads), then runs on the
 *   primary. A session's reads before its first write, and after a replica has replayed its
 *   writes, cost nothing extra.
 *
 * A session is the fiber (the default), the effect wrapped in {@link consistency} (all its
 * fibers), or a key of yours ({@link session}: a user or request id, across effects).
 *
 * @category models
 * @since 0.1.0
 */
export type Consistency = "eventual" | "read-your-writes"

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
  /** `PgSql` options (name transforms, span attributes, `transactionControlTimeout`) for every pool. */
  readonly sql?: PgSql.Options | undefined
}

const check = V.validator((invalid) => new PgDriver.PgConfigError(invalid))

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

/** Read-your-writes: polls of the replicas' positions 1 ms apart before the poller backs off. */
const shortPolls = 8

/** Read-your-writes sessions named by a key of the user's, kept at most (the least recently written first out). */
const maxSessionKeys = 10_000

// -------------------------------------------------------------------------- consistency marks

/** What {@link consistency} / {@link session} set for an effect. */
interface Mark {
  readonly mode: Consistency
  /** A `consistency("read-your-writes")` scope: its session (shared by its fibers). */
  readonly owner: object | undefined
  /** A {@link session} key. */
  readonly key: string | undefined
}

const CurrentMark = Context.Reference<Mark | undefined>("effect-db-pool/pg/PgReplicas/Consistency", {
  defaultValue: () => undefined
})

/**
 * Has any effect been marked ({@link consistency}, {@link session})? Until then a router with the
 * default `"eventual"` does not look for a mark: a statement pays one branch.
 */
let marksUsed = false

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
} = dual(2, <A, E, R>(effect: Effect.Effect<A, E, R>, mode: Consistency): Effect.Effect<A, E, R> => {
  marksUsed = true
  return Effect.suspend(() =>
    Effect.provideService(effect, CurrentMark, {
      mode,
      owner: mode === "read-your-writes" ? {} : undefined,
      key: undefined
    })
  )
})

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
} = dual(2, <A, E, R>(effect: Effect.Effect<A, E, R>, key: string): Effect.Effect<A, E, R> => {
  marksUsed = true
  return Effect.provideService(effect, CurrentMark, { mode: "read-your-writes", owner: undefined, key })
})

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

interface Target {
  readonly name: string
  /** -1: the primary. */
  readonly index: number
  readonly client: PgClient.PgClient & SqlClient.SqlClient
  readonly pool: PoolService
  readonly options: SqlClient.SqlClient.MakeOptions
  readonly borrower: Borrower
  /** Where its driver connects first (the role error names it). */
  readonly host: HostList.Host
  healthy: boolean
  /** The last check found the wrong role (its pool was invalidated then). */
  misplaced: boolean
  role: Role | undefined
  /** The primary: insert position at the last check; a replica: the highest replay position seen. */
  lsn: Replication.Lsn
  lagMillis: number | undefined
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

/** The error a member found in the wrong role carries (`lastError`). */
const roleError = (target: Target, role: Role): SqlError => {
  const expected = target.index < 0 ? "primary" : "standby"
  const cause = new PgDriver.TargetSessionAttrsError({
    host: target.host.host,
    port: target.host.port,
    targetSessionAttrs: expected,
    session: role
  })
  return new SqlError({
    reason: new ConnectionError({
      cause,
      message: `PgReplicas: ${target.name} (${cause.message}): ${
        target.index < 0 ? "its sessions were retired" : "out of rotation, its sessions retired"
      }`,
      operation: "healthCheck"
    })
  })
}

let routerIds = 0

/** A read of the primary's position in flight or done: it covers every write that ended before `startedAt`. */
interface PositionRead {
  /** The router's write count when it started. */
  readonly startedAt: number
  readonly result: Deferred.Deferred<Replication.Lsn | undefined>
}

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
  PgDriver.PgConfigError,
  Scope.Scope | Reactivity.Reactivity
> =>
  Effect.gen(function*() {
    yield* check.check(V.notAnObject(options))
    yield* check.check(V.unknownKey(options, optionKeys, "PgReplicas.layer"))
    const valid = yield* check.decode(optionRules, options)
    const routerName = valid.name ?? "PgReplicas"
    const scope = yield* Effect.scope
    const transactionService = Context.Service<
      SqlClient.TransactionConnection,
      SqlClient.TransactionConnection.Service
    >(
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
      context: Context.Context<ConnectionPool | PgDriver.PgDriver>,
      client: PgClient.PgClient & SqlClient.SqlClient
    ): Target => {
      const makeOptions = makeOptionsOf(client)
      const described = HostList.describe(Context.get(context, PgDriver.PgDriver).config)
      return {
        name,
        index,
        client,
        pool: Context.get(context, ConnectionPool),
        options: makeOptions,
        borrower: makeOptions.borrower ?? ((f) => Effect.scoped(Effect.flatMap(makeOptions.acquirer, f))),
        host: { host: described.host, port: described.port },
        healthy: true,
        misplaced: false,
        role: undefined,
        lsn: Replication.zero,
        lagMillis: undefined,
        inFlight: 0,
        routed: 0,
        lastError: undefined
      }
    }
    const primary = target("primary", -1, pools.primary, yield* clientOf(pools.primary))
    const replicas: ReadonlyArray<Target> = yield* Effect.forEach(
      pools.replicas,
      (context, i) => Effect.map(clientOf(context), (client) => target(`replica ${i}`, i, context, client))
    )

    // ------------------------------------------------------------------------ choosing
    const maxLagMillis = valid.maxLag === undefined ? undefined : Duration.toMillis(valid.maxLag)
    /** Gets reads now: healthy, and within `maxLag` (its lag known). */
    const serving = (replica: Target): boolean =>
      replica.healthy &&
      (maxLagMillis === undefined || (replica.lagMillis !== undefined && replica.lagMillis <= maxLagMillis))
    let cursor = 0
    /** A replica serving reads (and `accept`ed), in turn or least busy; `undefined` when none is. */
    const choose = (accept: ((replica: Target) => boolean) | undefined): Target | undefined => {
      const n = replicas.length
      let chosen: Target | undefined
      for (let k = 0; k < n; k++) {
        const candidate = replicas[(cursor + k) % n]!
        if (!serving(candidate) || (accept !== undefined && !accept(candidate))) continue
        if (valid.balance === "round-robin") {
          chosen = candidate
          break
        }
        if (chosen === undefined || candidate.inFlight < chosen.inFlight) chosen = candidate
      }
      if (chosen !== undefined) cursor = (chosen.index + 1) % n
      return chosen
    }
    /** The replica for the next read; the primary when none serves. */
    const pick = (): Target => choose(undefined) ?? primary
    const readOnlyOf = (fiber: Fiber.Fiber<unknown, unknown>, transaction: boolean): boolean =>
      fiber.getRef(Routing.ReadOnly) ||
      (transaction && Routing.isReadOnlyBegin(fiber.getRef(SqlClient.BeginTransaction)))

    const markDown = (replica: Target, error: SqlError): Effect.Effect<void> =>
      Effect.suspend(() => {
        replica.lastError = error
        replica.lagMillis = undefined
        if (!replica.healthy) return Effect.void
        replica.healthy = false
        return Effect.logWarning(
          `PgReplicas: replica ${replica.index} is down (reads go to the other replicas or the primary until it answers): ${error.message}`
        )
      })

    // ------------------------------------------------------------------------ routing
    /**
     * One statement on `at`; a replica whose checkout fails is marked down and the work goes to
     * `next()` (picked after the mark).
     */
    const borrowOn = <A, E, R>(
      at: Target,
      f: (connection: Connection) => Effect.Effect<A, E, R>,
      next: () => Target
    ): Effect.Effect<A, E | SqlError, R> =>
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
          (error) => Effect.andThen(markDown(at, error), Effect.suspend(() => borrowOn(next(), f, next)))
        )
      })

    /** A scoped checkout on `at` (stream, transaction, `reserve`), with the same fallback. */
    const acquireOn = (at: Target, transaction: boolean, next: () => Target): Acquirer =>
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
          (error) => Effect.andThen(markDown(at, error), Effect.suspend(() => acquireOn(next(), transaction, next)))
        )
      })

    // ------------------------------------------------------------------ read-your-writes
    const sessions = new Replication.Sessions(maxSessionKeys)
    /** Writes (work on the primary of a read-your-writes session) ended so far: the sessions' clock. */
    let writes = 0
    const readYourWrites = { replica: 0, waited: 0, primary: 0, positionReads: 0 }
    const waitMillis = Duration.toMillis(valid.maxReplayWait)
    const rywDefault = valid.consistency === "read-your-writes"
    const markOf = (fiber: Fiber.Fiber<unknown, unknown>): Mark | undefined =>
      marksUsed ? fiber.getRef(CurrentMark) : undefined
    const isReadYourWrites = (mark: Mark | undefined): boolean =>
      mark === undefined ? rywDefault : mark.mode === "read-your-writes"
    const sessionOf = (fiber: Fiber.Fiber<unknown, unknown>, mark: Mark | undefined, create: boolean) =>
      mark?.key !== undefined ? sessions.ofKey(mark.key, create) : sessions.ofObject(mark?.owner ?? fiber, create)
    /** A write of the session ended (committed, or not: counted either way). */
    const wrote = (fiber: Fiber.Fiber<unknown, unknown>, mark: Mark | undefined): Effect.Effect<void> =>
      Effect.sync(() => {
        sessionOf(fiber, mark, true)!.lastWrite = ++writes
      })

    const probeMillis = Duration.toMillis(valid.healthCheckTimeout)
    /** Run `effect` in a fiber of the router's (it outlives the reads that wait for it); `onDone` sees how it ended, also when never started. */
    const background = <A>(effect: Effect.Effect<A>, onDone: (exit: Exit.Exit<A>) => void): Effect.Effect<void> =>
      Effect.map(Effect.forkIn(effect, scope), (fiber) => {
        fiber.addObserver(onDone)
      })

    /** The latest read of the primary's position (in flight or done). */
    let latestRead: PositionRead | undefined
    const positionQuery = primary.borrower((connection) => connection.executeRaw(Replication.commitPosition, [])).pipe(
      Effect.timeout(probeMillis),
      Effect.map(Replication.readCommitPosition),
      Effect.orElseSucceed(() => undefined)
    )
    /**
     * The WAL position `session`'s writes need a replica to have replayed; `undefined` when it
     * cannot be read (the read then runs on the primary). Reads the primary's insert position
     * only when the session wrote since it last did, and shares a read started after the
     * session's last write with every session that needs one.
     */
    const positionOf = (session: Replication.Session): Effect.Effect<Replication.Lsn | undefined> =>
      Effect.suspend(() => {
        if (!Replication.unresolved(session)) return Effect.succeed(session.lsn)
        let read = latestRead
        let start: Effect.Effect<void> = Effect.void
        if (read === undefined || read.startedAt < session.lastWrite) {
          const made: PositionRead = { startedAt: writes, result: Deferred.makeUnsafe() }
          read = latestRead = made
          readYourWrites.positionReads++
          start = background(positionQuery, (exit) => {
            const lsn = Exit.isSuccess(exit) ? exit.value : undefined
            // A failed read is not shared any further: the next read tries again.
            if (lsn === undefined && latestRead === made) latestRead = undefined
            Deferred.doneUnsafe(made.result, Exit.succeed(lsn))
          })
        }
        const shared = read
        return Effect.andThen(
          start,
          Effect.map(Deferred.await(shared.result), (lsn) => {
            if (lsn === undefined) return undefined
            if (lsn > session.lsn) session.lsn = lsn
            if (shared.startedAt > session.resolvedWrite) session.resolvedWrite = shared.startedAt
            return session.lsn
          })
        )
      })

    // Waiting for a replica to replay: one poller for every waiting read.
    let waiting = 0
    let polling = false
    /** Completed after each poll of the replicas' positions (then replaced). */
    let polled = Deferred.makeUnsafe<void>()
    const poller: Effect.Effect<void> = Effect.suspend(() => {
      let rounds = 0
      const loop: Effect.Effect<void> = Effect.suspend(() => {
        if (waiting === 0) {
          polling = false
          return Effect.void
        }
        return Effect.forEach(replicas.filter(serving), checkReplica, {
          concurrency: "unbounded",
          discard: true
        }).pipe(
          Effect.andThen(Effect.sync(() => {
            const done = polled
            polled = Deferred.makeUnsafe()
            Deferred.doneUnsafe(done, Exit.void)
          })),
          Effect.andThen(Effect.suspend(() => {
            // 1 ms apart at first (a replica on the same network replays within a few ms; polling
            // back to back only takes CPU from it), then 2, 4, 8, 10, 10... ms.
            const pause = rounds < shortPolls ? 1 : Math.min(2 ** (rounds - shortPolls + 1), 10)
            rounds++
            return waiting === 0 ? Effect.void : Effect.sleep(Duration.millis(pause))
          })),
          Effect.andThen(loop)
        )
      })
      return loop
    })
    const startPolling: Effect.Effect<void> = Effect.suspend(() => {
      if (polling) return Effect.void
      polling = true
      // A poller that ends normally has reset the flag itself (a newer one may run by now).
      return background(poller, (exit) => {
        if (Exit.isFailure(exit)) polling = false
      })
    })
    /**
     * A replica serving reads that has replayed `needed`, waiting at most `maxReplayWait` for one
     * (the poller reads their positions meanwhile); else the primary.
     */
    const awaitReplay = (needed: Replication.Lsn): Effect.Effect<Target> =>
      Effect.flatMap(Clock.currentTimeMillis, (startedAt) => {
        const deadline = startedAt + waitMillis
        const step: Effect.Effect<Target> = Effect.suspend(() => {
          const ready = choose((replica) => replica.lsn >= needed)
          if (ready !== undefined) {
            readYourWrites.waited++
            return Effect.succeed(ready)
          }
          if (choose(undefined) === undefined) {
            readYourWrites.primary++
            return Effect.succeed(primary)
          }
          const next = polled
          return Effect.flatMap(Clock.currentTimeMillis, (now) => {
            if (now >= deadline) {
              readYourWrites.primary++
              return Effect.succeed(primary)
            }
            return Effect.andThen(Effect.timeoutOption(Deferred.await(next), Duration.millis(deadline - now)), step)
          })
        })
        if (waitMillis <= 0) return step
        return Effect.uninterruptibleMask((restore) => {
          waiting++
          return Effect.ensuring(
            Effect.andThen(startPolling, restore(step)),
            Effect.sync(() => {
              waiting--
            })
          )
        })
      })

    /**
     * Where a read of a read-your-writes session runs: as any read until the session writes;
     * then a replica that has replayed its writes (waiting for one if need be), else the primary.
     * `run` gets the target and where to go should its checkout fail.
     */
    const readAfterWrites = <A, E, R>(
      fiber: Fiber.Fiber<unknown, unknown>,
      mark: Mark | undefined,
      run: (at: Target, next: () => Target) => Effect.Effect<A, E, R>
    ): Effect.Effect<A, E, R> => {
      const session = sessionOf(fiber, mark, false)
      if (session === undefined || (session.lastWrite === 0 && session.lsn === Replication.zero)) {
        return run(
          pick(),
          pick
        )
      }
      return Effect.flatMap(positionOf(session), (needed) => {
        if (needed === undefined) {
          readYourWrites.primary++
          return run(primary, () => primary)
        }
        const next = () => choose((replica) => replica.lsn >= needed) ?? primary
        const ready = choose((replica) => replica.lsn >= needed)
        if (ready !== undefined) {
          readYourWrites.replica++
          return run(ready, next)
        }
        return Effect.flatMap(awaitReplay(needed), (at) => run(at, next))
      })
    }

    // ------------------------------------------------------------------------ entry points
    const borrower: Borrower = (f) =>
      Effect.withFiber((fiber) => {
        const mark = markOf(fiber)
        if (readOnlyOf(fiber, false)) {
          return isReadYourWrites(mark)
            ? readAfterWrites(fiber, mark, (at, next) => borrowOn(at, f, next))
            : borrowOn(pick(), f, pick)
        }
        const run = borrowOn(primary, f, pick)
        return isReadYourWrites(mark) ? Effect.ensuring(run, wrote(fiber, mark)) : run
      })
    const acquirerOf = (transaction: boolean): Acquirer =>
      Effect.withFiber((fiber) => {
        const mark = markOf(fiber)
        if (readOnlyOf(fiber, transaction)) {
          return isReadYourWrites(mark)
            ? readAfterWrites(fiber, mark, (at, next) => acquireOn(at, transaction, next))
            : acquireOn(pick(), transaction, pick)
        }
        const acquired = acquireOn(primary, transaction, pick)
        // The session's write ends when the checkout's scope closes: after COMMIT, or the stream / `reserve`.
        return isReadYourWrites(mark)
          ? Effect.tap(acquired, () => Effect.addFinalizer(() => wrote(fiber, mark)))
          : acquired
      })

    const router = yield* SqlClient.make({
      ...primary.options,
      acquirer: acquirerOf(false),
      borrower,
      transactionAcquirer: acquirerOf(true),
      transactionService
    })

    // ------------------------------------------------------------------------ health
    const lag = new Replication.LagEstimator()

    /** The member was found in the wrong role: out of its role, its pool invalidated (once per finding). */
    const misplace = (member: Target, role: Role): Effect.Effect<void> =>
      Effect.suspend(() => {
        member.lagMillis = undefined
        if (member.misplaced) return Effect.void
        member.misplaced = true
        member.healthy = false
        const error = roleError(member, role)
        member.lastError = error
        return Effect.andThen(member.pool.invalidateAll, Effect.logWarning(error.message))
      })
    const placed = (member: Target): Effect.Effect<void> =>
      Effect.suspend(() => {
        const wasOut = !member.healthy
        member.misplaced = false
        member.healthy = true
        member.lastError = undefined
        if (!wasOut) return Effect.void
        return Effect.logInfo(
          member.index < 0
            ? "PgReplicas: the primary is a primary again"
            : `PgReplicas: replica ${member.index} answers as a standby again: back in rotation`
        )
      })

    /** `statement` on `connection`, with the router's clock read just before it was sent and just after its answer. */
    const timed = (connection: Connection, statement: string) =>
      Effect.flatMap(Clock.currentTimeMillis, (sentAt) =>
        Effect.flatMap(
          connection.executeRaw(statement, []),
          (result) => Effect.map(Clock.currentTimeMillis, (answeredAt) => ({ result, sentAt, answeredAt }))
        ))

    /** What a replica's check found, for its lag: answered at `at` (its position was read before). */
    interface Measured {
      readonly at: number
      readonly replayedAtMs: number | undefined
    }

    /** Check one replica: its role and replay position; its reading for its lag (`undefined`: none). */
    const checkReplica = (replica: Target): Effect.Effect<Measured | undefined> =>
      Effect.matchEffect(
        Effect.timeout(replica.borrower((connection) => timed(connection, Replication.replicaCheck)), probeMillis),
        {
          onFailure: (error) => Effect.as(isUnreachable(error) ? markDown(replica, error) : Effect.void, undefined),
          onSuccess: ({ answeredAt, result }) => {
            const reading = Replication.readReplica(result)
            if (reading === undefined) return Effect.succeed(undefined)
            replica.role = reading.role
            if (reading.role === "primary") return Effect.as(misplace(replica, "primary"), undefined)
            if (reading.lsn !== undefined && reading.lsn > replica.lsn) replica.lsn = reading.lsn
            const measured: Measured = { at: answeredAt, replayedAtMs: reading.replayedAtMs }
            return replica.healthy && !replica.misplaced
              ? Effect.succeed(measured)
              : Effect.as(placed(replica), measured)
          }
        }
      )
    const checkReplicas = Effect.forEach(replicas, checkReplica, { concurrency: "unbounded" })

    /** What the primary's check found: its role, and a sample of its position (timed when sent: it was read later). */
    const primaryChecked = (result: unknown, sentAt: number): Effect.Effect<void> => {
      const reading = Replication.readPrimary(result)
      if (reading === undefined) return Effect.void
      primary.role = reading.role
      if (reading.role === "standby") return misplace(primary, "standby")
      if (reading.lsn !== undefined) {
        primary.lsn = reading.lsn
        lag.sample(sentAt, reading.lsn, reading.nowMs)
      }
      return primary.healthy ? Effect.void : placed(primary)
    }

    /**
     * One health check. A primary session is checked out first; holding it, the replicas are
     * checked, then the primary's position is read on it at once: a replica that had replayed, when
     * read, what the primary had right after lacks nothing (lag 0), and no checkout (a connect,
     * under NullPool) stands between the two readings. Then each replica's lag.
     */
    const checkAll: Effect.Effect<void> = Effect.gen(function*() {
      let readings: ReadonlyArray<Measured | undefined> | undefined
      const checked = yield* Effect.exit(
        primary.borrower((connection) =>
          Effect.flatMap(checkReplicas, (measured) => {
            readings = measured
            return timed(connection, Replication.primaryCheck)
          })
        ).pipe(Effect.timeout(2 * probeMillis))
      )
      // The primary could not be checked out (or the check was cut short): the replicas all the same.
      if (readings === undefined) readings = yield* checkReplicas
      if (Exit.isSuccess(checked)) yield* primaryChecked(checked.value.result, checked.value.sentAt)
      readings.forEach((reading, i) => {
        const replica = replicas[i]!
        replica.lagMillis = reading === undefined || !replica.healthy
          ? undefined
          : lag.lag(reading.at, replica.lsn, reading.replayedAtMs)
      })
      let replayedByAll = replicas[0]?.lsn ?? Replication.zero
      for (const replica of replicas) if (replica.lsn < replayedByAll) replayedByAll = replica.lsn
      sessions.prune(replayedByAll)
    })
    if (replicas.length > 0) {
      yield* Effect.forkScoped(Effect.forever(Effect.andThen(checkAll, Effect.sleep(valid.healthCheckInterval))))
    }

    // ------------------------------------------------------------------------ status, metrics
    const statusOf = (t: Target): Effect.Effect<PoolStatus> =>
      Effect.map(t.pool.stats, (stats) => ({
        name: t.name,
        healthy: t.healthy,
        serving: t.index < 0 ? t.healthy : serving(t),
        role: t.role,
        lagMillis: t.index < 0 ? undefined : t.lagMillis,
        lsn: t.lsn === Replication.zero ? undefined : Replication.format(t.lsn),
        inFlight: t.inFlight,
        routed: t.routed,
        lastError: t.lastError,
        stats
      }))
    const targets = [primary, ...replicas]
    const service: PgReplicas["Service"] = {
      status: Effect.map(
        Effect.forEach(targets, statusOf),
        ([primaryStatus, ...replicaStatus]) => ({
          primary: primaryStatus!,
          replicas: replicaStatus,
          readYourWrites: { ...readYourWrites }
        })
      ),
      setHealthy: (index, healthy) =>
        Effect.sync(() => {
          const replica = replicas[index]
          if (replica === undefined) return
          replica.healthy = healthy
          if (healthy) {
            replica.lastError = undefined
            replica.misplaced = false
          }
        })
    }

    const context = yield* Effect.context<never>()
    const observe = <S>(metric: Metric.Metric<never, S>, get: () => S) =>
      Metric.registerUnsafe(metric, context, { get, update: () => {}, modify: () => {} })
    const registrations = [primary, ...replicas].flatMap((t) => {
      const m = PoolMetrics.forReplica(routerName, t.name)
      return [
        ...(t.index < 0 ? [] : [observe(m.lag, () => ({ value: t.lagMillis ?? -1 }))]),
        observe(m.serving, () => ({ value: (t.index < 0 ? t.healthy : serving(t)) ? 1 : 0 })),
        observe(m.routed, () => ({ count: t.routed, incremental: true }))
      ]
    })
    for (const outcome of PoolMetrics.readYourWritesOutcomes) {
      const field = outcome === "replica" ? "replica" : outcome === "waited" ? "waited" : "primary"
      registrations.push(
        observe(
          PoolMetrics.readYourWrites(routerName, outcome),
          () => ({ count: readYourWrites[field], incremental: true })
        )
      )
    }
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        for (const r of registrations) r.remove()
      })
    )

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
 * `PgDriver.TargetSessionAttrs`), besides the router's health check.
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
