import { assert, describe, it } from "@effect/vitest"
import { Config, ConfigProvider, Effect, Exit, Layer, Redacted } from "effect"
import { ConnectionPool, NullPool, QueuePool } from "effect-db-pool"
import { PgDriver, PgReplicas, PgSql } from "effect-db-pool/pg"
import { MockDriver } from "effect-db-pool/testing"

const buildError = (options: QueuePool.Options) =>
  Effect.gen(function*() {
    const exit = yield* Effect.exit(Layer.build(QueuePool.layer(options).pipe(Layer.provide(MockDriver.layer()))))
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
    ["hooks.onCheckout", { hooks: { onCheckout: "x" as any } }, "must be a function"],
    [
      "hooks.onChekout",
      { hooks: { onChekout: () => Effect.void } as any },
      `is not a hook (did you mean "onCheckout"?)`
    ]
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
      }).pipe(Layer.provide(MockDriver.layer()))
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
        Layer.build(QueuePool.layer({ poolsize: 3 } as any).pipe(Layer.provide(MockDriver.layer())))
      )
      assert.isTrue(Exit.isFailure(exit))
      const error = Exit.isFailure(exit) ? (exit.cause.reasons[0] as any).error : undefined
      assert.strictEqual(error._tag, "PoolConfigError")
      assert.strictEqual(error.field, "poolsize")
      assert.include(error.message, `did you mean "poolSize"`)
    }))

  it.effect("a typo (swapped or missing letters) gets a suggestion too", () =>
    Effect.gen(function*() {
      for (const [key, near] of [["poolSzie", "poolSize"], ["maxOverflw", "maxOverflow"], ["prePng", "prePing"]]) {
        const exit = yield* Effect.exit(
          Layer.build(QueuePool.layer({ [key!]: 3 } as any).pipe(Layer.provide(MockDriver.layer())))
        )
        const error = Exit.isFailure(exit) ? (exit.cause.reasons[0] as any).error : undefined
        assert.strictEqual(error?.field, key)
        assert.include(error?.message, `did you mean "${near}"`)
      }
    }))

  it.effect("options of another strategy are accepted, so swapping the layer needs no other change", () =>
    Effect.gen(function*() {
      const options = { poolSize: 3, maxOverflow: 2, timeout: "5 seconds", prePing: true } as const
      const pool = yield* Effect.service(ConnectionPool.ConnectionPool).pipe(
        Effect.provide(NullPool.layer(options as any).pipe(Layer.provide(MockDriver.layer())))
      )
      assert.strictEqual(pool.strategy, "NullPool")
    }))
})

describe("Postgres option names and values (one validator with the pool's)", () => {
  const driverError = (config: Record<string, unknown>) =>
    Effect.flip(Effect.scoped(Layer.build(PgDriver.layer(config as PgDriver.Config))))
  const sqlError = (options: Record<string, unknown>) =>
    Effect.flip(Effect.scoped(Layer.build(
      PgSql.layer(options as PgSql.Options).pipe(Layer.provide(QueuePool.layer()), Layer.provide(PgDriver.layer({})))
    )))

  it.effect("a misspelled PgDriver option is a PgConfigError with a suggestion, its value never shown", () =>
    Effect.gen(function*() {
      for (
        const [key, near] of [["connect_timeout", "connectTimeout"], ["portt", "port"], ["user", "username"], [
          "pasword",
          "password"
        ]]
      ) {
        const error = yield* driverError({ [key!]: "s3cret-value" })
        assert.strictEqual(error._tag, "PgConfigError")
        assert.strictEqual(error.field, key)
        assert.include(error.message, `did you mean "${near}"`)
        assert.notInclude(error.message, "s3cret-value")
        assert.notInclude(JSON.stringify(error), "s3cret-value")
      }
    }))

  it.effect("a misspelled PgSql.layer option is a PgSqlConfigError with a suggestion", () =>
    Effect.gen(function*() {
      const error = yield* sqlError({ transformResultName: (s: string) => s })
      assert.strictEqual(error._tag, "PgSqlConfigError")
      assert.instanceOf(error, PgSql.PgSqlConfigError)
      assert.strictEqual(error.field, "transformResultName")
      assert.include(error.message, `Invalid PgSql option "transformResultName"`)
      assert.include(error.message, `did you mean "transformResultNames"`)
    }))

  it.effect("a misspelled PgReplicas.layer option is a PgReplicasConfigError; its sql options fail as PgSql's", () =>
    Effect.gen(function*() {
      const router = (options: Record<string, unknown>) =>
        Effect.flip(Effect.scoped(Layer.build(
          PgReplicas.layer(
            { primary: QueuePool.layer().pipe(Layer.provideMerge(PgDriver.layer({}))), replicas: [] },
            options as PgReplicas.Options
          )
        )))
      const error = yield* router({ healthCheckIntervall: "1 second" })
      assert.instanceOf(error, PgReplicas.PgReplicasConfigError)
      assert.strictEqual(error._tag, "PgReplicasConfigError")
      assert.strictEqual(error.field, "healthCheckIntervall")
      assert.include(error.message, `Invalid PgReplicas option "healthCheckIntervall"`)
      assert.include(error.message, `did you mean "healthCheckInterval"`)
      const sqlOption = yield* router({ sql: { transformJson: "yes" } })
      assert.instanceOf(sqlOption, PgSql.PgSqlConfigError)
      assert.strictEqual(sqlOption.field, "transformJson")
    }))

  it.effect("multiplex: false is accepted, multiplex: true is not", () =>
    Effect.gen(function*() {
      const ok = yield* Effect.exit(Effect.scoped(Layer.build(PgDriver.layer({ multiplex: false } as PgDriver.Config))))
      assert.isTrue(Exit.isSuccess(ok))
      const error = yield* driverError({ multiplex: true })
      assert.strictEqual(error.field, "multiplex")
    }))

  it.effect("what @effect/sql-pg would refuse at the first connect is refused when the layer builds", () =>
    Effect.gen(function*() {
      const cases: Array<[Record<string, unknown>, string, string]> = [
        [{ connectTimeout: { secs: 5 } }, "connectTimeout", "must be a duration"],
        [{ connectTimeout: 0 }, "connectTimeout", "must be positive"],
        [{ keepAlive: "500 millis" }, "keepAlive", "between 1 second"],
        [{ keepAlive: "Infinity" }, "keepAlive", "between 1 second"],
        [{ startupParameters: { user: "x" } }, "startupParameters", "reserved"],
        [{ startupParameters: { client_encoding: "LATIN1" } }, "startupParameters", "UTF8"],
        [{ startupParameters: { search_path: 5 } }, "startupParameters", "record of strings"],
        [{ applicationName: "a\0b" }, "applicationName", "NUL"],
        [{ ssl: "require" }, "ssl", "tls.ConnectionOptions"],
        [{ types: {} }, "types", "PgTypes.Registry"],
        [{ sessionReset: "discard" }, "sessionReset", `must be one of "none", "auto", "always"`]
      ]
      for (const [config, field, reason] of cases) {
        const error = yield* driverError(config)
        assert.strictEqual(error.field, field, JSON.stringify(config))
        assert.include(error.message, reason)
      }
      // the value is shown as written: `{"secs":5}`, not `[object Object]`
      assert.include((yield* driverError({ connectTimeout: { secs: 5 } })).message, `{"secs":5}`)
    }))

  it.effect("legitimate settings still build", () =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(Effect.scoped(Layer.build(PgDriver.layer({
        url: Redacted.make("postgres://u@h:5432/db"),
        connectTimeout: "Infinity",
        keepAlive: { seconds: 30 },
        ssl: { rejectUnauthorized: false },
        startupParameters: { search_path: "app", client_encoding: "utf-8" },
        password: Effect.succeed(Redacted.make("pw")),
        prepare: false,
        preparedStatementCacheSize: 0,
        alwaysReset: true,
        sessionReset: "always"
      }))))
      assert.isTrue(Exit.isSuccess(exit))
    }))
})
