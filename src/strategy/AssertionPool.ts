/**
 * AssertionPool: one connection, and at most one checkout at a time. A second checkout while
 * the first is still out fails with `AssertionPoolError`, whose message names where the first
 * one was checked out. Use it in tests to prove that code never holds two connections at once
 * (a classic cause of pool exhaustion and deadlocks).
 *
 * The checkout site is the fiber id, the `Effect.fn("name")` / span names around the checkout
 * and the line of your code that read `pool.checkout` or called `pool.use` (frames of effect,
 * this library, `node:` and `node_modules` are skipped). With
 * `reentrant: true`, a nested checkout in the same fiber shares the connection instead of failing.
 *
 * Status: `size` 1, `checkedIn` 1 while the kept connection is idle, `checkedOut` 0 or 1,
 * `overflow` 0, `waiting` 0 (nothing ever waits: it fails).
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import type { Config, Layer } from "effect"
import type { ConnectionPool } from "../ConnectionPool.ts"
import type { Driver } from "../Driver.ts"
import { constructors } from "../internal/constructors.ts"
import type { PoolCore } from "../internal/core.ts"
import { resolveCommon } from "../internal/options.ts"
import type { ResolvedCommon } from "../internal/options.ts"
import type { ConnectionRecord } from "../internal/record.ts"
import { SingleSlot } from "../internal/single.ts"
import { captureSite } from "../internal/site.ts"
import { noOwnSettings } from "../internal/strategy.ts"
import type { Strategy } from "../internal/strategy.ts"
import { AssertionPoolError } from "../PoolError.ts"
import type { PoolClosedError, PoolConfigError } from "../PoolError.ts"
import type * as PoolOptions from "../PoolOptions.ts"

/**
 * AssertionPool takes the options every strategy shares.
 *
 * @category models
 * @since 0.1.0
 */
export interface Options<C = unknown> extends PoolOptions.CommonOptions<C> {}

/** Options after validation and defaults. */
interface Resolved<C = unknown> extends ResolvedCommon<C> {}

/** Validate options and apply defaults. */
const resolve = <C>(options: Options<C>): Effect.Effect<Resolved<C>, PoolConfigError> =>
  resolveCommon(options, "AssertionPool")

const strategy = <C>(core: PoolCore<C>): Strategy<C, AssertionPoolError | PoolClosedError> => {
  const slot = new SingleSlot(core)
  let site = ""
  return {
    wantsSite: true,
    take: () =>
      Effect.suspend((): Effect.Effect<ConnectionRecord<C>, AssertionPoolError | PoolClosedError> => {
        if (slot.closed) return slot.closedError
        if (slot.out) return Effect.fail(new AssertionPoolError({ pool: core.name, checkedOutAt: site }))
        slot.out = true
        return Effect.flatMap(captureSite, (where) => {
          site = where
          return slot.takeOut()
        })
      }),
    give: () => slot.give(),
    status: () => slot.status(),
    limits: () => SingleSlot.limits,
    settings: () => noOwnSettings,
    dispose: slot.dispose,
    shutdown: slot.shutdown
  }
}

const built = constructors<object, Resolved<unknown>>("AssertionPool", resolve, strategy)

/**
 * A AssertionPool as a layer providing the `ConnectionPool` service over the `Driver` in context;
 * options are validated when the layer builds (a bad one fails it with `PoolConfigError`).
 *
 * @example
 * ```ts
 * import { AssertionPool } from "effect-db-pool"
 *
 * const Pool = AssertionPool.layer()
 * ```
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = built.layer

/**
 * Build a AssertionPool in the current scope (closed with it) and return the service itself, for code
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
