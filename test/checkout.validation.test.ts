import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Option, Schedule, Scope } from "effect"
import { PoolError } from "effect-db-pool"
import { TestClock } from "effect/testing"
import { queuePool } from "./helpers.ts"

const errorOf = (exit: Exit.Exit<unknown, unknown>): any =>
  Exit.isFailure(exit) ? (exit.cause.reasons.find((r) => r._tag === "Fail") as any)?.error : undefined

describe("Checkout validation and retry", () => {
  it.effect("a checkout hook failing with DisconnectionError invalidates the slot and reconnects", () =>
    Effect.gen(function*() {
      let calls = 0
      const { pool, mock, events } = yield* queuePool({
        poolSize: 1,
        maxOverflow: 0,
        hooks: {
          onCheckout: () =>
            Effect.suspend(() => ++calls === 1 ? Effect.fail(new PoolError.DisconnectionError({})) : Effect.void)
        }
      })
      const id = yield* Effect.scoped(Effect.map(pool.checkout, (c) => c.connection.id))
      assert.strictEqual(id, 2)
      assert.strictEqual(calls, 2)
      assert.isTrue(mock.connections[0]!.closed)
      assert.deepStrictEqual(events.slice(0, 7), [
        "first_connect",
        "connect",
        "checkout",
        "invalidate",
        "close",
        "connect",
        "checkout"
      ])
    }))

  it.effect("a hook that always fails: 3 connection attempts (default schedule = 2 retries), then 'This connection is closed'", () =>
    Effect.gen(function*() {
      let calls = 0
      const { pool, mock } = yield* queuePool({
        poolSize: 1,
        maxOverflow: 0,
        hooks: { onCheckout: () => Effect.suspend(() => (calls++, Effect.fail(new PoolError.DisconnectionError({})))) }
      })
      const exit = yield* Effect.exit(Effect.scoped(pool.checkout))
      const error = errorOf(exit)
      assert.strictEqual(error._tag, "ConnectionInvalidatedError")
      assert.strictEqual(error.message, "This connection is closed")
      assert.strictEqual(mock.connectAttempts(), 3)
      assert.strictEqual(calls, 3)
      assert.strictEqual(mock.open().length, 0)
      assert.deepStrictEqual(yield* pool.status, { size: 1, checkedIn: 1, checkedOut: 0, overflow: 0, waiting: 0 })
    }))

  it.effect("the retry policy is the user's Schedule: recurs(4) = 5 attempts, with its delays on the Clock", () =>
    Effect.gen(function*() {
      const { pool, mock } = yield* queuePool({
        poolSize: 1,
        maxOverflow: 0,
        checkoutRetry: Schedule.max([Schedule.spaced("1 second"), Schedule.recurs(4)]),
        hooks: { onCheckout: () => Effect.fail(new PoolError.DisconnectionError({})) }
      })
      const fiber = yield* Effect.forkChild(Effect.exit(Effect.scoped(pool.checkout)))
      yield* Effect.yieldNow
      assert.strictEqual(mock.connectAttempts(), 1)
      yield* TestClock.adjust("2 seconds")
      assert.strictEqual(mock.connectAttempts(), 3)
      yield* TestClock.adjust("2 seconds")
      const exit = yield* Fiber.join(fiber)
      assert.strictEqual(errorOf(exit)._tag, "ConnectionInvalidatedError")
      assert.strictEqual(mock.connectAttempts(), 5)
    }))

  it.effect("pre-ping: never pings a connection made by this checkout", () =>
    Effect.gen(function*() {
      const { pool, mock } = yield* queuePool({ poolSize: 1, maxOverflow: 0, prePing: true })
      yield* Effect.scoped(pool.checkout)
      assert.deepStrictEqual(mock.connections[0]!.calls, ["rollback"])
      yield* Effect.scoped(pool.checkout)
      assert.deepStrictEqual(mock.connections[0]!.calls, ["rollback", "ping", "rollback"])
    }))

  it.effect("pre-ping: a disconnect invalidates the slot and the pool (by invalidation time), reconnects, no error reaches the user", () =>
    Effect.gen(function*() {
      const { pool, mock, events } = yield* queuePool({ poolSize: 2, maxOverflow: 0, prePing: true })
      const s = yield* Scope.make()
      yield* pool.checkout.pipe(Scope.provide(s))
      yield* pool.checkout.pipe(Scope.provide(s))
      yield* Scope.close(s, Exit.void)
      yield* TestClock.adjust("1 second")
      mock.kill(2) // FIFO: connection 2 comes out first (returned first by the reversed scope close)
      events.length = 0
      const id = yield* Effect.scoped(Effect.map(pool.checkout, (c) => c.connection.id))
      assert.strictEqual(id, 3)
      assert.deepStrictEqual(events.slice(0, 4), ["invalidate", "close", "connect", "checkout"])
      assert.deepStrictEqual(yield* pool.invalidationTime, Option.some(1000))
      // connection 1 is older than the pool-wide invalidation: recycled at its checkout, not pinged
      const s2 = yield* Scope.make()
      const next = yield* pool.checkout.pipe(Scope.provide(s2))
      assert.strictEqual(next.connection.id, 4)
      assert.isTrue(mock.connections[0]!.closed)
      assert.isFalse(mock.connections[0]!.calls.includes("ping"))
      yield* Scope.close(s2, Exit.void)
    }))

  it.effect("pre-ping: a non-disconnect error propagates (DriverError) with the slot invalidated and checked in", () =>
    Effect.gen(function*() {
      const { pool, mock } = yield* queuePool({ poolSize: 1, maxOverflow: 0, prePing: true })
      yield* Effect.scoped(pool.checkout)
      mock.next("ping", "fail")
      const exit = yield* Effect.exit(Effect.scoped(pool.checkout))
      const error = errorOf(exit)
      assert.strictEqual(error._tag, "DriverError")
      assert.strictEqual(error.operation, "ping")
      assert.strictEqual(error.cause._tag, "MockDbError")
      assert.isTrue(mock.connections[0]!.closed)
      assert.deepStrictEqual(yield* pool.status, { size: 1, checkedIn: 1, checkedOut: 0, overflow: 0, waiting: 0 })
    }))

  it.effect("database down: the connect error itself reaches the caller (not a timeout), counts unchanged", () =>
    Effect.gen(function*() {
      const { pool, mock } = yield* queuePool({ poolSize: 2, maxOverflow: 0, prePing: true, timeout: "1 second" })
      yield* Effect.scoped(pool.checkout)
      const before = yield* pool.status
      mock.down()
      const exit = yield* Effect.exit(Effect.scoped(pool.checkout))
      const error = errorOf(exit)
      assert.strictEqual(error._tag, "ConnectError")
      assert.strictEqual(error.cause.message, "database is down")
      assert.deepStrictEqual(yield* pool.status, before)
      // fresh slot, database still down: same story
      const exit2 = yield* Effect.exit(Effect.scoped(Effect.zip(pool.checkout, pool.checkout)))
      assert.strictEqual(errorOf(exit2)._tag, "ConnectError")
      assert.deepStrictEqual(yield* pool.status, before)
      mock.up()
      const id = yield* Effect.scoped(Effect.map(pool.checkout, (c) => c.connection.id))
      assert.strictEqual(id, 2)
    }))
})

describe("pre-ping and reconnect share one connectTimeout", () => {
  it.effect("a silent ping, then a silent reconnect: the checkout fails at connectTimeout (the ping half, the reconnect the rest)", () =>
    Effect.gen(function*() {
      const { pool, mock } = yield* queuePool({
        poolSize: 1,
        maxOverflow: 0,
        prePing: true,
        connectTimeout: "500 millis"
      })
      yield* Effect.scoped(pool.checkout) // made by that checkout: not pinged
      mock.next("ping", "hang")
      mock.next("connect", "hang")
      const attempts = mock.connectAttempts()
      const fiber = yield* Effect.forkChild(Effect.scoped(pool.checkout))
      yield* TestClock.adjust("249 millis")
      assert.strictEqual(mock.connectAttempts(), attempts, "still pinging")
      yield* TestClock.adjust("1 millis")
      assert.strictEqual(
        mock.connectAttempts(),
        attempts + 1,
        "half of connectTimeout: the ping is given up, a reconnect starts"
      )
      assert.isTrue(mock.connections[0]!.closed, "the silent connection was closed")
      yield* TestClock.adjust("249 millis")
      assert.isUndefined(fiber.pollUnsafe(), "reconnecting")
      yield* TestClock.adjust("1 millis")
      const exit = fiber.pollUnsafe()
      assert.isDefined(exit, "done at connectTimeout")
      const error = errorOf(exit!)
      assert.strictEqual(error._tag, "ConnectTimeoutError")
      assert.isTrue(error.afterPrePing)
      assert.strictEqual(error.message, "Pre-ping and reconnect did not finish within 500 ms (connectTimeout)")
      assert.deepStrictEqual(yield* pool.status, { size: 1, checkedIn: 1, checkedOut: 0, overflow: 0, waiting: 0 })
    }))

  it.effect("a ping answered after 200 ms, then a disconnect: the reconnect gets the 300 ms left", () =>
    Effect.gen(function*() {
      let checkouts = 0
      const { pool, mock } = yield* queuePool({
        poolSize: 1,
        maxOverflow: 0,
        prePing: true,
        connectTimeout: "500 millis",
        hooks: {
          // The second checkout finds the (pinged) session gone: invalidate and reconnect.
          onCheckout: () =>
            Effect.suspend(() => ++checkouts === 2 ? Effect.fail(new PoolError.DisconnectionError({})) : Effect.void)
        }
      })
      yield* Effect.scoped(pool.checkout)
      mock.next("ping", { delay: "200 millis" })
      mock.next("connect", "hang")
      const fiber = yield* Effect.forkChild(Effect.scoped(pool.checkout))
      yield* TestClock.adjust("200 millis")
      assert.isUndefined(fiber.pollUnsafe(), "reconnecting")
      yield* TestClock.adjust("299 millis")
      assert.isUndefined(fiber.pollUnsafe(), "reconnecting")
      yield* TestClock.adjust("1 millis")
      const exit = fiber.pollUnsafe()
      assert.isDefined(exit, "done at connectTimeout: 200 ms of ping + 300 ms of reconnect")
      assert.strictEqual(errorOf(exit!)._tag, "ConnectTimeoutError")
      assert.isTrue(errorOf(exit!).afterPrePing)
    }))

  it.effect("a ping that fails at once: the reconnect has the whole bound and the checkout succeeds", () =>
    Effect.gen(function*() {
      const { pool, mock } = yield* queuePool({
        poolSize: 1,
        maxOverflow: 0,
        prePing: true,
        connectTimeout: "500 millis"
      })
      yield* Effect.scoped(pool.checkout)
      mock.kill(1)
      mock.next("connect", { delay: "450 millis" })
      const fiber = yield* Effect.forkChild(Effect.scoped(Effect.map(pool.checkout, (c) => c.connection.id)))
      yield* TestClock.adjust("450 millis")
      assert.strictEqual(yield* Fiber.join(fiber), 2)
    }))
})
