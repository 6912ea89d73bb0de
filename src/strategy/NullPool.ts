/**
 * NullPool: no pooling at all. Every checkout opens a new connection and every return resets
 * and closes it. Use it where something else pools (PgBouncer, a serverless proxy), for
 * short-lived scripts, or to rule pooling out while debugging.
 *
 * Status: `size` 0, `checkedIn` 0, `overflow` 0, `waiting` 0 (nothing is ever kept or awaited);
 * `checkedOut` = connections checked out now (including ones still connecting).
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
import { closeRecord, ConnectionRecord } from "../internal/record.ts"
import { noOwnSettings, unbounded } from "../internal/strategy.ts"
import type { Strategy } from "../internal/strategy.ts"
import { PoolClosedError } from "../PoolError.ts"
import type { PoolConfigError } from "../PoolError.ts"
import type * as PoolOptions from "../PoolOptions.ts"

/**
 * NullPool takes only the options every strategy shares (`recycle` and pre-ping have nothing
 * to act on: every connection is fresh).
 *
 * @category models
 * @since 0.1.0
 */
export interface Options<C = unknown> extends PoolOptions.CommonOptions<C> {}

/** Options after validation and defaults. */
interface Resolved<C = unknown> extends ResolvedCommon<C> {}

/** Validate options and apply defaults. */
const resolve = <C>(options: Options<C>): Effect.Effect<Resolved<C>, PoolConfigError> =>
  resolveCommon(options, "NullPool")

const strategy = <C>(core: PoolCore<C>): Strategy<C, PoolClosedError> => {
  let out = 0
  let closed = false
  return {
    take: () =>
      Effect.suspend(() => {
        if (closed) return Effect.fail(new PoolClosedError({ strategy: "NullPool" }))
        out++
        return Effect.succeed(new ConnectionRecord<C>(core.newSlotId()))
      }),
    give: (record) =>
      Effect.suspend(() => {
        out--
        return closeRecord(core, record)
      }),
    status: () => ({ size: 0, checkedIn: 0, checkedOut: out, overflow: 0, waiting: 0 }),
    limits: () => unbounded,
    settings: () => noOwnSettings,
    dispose: Effect.void,
    shutdown: Effect.sync(() => {
      closed = true
    })
  }
}

const built = constructors<object, Resolved<unknown>>("NullPool", resolve, strategy)

/**
 * A NullPool as a layer providing the `ConnectionPool` service over the `Driver` in context;
 * options are validated when the layer builds (a bad one fails it with `PoolConfigError`).
 *
 * @example
 * ```ts
 * import { NullPool } from "effect-db-pool"
 *
 * const Pool = NullPool.layer({ resetOnReturn: "rollback" })
 * ```
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = built.layer

/**
 * Build a NullPool in the current scope (closed with it) and return the service itself, for code
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
