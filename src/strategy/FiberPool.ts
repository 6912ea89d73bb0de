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
import type { ConnectionPool } from "../ConnectionPool.ts"
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

const strategy = <C>(core: PoolCore<C>, options: Resolved<C>): Strategy<C, PoolClosedError> => {
  /** Fiber id → its connection record, least recently used first. */
  const kept = new Map<number, ConnectionRecord<C>>()
  const owner = new Map<ConnectionRecord<C>, number>()
  const out = new Set<ConnectionRecord<C>>()
  let closed = false

  const forget = (record: ConnectionRecord<C>) => {
    const fiber = owner.get(record)
    owner.delete(record)
    if (fiber !== undefined && kept.get(fiber) === record) kept.delete(fiber)
  }

  /** Close least recently used idle connections while more than poolSize fibers keep one. */
  const trim = (): Effect.Effect<void> => {
    const surplus: Array<ConnectionRecord<C>> = []
    let excess = kept.size - options.poolSize
    for (const record of kept.values()) {
      if (excess <= 0) break
      if (out.has(record)) continue
      surplus.push(record)
      excess--
    }
    for (const record of surplus) forget(record)
    return Effect.forEach(surplus, (record) => closeRecord(core, record), { discard: true })
  }

  const closeIdle = Effect.suspend(() => {
    const idle = Array.from(kept.values()).filter((record) => !out.has(record))
    for (const record of idle) forget(record)
    return Effect.forEach(idle, (record) => closeRecord(core, record), { discard: true })
  })

  return {
    take: () =>
      Effect.withFiber((fiber) => {
        if (closed) return Effect.fail(new PoolClosedError({ strategy: "FiberPool" }))
        const mine = kept.get(fiber.id)
        if (mine !== undefined && !out.has(mine)) {
          kept.delete(fiber.id) // most recently used goes last
          kept.set(fiber.id, mine)
          out.add(mine)
          return Effect.succeed(mine)
        }
        const record = new ConnectionRecord<C>(core.newSlotId())
        out.add(record)
        // A fiber whose own record is still out (a second, unshared lease) gets a throwaway one.
        if (mine === undefined) {
          kept.set(fiber.id, record)
          owner.set(record, fiber.id)
        }
        return Effect.as(trim(), record)
      }),
    give: (record) =>
      Effect.suspend(() => {
        out.delete(record)
        const fiber = owner.get(record)
        if (closed || fiber === undefined || kept.get(fiber) !== record) {
          forget(record)
          return closeRecord(core, record)
        }
        // A slot that never connected is not kept.
        if (record.generation === 0 && record.connection === undefined) {
          forget(record)
          return Effect.void
        }
        return trim()
      }),
    status: () => {
      const checkedIn = kept.size - Array.from(kept.values()).filter((record) => out.has(record)).length
      return {
        size: options.poolSize,
        checkedIn,
        checkedOut: out.size,
        overflow: out.size + checkedIn - options.poolSize,
        waiting: 0
      }
    },
    // `poolSize` bounds the connections kept idle, not the ones open: every fiber may hold one.
    limits: () => unbounded,
    settings: () => ({ ...noOwnSettings, poolSize: options.poolSize }),
    dispose: closeIdle,
    shutdown: Effect.suspend(() => {
      closed = true
      return closeIdle
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
