/**
 * The constructors every strategy exports (`make`, `layer`, `layerConfig`), written once: a
 * strategy gives its name, its option resolver and its `Strategy` factory. `recreate` rebuilds
 * from the same resolved options, hooks and driver, so it keeps every setting and connects nothing.
 *
 * @internal
 */
import { Config, Effect, Layer } from "effect"
import type { Context } from "effect"
import type { Scope } from "effect"
import type { Service } from "../ConnectionPool.ts"
import { ConnectionPool } from "../ConnectionPool.ts"
import { Driver } from "../Driver.ts"
import type { DriverShape } from "../Driver.ts"
import type { CheckoutError, PoolConfigError } from "../PoolError.ts"
import type { CommonOptions } from "../PoolOptions.ts"
import { PoolCore } from "./core.ts"
import type { ResolvedCommon, StrategyName } from "./options.ts"
import * as PoolService from "./service.ts"
import type { Strategy } from "./strategy.ts"

/**
 * A strategy's constructors, generic in the raw connection type `C` (which types the hooks).
 * `Own` is the strategy's own options, beside the common ones.
 * @internal
 */
export interface Constructors<Own> {
  /** Build the pool in the current scope (closed with it). Options are validated first. */
  readonly make: <C = unknown>(
    options?: CommonOptions<C> & Own
  ) => Effect.Effect<Service<C>, PoolConfigError, Driver | Scope.Scope>
  /** The pool as a layer providing `ConnectionPool`; options are validated when the layer builds. */
  readonly layer: <C = unknown>(
    options?: CommonOptions<C> & Own
  ) => Layer.Layer<ConnectionPool, PoolConfigError, Driver>
  /** The pool as a layer whose options are read from `Config` (environment variables, ...). */
  readonly layerConfig: <C = unknown>(
    config: Config.Wrap<CommonOptions<C> & Own>
  ) => Layer.Layer<ConnectionPool, PoolConfigError | Config.ConfigError, Driver>
}

/** @internal */
export const constructors = <Own, R extends ResolvedCommon<unknown>>(
  name: StrategyName,
  resolve: (options: CommonOptions<unknown> & Own) => Effect.Effect<R, PoolConfigError>,
  strategy: (core: PoolCore<unknown>, options: R) => Strategy<unknown, CheckoutError>
): Constructors<Own> => {
  const build = (driver: DriverShape<unknown>, options: R): Effect.Effect<Service<unknown>, never, Scope.Scope> =>
    Effect.contextWith((context: Context.Context<never>) => {
      const core = new PoolCore(name, driver, options, context)
      return PoolService.make(core, strategy(core, options), build(driver, options))
    })
  // The pool is generic in `C` only through its hooks and handles: at run time it hands out
  // whatever the `Driver` in context connects, which is the promise the caller's `C` makes.
  const make = <C = unknown>(options: CommonOptions<C> & Own = {} as CommonOptions<C> & Own) =>
    Effect.flatMap(
      resolve(options as CommonOptions<unknown> & Own),
      (resolved) => Effect.flatMap(Effect.service(Driver), (driver) => build(driver, resolved))
    ) as Effect.Effect<Service<C>, PoolConfigError, Driver | Scope.Scope>
  return {
    make,
    layer: (options) =>
      Layer.effect(
        ConnectionPool,
        make(options) as Effect.Effect<Service<unknown>, PoolConfigError, Driver | Scope.Scope>
      ),
    layerConfig: (config) =>
      Layer.effect(
        ConnectionPool,
        Effect.flatMap(Config.unwrap(config), (options) => make(options as CommonOptions<unknown> & Own))
      )
  }
}
