/**
 * The options of the bounds: `PgDriver` `cancelTimeout` (≥ 20 ms or "Infinity": the driver
 * sends its cancel request 10 ms after an interrupt) and `PgSql` `transactionControlTimeout`.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Layer } from "effect"
import { QueuePool } from "effect-db-pool"
import { PgDriver, PgSql } from "effect-db-pool/pg"

/** Building the driver layer validates its settings (it connects nothing). */
const driverBuild = (config: PgDriver.Config) => Effect.scoped(Layer.build(PgDriver.layer(config)))

const driverError = (cancelTimeout: unknown) => Effect.flip(driverBuild({ cancelTimeout } as PgDriver.Config))

const sqlBuild = (transactionControlTimeout: unknown) =>
  Effect.exit(Effect.scoped(Layer.build(
    PgSql.layer({ transactionControlTimeout } as PgSql.Options).pipe(
      Layer.provide(QueuePool.layer()),
      Layer.provide(PgDriver.layer({}))
    )
  )))

describe("bound options", () => {
  it.effect("cancelTimeout: at least 20 ms, or Infinity", () =>
    Effect.gen(function*() {
      for (const ok of ["20 millis", 30, "1 second", "Infinity"]) {
        assert.isTrue(
          Exit.isSuccess(yield* Effect.exit(driverBuild({ cancelTimeout: ok } as PgDriver.Config))),
          String(ok)
        )
      }
      for (const bad of [0, 5, "19 millis", -1, "soon"]) {
        const e = yield* driverError(bad)
        assert.strictEqual(e.field, "cancelTimeout", String(bad))
      }
      assert.include((yield* driverError(5)).message, "at least 20 milliseconds")
    }))

  it.effect("transactionControlTimeout: any duration, Infinity included; a bad one fails the layer", () =>
    Effect.gen(function*() {
      for (const ok of ["500 millis", "Infinity", 2000]) assert.isTrue(Exit.isSuccess(yield* sqlBuild(ok)), String(ok))
      for (const bad of [-1, "soon"]) {
        const exit = yield* sqlBuild(bad)
        assert.isTrue(Exit.isFailure(exit), String(bad))
        assert.include(String(Exit.isFailure(exit) ? exit.cause : ""), "transactionControlTimeout")
      }
    }))
})
