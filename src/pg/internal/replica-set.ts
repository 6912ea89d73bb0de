/**
 * The pools behind a `PgReplicas` router and how work picks one: each pool's record
 * ({@link Member}: its client, health, role, WAL position, lag and load), the router's state
 * ({@link ReplicaSet}), which replicas serve reads ({@link serving}), the choice among them
 * ({@link choose}), and the marks a failed checkout or a health check leaves on a member
 * ({@link markDown}, {@link misplace}, {@link placed}).
 *
 * @internal
 */
import type { PgClient } from "@effect/sql-pg"
import { Effect } from "effect"
import type { Exit, Scope } from "effect"
import type * as SqlClient from "effect/sql/SqlClient"
import type { Borrower } from "effect/sql/SqlConnection"
import { ConnectionError, isSqlError, SqlError } from "effect/sql/SqlError"
import type { Service as PoolService } from "../../ConnectionPool.ts"
import { PoolClosedError, PoolTimeoutError } from "../../PoolError.ts"
import * as Replication from "./replication.ts"
import type { Config } from "./settings.ts"
import { TargetSessionAttrsError } from "./target-session.ts"

/**
 * How reads pick a replica that serves reads: `"round-robin"` (default) in turn; `"least-busy"`
 * the one with the fewest checkouts in flight through this layer (ties in turn).
 *
 * @category models
 * @since 0.1.0
 */
export type Balance = "round-robin" | "least-busy"

/** One pool of the router: the primary (`index` -1) or a replica. */
export interface Member {
  readonly name: string
  /** -1: the primary. */
  readonly index: number
  readonly client: PgClient.PgClient & SqlClient.SqlClient
  readonly pool: PoolService
  readonly options: SqlClient.SqlClient.MakeOptions
  readonly borrower: Borrower
  /** Where its driver connects first (the role error names it). */
  readonly host: Config.Host
  healthy: boolean
  /** The last check found the wrong role (its pool was invalidated then). */
  misplaced: boolean
  role: Replication.Role | undefined
  /** The primary: insert position at the last check; a replica: the highest replay position seen. */
  lsn: Replication.Lsn
  lagMillis: number | undefined
  inFlight: number
  routed: number
  lastError: SqlError | undefined
}

/** A member as it starts: healthy, its role, position and lag unknown. */
export const member = (
  name: string,
  index: number,
  client: PgClient.PgClient & SqlClient.SqlClient,
  pool: PoolService,
  options: SqlClient.SqlClient.MakeOptions,
  host: Config.Host
): Member => ({
  name,
  index,
  client,
  pool,
  options,
  borrower: options.borrower ?? ((f) => Effect.scoped(Effect.flatMap(options.acquirer, f))),
  host,
  healthy: true,
  misplaced: false,
  role: undefined,
  lsn: Replication.zero,
  lagMillis: undefined,
  inFlight: 0,
  routed: 0,
  lastError: undefined
})

/** A router's pools and what choosing among them needs. */
export interface ReplicaSet {
  readonly primary: Member
  readonly replicas: ReadonlyArray<Member>
  readonly balance: Balance
  /** `maxLag` in ms; `undefined`: no bound. */
  readonly maxLagMillis: number | undefined
  /** `healthCheckTimeout` in ms: the bound on one check, or on one read of the primary's position. */
  readonly probeMillis: number
  /** A replica's lag from the router's samples of the primary's position. */
  readonly lag: Replication.LagEstimator
  /** The router's scope: its background fibers outlive the reads that wait for them. */
  readonly scope: Scope.Scope
  /** Round robin: where the next choice starts. */
  cursor: number
}

/** Gets reads now: healthy, and within `maxLag` (its lag known). */
export const serving = (set: ReplicaSet, replica: Member): boolean =>
  replica.healthy &&
  (set.maxLagMillis === undefined || (replica.lagMillis !== undefined && replica.lagMillis <= set.maxLagMillis))

/** A replica serving reads (and `accept`ed), in turn or least busy; `undefined` when none is. */
export const choose = (set: ReplicaSet, accept: ((replica: Member) => boolean) | undefined): Member | undefined => {
  const replicas = set.replicas
  const n = replicas.length
  let chosen: Member | undefined
  for (let k = 0; k < n; k++) {
    const candidate = replicas[(set.cursor + k) % n]!
    if (!serving(set, candidate) || (accept !== undefined && !accept(candidate))) continue
    if (set.balance === "round-robin") {
      chosen = candidate
      break
    }
    if (chosen === undefined || candidate.inFlight < chosen.inFlight) chosen = candidate
  }
  if (chosen !== undefined) set.cursor = (chosen.index + 1) % n
  return chosen
}

/** The replica for the next read; the primary when none serves. */
export const pick = (set: ReplicaSet): Member => choose(set, undefined) ?? set.primary

/**
 * A checkout failure that says the replica cannot serve (unreachable, refusing, timing out
 * connecting): not a full pool (it waited its `timeout` already) nor a closing one.
 */
export const isUnreachable = (error: unknown): error is SqlError =>
  isSqlError(error) &&
  !(error.reason.cause instanceof PoolTimeoutError) &&
  !(error.reason.cause instanceof PoolClosedError)

/** A replica that cannot serve: no reads until a check finds it a reachable standby again. */
export const markDown = (replica: Member, error: SqlError): Effect.Effect<void> =>
  Effect.suspend(() => {
    replica.lastError = error
    replica.lagMillis = undefined
    if (!replica.healthy) return Effect.void
    replica.healthy = false
    return Effect.logWarning(
      `PgReplicas: replica ${replica.index} is down (reads go to the other replicas or the primary until it answers): ${error.message}`
    )
  })

/** The error a member found in the wrong role carries (`lastError`). */
export const roleError = (member: Member, role: Replication.Role): SqlError => {
  const expected = member.index < 0 ? "primary" : "standby"
  const cause = new TargetSessionAttrsError({
    host: member.host.host,
    port: member.host.port,
    targetSessionAttrs: expected,
    session: role
  })
  return new SqlError({
    reason: new ConnectionError({
      cause,
      message: `PgReplicas: ${member.name} (${cause.message}): ${
        member.index < 0 ? "its sessions were retired" : "out of rotation, its sessions retired"
      }`,
      operation: "healthCheck"
    })
  })
}

/** The member was found in the wrong role: out of its role, its pool invalidated (once per finding). */
export const misplace = (member: Member, role: Replication.Role): Effect.Effect<void> =>
  Effect.suspend(() => {
    member.lagMillis = undefined
    if (member.misplaced) return Effect.void
    member.misplaced = true
    member.healthy = false
    const error = roleError(member, role)
    member.lastError = error
    return Effect.andThen(member.pool.invalidateAll, Effect.logWarning(error.message))
  })

/** The member was found in its role: back in it. */
export const placed = (member: Member): Effect.Effect<void> =>
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

/** Run `effect` in a fiber of the router's (it outlives the reads that wait for it); `onDone` sees how it ended, also when never started. */
export const background = <A>(
  set: ReplicaSet,
  effect: Effect.Effect<A>,
  onDone: (exit: Exit.Exit<A>) => void
): Effect.Effect<void> =>
  Effect.map(Effect.forkIn(effect, set.scope), (fiber) => {
    fiber.addObserver(onDone)
  })
