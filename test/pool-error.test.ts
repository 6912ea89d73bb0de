/**
 * PoolError: `isCheckoutError` recognises every error a checkout fails with, and nothing else.
 */
import { assert, describe, it } from "@effect/vitest"
import { Duration } from "effect"
import { PoolError } from "effect-db-pool"
import { MockDriver } from "effect-db-pool/testing"

describe("isCheckoutError", () => {
  it("is true for every CheckoutError", () => {
    const errors: ReadonlyArray<PoolError.CheckoutError> = [
      new PoolError.PoolTimeoutError({
        strategy: "QueuePool",
        poolSize: 1,
        maxOverflow: 0,
        timeout: Duration.seconds(1)
      }),
      new PoolError.ConnectError({ cause: new Error("refused") }),
      new PoolError.ConnectTimeoutError({ timeout: Duration.seconds(1) }),
      new PoolError.ConnectionInvalidatedError({}),
      new PoolError.DriverError({ operation: "ping", cause: new Error("ping") }),
      new PoolError.PoolClosedError({ strategy: "QueuePool" }),
      new PoolError.AssertionPoolError({ pool: "AssertionPool", checkedOutAt: "here" })
    ]
    assert.deepStrictEqual(errors.map(PoolError.isCheckoutError), errors.map(() => true))
  })

  it("is false for what a checkout does not fail with", () => {
    const others: ReadonlyArray<unknown> = [
      new PoolError.PoolConfigError({ field: "poolSize", value: -1, reason: "must be an integer >= 0" }),
      new PoolError.DisconnectionError({}),
      new MockDriver.MockDbError({ operation: "connect", disconnect: false, message: "connect#1: scripted fail" }),
      new Error("ConnectError"),
      { _tag: "ConnectError", cause: undefined },
      undefined,
      "PoolTimeoutError"
    ]
    assert.deepStrictEqual(others.map(PoolError.isCheckoutError), others.map(() => false))
  })
})
