/**
 * `PgDriver.layer({ pooler, listenUrl })` without a server: what `pooler: "transaction"`
 * implies and refuses, how `listenUrl` is validated, and which errors count as a lost prepared
 * statement. (Through a real PgBouncer: test/pg/pgbouncer.test.ts.)
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Layer, Redacted } from "effect"
import { PgDriver } from "effect-db-pool/pg"
import { SqlError, UnknownError } from "effect/sql/SqlError"
import * as Pooler from "../../src/pg/internal/pooler.ts"

const built = (config: Record<string, unknown>) => Effect.scoped(Layer.build(PgDriver.layer(config as PgDriver.Config)))

/** The settings the layer provides (after validation and the pooler's defaults). */
const effective = (config: Record<string, unknown>) =>
  Effect.map(
    Effect.provide(Effect.service(PgDriver.PgDriver), PgDriver.layer(config as PgDriver.Config)),
    (driver) => driver.config
  )

const driverError = (config: Record<string, unknown>) => Effect.flip(built(config))

const serverError = (code: string, message: string) =>
  new SqlError({
    reason: new UnknownError({ cause: { code, message }, message: "PgConnection: Query failed", operation: "query" })
  })

describe("PgDriver pooler settings", () => {
  it.effect("pooler: \"transaction\" makes statements unnamed and sends no DISCARD ALL", () =>
    Effect.gen(function*() {
      const config = yield* effective({ pooler: "transaction" })
      assert.strictEqual(config.prepare, false)
      assert.strictEqual(config.sessionReset, "none")
      // prepare: true is kept (PgBouncer 1.21+ with max_prepared_statements tracks named statements)
      assert.strictEqual((yield* effective({ pooler: "transaction", prepare: true })).prepare, true)
      assert.strictEqual((yield* effective({ pooler: "transaction", sessionReset: "none" })).sessionReset, "none")
      // without it nothing changes
      const plain = yield* effective({ pooler: "none" })
      assert.isUndefined(plain.prepare)
      assert.isUndefined(plain.sessionReset)
    }))

  it.effect("pooler: \"transaction\" refuses a sessionReset that sends DISCARD ALL", () =>
    Effect.gen(function*() {
      for (const sessionReset of ["auto", "always"]) {
        const error = yield* driverError({ pooler: "transaction", sessionReset })
        assert.strictEqual(error._tag, "PgConfigError")
        assert.strictEqual(error.field, "sessionReset")
        assert.include(error.message, "DISCARD ALL must not be sent through a transaction-mode pooler")
      }
    }))

  it.effect("pooler and listenUrl are validated; listenUrl is a secret", () =>
    Effect.gen(function*() {
      const cases: Array<[Record<string, unknown>, string, string]> = [
        [{ pooler: "session" }, "pooler", `must be one of "none", "transaction"`],
        [{ pooler: true }, "pooler", "must be one of"],
        [{ listenUrl: "postgres://u:s3cret@h/db" }, "listenUrl", "must be Redacted"],
        [{ listenUrl: Redacted.make("mysql://u:s3cret@h/db") }, "listenUrl", "postgres://"],
        [{ listenUrl: Redacted.make("postgres://[s3cret") }, "listenUrl", "postgres://"]
      ]
      for (const [config, field, reason] of cases) {
        const error = yield* driverError(config)
        assert.strictEqual(error.field, field, JSON.stringify(config))
        assert.include(error.message, reason)
        assert.notInclude(error.message, "s3cret")
        assert.notInclude(JSON.stringify(error), "s3cret")
      }
      const ok = yield* Effect.exit(built({
        pooler: "transaction",
        url: Redacted.make("postgres://app@127.0.0.1:6432/app"),
        listenUrl: Redacted.make("postgresql://app:pw@127.0.0.1:5432/app")
      }))
      assert.isTrue(Exit.isSuccess(ok))
    }))

  it("listenAt: the listener's address is listenUrl's, the other settings stay", () => {
    const listenUrl = Redacted.make("postgres://app@db:5432/app")
    const config = Pooler.listenAt({
      url: Redacted.make("postgres://app@bouncer:6432/app"),
      host: "bouncer",
      port: 6432,
      applicationName: "orders",
      connectTimeout: "5 seconds"
    }, listenUrl)
    assert.deepStrictEqual(config as unknown, {
      applicationName: "orders",
      connectTimeout: "5 seconds",
      url: listenUrl
    })
  })

  it("a lost prepared statement is 26000 on one of the driver's own names, nothing else", () => {
    const lost = serverError("26000", "prepared statement \"effect_0acdd235d1c055f2_2\" does not exist")
    assert.isTrue(Pooler.isLostPreparedStatement(lost))
    assert.isFalse(Pooler.isLostPreparedStatement(serverError("26000", "prepared statement \"mine\" does not exist")))
    assert.isFalse(Pooler.isLostPreparedStatement(serverError("42601", "syntax error")))
    assert.isFalse(Pooler.isLostPreparedStatement(new Error("prepared statement \"effect_ab_1\" does not exist")))
    const error = Pooler.lostPreparedStatement(lost)
    assert.isTrue(PgDriver.isTransactionPoolerError(error))
    assert.strictEqual(error.reason._tag, "UnknownError")
    assert.isFalse(error.isRetryable)
    assert.isFalse(PgDriver.isDisconnect(error))
    assert.include(error.message, "pooler: \"transaction\"")
    assert.include(error.message, "effect_0acdd235d1c055f2_2")
    assert.isFalse(PgDriver.isTransactionPoolerError(lost))
  })
})
