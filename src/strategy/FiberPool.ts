/**
 * FiberPool: one connection per fiber, SQLAlchemy's SingletonThreadPool for fibers. A fiber
 * gets back the connection it used last time, and never one another fiber holds or held. Use it
 * when a connection carries per-worker session state (temp tables, `SET` variables, advisory
 * locks) that a long-lived fiber relies on across checkouts.
 *
 * - **"The same fiber"** is the same fiber id. A child fiber (`Effect.forkChild`, the fibers of
 *   `Effect.all({ concurrency })`) is another fiber: it gets its own connection, since it may run
 *   concurrently with its parent. The connection is never moved to another fiber.
 * - **Always reentrant**: a checkout nested inside an open checkout of the same fiber returns the
 *   same connection; only the outermost release resets and checks it in.
 * - **`poolSize`** (default 5) bounds how many fibers keep a connection between checkouts.
 *   Beyond it the least recently used *idle* connections are closed; a connection in use is never
 *   closed, so while more than `poolSize` fibers hold one, more are open (they are closed as
 *   they come back). A fiber that ended leaves its connection idle until it is evicted that way
 *   or disposed; fiber ids are never reused, so it is never handed out again.
 *
 * Status, as QueuePool's (`checkedOut = size - checkedIn + overflow`): `size` = poolSize,
 * `checkedIn` = connections kept idle for their fibers, `checkedOut` = connections in use,
 * `overflow` = kept + in use - poolSize (negative until poolSize fibers have one), `waiting` 0
 * (a checkout never waits for another fiber).
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import type { Config, Layer } from "effect"
import type { ConnectionPool, PoolStatus } from "../ConnectionPool.ts"
import type { Driver } from "../Driver.ts"
import { constructors } from "../internal/constructors.ts"
import type { PoolCore } from "../internal/core.ts"
import { resolveCommon, resolveOwn } from "../internal/options.ts"
import type { ResolvedCommon } from "../internal/options.ts"
import { closeRecord, ConnectionRecord } from "../internal/record.ts"
import { noOwnSettings, unbounded } from "../internal/strategy.ts"
import type { Strategy } from "../internal/strategy.ts"
import * as V from "../internal/validate.ts"
import { PoolClosedError } from "../PoolError.ts"
import type { PoolConfigError } from "../PoolError.ts"
import type * as PoolOptions from "../PoolOptions.ts"

/**
 * Every FiberPool option: the common ones (typed by the raw connection `C`) and its own.
 *
 * @category models
 * @since 0.1.0
 */
export interface Options<C = unknown> extends PoolOptions.CommonOptions<C>, OwnOptions {}

/**
 * FiberPool's own options, beside the common ones.
 *
 * @category models
 * @since 0.1.0
 */
export interface OwnOptions {
  /** How many fibers keep a connection between checkouts (0: none, every return closes). Default 5. */
  readonly poolSize?: number | undefined
}

/** Options after validation and defaults. */
interface Resolved<C = unknown> extends ResolvedCommon<C> {
  readonly poolSize: number
}

/** The rules of FiberPool's own options. */
const ownRules = V.rulesFor<OwnOptions>()({
  poolSize: V.integer({ min: 0, fallback: 5 })
})

/**
 * Validate options and apply defaults. `reentrant` is always true.
 *
 * @category validation
 * @since 0.1.0
 */
const resolve = <C>(options: Options<C>): Effect.Effect<Resolved<C>, PoolConfigError> =>
  Effect.gen(function*() {
    const common = yield* resolveCommon(options, "FiberPool")
    const { poolSize } = yield* resolveOwn("FiberPool", ownRules, options)
    return { ...common, reentrant: true, poolSize }
  })

/** A FiberPool's state. */
interface State<C> {
  readonly core: PoolCore<C>
  readonly poolSize: number
  /** Fiber id → its connection record, least recently used first. */
  readonly kept: Map<number, ConnectionRecord<C>>
  /** The fiber each kept record belongs to. */
  readonly owner: Map<ConnectionRecord<C>, number>
  /** Records checked out now (kept ones and throwaway ones). */
  readonly out: Set<ConnectionRecord<C>>
  closed: boolean
}

/** Stop keeping the record for its fiber. */
const forget = <C>(state: State<C>, record: ConnectionRecord<C>): void => {
  const fiber = state.owner.get(record)
  state.owner.delete(record)
  if (fiber !== undefined && state.kept.get(fiber) === record) state.kept.delete(fiber)
}

/** Close least recently used idle connections while more than poolSize fibers keep one. */
const trim = <C>(state: State<C>): Effect.Effect<void> => {
  const surplus: Array<ConnectionRecord<C>> = []
  let excess = state.kept.size - state.poolSize
  for (const record of state.kept.values()) {
    if (excess <= 0) break
    if (state.out.has(record)) continue
    surplus.push(record)
    excess--
  }
  for (const record of surplus) forget(state, record)
  return Effect.forEach(surplus, (record) => closeRecord(state.core, record), { discard: true })
}

const closeIdle = <C>(state: State<C>): Effect.Effect<void> =>
  Effect.suspend(() => {
    const idle = Array.from(state.kept.values()).filter((record) => !state.out.has(record))
    for (const record of idle) forget(state, record)
    return Effect.forEach(idle, (record) => closeRecord(state.core, record), { discard: true })
  })

/** The fiber's own record when it is idle, else a new slot (kept for the fiber if it has none). */
const take = <C>(state: State<C>): Effect.Effect<ConnectionRecord<C>, PoolClosedError> =>
  Effect.withFiber((fiber) => {
    if (state.closed) return Effect.fail(new PoolClosedError({ strategy: "FiberPool" }))
    const mine = state.kept.get(fiber.id)
    if (mine !== undefined && !state.out.has(mine)) {
      state.kept.delete(fiber.id) // most recently used goes last
      state.kept.set(fiber.id, mine)
      state.out.add(mine)
      return Effect.succeed(mine)
    }
    const record = new ConnectionRecord<C>(state.core.newSlotId())
    state.out.add(record)
    // A fiber whose own record is still out (a second, unshared lease) gets a throwaway one.
    if (mine === undefined) {
      state.kept.set(fiber.id, record)
      state.owner.set(record, fiber.id)
    }
    return Effect.as(trim(state), record)
  })

const give = <C>(state: State<C>, record: ConnectionRecord<C>): Effect.Effect<void> =>
  Effect.suspend(() => {
    state.out.delete(record)
    const fiber = state.owner.get(record)
    if (state.closed || fiber === undefined || state.kept.get(fiber) !== record) {
      forget(state, record)
      return closeRecord(state.core, record)
    }
    // A slot that never connected is not kept.
    if (record.generation === 0 && record.connection === undefined) {
      forget(state, record)
      return Effect.void
    }
    return trim(state)
  })

const status = <C>(state: State<C>): PoolStatus => {
  const checkedIn = state.kept.size - Array.from(state.kept.values()).filter((record) => state.out.has(record)).length
  return {
    size: state.poolSize,
    checkedIn,
    checkedOut: state.out.size,
    overflow: state.out.size + checkedIn - state.poolSize,
    waiting: 0
  }
}

const strategy = <C>(core: PoolCore<C>, options: Resolved<C>): Strategy<C, PoolClosedError> => {
  const state: State<C> = {
    core,
    poolSize: options.poolSize,
    kept: new Map(),
    owner: new Map(),
    out: new Set(),
    closed: false
  }
  return {
    take: () => take(state),
    give: (record) => give(state, record),
    status: () => status(state),
    // `poolSize` bounds the connections kept idle, not the ones open: every fiber may hold one.
    limits: () => unbounded,
    settings: () => ({ ...noOwnSettings, poolSize: options.poolSize }),
    dispose: closeIdle(state),
    shutdown: Effect.suspend(() => {
      state.closed = true
      return closeIdle(state)
    })
  }
}

const built = constructors<OwnOptions, Resolved<unknown>>("FiberPool", resolve, strategy)

/**
 * A FiberPool as a layer providing the `ConnectionPool` service over the `Driver` in context;
 * options are validated when the layer builds (a bad one fails it with `PoolConfigError`).
 *
 * @example
 * ```ts
 * import { FiberPool } from "effect-db-pool"
 *
 * const Pool = FiberPool.layer({ poolSize: 8 })
 * ```
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = built.layer

/**
 * Build a FiberPool in the current scope (closed with it) and return the service itself, for code
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
