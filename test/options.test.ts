import { assert, describe, it } from "@effect/vitest"
import { Config, ConfigProvider, Effect, Exit, Layer } from "effect"
import { ConnectionPool, NullPool, QueuePool } from "effect-db-pool"
import { MockDriver } from "effect-db-pool/testing"

const buildError = (options: QueuePool.Options) =>
  Effect.gen(function*() {
    const exit = yield* Effect.exit(Layer.build(QueuePool.layer(options).pipe(Layer.provide(MockDriver.layer))))
    assert.isTrue(Exit.isFailure(exit), `expected ${JSON.stringify(options)} to be rejected`)
    return Exit.isFailure(exit) ? (exit.cause.reasons[0] as any).error : undefined
  })

describe("Options are validated when the layer builds", () => {
  const bad: Array<[string, QueuePool.Options, string]> = [
    ["poolSize", { poolSize: -1 }, "must be an integer >= 0"],
    ["poolSize", { poolSize: 2.5 }, "must be an integer >= 0"],
    ["poolSize", { poolSize: Number.NaN }, "must be an integer >= 0"],
    ["poolSize", { poolSize: "5" as any }, "must be an integer >= 0"],
    ["maxOverflow", { maxOverflow: -2 }, "must be an integer >= -1"],
    ["timeout", { timeout: -1 }, "must not be negative"],
    ["timeout", { timeout: Number.NaN }, "NaN"],
    ["timeout", { timeout: "soon" as any }, "must be a duration"],
    ["recycle", { recycle: "-5 seconds" as any }, "must not be negative"],
    ["prePing", { prePing: "yes" as any }, "must be true or false"],
    ["lifo", { lifo: 1 as any }, "must be true or false"],
    ["resetOnReturn", { resetOnReturn: "rollbacks" as any }, "must be one of"],
    ["resetTimeout", { resetTimeout: "ten seconds" as any }, "must be a duration"],
    ["name", { name: "" }, "non-empty"],
    ["checkoutRetry", { checkoutRetry: 3 as any }, "must be a Schedule"],
    ["hooks.onCheckout", { hooks: { onCheckout: "x" as any } }, "must be a function"]
  ]
  for (const [field, options, reason] of bad) {
    it.effect(`${field} = ${String(Object.values(options)[0])} → PoolConfigError naming ${field}`, () =>
      Effect.gen(function*() {
        const error = yield* buildError(options)
        assert.strictEqual(error._tag, "PoolConfigError")
        assert.strictEqual(error.field, field)
        assert.include(error.message, `"${field}"`)
        assert.include(error.message, reason)
      }))
  }

  it.effect("layerConfig reads options from Config and validates them", () =>
    Effect.gen(function*() {
      const layer = QueuePool.layerConfig({
        poolSize: Config.Int("POOL_SIZE"),
        timeout: Config.Duration("POOL_TIMEOUT").pipe(Config.withDefault("30 seconds"))
      }).pipe(Layer.provide(MockDriver.layer))
      const fromEnv = (env: Record<string, string>) => ConfigProvider.layer(ConfigProvider.fromUnknown(env))
      const pool = yield* Effect.service(ConnectionPool.ConnectionPool).pipe(
        Effect.provide(layer.pipe(Layer.provide(fromEnv({ POOL_SIZE: "2" }))))
      )
      assert.strictEqual((yield* pool.status).size, 2)
      const exit = yield* Effect.exit(Layer.build(layer.pipe(Layer.provide(fromEnv({ POOL_SIZE: "-3" })))))
      assert.isTrue(Exit.isFailure(exit))
      const error = Exit.isFailure(exit) ? (exit.cause.reasons[0] as any).error : undefined
      assert.strictEqual(error._tag, "PoolConfigError")
      assert.strictEqual(error.field, "poolSize")
    }))
})

describe("Option names", () => {
  it.effect("a misspelled option is a PoolConfigError naming it, with a suggestion", () =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(
        Layer.build(QueuePool.layer({ poolsize: 3 } as any).pipe(Layer.provide(MockDriver.layer)))
      )
      assert.isTrue(Exit.isFailure(exit))
      const error = Exit.isFailure(exit) ? (exit.cause.reasons[0] as any).error : undefined
      assert.strictEqual(error._tag, "PoolConfigError")
      assert.strictEqual(error.field, "poolsize")
      assert.include(error.message, `did you mean "poolSize"`)
    }))

  it.effect("options of another strategy are accepted, so swapping the layer needs no other change", () =>
    Effect.gen(function*() {
      const options = { poolSize: 3, maxOverflow: 2, timeout: "5 seconds", prePing: true } as const
      const pool = yield* Effect.service(ConnectionPool.ConnectionPool).pipe(
        Effect.provide(NullPool.layer(options as any).pipe(Layer.provide(MockDriver.layer)))
      )
      assert.strictEqual(pool.strategy, "NullPool")
    }))
})
