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
import type { Config, Layer } from "effect"
import type { ConnectionPool } from "../ConnectionPool.ts"
import type { Driver } from "../Driver.ts"
import { constructors } from "../internal/constructors.ts"
import type { PoolCore } from "../internal/core.ts"
import { idleRules, resolveCommon, resolveIdle, resolveOwn, sizeRules } from "../internal/options.ts"
import type { ResolvedCommon, ResolvedIdle } from "../internal/options.ts"
import * as Record from "../internal/record.ts"
import { ConnectionRecord } from "../internal/record.ts"
import type { Strategy } from "../internal/strategy.ts"
import * as V from "../internal/validate.ts"
import { WaiterQueue } from "../internal/waiters.ts"
import { PoolClosedError, PoolTimeoutError } from "../PoolError.ts"
import type { PoolConfigError } from "../PoolError.ts"
import type * as PoolOptions from "../PoolOptions.ts"

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

/** The rules of QueuePool's own options. */
const ownRules = V.rulesFor<OwnOptions>()({
  ...idleRules,
  ...sizeRules,
  timeout: V.duration(Duration.seconds(30)),
  lifo: V.boolean(false)
})

/** Validate options and apply defaults. */
const resolve = <C>(options: Options<C>): Effect.Effect<Resolved<C>, PoolConfigError> =>
  Effect.gen(function*() {
    const common = yield* resolveCommon(options, "QueuePool")
    const { lifo, maxOverflow, poolSize, timeout, ...idle } = yield* resolveOwn("QueuePool", ownRules, options)
    return { ...common, poolSize, maxOverflow, timeout, lifo, idle: yield* resolveIdle(idle, poolSize) }
  })

const strategy = <C>(core: PoolCore<C>, options: Resolved<C>): Strategy<C, PoolTimeoutError | PoolClosedError> => {
  const { lifo } = options
  // Sizes change at run time (`resize`); `overflow` is always (connections open) - poolSize.
  let { maxOverflow, poolSize } = options
  const unlimited = () => maxOverflow === -1 || poolSize === 0
  /** More connections open than the size allows (after a shrink): returns close, not pool. */
  const overCapacity = () => !unlimited() && overflow > maxOverflow
  const idle: Array<ConnectionRecord<C>> = []
  let overflow = poolSize === 0 ? 0 : -poolSize
  let closed = false

  const timedOut = (suspended: boolean) =>
    new PoolTimeoutError({ strategy: "QueuePool", poolSize, maxOverflow, timeout: options.timeout, suspended })
  const timeoutMs = Duration.isFinite(options.timeout) ? Duration.toMillis(options.timeout) : -1
  const waiters = new WaiterQueue<C, PoolTimeoutError | PoolClosedError>(
    core,
    timeoutMs,
    () => timedOut(false),
    (record) => give(record)
  )

  /**
   * Give a slot back without effects when possible: to the longest waiter, else into a non-full
   * idle list. `false` when it must be given up instead (pool closed, idle list full, or a slot
   * that never connected): then `give` lowers overflow and closes what it holds.
   */
  const giveNow = (record: ConnectionRecord<C>, now = -1): boolean => {
    if (closed || overCapacity()) return false
    if (waiters.handOff(record, now)) return true
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

  /** Serve waiters with new slots while the size allows (after a resize grew the pool). */
  const serveWaiters = () => {
    while (!closed && waiters.size > 0 && (unlimited() || overflow < maxOverflow)) {
      overflow++
      // Every waiter left was past its deadline (timed out instead): the slot was not taken.
      if (!waiters.handOff(new ConnectionRecord<C>(core.newSlotId()))) overflow--
    }
  }

  /**
   * New sizes: growing serves waiters at once; shrinking closes idle connections beyond the new
   * size now and busy ones as they come back (nobody is interrupted).
   */
  const resize = (size: { readonly poolSize: number; readonly maxOverflow: number }) =>
    Effect.suspend(() => {
      overflow += poolSize - size.poolSize
      poolSize = size.poolSize
      maxOverflow = size.maxOverflow
      const excess: Array<ConnectionRecord<C>> = []
      while (idle.length > 0 && (overCapacity() || (poolSize > 0 && idle.length > poolSize))) {
        excess.push(idle.shift()!)
        overflow--
      }
      serveWaiters()
      return Effect.forEach(excess, (record) => Record.close(core, record, "resize"), { discard: true })
    })

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
        // A fill that could not connect gives its slot up: a checkout queued meanwhile gets it.
        drop: () => {
          overflow--
          serveWaiters()
        },
        give
      }
    },
    takeNow,
    giveNow,
    resize,
    sizes: () => ({ poolSize, maxOverflow }),
    settings: () => ({ poolSize, maxOverflow, timeout: options.timeout, lifo }),
    waitBound: { timeout: options.timeout, timedOut },
    take: (restore, now) => {
      if (closed) return Effect.fail(new PoolClosedError({ strategy: "QueuePool" }))
      const idleRecord = takeNow()
      if (idleRecord !== undefined) return Effect.succeed(idleRecord)
      if (waiters.size === 0 && (unlimited() || overflow < maxOverflow)) {
        overflow++
        return Effect.succeed(new ConnectionRecord<C>(core.newSlotId()))
      }
      return waiters.wait(restore, now)
    },
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
    // `minIdle` is what the upkeep keeps open without demand; a shrink may leave more open than
    // `max` until the busy connections beyond it come back.
    limits: () => ({ min: options.idle.minIdle, max: unlimited() ? Infinity : poolSize + maxOverflow }),
    dispose: closeIdle,
    shutdown: Effect.suspend(() => {
      closed = true
      waiters.failAll(Effect.fail(new PoolClosedError({ strategy: "QueuePool" })))
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
export const layerConfig: <C = unknown>(
  config: Config.Wrap<Options<C>>
) => Layer.Layer<ConnectionPool, PoolConfigError | Config.ConfigError, Driver> = built.layerConfig
