/**
 * The checkout pipeline, written once for every strategy.
 *
 * A strategy (its contract: `strategy.ts`) only answers "give me a slot" (`take`, which may
 * wait), "take this slot back" (`give`) and "what is your status". Everything between is here:
 *
 *   take slot → [replace if the driver knows it dead | recycle if stale] → [connect if empty]
 *     → [pre-ping unless fresh] → checkout hook
 *     ↑ a DisconnectionError invalidates the slot and retries by the `checkoutRetry` Schedule
 *   release (scope finalizer): reset hook → rollback | commit | none → checkin hook → give slot
 *
 * Interruption: only waiting and the driver calls run interruptibly (`restore`); every path
 * that leaves them early hands the slot back (`abandon`), so no slot, connection or waiter
 * leaks. Releases run uninterruptibly and are bounded by `resetTimeout`.
 *
 * Hot path: an idle, healthy record that nothing needs to check, reset or tell about is taken
 * and given back synchronously (`takeNow` / `giveNow`): no fiber, timer or hook per checkout.
 *
 * @internal
 */
import { Cause, Context, Duration, Effect, Exit, Option, Queue, Schedule, Scope, Stream } from "effect"
import type { Fiber } from "effect"
import { eventBufferSize } from "../ConnectionPool.ts"
import type { PooledConnection, PoolSettings, Service, Sharing } from "../ConnectionPool.ts"
import type { DriverShape } from "../Driver.ts"
import { ConnectionInvalidatedError, DisconnectionError, DriverError } from "../PoolError.ts"
import type { CheckoutError } from "../PoolError.ts"
import type { ObservedEvent, PoolEvent } from "../PoolEvent.ts"
import type { InvalidationReason } from "../PoolMetrics.ts"
import * as Control from "./control.ts"
import { Gate } from "./control.ts"
import type { PoolCore } from "./core.ts"
import { millisText } from "./format.ts"
import * as Housekeeper from "./housekeeper.ts"
import * as Record from "./record.ts"
import type { ConnectionRecord } from "./record.ts"
import { share } from "./reentrant.ts"
import { captureSite, withCallSite } from "./site.ts"
import { limitOf } from "./strategy.ts"
import type { Restore, Strategy } from "./strategy.ts"

type HandleState = "out" | "returned"

/** The checked-out connection (SQLAlchemy's `_ConnectionFairy`). @internal */
class Handle<C> implements PooledConnection<C> {
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
    return this.pipeline.invalidateHandle(this, cause, false, reason)
  }
  softInvalidate(cause?: unknown): Effect.Effect<void> {
    return this.pipeline.invalidateHandle(this, cause, true, "user")
  }
  get detach(): Effect.Effect<void> {
    return this.pipeline.detach(this)
  }
}

const isDisconnection = (e: unknown): e is DisconnectionError => e instanceof DisconnectionError

/** A checkout's `connectTimeout` once its pre-ping started: the clock time (ms) the ping and reconnects must end by. */
interface Budget {
  deadline: number
}

/** @internal */
export class Pipeline<C> {
  private readonly retrySchedule: Schedule.Schedule<unknown, any>
  /** Closed while the pool is suspended (`control.ts`). */
  readonly gate: Gate<C>
  constructor(readonly core: PoolCore<C>, readonly strategy: Strategy<C, CheckoutError>) {
    this.retrySchedule = core.options.checkoutRetry as Schedule.Schedule<unknown, any>
    this.gate = new Gate(core, strategy)
  }

  // ---------------------------------------------------------------- checkout

  /**
   * One attempt at making the record's connection fit to hand out. `budget.deadline` (clock ms):
   * set by the first pre-ping of the checkout; the ping and any reconnect after it share one
   * `connectTimeout`.
   */
  private attempt(
    record: ConnectionRecord<C>,
    budget: Budget
  ): Effect.Effect<void, CheckoutError | DisconnectionError> {
    const core = this.core
    return Effect.suspend(() => {
      let ready: Effect.Effect<void, CheckoutError> = Effect.void
      if (record.connection !== undefined) {
        if (core.driver.isDead?.(record.connection) === true) {
          // Known dead by the driver (no round trip): replaced, never handed out.
          const cause = new DisconnectionError({ cause: new Error("the driver reports the connection dead") })
          ready = Effect.andThen(
            Record.invalidate(core, record, cause, "disconnect"),
            Record.connect(core, record, budget.deadline)
          )
        } else if (Record.mayBeStale(core, record) && Record.isStale(core, record, core.now())) {
          core.instruments?.recycled()
          ready = Effect.andThen(Record.close(core, record, "recycle"), Record.connect(core, record, budget.deadline))
        }
      } else {
        ready = Record.connect(core, record, budget.deadline)
      }
      return Effect.andThen(ready, () => {
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
      })
    }).pipe(
      Effect.tapError((e) =>
        isDisconnection(e)
          ? Effect.andThen(
            Record.invalidate(core, record, e, "disconnect"),
            e.invalidatePool ? core.invalidateAll : Effect.void
          )
          : Effect.void
      )
    )
  }

  /** Can this record be handed out as it is: connected, not stale, nothing to ping, nobody to tell? */
  private isReady(record: ConnectionRecord<C>): boolean {
    const core = this.core
    return record.connection !== undefined && (!core.options.prePing || record.fresh) &&
      !Record.mayBeStale(core, record) && !core.observed("checkout") && core.driver.isDead?.(record.connection) !== true
  }

  /** Attempts, retried on `DisconnectionError` by the user's schedule. */
  private validate(record: ConnectionRecord<C>): Effect.Effect<void, CheckoutError> {
    const budget: Budget = { deadline: Infinity }
    return Effect.catchIf(this.attempt(record, budget), isDisconnection, (first) => {
      let replay: DisconnectionError | undefined = first
      const again = Effect.suspend(() => {
        if (replay === undefined) return this.attempt(record, budget)
        const e = replay
        replay = undefined
        return Effect.fail(e)
      })
      return again.pipe(
        Effect.retry({ schedule: this.retrySchedule, while: isDisconnection }),
        Effect.catchIf(isDisconnection, (cause) => Effect.fail(new ConnectionInvalidatedError({ cause })))
      ) as Effect.Effect<void, CheckoutError>
    })
  }

  /** A checkout that did not complete: invalidate what it may have left half-done, give the slot back. */
  private abandon(record: ConnectionRecord<C>, exit: Exit.Exit<unknown, unknown>): Effect.Effect<void> {
    const cause = Exit.isFailure(exit) ? Cause.squash(exit.cause) : undefined
    return Effect.andThen(Record.invalidate(this.core, record, cause, "checkout"), this.strategy.give(record))
  }

  /**
   * Take a slot and make it ready. Call inside `uninterruptibleMask`, at run time (not when the
   * effect is built). The hot path returns the handle itself, synchronously: an idle record that
   * nothing needs to check, time or trace. Otherwise the effect that produces it.
   */
  private acquireNow(restore: Restore): Handle<C> | Effect.Effect<Handle<C>, CheckoutError> {
    const core = this.core
    if (this.gate.suspended) return this.afterGate(restore)
    if (core.options.tracing) return this.traced(Effect.suspend(() => this.acquireSlow(restore)))
    const idle = this.strategy.takeNow?.()
    if (idle === undefined) return this.acquireSlow(restore, false)
    if (this.isReady(idle) && !this.armsLeakTimer) {
      idle.fresh = false
      return this.handOutNow(idle, -1)
    }
    // Taken at once (no wait: `started` -1), but it must be connected, pinged or told about first.
    return this.prepare(idle, restore, -1)
  }

  /** The pool is suspended: wait for `resume` (bounded by `timeout`), then check out as usual. */
  private afterGate(restore: Restore): Effect.Effect<Handle<C>, CheckoutError> {
    return Effect.andThen(
      this.gate.pass(restore),
      Effect.suspend(() => {
        const acquired = this.acquireNow(restore)
        return acquired instanceof Handle ? Effect.succeed(acquired) : acquired
      })
    )
  }

  private get armsLeakTimer(): boolean {
    return Duration.isFinite(this.core.options.leakDetectionThreshold)
  }

  /** The general path: take (maybe waiting), then make the record ready. Call at run time, as `acquireNow`. */
  private acquireSlow(restore: Restore, tryIdle = true): Effect.Effect<Handle<C>, CheckoutError> {
    const core = this.core
    const idle = tryIdle ? this.strategy.takeNow?.() : undefined
    if (idle !== undefined) return this.prepare(idle, restore, -1)
    const started = core.instruments === undefined ? -1 : core.now()
    return Effect.flatMap(
      this.strategy.take(restore, started),
      (record) => this.prepare(record, restore, started)
    )
  }

  /** Make a taken record ready (or give it back on any failure), then hand it out. */
  private prepare(
    record: ConnectionRecord<C>,
    restore: Restore,
    started: number
  ): Effect.Effect<Handle<C>, CheckoutError> {
    if (this.isReady(record)) {
      record.fresh = false
      return this.handOut(record, started)
    }
    if (started < 0 && this.core.instruments !== undefined) started = this.core.now()
    return Effect.onExitPrimitive(
      restore(this.validate(record)),
      (exit) => Exit.isSuccess(exit) ? undefined : this.abandon(record, exit)
    ).pipe(Effect.flatMap(() => this.handOut(record, started)))
  }

  /** The record is ready: count it, time it, make the handle. */
  private handOutNow(record: ConnectionRecord<C>, started: number): Handle<C> {
    const core = this.core
    const handle = new Handle(this, record)
    record.uses++
    if (core.instruments !== undefined) {
      const now = core.now()
      handle.checkedOutAt = now
      core.instruments.checkedOut(started < 0 ? 0 : now - started)
    }
    return handle
  }

  /** The record is ready: hand it out and arm leak detection (unless {@link Unwatched}). Uninterruptible. */
  private handOut(record: ConnectionRecord<C>, started: number): Effect.Effect<Handle<C>> {
    const handle = this.handOutNow(record, started)
    if (!this.armsLeakTimer) return Effect.succeed(handle)
    return Effect.withFiber((fiber) =>
      fiber.getRef(Unwatched) ? Effect.succeed(handle) : Effect.map(this.leakTimer(record.id, ""), (timer) => {
        handle.leakTimer = timer
        return handle
      })
    )
  }

  /**
   * A fiber that, unless interrupted within `leakDetectionThreshold`, warns once (naming the
   * current fiber's site) and counts a leak.
   */
  private leakTimer(slot: number, what: string): Effect.Effect<Fiber.Fiber<unknown, unknown>> {
    const core = this.core
    const threshold = core.options.leakDetectionThreshold
    return Effect.flatMap(captureSite, (site) =>
      Effect.forkDetach(
        Effect.andThen(
          Effect.sleep(threshold),
          Effect.suspend(() => {
            core.instruments?.leaked()
            return core.annotate(Effect.logWarning(
              `Connection leak suspected: slot ${slot} checked out for more than ${
                millisText(threshold)
              } by ${site}${what}`
            ))
          })
        )
      ))
  }

  /**
   * Run `effect`, one borrower's share of a connection checked out {@link Unwatched} (a pipelined
   * statement on its lane), watched as a checkout is: held past `leakDetectionThreshold`, one
   * warning naming its site, counted as a leak.
   */
  watch<A, E, R>(effect: Effect.Effect<A, E, R>, slot: number): Effect.Effect<A, E, R> {
    return Effect.uninterruptibleMask((restore) =>
      Effect.flatMap(
        this.leakTimer(slot, " (a pipelined statement)"),
        (timer) => Effect.onExit(restore(effect), () => Effect.sync(() => timer.interruptUnsafe()))
      )
    )
  }

  private traced<A, E, R>(acquired: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> {
    const core = this.core
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

  // ----------------------------------------------------------------- release

  /**
   * The reset of a return: reset hook → rollback | commit | nothing. `undefined` when there is
   * nothing to do: no reset hook or observer, and `resetOnReturn: "none"`, a driver that knows
   * the connection holds nothing (`needsReset`), or a driver reset that is already complete (an
   * `Exit`: the release then stays on the synchronous path). Computed once per return.
   */
  private resetWork(entry: ConnectionRecord<C> | number, connection: C): Effect.Effect<void, unknown> | undefined {
    const { driver, options } = this.core
    const mode = options.resetOnReturn
    let driverReset = mode !== "none" && (driver.needsReset === undefined || driver.needsReset(connection))
      ? this.core.bounded(mode === "rollback" ? driver.rollback(connection) : driver.commit(connection), mode)
      : undefined
    // Already complete (the driver returned a successful `Exit`): nothing left to run.
    if (driverReset !== undefined && Exit.isExit(driverReset) && Exit.isSuccess(driverReset)) driverReset = undefined
    if (!this.core.observed("reset")) return driverReset
    const hook = this.core.emit("reset", entry, connection)
    return driverReset === undefined ? hook : Effect.andThen(hook, driverReset)
  }

  /** Run a return's reset; a failure (or a reset past `resetTimeout`) invalidates the slot. */
  private reset(record: ConnectionRecord<C>, work: Effect.Effect<void, unknown> | undefined): Effect.Effect<void> {
    return work === undefined
      ? Effect.void
      : Effect.catchCause(work, (cause) => Record.invalidate(this.core, record, Cause.squash(cause), "reset"))
  }

  private checkin(record: ConnectionRecord<C>): Effect.Effect<void> {
    return Effect.suspend(() => {
      if (this.core.tracksIdle) record.lastUsed = this.core.now()
      if (!this.core.observed("checkin")) return this.strategy.give(record)
      return Effect.andThen(this.core.emitQuiet("checkin", record, record.connection), this.strategy.give(record))
    })
  }

  /** Stop the handle's clocks: hold time, leak timer. Returns the clock reading it took, or -1. */
  private returned(handle: Handle<C>): number {
    handle.state = "returned"
    handle.conn = undefined
    handle.leakTimer?.interruptUnsafe()
    if (this.core.instruments === undefined) return -1
    const now = this.core.now()
    this.core.instruments.used(now - handle.checkedOutAt)
    return now
  }

  /** The checkout's finalizer. Idempotent; uninterruptible. */
  release(handle: Handle<C>): Effect.Effect<void> {
    return Effect.uninterruptible(Effect.suspend(() => this.releaseNow(handle) ?? Effect.void))
  }

  /**
   * Release, synchronously when nothing needs an effect (returns `undefined`), else the effect
   * that finishes it. Idempotent. Call uninterruptibly.
   */
  private releaseNow(handle: Handle<C>): Effect.Effect<void> | undefined {
    if (handle.state !== "out") return undefined
    const connection = handle.conn as C
    const now = this.returned(handle)
    if (handle.isDetached) return this.closeDetached(handle.detachedFrom, connection)
    const record = handle.record!
    const core = this.core
    const work = this.resetWork(record, connection)
    const usedUp = core.options.maxUses > 0 && record.uses >= core.options.maxUses
    // The hot path: nothing to reset, nobody to tell, and the strategy takes it back at once.
    if (work === undefined && !usedUp && !core.observed("checkin") && this.strategy.giveNow !== undefined) {
      // `lastUsed` and the hand-off's deadline check reuse this clock reading (when one was taken).
      if (core.tracksIdle) record.lastUsed = now >= 0 ? now : core.now()
      if (this.strategy.giveNow(record, now)) return undefined
    }
    if (usedUp) {
      // Used up: reset as usual, then close instead of pooling it.
      core.instruments?.recycled()
      return Effect.andThen(
        this.reset(record, work),
        Effect.andThen(Record.close(core, record, "maxUses"), this.checkin(record))
      )
    }
    return Effect.andThen(this.reset(record, work), this.checkin(record))
  }

  /** Returning a detached handle: reset it (a failure is only logged), then close it for good. */
  private closeDetached(slot: number, connection: C): Effect.Effect<void> {
    const core = this.core
    const reset = Effect.catchCause(
      this.resetWork(slot, connection) ?? Effect.void,
      (cause) => core.logFailure("reset of a detached connection failed", cause)
    )
    return Effect.andThen(
      reset,
      Effect.andThen(core.emitQuiet("close_detached", slot, connection), Record.closeQuietly(core, connection))
    )
  }

  invalidateHandle(handle: Handle<C>, cause: unknown, soft: boolean, reason: InvalidationReason): Effect.Effect<void> {
    return Effect.uninterruptible(Effect.suspend(() => {
      if (handle.state !== "out") return Effect.void
      if (handle.isDetached) {
        if (soft) return Effect.void
        const connection = handle.conn as C
        this.returned(handle)
        return Record.closeQuietly(this.core, connection)
      }
      const record = handle.record!
      if (soft) return Record.invalidate(this.core, record, cause, reason, true)
      // Hard: close now and check the (now empty) slot in at once, as SQLAlchemy does.
      this.returned(handle)
      return Effect.andThen(Record.invalidate(this.core, record, cause, reason), this.checkin(record))
    }))
  }

  detach(handle: Handle<C>): Effect.Effect<void> {
    return Effect.uninterruptible(Effect.suspend(() => {
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
      return this.core.emitQuiet("detach", record, handle.conn).pipe(
        Effect.andThen(emptySlot),
        Effect.andThen(this.strategy.give(record))
      )
    }))
  }

  // -------------------------------------------------------------- public API

  // Acquisition and the registration of its release happen in one uninterruptible step, so no
  // interruption can fall between them.
  readonly checkout: Effect.Effect<PooledConnection<C>, CheckoutError, Scope.Scope> = Effect.uninterruptibleMask(
    (restore) =>
      Effect.withFiber((fiber) => {
        const scope = Context.get(fiber.context as Context.Context<Scope.Scope>, Scope.Scope)
        const register = (handle: Handle<C>) =>
          Effect.as(Scope.addFinalizerExit(scope, () => this.release(handle)), handle as PooledConnection<C>)
        const acquired = this.acquireNow(restore)
        return acquired instanceof Handle ? register(acquired) : Effect.flatMap(acquired, register)
      })
  )

  use<A, E, R>(f: (connection: PooledConnection<C>) => Effect.Effect<A, E, R>): Effect.Effect<A, E | CheckoutError, R> {
    // `f` is called here, at run time (a throw is a defect, the lease still released): no
    // `suspend` around it, nor around the mask's body (`uninterruptibleMask` runs it at run time).
    const lease = (handle: Handle<C>, restore: Restore) => {
      let body: Effect.Effect<A, E, R>
      try {
        body = f(handle)
      } catch (defect) {
        body = Effect.die(defect)
      }
      return Effect.onExitPrimitive(restore(body), () => this.releaseNow(handle))
    }
    return Effect.uninterruptibleMask((restore) => {
      const acquired = this.acquireNow(restore)
      return acquired instanceof Handle
        ? lease(acquired, restore)
        : Effect.flatMap(acquired, (handle) => lease(handle, restore))
    })
  }

  /** Events dropped because a subscriber's buffer was full. */
  droppedEvents = 0

  // Bounded per subscriber; an event keeps neither the raw connection nor the record.
  readonly events: Stream.Stream<ObservedEvent> = Stream.callback<ObservedEvent>((queue) =>
    Effect.acquireRelease(
      Effect.sync(() => {
        const listener = (event: PoolEvent<C>) => {
          const observed: ObservedEvent = event.cause === undefined
            ? { type: event.type, pool: event.pool, slot: event.slot }
            : { type: event.type, pool: event.pool, slot: event.slot, cause: event.cause }
          if (!Queue.offerUnsafe(queue, observed)) this.droppedEvents++
        }
        this.core.listeners.add(listener)
        return listener
      }),
      (listener) => Effect.sync(() => this.core.listeners.delete(listener))
    ), { bufferSize: eventBufferSize, strategy: "dropping" })
}

/** The service's `settings`: the resolved common options and the strategy's own settings now. */
const settingsOf = <C>(
  core: PoolCore<C>,
  strategy: Strategy<C, CheckoutError>,
  sharing: Sharing | undefined
): PoolSettings => {
  const o = core.options
  const own = strategy.settings()
  return {
    name: o.name,
    strategy: core.strategy,
    poolSize: own.poolSize,
    maxOverflow: own.maxOverflow,
    timeout: own.timeout,
    lifo: own.lifo,
    sharing,
    recycle: o.recycle,
    prePing: o.prePing,
    resetOnReturn: o.resetOnReturn,
    resetTimeout: o.resetTimeout,
    connectTimeout: o.connectTimeout,
    reentrant: o.reentrant,
    leakDetectionThreshold: o.leakDetectionThreshold,
    maxUses: o.maxUses,
    maxLifetime: o.maxLifetime
  }
}

/**
 * Checkouts made with this set arm no leak timer: connections the library holds for many
 * borrowers (pipeline lanes), whose borrowers are watched one by one instead ({@link leakWatchOf}).
 * @internal
 */
export const Unwatched = Context.Reference<boolean>("effect-db-pool/internal/Unwatched", { defaultValue: () => false })

/** Where a pool service with leak detection keeps its per-borrower watch (see {@link leakWatchOf}). */
const leakWatchKey = Symbol.for("effect-db-pool/ConnectionPool/leakWatch")

/** Watch one borrower's use of an {@link Unwatched} checkout of `slot` as a checkout is watched. */
export type LeakWatch = <A, E, R>(effect: Effect.Effect<A, E, R>, slot: number) => Effect.Effect<A, E, R>

/**
 * The pool's leak watch for borrowers of connections checked out {@link Unwatched}; `undefined`
 * when the pool has no `leakDetectionThreshold` (or was not built here).
 * @internal
 */
export const leakWatchOf = (service: Service<unknown>): LeakWatch | undefined =>
  (service as unknown as { readonly [leakWatchKey]?: LeakWatch })[leakWatchKey]

/** Where a pool service keeps the driver it connects with (see {@link driverOf}). */
const driverKey = Symbol.for("effect-db-pool/ConnectionPool/driver")

/**
 * The driver a pool built here connects with; `undefined` for a service made some other way.
 * Layers above a pool read the driver's settings from the pool itself, not from context: a pool
 * provided on its own (`PoolManager.provide`) keeps its own settings.
 * @internal
 */
export const driverOf = (service: Service<unknown>): DriverShape<unknown> | undefined =>
  (service as unknown as { readonly [driverKey]?: DriverShape<unknown> })[driverKey]

/**
 * Assemble the `ConnectionPool` service from a core and a strategy. The pool shuts down when
 * the surrounding scope closes.
 * @internal
 */
export const makeService = <C>(
  core: PoolCore<C>,
  strategy: Strategy<C, CheckoutError>,
  recreate: Effect.Effect<Service<C>, never, Scope.Scope>
): Effect.Effect<Service<C>, never, Scope.Scope> =>
  Effect.contextWith((context: Context.Context<never>) => {
    core.attach(context)
    const pipeline = new Pipeline(core, strategy)
    const direct = {
      checkout: pipeline.checkout,
      use: <A, E, R>(f: (c: PooledConnection<C>) => Effect.Effect<A, E, R>) => pipeline.use(f)
    }
    const shareBy = strategy.share ?? (core.options.reentrant ? "fiber" : undefined)
    const isDead = core.driver.isDead
    const shared = shareBy === undefined
      ? direct
      : share(direct, shareBy, isDead === undefined ? undefined : (connection: C) => isDead(connection) === true)
    // Where a site will be reported (AssertionPool, leak detection), take the caller's stack
    // when `checkout` is read or `use` called: in the user's frame, the only moment it is there.
    const wantsSite = strategy.wantsSite === true || Duration.isFinite(core.options.leakDetectionThreshold)
    const use = wantsSite
      ? <A, E, R>(f: (c: PooledConnection<C>) => Effect.Effect<A, E, R>) => withCallSite(shared.use(f))
      : shared.use
    // Checkouts waiting at the gate of a suspended pool count as waiting.
    const status = () => {
      const s = strategy.status()
      return pipeline.gate.waiting === 0 ? s : { ...s, waiting: s.waiting + pipeline.gate.waiting }
    }
    const service: Service<C> = {
      name: core.name,
      strategy: core.strategy,
      get checkout() {
        return wantsSite ? withCallSite(shared.checkout) : shared.checkout
      },
      use,
      status: Effect.sync(status),
      stats: Effect.sync(() => {
        const { checkedIn, checkedOut, waiting } = status()
        const { min, max } = strategy.limits()
        return { idle: checkedIn, used: checkedOut, pending: waiting, min, max }
      }),
      dispose: strategy.dispose,
      recreate,
      invalidateAll: core.invalidateAll,
      invalidationTime: Effect.sync(() => Option.fromUndefinedOr(core.invalidationTime)),
      get settings() {
        return settingsOf(core, strategy, shareBy)
      },
      resize: (change) => Control.resize(core, strategy, change),
      suspend: pipeline.gate.suspend,
      resume: pipeline.gate.resume,
      isSuspended: Effect.sync(() => pipeline.gate.suspended),
      events: pipeline.events,
      droppedEvents: Effect.sync(() => pipeline.droppedEvents)
    }
    Object.defineProperty(service, driverKey, { value: core.driver })
    if (Duration.isFinite(core.options.leakDetectionThreshold)) {
      const watch: LeakWatch = (effect, slot) => pipeline.watch(effect, slot)
      Object.defineProperty(service, leakWatchKey, { value: watch })
    }
    const unregister = core.instruments?.register(status, () => pipeline.gate.suspended, () => limitOf(strategy))
    const upkeep = strategy.upkeep
    core.tracksIdle = upkeep !== undefined && Housekeeper.isNeeded(core, upkeep.options)
    const housekeeping = core.tracksIdle
      ? Effect.forkScoped(Housekeeper.run(core, upkeep!.slots, upkeep!.options))
      : Effect.void
    return Effect.as(
      Effect.andThen(
        // Shut the strategy down first: checkouts held at a suspended pool's gate then fail closed.
        Effect.addFinalizer(() =>
          Effect.andThen(Effect.sync(() => unregister?.()), Effect.andThen(strategy.shutdown, pipeline.gate.close))
        ),
        housekeeping
      ),
      service
    )
  })
