/**
 * Read-your-writes for a `PgReplicas` router: which session a fiber's work belongs to (the
 * fiber, a `consistency` scope, a `session` key: {@link Mark}), when a session wrote, the
 * primary's position its reads need a replica to have replayed ({@link positionOf}), and the
 * wait for such a replica, one poller for every waiting read ({@link awaitReplay}).
 *
 * @internal
 */
import { Clock, Context, Deferred, Duration, Effect, Exit } from "effect"
import type { Fiber } from "effect"
import { dual } from "effect/Function"
import { checkReplica } from "./replica-health.ts"
import { background, choose, pick, serving } from "./replica-set.ts"
import type { Member, ReplicaSet } from "./replica-set.ts"
import * as Replication from "./replication.ts"

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

// -------------------------------------------------------------------------- consistency marks

/** What `PgReplicas.consistency` / `PgReplicas.session` set for an effect. */
export interface Mark {
  readonly mode: Consistency
  /** A `consistency("read-your-writes")` scope: its session (shared by its fibers). */
  readonly owner: object | undefined
  /** A `session` key. */
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

/** `PgReplicas.consistency`: run `effect` with consistency `mode`, a fresh session for `"read-your-writes"`. */
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

/** `PgReplicas.session`: run `effect` as part of read-your-writes session `key`. */
export const session: {
  (key: string): <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  <A, E, R>(effect: Effect.Effect<A, E, R>, key: string): Effect.Effect<A, E, R>
} = dual(2, <A, E, R>(effect: Effect.Effect<A, E, R>, key: string): Effect.Effect<A, E, R> => {
  marksUsed = true
  return Effect.provideService(effect, CurrentMark, { mode: "read-your-writes", owner: undefined, key })
})

/** The mark of `fiber`'s work, if any effect was ever marked. */
export const markOf = (fiber: Fiber.Fiber<unknown, unknown>): Mark | undefined =>
  marksUsed ? fiber.getRef(CurrentMark) : undefined

// ----------------------------------------------------------------------------------- state

/** Read-your-writes: polls of the replicas' positions 1 ms apart before the poller backs off. */
const shortPolls = 8

/** Read-your-writes sessions named by a key of the user's, kept at most (the least recently written first out). */
const maxSessionKeys = 10_000

/** A read of the primary's position in flight or done: it covers every write that ended before `startedAt`. */
interface PositionRead {
  /** The router's write count when it started. */
  readonly startedAt: number
  readonly result: Deferred.Deferred<Replication.Lsn | undefined>
}

/** Where read-your-writes reads ran so far, and how many primary positions were read. */
export interface Counts {
  replica: number
  waited: number
  primary: number
  positionReads: number
}

/** A router's read-your-writes state. */
export interface ReadYourWrites {
  /** Every session that wrote, by fiber, scope or key. */
  readonly sessions: Replication.Sessions
  /** The layer's `consistency` is `"read-your-writes"` (an unmarked effect follows it). */
  readonly byDefault: boolean
  /** `maxReplayWait` in ms. */
  readonly waitMillis: number
  /** One read of the primary's position (`undefined`: it could not be read). */
  readonly positionQuery: Effect.Effect<Replication.Lsn | undefined>
  readonly counts: Counts
  /** Writes (work on the primary of a read-your-writes session) ended so far: the sessions' clock. */
  writes: number
  /** The latest read of the primary's position (in flight or done). */
  latestRead: PositionRead | undefined
  /** Reads waiting for a replica to replay. */
  waiting: number
  /** The poller runs. */
  polling: boolean
  /** Completed after each poll of the replicas' positions (then replaced). */
  polled: Deferred.Deferred<void>
}

/** The read-your-writes state of a router over `set`. */
export const make = (
  set: ReplicaSet,
  options: { readonly consistency: Consistency; readonly maxReplayWait: Duration.Duration }
): ReadYourWrites => ({
  sessions: new Replication.Sessions(maxSessionKeys),
  byDefault: options.consistency === "read-your-writes",
  waitMillis: Duration.toMillis(options.maxReplayWait),
  positionQuery: set.primary.borrower((connection) => connection.executeRaw(Replication.commitPosition, [])).pipe(
    Effect.timeout(set.probeMillis),
    Effect.map(Replication.readCommitPosition),
    Effect.orElseSucceed(() => undefined)
  ),
  counts: { replica: 0, waited: 0, primary: 0, positionReads: 0 },
  writes: 0,
  latestRead: undefined,
  waiting: 0,
  polling: false,
  polled: Deferred.makeUnsafe<void>()
})

/** Does work with `mark` read its writes? */
export const isReadYourWrites = (state: ReadYourWrites, mark: Mark | undefined): boolean =>
  mark === undefined ? state.byDefault : mark.mode === "read-your-writes"

const sessionOf = (
  state: ReadYourWrites,
  fiber: Fiber.Fiber<unknown, unknown>,
  mark: Mark | undefined,
  create: boolean
) =>
  mark?.key !== undefined
    ? state.sessions.ofKey(mark.key, create)
    : state.sessions.ofObject(mark?.owner ?? fiber, create)

/** A write of the session ended (committed, or not: counted either way). */
export const wrote = (
  state: ReadYourWrites,
  fiber: Fiber.Fiber<unknown, unknown>,
  mark: Mark | undefined
): Effect.Effect<void> =>
  Effect.sync(() => {
    sessionOf(state, fiber, mark, true)!.lastWrite = ++state.writes
  })

/**
 * The WAL position `session`'s writes need a replica to have replayed; `undefined` when it
 * cannot be read (the read then runs on the primary). Reads the primary's insert position
 * only when the session wrote since it last did, and shares a read started after the
 * session's last write with every session that needs one.
 */
const positionOf = (
  set: ReplicaSet,
  state: ReadYourWrites,
  session: Replication.Session
): Effect.Effect<Replication.Lsn | undefined> =>
  Effect.suspend(() => {
    if (!Replication.unresolved(session)) return Effect.succeed(session.lsn)
    let read = state.latestRead
    let start: Effect.Effect<void> = Effect.void
    if (read === undefined || read.startedAt < session.lastWrite) {
      const made: PositionRead = { startedAt: state.writes, result: Deferred.makeUnsafe() }
      read = state.latestRead = made
      state.counts.positionReads++
      start = background(set, state.positionQuery, (exit) => {
        const lsn = Exit.isSuccess(exit) ? exit.value : undefined
        // A failed read is not shared any further: the next read tries again.
        if (lsn === undefined && state.latestRead === made) state.latestRead = undefined
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

// ----------------------------------------------------------------------- waiting for replay

/** Poll the serving replicas' positions while reads wait: one poller for every waiting read. */
const poller = (set: ReplicaSet, state: ReadYourWrites): Effect.Effect<void> =>
  Effect.suspend(() => {
    let rounds = 0
    const loop: Effect.Effect<void> = Effect.suspend(() => {
      if (state.waiting === 0) {
        state.polling = false
        return Effect.void
      }
      return Effect.forEach(set.replicas.filter((replica) => serving(set, replica)), (replica) =>
        checkReplica(set, replica), {
        concurrency: "unbounded",
        discard: true
      }).pipe(
        Effect.andThen(Effect.sync(() => {
          const done = state.polled
          state.polled = Deferred.makeUnsafe()
          Deferred.doneUnsafe(done, Exit.void)
        })),
        Effect.andThen(Effect.suspend(() => {
          // 1 ms apart at first (a replica on the same network replays within a few ms; polling
          // back to back only takes CPU from it), then 2, 4, 8, 10, 10... ms.
          const pause = rounds < shortPolls ? 1 : Math.min(2 ** (rounds - shortPolls + 1), 10)
          rounds++
          return state.waiting === 0 ? Effect.void : Effect.sleep(Duration.millis(pause))
        })),
        Effect.andThen(loop)
      )
    })
    return loop
  })

const startPolling = (set: ReplicaSet, state: ReadYourWrites): Effect.Effect<void> =>
  Effect.suspend(() => {
    if (state.polling) return Effect.void
    state.polling = true
    // A poller that ends normally has reset the flag itself (a newer one may run by now).
    return background(set, poller(set, state), (exit) => {
      if (Exit.isFailure(exit)) state.polling = false
    })
  })

/**
 * A replica serving reads that has replayed `needed`, waiting at most `maxReplayWait` for one
 * (the poller reads their positions meanwhile); else the primary.
 */
const awaitReplay = (set: ReplicaSet, state: ReadYourWrites, needed: Replication.Lsn): Effect.Effect<Member> =>
  Effect.flatMap(Clock.currentTimeMillis, (startedAt) => {
    const deadline = startedAt + state.waitMillis
    const step: Effect.Effect<Member> = Effect.suspend(() => {
      const ready = choose(set, (replica) => replica.lsn >= needed)
      if (ready !== undefined) {
        state.counts.waited++
        return Effect.succeed(ready)
      }
      if (choose(set, undefined) === undefined) {
        state.counts.primary++
        return Effect.succeed(set.primary)
      }
      const next = state.polled
      return Effect.flatMap(Clock.currentTimeMillis, (now) => {
        if (now >= deadline) {
          state.counts.primary++
          return Effect.succeed(set.primary)
        }
        return Effect.andThen(Effect.timeoutOption(Deferred.await(next), Duration.millis(deadline - now)), step)
      })
    })
    if (state.waitMillis <= 0) return step
    return Effect.uninterruptibleMask((restore) => {
      state.waiting++
      return Effect.ensuring(
        Effect.andThen(startPolling(set, state), restore(step)),
        Effect.sync(() => {
          state.waiting--
        })
      )
    })
  })

/** Where work goes should its checkout on the member it was given fail. */
export type Next = (set: ReplicaSet) => Member

const primaryOf: Next = (set) => set.primary

/**
 * Where a read of a read-your-writes session runs: as any read until the session writes;
 * then a replica that has replayed its writes (waiting for one if need be), else the primary.
 * `run` gets the member and where to go should its checkout fail.
 */
export const readAfterWrites = <A, E, R>(
  set: ReplicaSet,
  state: ReadYourWrites,
  fiber: Fiber.Fiber<unknown, unknown>,
  mark: Mark | undefined,
  run: (at: Member, next: Next) => Effect.Effect<A, E, R>
): Effect.Effect<A, E, R> => {
  const session = sessionOf(state, fiber, mark, false)
  if (session === undefined || (session.lastWrite === 0 && session.lsn === Replication.zero)) {
    return run(pick(set), pick)
  }
  return Effect.flatMap(positionOf(set, state, session), (needed) => {
    if (needed === undefined) {
      state.counts.primary++
      return run(set.primary, primaryOf)
    }
    const replayed = (replica: Member) => replica.lsn >= needed
    const next: Next = (s) => choose(s, replayed) ?? s.primary
    const ready = choose(set, replayed)
    if (ready !== undefined) {
      state.counts.replica++
      return run(ready, next)
    }
    return Effect.flatMap(awaitReplay(set, state, needed), (at) => run(at, next))
  })
}
