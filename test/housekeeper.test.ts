import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Scope } from "effect"
import { TestClock } from "effect/testing"
import { queuePool } from "./helpers.ts"

describe("Warm-up (minIdle)", () => {
  it.effect("warms up to minIdle in the background without blocking checkouts", () =>
    Effect.gen(function*() {
      const { pool, mock } = yield* queuePool({ poolSize: 5, minIdle: 3, housekeepingPeriod: "1 second" })
      yield* Effect.yieldNow
      assert.strictEqual(mock.connections.length, 3)
      assert.deepStrictEqual(yield* pool.status, { size: 5, checkedIn: 3, checkedOut: 0, overflow: -2, waiting: 0 })
      // a checkout takes one; the next round tops the idle list back up to 3
      const scope = yield* Scope.make()
      yield* pool.checkout.pipe(Scope.provide(scope))
      yield* TestClock.adjust("1 second")
      assert.deepStrictEqual(yield* pool.status, { size: 5, checkedIn: 3, checkedOut: 1, overflow: -1, waiting: 0 })
      // never beyond poolSize
      yield* pool.checkout.pipe(Scope.provide(scope))
      yield* pool.checkout.pipe(Scope.provide(scope))
      yield* TestClock.adjust("1 second")
      assert.deepStrictEqual(yield* pool.status, { size: 5, checkedIn: 2, checkedOut: 3, overflow: 0, waiting: 0 })
      yield* Scope.close(scope, Exit.void)
    }))

  it.effect("recovers after connect failures, backing off exponentially", () =>
    Effect.gen(function*() {
      const { pool, mock } = yield* queuePool({ poolSize: 5, minIdle: 2, housekeepingPeriod: "1 second" })
      // (the pool is built before we script: the first round already ran)
      yield* Effect.yieldNow
      assert.strictEqual(mock.connections.length, 2)
      yield* pool.dispose
      mock.down()
      yield* TestClock.adjust("1 second") // round at t=1: fails → back off 1 s
      const attempts1 = mock.connectAttempts()
      yield* TestClock.adjust("1 second") // t=2: fails → back off 2 s
      yield* TestClock.adjust("1 second") // t=3: skipped (backing off)
      const attempts3 = mock.connectAttempts()
      assert.strictEqual(attempts3 - attempts1, 1)
      yield* TestClock.adjust("1 second") // t=4: fails → back off 4 s
      assert.strictEqual(mock.connectAttempts() - attempts1, 2)
      assert.deepStrictEqual(yield* pool.status, { size: 5, checkedIn: 0, checkedOut: 0, overflow: -5, waiting: 0 })
      mock.up()
      yield* TestClock.adjust("4 seconds")
      assert.deepStrictEqual(yield* pool.status, { size: 5, checkedIn: 2, checkedOut: 0, overflow: -3, waiting: 0 })
      assert.strictEqual(mock.open().length, 2)
    }))
})

describe("Idle expiry (idleTimeout)", () => {
  it.effect("closes connections idle longer than idleTimeout, down to minIdle", () =>
    Effect.gen(function*() {
      const { pool, mock, events } = yield* queuePool({
        poolSize: 2,
        maxOverflow: 3,
        minIdle: 1,
        idleTimeout: "30 seconds",
        housekeepingPeriod: "5 seconds"
      })
      yield* Effect.yieldNow
      const scope = yield* Scope.make()
      for (let i = 0; i < 4; i++) yield* pool.checkout.pipe(Scope.provide(scope))
      yield* Scope.close(scope, Exit.void) // 2 idle (pool size), 2 overflow closed on return
      assert.strictEqual(mock.open().length, 2)
      events.length = 0
      yield* TestClock.adjust("25 seconds")
      assert.strictEqual(mock.open().length, 2)
      yield* TestClock.adjust("10 seconds")
      assert.strictEqual(mock.open().length, 1)
      assert.deepStrictEqual(events, ["close"])
      yield* TestClock.adjust("5 minutes")
      assert.strictEqual(mock.open().length, 1)
      assert.deepStrictEqual(yield* pool.status, { size: 2, checkedIn: 1, checkedOut: 0, overflow: -1, waiting: 0 })
    }))
})

describe("Keepalive", () => {
  it.effect("pings idle connections in the background; a dead one is invalidated before anyone checks it out", () =>
    Effect.gen(function*() {
      const { pool, mock, events } = yield* queuePool({
        poolSize: 2,
        keepalive: "1 minute",
        housekeepingPeriod: "10 seconds"
      })
      yield* Effect.scoped(Effect.all([pool.checkout, pool.checkout]))
      mock.kill(1)
      events.length = 0
      yield* TestClock.adjust("1 minute")
      assert.deepStrictEqual(mock.connections[1]!.calls, ["rollback", "ping"])
      assert.isTrue(mock.connections[0]!.closed)
      assert.deepStrictEqual(events, ["invalidate", "close"])
      assert.deepStrictEqual(yield* pool.status, { size: 2, checkedIn: 1, checkedOut: 0, overflow: -1, waiting: 0 })
      const id = yield* Effect.scoped(Effect.map(pool.checkout, (c) => c.connection.id))
      assert.strictEqual(id, 2)
    }))

  it.effect("a connection in use is never pinged", () =>
    Effect.gen(function*() {
      const { pool, mock } = yield* queuePool({ poolSize: 1, keepalive: "1 minute", housekeepingPeriod: "10 seconds" })
      const scope = yield* Scope.make()
      yield* pool.checkout.pipe(Scope.provide(scope))
      yield* TestClock.adjust("10 minutes")
      assert.deepStrictEqual(mock.connections[0]!.calls, [])
      yield* Scope.close(scope, Exit.void)
    }))
})

describe("Lifetime (maxLifetime with jitter)", () => {
  it.effect("lifetimes are spread by the jitter so connections do not all expire together", () =>
    Effect.gen(function*() {
      const { pool, mock } = yield* queuePool({
        poolSize: 50,
        maxLifetime: "10 minutes",
        maxLifetimeJitter: "1 minute",
        housekeepingPeriod: "1 second"
      })
      yield* Effect.scoped(Effect.all(Array.from({ length: 50 }, () => pool.checkout)))
      assert.strictEqual(mock.open().length, 50)
      yield* TestClock.adjust("9 minutes")
      assert.strictEqual(mock.open().length, 50)
      // retirements happen across the jitter window, not all at once
      const closedAt: Array<number> = []
      for (let s = 0; s < 60; s++) {
        yield* TestClock.adjust("1 second")
        closedAt.push(50 - mock.open().length)
      }
      assert.strictEqual(closedAt[59], 50)
      const firstHalf = closedAt[29]!
      assert.isAbove(firstHalf, 10)
      assert.isBelow(firstHalf, 40)
      assert.deepStrictEqual(yield* pool.status, { size: 50, checkedIn: 0, checkedOut: 0, overflow: -50, waiting: 0 })
    }))

  it.effect("a checkout never gets a connection past its lifetime", () =>
    Effect.gen(function*() {
      const { pool } = yield* queuePool({ poolSize: 1, maxLifetime: "1 minute", maxLifetimeJitter: "0 millis" })
      const first = yield* Effect.scoped(Effect.map(pool.checkout, (c) => c.connection.id))
      yield* TestClock.adjust("1 minute")
      const second = yield* Effect.scoped(Effect.map(pool.checkout, (c) => c.connection.id))
      assert.deepStrictEqual([first, second], [1, 2])
    }))
})
