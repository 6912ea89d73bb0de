/**
 * The way out of the pool: take a slot from the strategy and make it fit to hand out.
 *
 *   take slot → [replace if the driver knows it dead | recycle if stale] → [connect if empty]
 *     → [pre-ping unless fresh] → checkout hook → handle (leak timer armed when asked for)
 *     ↑ a DisconnectionError invalidates the slot and retries by the `checkoutRetry` Schedule
 *
 * Interruption: only waiting and the driver calls run interruptibly (`restore`); every path
 * that leaves them early hands the slot back (`abandon`), so no slot, connection or waiter
 * leaks. Hot path: an idle, healthy record that nothing needs to check, time or tell about is
 * taken synchronously (`takeNow`) and handed out as it is: no fiber, timer or hook per checkout.
 *
 * @internal
 */
import { Cause, Duration, Effect, Exit } from "effect"
import { ConnectionInvalidatedError, DisconnectionError, DriverError } from "../PoolError.ts"
import type { CheckoutError } from "../PoolError.ts"
import { millisText } from "./format.ts"
import { Handle } from "./handle.ts"
import { leakTimer, Unwatched } from "./leaks.ts"
import type { Pipeline } from "./pipeline.ts"
import { closeRecord, connectRecord, invalidateRecord, isStale, mayBeStale } from "./record.ts"
import type { ConnectionRecord } from "./record.ts"
import type { Restore } from "./strategy.ts"

const isDisconnection = (e: unknown): e is DisconnectionError => e instanceof DisconnectionError

/** A checkout's `connectTimeout` once its pre-ping started: the clock time (ms) the ping and reconnects must end by. */
interface Budget {
  deadline: number
}

/**
 * Take a slot and make it ready. Call inside `uninterruptibleMask`, at run time (not when the
 * effect is built). The hot path returns the handle itself, synchronously: an idle record that
 * nothing needs to check, time or trace. Otherwise the effect that produces it.
 */
export const acquireNow = <C>(
  pipeline: Pipeline<C>,
  restore: Restore
): Handle<C> | Effect.Effect<Handle<C>, CheckoutError> => {
  if (pipeline.gate.suspended) return afterGate(pipeline, restore)
  if (pipeline.core.options.tracing) return traced(pipeline, Effect.suspend(() => acquireSlow(pipeline, restore)))
  const idle = pipeline.strategy.takeNow?.()
  if (idle === undefined) return acquireSlow(pipeline, restore, false)
  if (isReady(pipeline, idle) && !pipeline.armsLeakTimer) {
    idle.fresh = false
    return handOutNow(pipeline, idle, -1)
  }
  // Taken at once (no wait: `started` -1), but it must be connected, pinged or told about first.
  return prepare(pipeline, idle, restore, -1)
}

/** The pool is suspended: wait for `resume` (bounded by the strategy's wait bound), then check out as usual. */
const afterGate = <C>(pipeline: Pipeline<C>, restore: Restore): Effect.Effect<Handle<C>, CheckoutError> =>
  Effect.andThen(
    pipeline.gate.pass(restore),
    Effect.suspend(() => {
      const acquired = acquireNow(pipeline, restore)
      return acquired instanceof Handle ? Effect.succeed(acquired) : acquired
    })
  )

/** The general path: take (maybe waiting), then make the record ready. Call at run time, as `acquireNow`. */
const acquireSlow = <C>(
  pipeline: Pipeline<C>,
  restore: Restore,
  tryIdle = true
): Effect.Effect<Handle<C>, CheckoutError> => {
  const idle = tryIdle ? pipeline.strategy.takeNow?.() : undefined
  if (idle !== undefined) return prepare(pipeline, idle, restore, -1)
  const core = pipeline.core
  const started = core.instruments === undefined ? -1 : core.now()
  return Effect.flatMap(
    pipeline.strategy.take(restore, started),
    (record) => prepare(pipeline, record, restore, started)
  )
}

/** Can this record be handed out as it is: connected, not stale, nothing to ping, nobody to tell? */
const isReady = <C>(pipeline: Pipeline<C>, record: ConnectionRecord<C>): boolean => {
  const core = pipeline.core
  return record.connection !== undefined && (!core.options.prePing || record.fresh) &&
    !mayBeStale(core, record) && !core.observed("checkout") && core.driver.isDead?.(record.connection) !== true
}

/** Make a taken record ready (or give it back on any failure), then hand it out. */
const prepare = <C>(
  pipeline: Pipeline<C>,
  record: ConnectionRecord<C>,
  restore: Restore,
  started: number
): Effect.Effect<Handle<C>, CheckoutError> => {
  if (isReady(pipeline, record)) {
    record.fresh = false
    return handOut(pipeline, record, started)
  }
  if (started < 0 && pipeline.core.instruments !== undefined) started = pipeline.core.now()
  return Effect.onExitPrimitive(
    restore(validate(pipeline, record)),
    (exit) => Exit.isSuccess(exit) ? undefined : abandon(pipeline, record, exit)
  ).pipe(Effect.flatMap(() => handOut(pipeline, record, started)))
}

/** Attempts, retried on `DisconnectionError` by the user's schedule. */
const validate = <C>(pipeline: Pipeline<C>, record: ConnectionRecord<C>): Effect.Effect<void, CheckoutError> => {
  const budget: Budget = { deadline: Infinity }
  return Effect.catchIf(attempt(pipeline, record, budget), isDisconnection, (first) => {
    let replay: DisconnectionError | undefined = first
    const again = Effect.suspend(() => {
      if (replay === undefined) return attempt(pipeline, record, budget)
      const e = replay
      replay = undefined
      return Effect.fail(e)
    })
    return again.pipe(
      Effect.retry({ schedule: pipeline.retry, while: isDisconnection }),
      Effect.catchIf(isDisconnection, (cause) => Effect.fail(new ConnectionInvalidatedError({ cause })))
    )
  })
}

/**
 * One attempt at making the record's connection fit to hand out. `budget.deadline` (clock ms):
 * set by the first pre-ping of the checkout; the ping and any reconnect after it share one
 * `connectTimeout`.
 */
const attempt = <C>(
  pipeline: Pipeline<C>,
  record: ConnectionRecord<C>,
  budget: Budget
): Effect.Effect<void, CheckoutError | DisconnectionError> => {
  const core = pipeline.core
  return Effect.suspend(() => Effect.andThen(renew(pipeline, record, budget), () => check(pipeline, record, budget)))
    .pipe(
      Effect.tapError((e) =>
        isDisconnection(e)
          ? Effect.andThen(
            invalidateRecord(core, record, e, "disconnect"),
            e.invalidatePool ? core.invalidateAll : Effect.void
          )
          : Effect.void
      )
    )
}

/** Connect an empty record; replace a connection the driver knows dead, or a stale one. */
const renew = <C>(
  pipeline: Pipeline<C>,
  record: ConnectionRecord<C>,
  budget: Budget
): Effect.Effect<void, CheckoutError> => {
  const core = pipeline.core
  if (record.connection === undefined) return connectRecord(core, record, budget.deadline)
  if (core.driver.isDead?.(record.connection) === true) {
    // Known dead by the driver (no round trip): replaced, never handed out.
    const cause = new DisconnectionError({ cause: new Error("the driver reports the connection dead") })
    return Effect.andThen(
      invalidateRecord(core, record, cause, "disconnect"),
      connectRecord(core, record, budget.deadline)
    )
  }
  if (mayBeStale(core, record) && isStale(core, record, core.now())) {
    core.instruments?.recycled()
    return Effect.andThen(closeRecord(core, record, "recycle"), connectRecord(core, record, budget.deadline))
  }
  return Effect.void
}

/** The connected record's pre-ping (unless it was made by this checkout), then the checkout hook. */
const check = <C>(
  pipeline: Pipeline<C>,
  record: ConnectionRecord<C>,
  budget: Budget
): Effect.Effect<void, CheckoutError | DisconnectionError> => {
  const core = pipeline.core
  const fresh = record.fresh
  record.fresh = false
  const connection = record.connection as C
  const checkout = core.emit("checkout", record, connection) as Effect.Effect<void, DisconnectionError>
  if (!core.options.prePing || fresh) return checkout
  const ping = Effect.mapError(core.driver.ping(connection), (cause) =>
    core.driver.isDisconnect(cause)
      ? new DisconnectionError({ cause, invalidatePool: true })
      : new DriverError({ operation: "ping", cause }))
  // A ping that never answers (a half-open socket) must not hold the checkout forever: the
  // ping and the reconnect after it share one `connectTimeout` (the checkout's budget). The
  // ping may take half of it, so that a reconnect still fits in the rest (a half-open
  // socket to a live server is replaced, not reported); past that the connection is dead.
  const timeout = core.options.connectTimeout
  if (!Duration.isFinite(timeout)) return Effect.andThen(ping, checkout)
  const now = core.now()
  if (budget.deadline === Infinity) budget.deadline = now + Duration.toMillis(timeout)
  const half = Duration.toMillis(timeout) / 2
  const bounded = Effect.timeoutOrElse(ping, {
    duration: Duration.millis(Math.max(0, Math.min(half, budget.deadline - now))),
    orElse: () =>
      Effect.fail(
        new DisconnectionError({
          cause: new Error(
            `pre-ping did not answer within ${millisText(Duration.millis(half))} (half of connectTimeout)`
          )
        })
      )
  })
  return Effect.andThen(bounded, checkout)
}

/** A checkout that did not complete: invalidate what it may have left half-done, give the slot back. */
const abandon = <C>(
  pipeline: Pipeline<C>,
  record: ConnectionRecord<C>,
  exit: Exit.Exit<unknown, unknown>
): Effect.Effect<void> => {
  const cause = Exit.isFailure(exit) ? Cause.squash(exit.cause) : undefined
  return Effect.andThen(invalidateRecord(pipeline.core, record, cause, "checkout"), pipeline.strategy.give(record))
}

/** The record is ready: count it, time it, make the handle. */
const handOutNow = <C>(pipeline: Pipeline<C>, record: ConnectionRecord<C>, started: number): Handle<C> => {
  const core = pipeline.core
  const handle = new Handle(pipeline, record)
  record.uses++
  if (core.instruments !== undefined) {
    const now = core.now()
    handle.checkedOutAt = now
    core.instruments.checkedOut(started < 0 ? 0 : now - started)
  }
  return handle
}

/** The record is ready: hand it out and arm leak detection (unless {@link Unwatched}). Uninterruptible. */
const handOut = <C>(pipeline: Pipeline<C>, record: ConnectionRecord<C>, started: number): Effect.Effect<Handle<C>> => {
  const handle = handOutNow(pipeline, record, started)
  if (!pipeline.armsLeakTimer) return Effect.succeed(handle)
  return Effect.withFiber((fiber) =>
    fiber.getRef(Unwatched) ? Effect.succeed(handle) : Effect.map(leakTimer(pipeline.core, record.id, ""), (timer) => {
      handle.leakTimer = timer
      return handle
    })
  )
}

/** A span per checkout (the `tracing` option), with the time it waited. */
const traced = <C, A, E, R>(pipeline: Pipeline<C>, acquired: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> => {
  const core = pipeline.core
  return Effect.withSpan(
    Effect.suspend(() => {
      const started = core.now()
      return Effect.tap(
        acquired,
        () => Effect.annotateCurrentSpan("db.client.connection.wait_time_ms", core.now() - started)
      )
    }),
    "effect-db-pool.checkout",
    { attributes: { "db.client.connection.pool.name": core.name, "effect-db-pool.strategy": core.strategy } }
  )
}
