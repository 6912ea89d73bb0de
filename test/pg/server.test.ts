/**
 * The server goes away and comes back (embedded server only: it is stopped and started inside
 * the test, so this file has its own server; skipped when DATABASE_URL points elsewhere).
 */
import { assert, describe, layer } from "@effect/vitest"
import { Effect, Layer, Redacted } from "effect"
import { QueuePool } from "effect-db-pool"
import { PgDriver, PgSql } from "effect-db-pool/pg"
import { EmbeddedPostgres, PgDatabase } from "effect-db-pool/pg/embedded"
import { SqlClient } from "effect/sql"
import { appName, Database, sqlLayer } from "./fixture.ts"

const external = (process.env.DATABASE_URL ?? "").trim().length > 0

layer(Database, { timeout: "60 seconds", excludeTestServices: true })("pg server lifecycle", (it) => {
  it.layer(sqlLayer(QueuePool.layer({ poolSize: 2, prePing: true }), appName("server")))(
    "QueuePool(2, prePing)",
    (it) => {
      it.effect.skipIf(external)(
        "server stopped → the real connect error, fast; started again → recovery",
        () =>
          Effect.gen(function*() {
            const db = yield* PgDatabase.PgDatabase
            const server = db.embedded!
            const sql = yield* SqlClient.SqlClient
            assert.deepStrictEqual(yield* sql`select 1 as ok`, [{ ok: 1 }])

            yield* server.stop
            assert.isFalse(yield* server.isRunning)
            const started = Date.now()
            const error = yield* Effect.flip(sql`select 1 as ok`)
            const elapsed = Date.now() - started
            assert.strictEqual(error._tag, "SqlError")
            assert.strictEqual(error.reason._tag, "ConnectionError")
            assert.strictEqual(
              error.reason.message,
              `PgDriver: cannot connect to 127.0.0.1:${server.port} (database "postgres", user "postgres"): ` +
                `connect ECONNREFUSED 127.0.0.1:${server.port}`
            )
            assert.include(String((error.reason.cause as Error).message), "ECONNREFUSED")
            assert.notInclude(error.message, "timed out")
            assert.isBelow(elapsed, 3000)
            assert.isTrue(PgDriver.isDisconnect(error))

            yield* server.start
            assert.isTrue(yield* server.isRunning)
            assert.deepStrictEqual(yield* sql`select 2 as ok`, [{ ok: 2 }])
          })
      )
    }
  )

  describe("bad input fails the layer build with a typed error", () => {
    it.effect("a plain-string password, a bad URL, a bad port", () =>
      Effect.gen(function*() {
        const build = (config: PgDriver.Config) => Effect.flip(Effect.scoped(Layer.build(PgDriver.layer(config))))
        const password = yield* build({ password: "secret" as unknown as Redacted.Redacted })
        assert.strictEqual(password._tag, "PgConfigError")
        assert.strictEqual(password.field, "password")
        assert.notInclude(password.message, "secret")
        const url = yield* build({ url: Redacted.make("mysql://x") })
        assert.strictEqual(url.field, "url")
        const port = yield* build({ port: 70000 })
        assert.strictEqual(port.field, "port")
        const sqlOptions = yield* Effect.flip(Effect.scoped(Layer.build(
          PgSql.layer({ transformResultNames: "camel" as unknown as (s: string) => string }).pipe(
            Layer.provide(QueuePool.layer()),
            Layer.provide(PgDriver.layer({}))
          )
        )))
        assert.strictEqual(sqlOptions._tag, "PgSqlConfigError")
      }))

    it.effect("an embedded server that cannot start reports the server's own message", () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(
          Effect.scoped(EmbeddedPostgres.make({ postgresFlags: ["-c", "no_such_setting=1"] }))
        )
        assert.strictEqual(error._tag, "EmbeddedPostgresError")
        assert.strictEqual(error.operation, "start")
        assert.include(error.message, "no_such_setting")
      }))
  })
})
