/**
 * Background upkeep of idle connections, one fiber per pool, every `housekeepingPeriod`:
 *
 * 1. retire idle connections past their lifetime (`maxLifetime` minus jitter), or idle longer
 *    than `idleTimeout` while more than `minIdle` are idle;
 * 2. `keepalive`: ping connections idle that long; a failed ping closes the connection;
 * 3. warm up to `minIdle` idle connections (within `poolSize`), backing off exponentially after a
 *    failed connect.
 *
 * It only works on records it has taken out of the idle list (`borrow`), so it never races a
 * checkout and never touches a connection in use; it never makes a checkout wait.
 *
 * @internal
 */
import { Duration, Effect, Schedule } from "effect"
import type { PoolCore } from "./core.ts"
import type { ResolvedIdle } from "./options.ts"
import { closeRecord, connectRecord, invalidateRecord } from "./record.ts"
import type { ConnectionRecord } from "./record.ts"

/** What a strategy with an idle list offers the housekeeper. @internal */
export interface IdleSlots<C> {
  /** Snapshot of the idle records. */
  readonly idle: () => ReadonlyArray<ConnectionRecord<C>>
  /** Take this idle record out of the idle list, if it is still there. */
  readonly borrow: (record: ConnectionRecord<C>) => boolean
  /** A new slot for warm-up, if the pool is below its size and nobody waits. */
  readonly grow: () => ConnectionRecord<C> | undefined
  /** Give up a borrowed slot for good (its connection already closed). */
  readonly drop: (record: ConnectionRecord<C>) => void
  /** Return a borrowed slot (to a waiter or the idle list). */
  readonly give: (record: ConnectionRecord<C>) => Effect.Effect<void>
}

/** Is any upkeep asked for? */
export const isNeeded = <C>(core: PoolCore<C>, options: ResolvedIdle): boolean =>
  options.minIdle > 0 || Duration.isFinite(options.idleTimeout) || Duration.isFinite(options.keepalive) ||
  Duration.isFinite(core.options.maxLifetime)

/**
 * Borrow an idle record and run `work` on it; the record goes back (or is dropped) whatever
 * happens. The borrow itself happens inside the uninterruptible region, so an interruption of
 * the housekeeper (the pool closing) can never strand a borrowed record.
 */
const withBorrowed = <C>(
  slots: IdleSlots<C>,
  record: ConnectionRecord<C>,
  work: (record: ConnectionRecord<C>) => Effect.Effect<"keep" | "drop">
): Effect.Effect<void> =>
  Effect.uninterruptibleMask((restore) =>
    Effect.suspend(() => {
      if (!slots.borrow(record)) return Effect.void
      return Effect.exit(restore(work(record))).pipe(
        Effect.flatMap((exit) => {
          if (exit._tag === "Success" && exit.value === "drop") {
            slots.drop(record)
            return Effect.void
          }
          return slots.give(record)
        })
      )
    })
  )

/** One pool's housekeeper: what it works on, and the back-off of its warm-up. */
interface State<C> {
  readonly core: PoolCore<C>
  readonly slots: IdleSlots<C>
  readonly options: ResolvedIdle
  /** `housekeepingPeriod` in milliseconds. */
  readonly period: number
  /** Warm-up connects failed in a row. */
  failures: number
  /** Clock time (ms) before which no warm-up is tried (after a failed one). */
  warmUpAfter: number
}

/** Retire idle connections past their lifetime, or idle too long while more than `minIdle` are idle. */
const retire = <C>(state: State<C>): Effect.Effect<void> =>
  Effect.suspend(() => {
    const { core, options, slots } = state
    const now = core.now()
    let idleCount = slots.idle().length
    const work: Array<Effect.Effect<void>> = []
    for (const record of slots.idle()) {
      if (record.connection === undefined) continue
      const expired = now >= record.expiresAt
      const idleTooLong = Duration.isFinite(options.idleTimeout) &&
        now - record.lastUsed >= Duration.toMillis(options.idleTimeout) && idleCount > options.minIdle
      if (!(expired || idleTooLong)) continue
      idleCount--
      work.push(withBorrowed(slots, record, (r) =>
        Effect.suspend(() => {
          if (expired) core.instruments?.recycled()
          return Effect.as(closeRecord(core, r, expired ? "lifetime" : "idle"), "drop" as const)
        })))
    }
    return Effect.all(work, { discard: true })
  })

/** Ping one borrowed idle connection; a failure closes it. */
const ping = <C>(core: PoolCore<C>, record: ConnectionRecord<C>): Effect.Effect<"keep" | "drop"> =>
  core.bounded(core.driver.ping(record.connection as C), "keepalive ping").pipe(
    Effect.as("keep" as const),
    Effect.tap(() => Effect.sync(() => (record.lastUsed = core.now()))),
    Effect.catchCause((cause) => Effect.as(invalidateRecord(core, record, cause, "keepalive"), "drop" as const))
  )

/** `keepalive`: ping the connections idle that long. */
const keepAlive = <C>(state: State<C>): Effect.Effect<void> =>
  Effect.suspend(() => {
    const { core, options, slots } = state
    if (!Duration.isFinite(options.keepalive)) return Effect.void
    const now = core.now()
    const due = slots.idle().filter((r) =>
      r.connection !== undefined && now - r.lastUsed >= Duration.toMillis(options.keepalive)
    )
    return Effect.forEach(due, (record) => withBorrowed(slots, record, (r) => ping(core, r)), { discard: true })
  })

/**
 * Take an empty idle slot or grow one, and connect it, inside one uninterruptible region (only
 * the connect is interruptible). `undefined`: nothing to warm; false: the connect failed.
 */
const warmOne = <C>(state: State<C>): Effect.Effect<boolean | undefined> =>
  Effect.uninterruptibleMask((restore) =>
    Effect.suspend(() => {
      const { core, slots } = state
      const empty = slots.idle().find((r) => r.connection === undefined && slots.borrow(r))
      const record = empty ?? slots.grow()
      if (record === undefined) return Effect.succeed(undefined)
      return Effect.exit(restore(connectRecord(core, record))).pipe(
        Effect.flatMap((exit) => {
          record.fresh = false
          if (exit._tag === "Success") return Effect.as(slots.give(record), true)
          const back = record.generation === 0 ? Effect.sync(() => slots.drop(record)) : slots.give(record)
          return Effect.andThen(back, Effect.as(core.logFailure("warm-up connect failed", exit.cause), false))
        })
      )
    })
  )

/** Warm up to `minIdle` idle connections, backing off exponentially after a failed connect. */
const warmUp = <C>(state: State<C>): Effect.Effect<void> =>
  Effect.suspend(() => {
    const { core, options, slots } = state
    if (options.minIdle === 0 || core.now() < state.warmUpAfter) return Effect.void
    const connectedIdle = slots.idle().filter((r) => r.connection !== undefined).length
    if (connectedIdle >= options.minIdle) return Effect.void
    return Effect.flatMap(warmOne(state), (ok) => {
      if (ok === undefined) return Effect.void
      if (ok) {
        state.failures = 0
        return warmUp(state)
      }
      state.failures++
      state.warmUpAfter = core.now() + Math.min(state.period * 2 ** (state.failures - 1), 60_000)
      return Effect.void
    })
  })

/**
 * The housekeeper's loop. Fork it in the pool's scope.
 * @internal
 */
export const run = <C>(core: PoolCore<C>, slots: IdleSlots<C>, options: ResolvedIdle): Effect.Effect<never> => {
  const state: State<C> = {
    core,
    slots,
    options,
    period: Duration.toMillis(options.housekeepingPeriod),
    failures: 0,
    warmUpAfter: 0
  }
  const round = Effect.andThen(retire(state), Effect.andThen(keepAlive(state), warmUp(state)))
  return core.annotate(
    Effect.repeat(round, Schedule.spaced(options.housekeepingPeriod)).pipe(
      Effect.andThen(Effect.never)
    )
  )
}
