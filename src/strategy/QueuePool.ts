/**
 * QueuePool: a bounded pool of `poolSize` connections that may grow by `maxOverflow` under load.
 * The default strategy, as in SQLAlchemy.
 *
 * Waiters are served strictly first come, first served: a returned slot is handed directly to
 * the longest waiter, and a newcomer never takes an idle slot or grows the pool while anyone
 * waits. Overflow connections are closed when they come back to a full idle queue.
 *
 * @since 0.1.0
 */
import { Duration, Effect } from "effect"
import type { Fiber } from "effect"
import type { Restore, Strategy } from "../internal/checkout.ts"
import { constructors } from "../internal/constructors.ts"
import type { PoolCore } from "../internal/core.ts"
import * as Record from "../internal/record.ts"
import { ConnectionRecord } from "../internal/record.ts"
import { PoolClosedError, PoolTimeoutError } from "../PoolError.ts"
import type { PoolConfigError } from "../PoolError.ts"
import type * as PoolOptions from "../PoolOptions.ts"
import { resolveCommon, resolveIdle, resolveOwn } from "../internal/options.ts"
import type { ResolvedCommon, ResolvedIdle } from "../internal/options.ts"

/**
 * Every QueuePool option: the common ones (typed by the raw connection `C`) and its own.
 *
 * @category models
 * @since 0.1.0
 */
export interface Options<C = unknown> extends PoolOptions.CommonOptions<C>, OwnOptions {}

/**
 * QueuePool's own options, beside the common ones.
 *
 * @category models
 * @since 0.1.0
 */
export interface OwnOptions extends PoolOptions.IdleOptions {
  /** Connections kept open. 0 = no limit (then `maxOverflow` is ignored). Default 5. */
  readonly poolSize?: number | undefined
  /** Extra connections allowed under load; -1 = unlimited. Default 10. */
  readonly maxOverflow?: number | undefined
  /** How long a checkout waits for a slot; `"Infinity"` waits forever. Default 30 s. */
  readonly timeout?: Duration.Input | undefined
  /** Hand out the most recently returned connection first. Default false (FIFO). */
  readonly lifo?: boolean | undefined
}

/** Options after validation and defaults. */
interface Resolved<C = unknown> extends ResolvedCommon<C> {
  readonly idle: ResolvedIdle
  readonly poolSize: number
  readonly maxOverflow: number
  readonly timeout: Duration.Duration
  readonly lifo: boolean
}

/** Validate options and apply defaults. */
const resolve = <C>(options: Options<C>): Effect.Effect<Resolved<C>, PoolConfigError> =>
  Effect.gen(function*() {
    const common = yield* resolveCommon(options, "QueuePool")
    const { lifo, maxOverflow, poolSize, timeout, ...idle } = yield* resolveOwn("QueuePool", options)
    return { ...common, poolSize, maxOverflow, timeout, lifo, idle: yield* resolveIdle(idle, poolSize) }
  })

interface Waiter<C> {
  resume: (effect: Effect.Effect<ConnectionRecord<C>, PoolTimeoutError | PoolClosedError>) => void
  /** Set when a slot was handed to this waiter. */
  record: ConnectionRecord<C> | undefined
  /** Clock time (ms) past which the wait fails with `PoolTimeoutError`. */
  deadline: number
}

const strategy = <C>(core: PoolCore<C>, options: Resolved<C>): Strategy<C, PoolTimeoutError | PoolClosedError> => {
  const { lifo, maxOverflow, poolSize } = options
  const unlimited = maxOverflow === -1 || poolSize === 0
  const idle: Array<ConnectionRecord<C>> = []
  const waiters = new Set<Waiter<C>>()
  let overflow = poolSize === 0 ? 0 : -poolSize
  let closed = false

  const timeoutError = new PoolTimeoutError({
    strategy: "QueuePool",
    poolSize,
    maxOverflow,
    timeout: options.timeout
  })

  /**
   * Wake a sleeping waiter. At once, as `Deferred` does, so a returned connection is back at work
   * without a trip through the scheduler; but a chain of hand-offs made inside woken waiters
   * (their work finished synchronously) continues in a microtask past a small depth, so the
   * stack stays flat.
   */
  let wakeDepth = 0
  const wake = (waiter: Waiter<C>, result: Effect.Effect<ConnectionRecord<C>, PoolTimeoutError | PoolClosedError>) => {
    waiters.delete(waiter)
    if (wakeDepth >= 8) {
      queueMicrotask(() => waiter.resume(result))
      return
    }
    wakeDepth++
    try {
      waiter.resume(result)
    } finally {
      wakeDepth--
    }
  }

  const handOff = (waiter: Waiter<C>, record: ConnectionRecord<C>) => {
    waiter.record = record
    wake(waiter, Effect.succeed(record))
  }

  // Every wait has the same timeout and waiters are FIFO, so their deadlines are in queue order:
  // one sweeper fiber sleeping until the oldest deadline replaces a timer (a race of two fibers)
  // per wait. It runs only while someone waits, and on the pool's clock (TestClock in tests).
  const timeoutMs = Duration.isFinite(options.timeout) ? Duration.toMillis(options.timeout) : -1
  let sweeper: Fiber.Fiber<void> | undefined = undefined
  const sweep: Effect.Effect<void> = Effect.suspend(() => {
    const now = core.now()
    for (const waiter of waiters) {
      if (waiter.deadline > now) return Effect.andThen(Effect.sleep(waiter.deadline - now), sweep)
      core.instruments?.timedOut()
      wake(waiter, Effect.fail(timeoutError))
    }
    sweeper = undefined
    return Effect.void
  })
  const startSweeper = Effect.map(Effect.forkDetach(sweep), (fiber) => {
    sweeper = fiber
  })

  /**
   * Give a slot back without effects when possible: to the longest waiter, else into a non-full
   * idle list. `false` when it must be given up instead (pool closed, idle list full, or a slot
   * that never connected): then `give` lowers overflow and closes what it holds.
   */
  const giveNow = (record: ConnectionRecord<C>): boolean => {
    if (closed) return false
    const first = waiters.values().next()
    if (!first.done) {
      handOff(first.value, record)
      return true
    }
    if (record.generation === 0 && record.connection === undefined) return false
    if (poolSize > 0 && idle.length >= poolSize) return false
    idle.push(record)
    return true
  }

  const give = (record: ConnectionRecord<C>): Effect.Effect<void> =>
    Effect.suspend(() => {
      if (giveNow(record)) return Effect.void
      overflow--
      return Record.close(core, record)
    })

  const takeNow = (): ConnectionRecord<C> | undefined =>
    waiters.size === 0 && idle.length > 0 ? (lifo ? idle.pop() : idle.shift()) : undefined

  /** Close every idle connection and give up its slot (dispose, shutdown). */
  const closeIdle = Effect.suspend(() => {
    const records = idle.splice(0)
    overflow -= records.length
    return Effect.forEach(records, (record) => Record.close(core, record), { discard: true })
  })

  const wait = (restore: Restore): Effect.Effect<ConnectionRecord<C>, PoolTimeoutError | PoolClosedError> => {
    const waiter: Waiter<C> = { resume: undefined!, record: undefined, deadline: Infinity }
    const sleep = Effect.callback<ConnectionRecord<C>, PoolTimeoutError | PoolClosedError>((resume) => {
      waiter.resume = resume
      if (timeoutMs >= 0) waiter.deadline = core.now() + timeoutMs
      waiters.add(waiter)
      return Effect.sync(() => {
        waiters.delete(waiter)
      })
    })
    const timed = timeoutMs >= 0 && sweeper === undefined ? Effect.andThen(startSweeper, restore(sleep)) : restore(sleep)
    // Interrupted (or timed out) after a slot was handed over: pass the slot on.
    return Effect.onExitPrimitive(timed, (exit) => {
      if (exit._tag === "Success" || waiter.record === undefined) return undefined
      const record = waiter.record
      waiter.record = undefined
      return give(record)
    })
  }

  const retireIdle = (record: ConnectionRecord<C>) => {
    const i = idle.indexOf(record)
    if (i < 0) return false
    idle.splice(i, 1)
    return true
  }

  return {
    upkeep: {
      options: options.idle,
      slots: {
        idle: () => idle.slice(),
        borrow: retireIdle,
        grow: () => {
          if (closed || waiters.size > 0 || (poolSize > 0 && overflow >= 0)) return undefined
          overflow++
          return new ConnectionRecord<C>(core.newSlotId())
        },
        drop: () => {
          overflow--
        },
        give
      }
    },
    takeNow,
    giveNow,
    take: (restore) =>
      Effect.suspend(() => {
        if (closed) return Effect.fail(new PoolClosedError({ strategy: "QueuePool" }))
        const idleRecord = takeNow()
        if (idleRecord !== undefined) return Effect.succeed(idleRecord)
        if (waiters.size === 0) {
          if (unlimited || overflow < maxOverflow) {
            overflow++
            return Effect.succeed(new ConnectionRecord<C>(core.newSlotId()))
          }
        }
        return wait(restore)
      }),
    give,
    // An unlimited pool (poolSize 0) has no "beyond the size": its overflow reads 0, as
    // SQLAlchemy 2.0's, while `checkedOut` still counts the connections out.
    status: () => ({
      size: poolSize,
      checkedIn: idle.length,
      checkedOut: poolSize - idle.length + overflow,
      overflow: poolSize === 0 ? 0 : overflow,
      waiting: waiters.size
    }),
    dispose: closeIdle,
    shutdown: Effect.suspend(() => {
      closed = true
      sweeper?.interruptUnsafe()
      sweeper = undefined
      const error = Effect.fail(new PoolClosedError({ strategy: "QueuePool" }))
      for (const waiter of waiters) wake(waiter, error)
      return closeIdle
    })
  }
}

const built = constructors<OwnOptions, Resolved<unknown>>("QueuePool", resolve, strategy)

/**
 * A QueuePool as a layer providing the `ConnectionPool` service over the `Driver` in context;
 * options are validated when the layer builds (a bad one fails it with `PoolConfigError`).
 *
 * @example
 * ```ts
 * import { QueuePool } from "effect-db-pool"
 *
 * const Pool = QueuePool.layer({ poolSize: 5, maxOverflow: 10, timeout: "30 seconds", prePing: true })
 * ```
 *
 * @example
 * ```ts
 * import { Config, Duration } from "effect"
 * import { QueuePool } from "effect-db-pool"
 *
 * const Pool = QueuePool.layerConfig({
 *   poolSize: Config.Int("POOL_SIZE").pipe(Config.withDefault(5)),
 *   timeout: Config.Duration("POOL_TIMEOUT").pipe(Config.withDefault(Duration.seconds(30)))
 * })
 * ```
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = built.layer

/**
 * Build a QueuePool in the current scope (closed with it) and return the service itself, for code
 * that wants the value rather than a layer. Options are validated first.
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = built.make

/**
 * As {@link layer}, with the options read from `Config` (environment variables, ...).
 *
 * @category layers
 * @since 0.1.0
 */
export const layerConfig = built.layerConfig
