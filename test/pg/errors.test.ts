import { assert, describe, it } from "@effect/vitest"
import { Duration } from "effect"
import { AuthenticationError, SqlError, UnknownError } from "effect/sql/SqlError"
import { PoolError } from "effect-db-pool"
import { PgSql } from "effect-db-pool/pg"

const serverError = (code: string, message: string) => ({ code, severity: "FATAL", message })

describe("Checkout errors as SqlError", () => {
  it("a server starting up (57P03) on connect becomes a retryable ConnectionError", () => {
    const connect = new SqlError({
      reason: new UnknownError({ cause: serverError("57P03", "the database system is starting up"), message: "x", operation: "connect" })
    })
    const mapped = PgSql.checkoutError(new PoolError.ConnectError({ cause: connect }))
    assert.strictEqual(mapped.reason._tag, "ConnectionError")
    assert.isTrue(mapped.isRetryable)
    assert.include(mapped.message + mapped.reason.message, "starting up")
  })

  it("a wrong password keeps the driver's AuthenticationError", () => {
    const auth = new SqlError({
      reason: new AuthenticationError({ cause: serverError("28P01", "password authentication failed"), message: "x", operation: "connect" })
    })
    assert.strictEqual(PgSql.checkoutError(new PoolError.ConnectError({ cause: auth })), auth)
  })

  it("pool errors become a ConnectionError whose cause is the pool's error", () => {
    const timeout = new PoolError.ConnectTimeoutError({ timeout: Duration.seconds(1) })
    const mapped = PgSql.checkoutError(timeout)
    assert.strictEqual(mapped.reason._tag, "ConnectionError")
    assert.strictEqual(mapped.reason.cause, timeout)
  })
})
