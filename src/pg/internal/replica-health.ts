/**
 * The health check of a `PgReplicas` router: every `healthCheckInterval` each pool is checked on
 * one of its sessions, for its role (`pg_is_in_recovery()`) and WAL position (the primary's insert
 * position, a replica's replay position); then each replica's lag. A member found in the wrong
 * role leaves it ({@link misplace}); a replica that cannot be checked out is marked down.
 *
 * @internal
 */
import { Clock, Effect, Exit } from "effect"
import type { Duration } from "effect"
import type { Connection } from "effect/sql/SqlConnection"
import { isUnreachable, markDown, misplace, placed } from "./replica-set.ts"
import type { Member, ReplicaSet } from "./replica-set.ts"
import * as Replication from "./replication.ts"

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
export const checkReplica = (set: ReplicaSet, replica: Member): Effect.Effect<Measured | undefined> =>
  Effect.matchEffect(
    Effect.timeout(replica.borrower((connection) => timed(connection, Replication.replicaCheck)), set.probeMillis),
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

const checkReplicas = (set: ReplicaSet) =>
  Effect.forEach(set.replicas, (replica) => checkReplica(set, replica), { concurrency: "unbounded" })

/** What the primary's check found: its role, and a sample of its position (timed when sent: it was read later). */
const primaryChecked = (set: ReplicaSet, result: unknown, sentAt: number): Effect.Effect<void> => {
  const primary = set.primary
  const reading = Replication.readPrimary(result)
  if (reading === undefined) return Effect.void
  primary.role = reading.role
  if (reading.role === "standby") return misplace(primary, "standby")
  if (reading.lsn !== undefined) {
    primary.lsn = reading.lsn
    set.lag.sample(sentAt, reading.lsn, reading.nowMs)
  }
  return primary.healthy ? Effect.void : placed(primary)
}

/**
 * One health check. A primary session is checked out first; holding it, the replicas are
 * checked, then the primary's position is read on it at once: a replica that had replayed, when
 * read, what the primary had right after lacks nothing (lag 0), and no checkout (a connect,
 * under NullPool) stands between the two readings. Then each replica's lag, and the
 * read-your-writes sessions every replica has replayed past are forgotten.
 */
export const checkAll = (set: ReplicaSet, sessions: Replication.Sessions): Effect.Effect<void> =>
  Effect.gen(function*() {
    let readings: ReadonlyArray<Measured | undefined> | undefined
    const checked = yield* Effect.exit(
      set.primary.borrower((connection) =>
        Effect.flatMap(checkReplicas(set), (measured) => {
          readings = measured
          return timed(connection, Replication.primaryCheck)
        })
      ).pipe(Effect.timeout(2 * set.probeMillis))
    )
    // The primary could not be checked out (or the check was cut short): the replicas all the same.
    if (readings === undefined) readings = yield* checkReplicas(set)
    if (Exit.isSuccess(checked)) yield* primaryChecked(set, checked.value.result, checked.value.sentAt)
    const replicas = set.replicas
    readings.forEach((reading, i) => {
      const replica = replicas[i]!
      replica.lagMillis = reading === undefined || !replica.healthy
        ? undefined
        : set.lag.lag(reading.at, replica.lsn, reading.replayedAtMs)
    })
    let replayedByAll = replicas[0]?.lsn ?? Replication.zero
    for (const replica of replicas) if (replica.lsn < replayedByAll) replayedByAll = replica.lsn
    sessions.prune(replayedByAll)
  })

/** Check every `interval`, for ever (forked in the router's scope). */
export const checkEvery = (
  set: ReplicaSet,
  sessions: Replication.Sessions,
  interval: Duration.Duration
): Effect.Effect<never> => Effect.forever(Effect.andThen(checkAll(set, sessions), Effect.sleep(interval)))
