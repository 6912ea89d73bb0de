/**
 * The state one pool shares across its records, pipeline and strategy: driver, options, event
 * fan-out, pool-wide invalidation and the once-per-pool `first_connect`.
 *
 * @internal
 */
import { Cause, Clock, Context, Duration, Effect, Exit, Fiber, Latch } from "effect"
import type { DriverShape } from "../Driver.ts"
import type { ConnectionEntry, Hook, PoolEvent, PoolEventType } from "../PoolEvent.ts"
import { millisText } from "./format.ts"
import { eventTypes, hookName } from "./hooks.ts"
import { Instruments } from "./instruments.ts"
import type { ResolvedCommon, StrategyName } from "./options.ts"

/** @internal */
export class PoolCore<C> {
  readonly listeners = new Set<(event: PoolEvent<C>) => void>()
  /** Connect sequence numbers; a record connected at or before `invalidatedUpTo` is stale. */
  connectSeq = 0
  invalidatedUpTo = 0
  /** Clock time of the last pool-wide invalidation (ms), undefined when never. */
  invalidationTime: number | undefined = undefined
  /**
   * `first_connect` (once per pool): "pending" until a connect runs it, a latch while it runs
   * (other connects wait on it), "done" once it succeeded. A failure puts it back to "pending":
   * the next connect runs it again (SQLAlchemy 1.4's `exec_once_unless_exception`).
   */
  firstConnect: "pending" | "done" | Latch.Latch = "pending"
  /** `recycle` in milliseconds (Infinity: never), computed once. */
  readonly recycleMs: number
  /** Event types with a hook (or all, with `echo`): fixed for the pool's life. */
  private readonly hooked: ReadonlySet<PoolEventType>
  /** Metrics, when the `metrics` option is on (in the metric registry of the pool's context). */
  readonly instruments: Instruments | undefined
  /** The clock of the context the pool was built in (`TestClock` in tests). */
  readonly clock: Clock.Clock
  private nextSlot = 0

  /** `context`: the context the pool is built in, for its clock and metric registry. */
  constructor(
    readonly strategy: StrategyName,
    readonly driver: DriverShape<C>,
    readonly options: ResolvedCommon<C>,
    context: Context.Context<never>
  ) {
    this.recycleMs = Duration.isFinite(options.recycle) ? Duration.toMillis(options.recycle) : Infinity
    this.hooked = new Set(eventTypes.filter((type) => options.echo || options.hooks[hookName[type]] !== undefined))
    this.clock = Context.get(context, Clock.Clock)
    this.instruments = options.metrics ? new Instruments(options.name, context) : undefined
  }

  now(): number {
    return this.clock.currentTimeMillisUnsafe()
  }

  /** Annotate an effect's logs with the pool's name. */
  annotate<A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> {
    return Effect.annotateLogs(effect, { pool: this.options.name })
  }

  get name(): string {
    return this.options.name
  }

  newSlotId(): number {
    return ++this.nextSlot
  }

  /** Would `emit(type, ...)` do anything (a hook, a listener, echo)? Lets the hot path skip it. */
  observed(type: PoolEventType): boolean {
    return this.listeners.size > 0 || this.hooked.has(type)
  }

  /**
   * Fire an event: observers first (synchronously), then the hook. The hook's failure is
   * returned to the caller, which decides whether it matters.
   */
  emit(
    type: PoolEventType,
    entry: ConnectionEntry<C> | number,
    connection: C | undefined,
    cause?: unknown
  ): Effect.Effect<void, unknown> {
    return Effect.suspend(() => {
      const hook = this.options.hooks[hookName[type]] as Hook<C, unknown> | undefined
      if (hook === undefined && this.listeners.size === 0 && !this.options.echo) return Effect.void
      const record = typeof entry === "number" ? undefined : entry
      const slot = typeof entry === "number" ? entry : entry.slot
      const event: PoolEvent<C> = cause === undefined
        ? { type, pool: this.options.name, slot, connection, record }
        : { type, pool: this.options.name, slot, connection, record, cause }
      for (const listener of this.listeners) listener(event)
      const run = hook === undefined ? Effect.void : hook(event)
      return this.options.echo
        ? Effect.andThen(this.annotate(Effect.logInfo(`${type} slot ${slot}`)), run)
        : run
    })
  }

  /** Fire an event whose hook failure is only logged. */
  emitQuiet(
    type: PoolEventType,
    entry: ConnectionEntry<C> | number,
    connection: C | undefined,
    cause?: unknown
  ): Effect.Effect<void> {
    return this.emit(type, entry, connection, cause).pipe(
      Effect.catchCause((c) => this.logFailure(`${hookName[type]} hook failed`, c))
    )
  }

  logFailure(message: string, cause: Cause.Cause<unknown>): Effect.Effect<void> {
    return Cause.hasInterruptsOnly(cause)
      ? Effect.void
      : this.annotate(Effect.logWarning(message, cause))
  }

  /** Stamp a pool-wide invalidation: every connection made until now is recycled at its next checkout. */
  invalidateAll: Effect.Effect<void> = Effect.flatMap(Clock.currentTimeMillis, (now) =>
    Effect.sync(() => {
      this.invalidatedUpTo = this.connectSeq
      this.invalidationTime = now
    }))

  /**
   * Bound a release-path driver call (reset, close) by `resetTimeout`. The call starts at once in
   * its own fiber; only one that has not finished synchronously pays for a timer.
   */
  bounded<A>(effect: Effect.Effect<A, unknown>, operation: string): Effect.Effect<A, unknown> {
    const timeout = this.options.resetTimeout
    // An `Exit` (`Effect.void`, `Effect.succeed(...)`) is already complete: nothing to bound.
    if (!Duration.isFinite(timeout) || Exit.isExit(effect)) return effect
    return Effect.flatMap(Effect.forkDetach(effect, { startImmediately: true }), (fiber) => {
      const exit = fiber.pollUnsafe()
      if (exit !== undefined) return exit
      return Effect.timeoutOrElse(Fiber.join(fiber), {
        duration: timeout,
        orElse: () =>
          Effect.andThen(
            Effect.sync(() => fiber.interruptUnsafe()),
            Effect.fail(new Error(`${operation} did not finish within ${millisText(timeout)}`))
          )
      })
    })
  }
}
