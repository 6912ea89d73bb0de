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
import type { ConnectionPool, PoolStatus } from "../ConnectionPool.ts"
import type { Driver } from "../Driver.ts"
import { constructors } from "../internal/constructors.ts"
import type { PoolCore } from "../internal/core.ts"
import type { IdleSlots } from "../internal/housekeeper.ts"
import { idleRules, resolveCommon, resolveIdle, resolveOwn, sizeRules } from "../internal/options.ts"
import type { ResolvedCommon, ResolvedIdle } from "../internal/options.ts"
import { closeRecord, ConnectionRecord } from "../internal/record.ts"
import type { Restore, Sizes, Strategy } from "../internal/strategy.ts"
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

/**
 * A QueuePool's state. Sizes change at run time (`resize`); `overflow` is always (connections
 * open) - `poolSize`, so it is negative while the pool is below its size.
 */
interface State<C> {
  readonly core: PoolCore<C>
  readonly options: Resolved<C>
  poolSize: number
  maxOverflow: number
  overflow: number
  closed: boolean
  /** Idle records, oldest return first. */
  readonly idle: Array<ConnectionRecord<C>>
  readonly waiters: WaiterQueue<C, PoolTimeoutError | PoolClosedError>
}

const makeState = <C>(core: PoolCore<C>, options: Resolved<C>): State<C> => {
  const timeoutMs = Duration.isFinite(options.timeout) ? Duration.toMillis(options.timeout) : -1
  const state: State<C> = {
    core,
    options,
    poolSize: options.poolSize,
    maxOverflow: options.maxOverflow,
    overflow: options.poolSize === 0 ? 0 : -options.poolSize,
    closed: false,
    idle: [],
    // Its callbacks run only once a checkout waits, after `state` is made.
    waiters: new WaiterQueue<C, PoolTimeoutError | PoolClosedError>(
      core,
      timeoutMs,
      () => timedOut(state, false),
      (record) => give(state, record)
    )
  }
  return state
}

/** No limit on the connections open: `maxOverflow` -1, or `poolSize` 0. */
const unlimited = <C>(state: State<C>): boolean => state.maxOverflow === -1 || state.poolSize === 0

/** More connections open than the size allows (after a shrink): returns close, not pool. */
const overCapacity = <C>(state: State<C>): boolean => !unlimited(state) && state.overflow > state.maxOverflow

/** The failure of a wait past `timeout`; `suspended`: at the gate of a suspended pool. */
const timedOut = <C>(state: State<C>, suspended: boolean): PoolTimeoutError =>
  new PoolTimeoutError({
    strategy: "QueuePool",
    poolSize: state.poolSize,
    maxOverflow: state.maxOverflow,
    timeout: state.options.timeout,
    ...(suspended ? { suspended } : {})
  })

/** An idle record, when one can be had without waiting (nobody queued before this checkout). */
const takeNow = <C>(state: State<C>): ConnectionRecord<C> | undefined =>
  state.waiters.size === 0 && state.idle.length > 0
    ? (state.options.lifo ? state.idle.pop() : state.idle.shift())
    : undefined

const take = <C>(
  state: State<C>,
  restore: Restore,
  now: number
): Effect.Effect<ConnectionRecord<C>, PoolTimeoutError | PoolClosedError> => {
  if (state.closed) return Effect.fail(new PoolClosedError({ strategy: "QueuePool" }))
  const idleRecord = takeNow(state)
  if (idleRecord !== undefined) return Effect.succeed(idleRecord)
  if (state.waiters.size === 0 && (unlimited(state) || state.overflow < state.maxOverflow)) {
    state.overflow++
    return Effect.succeed(new ConnectionRecord<C>(state.core.newSlotId()))
  }
  return state.waiters.wait(restore, now)
}

/**
 * Give a slot back without effects when possible: to the longest waiter, else into a non-full
 * idle list. `false` when it must be given up instead (pool closed, idle list full, or a slot
 * that never connected): then `give` lowers overflow and closes what it holds.
 */
const giveNow = <C>(state: State<C>, record: ConnectionRecord<C>, now = -1): boolean => {
  if (state.closed || overCapacity(state)) return false
  if (state.waiters.handOff(record, now)) return true
  if (record.generation === 0 && record.connection === undefined) return false
  if (state.poolSize > 0 && state.idle.length >= state.poolSize) return false
  state.idle.push(record)
  return true
}

const give = <C>(state: State<C>, record: ConnectionRecord<C>): Effect.Effect<void> =>
  Effect.suspend(() => {
    if (giveNow(state, record)) return Effect.void
    state.overflow--
    return closeRecord(state.core, record)
  })

/** Close every idle connection and give up its slot (dispose, shutdown). */
const closeIdle = <C>(state: State<C>): Effect.Effect<void> =>
  Effect.suspend(() => {
    const records = state.idle.splice(0)
    state.overflow -= records.length
    return Effect.forEach(records, (record) => closeRecord(state.core, record), { discard: true })
  })

/** Serve waiters with new slots while the size allows (after a resize grew the pool). */
const serveWaiters = <C>(state: State<C>): void => {
  while (!state.closed && state.waiters.size > 0 && (unlimited(state) || state.overflow < state.maxOverflow)) {
    state.overflow++
    // Every waiter left was past its deadline (timed out instead): the slot was not taken.
    if (!state.waiters.handOff(new ConnectionRecord<C>(state.core.newSlotId()))) state.overflow--
  }
}

/**
 * New sizes: growing serves waiters at once; shrinking closes idle connections beyond the new
 * size now and busy ones as they come back (nobody is interrupted).
 */
const resize = <C>(state: State<C>, size: Sizes): Effect.Effect<void> =>
  Effect.suspend(() => {
    state.overflow += state.poolSize - size.poolSize
    state.poolSize = size.poolSize
    state.maxOverflow = size.maxOverflow
    const excess: Array<ConnectionRecord<C>> = []
    while (
      state.idle.length > 0 && (overCapacity(state) || (state.poolSize > 0 && state.idle.length > state.poolSize))
    ) {
      excess.push(state.idle.shift()!)
      state.overflow--
    }
    serveWaiters(state)
    return Effect.forEach(excess, (record) => closeRecord(state.core, record, "resize"), { discard: true })
  })

/** What the housekeeper may do with the idle list. */
const idleSlots = <C>(state: State<C>): IdleSlots<C> => ({
  idle: () => state.idle.slice(),
  borrow: (record) => {
    const i = state.idle.indexOf(record)
    if (i < 0) return false
    state.idle.splice(i, 1)
    return true
  },
  grow: () => {
    if (state.closed || state.waiters.size > 0 || (state.poolSize > 0 && state.overflow >= 0)) return undefined
    state.overflow++
    return new ConnectionRecord<C>(state.core.newSlotId())
  },
  // A fill that could not connect gives its slot up: a checkout queued meanwhile gets it.
  drop: () => {
    state.overflow--
    serveWaiters(state)
  },
  give: (record) => give(state, record)
})

// An unlimited pool (poolSize 0) has no "beyond the size": its overflow reads 0, as
// SQLAlchemy 2.0's, while `checkedOut` still counts the connections out.
const status = <C>(state: State<C>): PoolStatus => ({
  size: state.poolSize,
  checkedIn: state.idle.length,
  checkedOut: state.poolSize - state.idle.length + state.overflow,
  overflow: state.poolSize === 0 ? 0 : state.overflow,
  waiting: state.waiters.size
})

const shutdown = <C>(state: State<C>): Effect.Effect<void> =>
  Effect.suspend(() => {
    state.closed = true
    state.waiters.failAll(Effect.fail(new PoolClosedError({ strategy: "QueuePool" })))
    return closeIdle(state)
  })

const strategy = <C>(core: PoolCore<C>, options: Resolved<C>): Strategy<C, PoolTimeoutError | PoolClosedError> => {
  const state = makeState(core, options)
  return {
    upkeep: { options: options.idle, slots: idleSlots(state) },
    takeNow: () => takeNow(state),
    giveNow: (record, now) => giveNow(state, record, now),
    take: (restore, now) => take(state, restore, now),
    give: (record) => give(state, record),
    resize: (size) => resize(state, size),
    sizes: () => ({ poolSize: state.poolSize, maxOverflow: state.maxOverflow }),
    settings: () => ({
      poolSize: state.poolSize,
      maxOverflow: state.maxOverflow,
      timeout: options.timeout,
      lifo: options.lifo
    }),
    waitBound: { timeout: options.timeout, timedOut: (suspended) => timedOut(state, suspended) },
    status: () => status(state),
    // `minIdle` is what the upkeep keeps open without demand; a shrink may leave more open than
    // `max` until the busy connections beyond it come back.
    limits: () => ({
      min: options.idle.minIdle,
      max: unlimited(state) ? Infinity : state.poolSize + state.maxOverflow
    }),
    dispose: closeIdle(state),
    shutdown: shutdown(state)
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
