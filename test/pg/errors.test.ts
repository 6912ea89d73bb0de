import { assert, describe, it, layer } from "@effect/vitest"
import { Duration, Effect, Exit, Layer, Scope } from "effect"
import { NullPool, PoolError, QueuePool, StaticPool } from "effect-db-pool"
import { PgSql } from "effect-db-pool/pg"
import { SqlClient } from "effect/sql"
import { AuthenticationError, isSqlError, SqlError, UnknownError } from "effect/sql/SqlError"
import { appName, Database, sqlLayer } from "./fixture.ts"

const serverError = (code: string, message: string) => ({ code, severity: "FATAL", message })

describe("Checkout errors as SqlError", () => {
  it("a server starting up (57P03) on connect becomes a retryable ConnectionError", () => {
    const connect = new SqlError({
      reason: new UnknownError({
        cause: serverError("57P03", "the database system is starting up"),
        message: "x",
        operation: "connect"
      })
    })
    const mapped = PgSql.checkoutError(new PoolError.ConnectError({ cause: connect }))
    assert.strictEqual(mapped.reason._tag, "ConnectionError")
    assert.isTrue(mapped.isRetryable)
    assert.include(mapped.message + mapped.reason.message, "starting up")
  })

  it("a wrong password keeps the driver's AuthenticationError", () => {
    const auth = new SqlError({
      reason: new AuthenticationError({
        cause: serverError("28P01", "password authentication failed"),
        message: "x",
        operation: "connect"
      })
    })
    assert.strictEqual(PgSql.checkoutError(new PoolError.ConnectError({ cause: auth })), auth)
  })

  it("pool errors become a ConnectionError whose cause is the pool's error", () => {
    const timeout = new PoolError.ConnectTimeoutError({ timeout: Duration.seconds(1) })
    const mapped = PgSql.checkoutError(timeout)
    assert.strictEqual(mapped.reason._tag, "ConnectionError")
    assert.strictEqual(mapped.reason.cause, timeout)
    assert.strictEqual(mapped.message, "Connecting timed out after 1000 ms (connectTimeout)")
  })

  it("a closed pool is permanent: a non-retryable UnknownError that says the pool is closed", () => {
    const closed = new PoolError.PoolClosedError({ strategy: "QueuePool" })
    const mapped = PgSql.checkoutError(closed)
    assert.strictEqual(mapped.reason._tag, "UnknownError")
    assert.isFalse(mapped.isRetryable)
    assert.strictEqual(mapped.reason.cause, closed)
    assert.strictEqual(mapped.message, "PgSql: QueuePool is closed (its layer's scope ended): no checkout can succeed")
  })
})

layer(Database, { timeout: "60 seconds", excludeTestServices: true })("a statement after the pool closed", (it) => {
  for (
    const [name, pool] of [
      ["QueuePool", QueuePool.layer({ poolSize: 1 })],
      ["NullPool", NullPool.layer()],
      ["StaticPool", StaticPool.layer()]
    ] as const
  ) {
    it.effect(`${name}: fails at once, not retryable, saying the pool is closed`, () =>
      Effect.gen(function*() {
        const scope = yield* Scope.make()
        const context = yield* Layer.buildWithScope(sqlLayer(pool, appName("closed")), scope)
        const sql = yield* Effect.provideContext(Effect.service(SqlClient.SqlClient), context)
        yield* sql`select 1`
        yield* Scope.close(scope, Exit.void)
        const error = yield* Effect.flip(sql`select 1`)
        assert.isTrue(isSqlError(error), String(error))
        assert.strictEqual(error.reason._tag, "UnknownError")
        assert.isFalse(error.isRetryable, "a retry loop would never end")
        assert.strictEqual(error.message, `PgSql: ${name} is closed (its layer's scope ended): no checkout can succeed`)
      }))
  }
})
