/**
 * The connection record: one pool slot and the raw connection it holds (or not, after an
 * invalidation), with its age, its `info` and `recordInfo`. SQLAlchemy's `_ConnectionRecord`.
 *
 * A record is owned by exactly one party at a time: the strategy (idle), a checkout (in use), or
 * the pipeline / housekeeper while it prepares or releases it. Only the owner mutates it.
 *
 * @internal
 */
import { Cause, Duration, Effect, Exit, Fiber, Latch } from "effect"
import { ConnectError, ConnectTimeoutError } from "../PoolError.ts"
import type { ConnectionEntry } from "../PoolEvent.ts"
import type { InvalidationReason } from "../PoolMetrics.ts"
import type { PoolCore } from "./core.ts"

/** @internal */
export class ConnectionRecord<C> implements ConnectionEntry<C> {
  connection: C | undefined = undefined
  /** Connect sequence number of the current connection; 0 = this slot never connected. */
  generation = 0
  /** Clock time (ms) of the current connection's connect. */
  startTime = 0
  /** Clock time (ms) past which the connection is retired (`maxLifetime` minus jitter). */
  expiresAt = Infinity
  /** Clock time (ms) the connection was last returned (or made). */
  lastUsed = 0
  /** Checkouts of the current connection (`maxUses`). */
  uses = 0
  /** Made by the checkout now in progress: pre-ping skips it. */
  fresh = false
  softInvalidated = false
  /** Per connection: survives checkin, cleared on reconnect. */
  info = new Map<string, unknown>()
  /** Per slot: lives as long as the record. */
  readonly recordInfo = new Map<string, unknown>()

  constructor(readonly id: number) {}

  get slot(): number {
    return this.id
  }
}

/** Must this record's connection be replaced before it is handed out? */
export const isStale = <C>(core: PoolCore<C>, record: ConnectionRecord<C>, now: number): boolean =>
  record.softInvalidated ||
  record.generation <= core.invalidatedUpTo ||
  now >= record.expiresAt ||
  now - record.startTime > core.recycleMs

/** Does this record need the clock (or more) to decide whether it is stale? Cheap hot-path test. */
export const mayBeStale = <C>(core: PoolCore<C>, record: ConnectionRecord<C>): boolean =>
  record.softInvalidated || record.generation <= core.invalidatedUpTo || record.expiresAt !== Infinity ||
  core.recycleMs !== Infinity

/**
 * One driver connect, bounded by `connectTimeout`, or by what is left until `deadline` (clock ms)
 * when a checkout's pre-ping started the clock (pre-ping and reconnect share one
 * `connectTimeout`): none left, it fails at once. Interruptible, and never orphans a connection:
 * the driver call runs in its own fiber, and a connection that arrives after the caller was
 * interrupted (or timed out) is closed.
 */
const connectOnce = <C>(core: PoolCore<C>, deadline: number): Effect.Effect<C, ConnectError | ConnectTimeoutError> => {
  const raw = Effect.uninterruptibleMask((restore) =>
    Effect.flatMap(
      Effect.forkDetach(core.driver.connect as Effect.Effect<C, unknown>, { startImmediately: true }),
      (fiber) =>
        restore(Fiber.join(fiber)).pipe(
          Effect.onInterrupt(() =>
            Effect.flatMap(Fiber.interrupt(fiber), () => {
              const exit = fiber.pollUnsafe()
              return exit !== undefined && Exit.isSuccess(exit) ? closeConnection(core, exit.value) : Effect.void
            })
          ),
          Effect.mapError((cause) => new ConnectError({ cause }))
        )
    )
  )
  const timeout = core.options.connectTimeout
  if (!Duration.isFinite(timeout)) {
    return Effect.tapError(raw, () => Effect.sync(() => core.instruments?.connectFailed()))
  }
  const prePing = deadline !== Infinity
  const expired = () =>
    new ConnectTimeoutError({ timeout, target: core.driver.target, afterPrePing: prePing || undefined })
  return Effect.suspend(() => {
    let bound = timeout
    if (prePing) {
      const left = deadline - core.now()
      if (left <= 0) return Effect.fail(expired())
      if (left < Duration.toMillis(timeout)) bound = Duration.millis(left)
    }
    return Effect.tapError(
      Effect.timeoutOrElse(raw, { duration: bound, orElse: () => Effect.fail(expired()) }),
      () => Effect.sync(() => core.instruments?.connectFailed())
    )
  })
}

/** Driver connect with the `connectRetry` schedule, inside a `effect-db-pool.connect` span. */
const connectRaw = <C>(core: PoolCore<C>, deadline: number): Effect.Effect<C, ConnectError | ConnectTimeoutError> => {
  const once = connectOnce(core, deadline)
  const retried = core.options.connectRetry === undefined ? once : Effect.retry(once, core.options.connectRetry)
  return Effect.withSpan(retried, "effect-db-pool.connect", {
    attributes: { [`db.client.connection.pool.name`]: core.name, "db.system.name": core.driver.name }
  })
}

/**
 * Connect an empty record: driver connect, then `first_connect` (once per pool) and `connect`.
 * A failing connect hook closes the new connection and fails with `ConnectError`. `deadline`
 * (clock ms): the end of the checkout's `connectTimeout` when a pre-ping started it.
 */
export const connectRecord = <C>(
  core: PoolCore<C>,
  record: ConnectionRecord<C>,
  deadline = Infinity
): Effect.Effect<void, ConnectError | ConnectTimeoutError> =>
  Effect.suspend(() => {
    const started = core.now()
    return Effect.flatMap(connectRaw(core, deadline), (connection) =>
      Effect.uninterruptibleMask((restore) => {
        const now = core.now()
        core.instruments?.connected(now - started)
        record.connection = connection
        record.generation = ++core.connectSeq
        record.startTime = now
        record.lastUsed = now
        record.expiresAt = lifetimeEnd(core, now)
        record.uses = 0
        record.fresh = true
        record.softInvalidated = false
        record.info = new Map()
        const first = core.firstConnect === "done" ? Effect.void : firstConnect(core, record, connection)
        return restore(Effect.andThen(first, core.emit("connect", record, connection))).pipe(
          Effect.catchCause((cause) =>
            Effect.andThen(closeRecord(core, record), Effect.fail(new ConnectError({ cause: squashHookCause(cause) })))
          )
        )
      }))
  })

/**
 * `first_connect`, exactly once per pool and before any `connect`: the first connection runs
 * it; connections made meanwhile wait for it to end. If it fails, its connection fails (closed,
 * `ConnectError`) and the next connection runs it again; waiters then take their turn.
 */
const firstConnect = <C>(core: PoolCore<C>, record: ConnectionRecord<C>, connection: C): Effect.Effect<void, unknown> =>
  Effect.suspend(() => {
    const state = core.firstConnect
    if (state === "done") return Effect.void
    if (state !== "pending") return Effect.andThen(state.await, firstConnect(core, record, connection))
    const latch = Latch.makeUnsafe(false)
    core.firstConnect = latch
    return core.emit("first_connect", record, connection).pipe(
      Effect.onExit((exit) =>
        Effect.andThen(
          Effect.sync(() => {
            core.firstConnect = Exit.isSuccess(exit) ? "done" : "pending"
          }),
          latch.open
        )
      )
    )
  })

/** `maxLifetime` minus a uniform random jitter, from `now`. */
const lifetimeEnd = <C>(core: PoolCore<C>, now: number): number => {
  const { maxLifetime, maxLifetimeJitter } = core.options
  if (!Duration.isFinite(maxLifetime)) return Infinity
  return now + Duration.toMillis(maxLifetime) - Math.random() * Duration.toMillis(maxLifetimeJitter)
}

const squashHookCause = (cause: Cause.Cause<unknown>): unknown => {
  const failure = cause.reasons.find(Cause.isFailReason)
  if (failure !== undefined) return failure.error
  const die = cause.reasons.find(Cause.isDieReason)
  return die !== undefined ? die.defect : cause
}

/** Close a raw connection, bounded by `resetTimeout`; a failure is logged, never raised. */
export const closeConnection = <C>(core: PoolCore<C>, connection: C): Effect.Effect<void> =>
  core.bounded(core.driver.close(connection), "close").pipe(
    Effect.catchCause((cause) => core.logFailure("closing a connection failed", cause)),
    Effect.uninterruptible
  )

/** Close the record's connection (firing `close`) and leave the slot empty. No-op when empty. */
export const closeRecord = <C>(core: PoolCore<C>, record: ConnectionRecord<C>, cause?: unknown): Effect.Effect<void> =>
  Effect.suspend(() => {
    const connection = record.connection
    if (connection === undefined) return Effect.void
    record.connection = undefined
    record.softInvalidated = false
    return Effect.andThen(core.emitQuiet("close", record, connection, cause), closeConnection(core, connection))
  })

/**
 * Invalidate the record. Hard: fire `invalidate`, close now, slot reconnects at next checkout.
 * Soft: fire `soft_invalidate`, keep the connection usable, recycle it at its next checkout.
 * An empty record is left alone and fires nothing.
 */
export const invalidateRecord = <C>(
  core: PoolCore<C>,
  record: ConnectionRecord<C>,
  cause: unknown,
  reason: InvalidationReason,
  soft = false
): Effect.Effect<void> =>
  Effect.suspend(() => {
    const connection = record.connection
    if (connection === undefined) return Effect.void
    core.instruments?.invalidated(reason)
    if (soft) {
      record.softInvalidated = true
      return core.emitQuiet("soft_invalidate", record, connection, cause)
    }
    return Effect.andThen(core.emitQuiet("invalidate", record, connection, cause), closeRecord(core, record, cause))
  })
