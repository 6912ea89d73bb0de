/**
 * The constructors every strategy exports (`make`, `layer`, `layerConfig`), written once: a
 * strategy gives its name, its option resolver and its `Strategy` factory. `recreate` rebuilds
 * from the same resolved options, hooks and driver, so it keeps every setting and connects nothing.
 *
 * @internal
 */
import { Config, Effect, Layer } from "effect"
import type { Scope } from "effect"
import type { Service } from "../ConnectionPool.ts"
import { ConnectionPool } from "../ConnectionPool.ts"
import { Driver } from "../Driver.ts"
import type { DriverShape } from "../Driver.ts"
import type { PoolConfigError } from "../PoolError.ts"
import type { ResolvedCommon } from "../PoolOptions.ts"
import { makeService } from "./checkout.ts"
import type { Strategy } from "./checkout.ts"
import { PoolCore } from "./core.ts"

/** @internal */
export interface Constructors<O> {
  readonly make: (options?: O) => Effect.Effect<Service<any>, PoolConfigError, Driver | Scope.Scope>
  readonly layer: (options?: O) => Layer.Layer<ConnectionPool, PoolConfigError, Driver>
  readonly layerConfig: (
    config: Config.Wrap<O>
  ) => Layer.Layer<ConnectionPool, PoolConfigError | Config.ConfigError, Driver>
}

/** @internal */
export const constructors = <O, R extends ResolvedCommon<any>>(
  name: string,
  resolve: (options: O) => Effect.Effect<R, PoolConfigError>,
  strategy: (core: PoolCore<any>, options: R) => Strategy<any, unknown>
): Constructors<O> => {
  const build = (driver: DriverShape<any>, options: R): Effect.Effect<Service<any>, never, Scope.Scope> =>
    Effect.suspend(() => {
      const core = new PoolCore(name, driver, options)
      return makeService(core, strategy(core, options), build(driver, options))
    })
  const make = (options: O = {} as O) =>
    Effect.flatMap(resolve(options), (resolved) => Effect.flatMap(Effect.service(Driver), (driver) => build(driver, resolved)))
  return {
    make,
    layer: (options) => Layer.effect(ConnectionPool, make(options)),
    layerConfig: (config) => Layer.effect(ConnectionPool, Effect.flatMap(Config.unwrap(config), (options) => make(options)))
  }
}
