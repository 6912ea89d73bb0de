/**
 * The checked-out connection (SQLAlchemy's `_ConnectionFairy`) and its way back to the pool:
 * release (reset hook → rollback | commit | none → checkin hook → give the slot back),
 * invalidation and detach.
 *
 * A release runs uninterruptibly and is bounded by `resetTimeout`; a reset that fails or runs
 * past it invalidates the slot. Hot path: a return that nothing needs to reset or tell about is
 * given back synchronously (`giveNow`), with no effect at all.
 *
 * @internal
 */
import { Cause, Effect, Exit } from "effect"
import type { Fiber } from "effect"
import type { PooledConnection } from "../ConnectionPool.ts"
import { ConnectionInvalidatedError } from "../PoolError.ts"
import type { InvalidationReason } from "../PoolMetrics.ts"
import type { Pipeline } from "./pipeline.ts"
import { closeConnection, closeRecord, invalidateRecord } from "./record.ts"
import type { ConnectionRecord } from "./record.ts"

type HandleState = "out" | "returned"

/** The checked-out connection. @internal */
export class Handle<C> implements PooledConnection<C> {
  state: HandleState = "out"
  checkedOutAt = 0
  leakTimer: Fiber.Fiber<unknown, unknown> | undefined = undefined
  /** The slot a detached handle came from (its events still name it); -1 while attached. */
  detachedFrom = -1
  conn: C | undefined
  info: Map<string, unknown>
  constructor(readonly pipeline: Pipeline<C>, public record: ConnectionRecord<C> | undefined) {
    this.conn = record!.connection
    this.info = record!.info
  }
  get slot(): number {
    return this.record?.id ?? -1
  }
  get connection(): C {
    if (this.conn === undefined || this.state !== "out") throw new ConnectionInvalidatedError({})
    return this.conn
  }
  get raw(): Effect.Effect<C, ConnectionInvalidatedError> {
    return Effect.suspend(() =>
      this.conn === undefined || this.state !== "out"
        ? Effect.fail(new ConnectionInvalidatedError({}))
        : Effect.succeed(this.conn)
    )
  }
  get isValid(): boolean {
    return this.conn !== undefined && this.state === "out"
  }
  get isDetached(): boolean {
    return this.detachedFrom >= 0
  }
  get recordInfo(): Map<string, unknown> | undefined {
    return this.record?.recordInfo
  }
  invalidate(cause?: unknown, reason: InvalidationReason = "user"): Effect.Effect<void> {
    return invalidate(this, cause, false, reason)
  }
  softInvalidate(cause?: unknown): Effect.Effect<void> {
    return invalidate(this, cause, true, "user")
  }
  get detach(): Effect.Effect<void> {
    return detach(this)
  }
}

/**
 * The reset of a return: reset hook → rollback | commit | nothing. `undefined` when there is
 * nothing to do: no reset hook or observer, and `resetOnReturn: "none"`, a driver that knows
 * the connection holds nothing (`needsReset`), or a driver reset that is already complete (an
 * `Exit`: the release then stays on the synchronous path). Computed once per return.
 */
const resetWork = <C>(
  pipeline: Pipeline<C>,
  entry: ConnectionRecord<C> | number,
  connection: C
): Effect.Effect<void, unknown> | undefined => {
  const { driver, options } = pipeline.core
  const mode = options.resetOnReturn
  let driverReset = mode !== "none" && (driver.needsReset === undefined || driver.needsReset(connection))
    ? pipeline.core.bounded(mode === "rollback" ? driver.rollback(connection) : driver.commit(connection), mode)
    : undefined
  // Already complete (the driver returned a successful `Exit`): nothing left to run.
  if (driverReset !== undefined && Exit.isExit(driverReset) && Exit.isSuccess(driverReset)) driverReset = undefined
  if (!pipeline.core.observed("reset")) return driverReset
  const hook = pipeline.core.emit("reset", entry, connection)
  return driverReset === undefined ? hook : Effect.andThen(hook, driverReset)
}

/** Run a return's reset; a failure (or a reset past `resetTimeout`) invalidates the slot. */
const reset = <C>(
  pipeline: Pipeline<C>,
  record: ConnectionRecord<C>,
  work: Effect.Effect<void, unknown> | undefined
): Effect.Effect<void> =>
  work === undefined
    ? Effect.void
    : Effect.catchCause(work, (cause) => invalidateRecord(pipeline.core, record, Cause.squash(cause), "reset"))

/** Give the slot back to the strategy, after the checkin hook. */
const checkin = <C>(pipeline: Pipeline<C>, record: ConnectionRecord<C>): Effect.Effect<void> =>
  Effect.suspend(() => {
    const core = pipeline.core
    if (pipeline.tracksIdle) record.lastUsed = core.now()
    if (!core.observed("checkin")) return pipeline.strategy.give(record)
    return Effect.andThen(core.emitQuiet("checkin", record, record.connection), pipeline.strategy.give(record))
  })

/** Stop the handle's clocks: hold time, leak timer. Returns the clock reading it took, or -1. */
const returned = <C>(handle: Handle<C>): number => {
  handle.state = "returned"
  handle.conn = undefined
  handle.leakTimer?.interruptUnsafe()
  const core = handle.pipeline.core
  if (core.instruments === undefined) return -1
  const now = core.now()
  core.instruments.used(now - handle.checkedOutAt)
  return now
}

/** The checkout's finalizer. Idempotent; uninterruptible. */
export const release = <C>(handle: Handle<C>): Effect.Effect<void> =>
  Effect.uninterruptible(Effect.suspend(() => releaseNow(handle) ?? Effect.void))

/**
 * Release, synchronously when nothing needs an effect (returns `undefined`), else the effect
 * that finishes it. Idempotent. Call uninterruptibly.
 */
export const releaseNow = <C>(handle: Handle<C>): Effect.Effect<void> | undefined => {
  if (handle.state !== "out") return undefined
  const connection = handle.conn as C
  const now = returned(handle)
  const pipeline = handle.pipeline
  if (handle.isDetached) return closeDetached(pipeline, handle.detachedFrom, connection)
  const record = handle.record!
  const core = pipeline.core
  const work = resetWork(pipeline, record, connection)
  const usedUp = core.options.maxUses > 0 && record.uses >= core.options.maxUses
  // The hot path: nothing to reset, nobody to tell, and the strategy takes it back at once.
  if (work === undefined && !usedUp && !core.observed("checkin") && pipeline.strategy.giveNow !== undefined) {
    // `lastUsed` and the hand-off's deadline check reuse this clock reading (when one was taken).
    if (pipeline.tracksIdle) record.lastUsed = now >= 0 ? now : core.now()
    if (pipeline.strategy.giveNow(record, now)) return undefined
  }
  if (usedUp) {
    // Used up: reset as usual, then close instead of pooling it.
    core.instruments?.recycled()
    return Effect.andThen(
      reset(pipeline, record, work),
      Effect.andThen(closeRecord(core, record, "maxUses"), checkin(pipeline, record))
    )
  }
  return Effect.andThen(reset(pipeline, record, work), checkin(pipeline, record))
}

/** Returning a detached handle: reset it (a failure is only logged), then close it for good. */
const closeDetached = <C>(pipeline: Pipeline<C>, slot: number, connection: C): Effect.Effect<void> => {
  const core = pipeline.core
  const resetting = Effect.catchCause(
    resetWork(pipeline, slot, connection) ?? Effect.void,
    (cause) => core.logFailure("reset of a detached connection failed", cause)
  )
  return Effect.andThen(
    resetting,
    Effect.andThen(core.emitQuiet("close_detached", slot, connection), closeConnection(core, connection))
  )
}

/**
 * Invalidate the handle's connection. Hard: close it now and check the (now empty) slot in at
 * once, as SQLAlchemy does; the handle is done. Soft: mark the record, recycled at its next
 * checkout; the handle stays usable.
 */
const invalidate = <C>(
  handle: Handle<C>,
  cause: unknown,
  soft: boolean,
  reason: InvalidationReason
): Effect.Effect<void> =>
  Effect.uninterruptible(Effect.suspend(() => {
    if (handle.state !== "out") return Effect.void
    const core = handle.pipeline.core
    if (handle.isDetached) {
      if (soft) return Effect.void
      const connection = handle.conn as C
      returned(handle)
      return closeConnection(core, connection)
    }
    const record = handle.record!
    if (soft) return invalidateRecord(core, record, cause, reason, true)
    returned(handle)
    return Effect.andThen(invalidateRecord(core, record, cause, reason), checkin(handle.pipeline, record))
  }))

/** Take the connection out of the pool: the slot is freed, the handle closes it on return. */
const detach = <C>(handle: Handle<C>): Effect.Effect<void> =>
  Effect.uninterruptible(Effect.suspend(() => {
    if (handle.state !== "out" || handle.isDetached) return Effect.void
    const record = handle.record!
    // Cut the tie to the slot: the handle keeps a copy of `info`, no `recordInfo`, slot -1.
    handle.detachedFrom = record.id
    handle.record = undefined
    handle.info = new Map(record.info)
    // The hook sees the record still holding the connection; then the slot lets go of it.
    const emptySlot = Effect.sync(() => {
      record.connection = undefined
      record.softInvalidated = false
    })
    return handle.pipeline.core.emitQuiet("detach", record, handle.conn).pipe(
      Effect.andThen(emptySlot),
      Effect.andThen(handle.pipeline.strategy.give(record))
    )
  }))
