import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Option, Schedule, Scope } from "effect"
import { TestClock } from "effect/testing"
import { queuePool } from "./helpers.ts"

const errorOf = (exit: Exit.Exit<unknown, unknown>): any =>
  Exit.isFailure(exit) ? (exit.cause.reasons.find((r) => r._tag === "Fail") as any)?.error : undefined

describe("Recycle and invalidation", () => {
  it.effect("recycle is max age since connect, checked only at checkout (+1 s same, +35 s new on the same slot)", () =>
    Effect.gen(function*() {
      const { pool, mock, events } = yield* queuePool({ poolSize: 1, maxOverflow: 0, recycle: "30 seconds" })
      const first = yield* Effect.scoped(Effect.map(pool.checkout, (c) => [c.slot, c.connection.id]))
      yield* TestClock.adjust("1 second")
      const second = yield* Effect.scoped(Effect.map(pool.checkout, (c) => [c.slot, c.connection.id]))
      assert.deepStrictEqual(second, first)
      yield* TestClock.adjust("34 seconds")
      // nothing happens while the connection sits idle past its age
      assert.strictEqual(mock.connections.length, 1)
      events.length = 0
      const third = yield* Effect.scoped(Effect.map(pool.checkout, (c) => [c.slot, c.connection.id]))
      assert.deepStrictEqual(third, [first[0], 2])
      assert.isTrue(mock.connections[0]!.closed)
      assert.deepStrictEqual(events, ["close", "connect", "checkout", "reset", "checkin"])
    }))

  it.effect("hard invalidate: fires invalidate, closes now, the handle is unusable, the slot reconnects next checkout", () =>
    Effect.gen(function*() {
      const { pool, mock, events } = yield* queuePool({ poolSize: 1, maxOverflow: 0 })
      const scope = yield* Scope.make()
      const conn = yield* pool.checkout.pipe(Scope.provide(scope))
      events.length = 0
      yield* conn.invalidate(new Error("boom"))
      assert.deepStrictEqual(events, ["invalidate", "close", "checkin"])
      assert.isTrue(mock.connections[0]!.closed)
      assert.isFalse(conn.isValid)
      assert.throws(() => conn.connection, "This connection is closed")
      const raw = yield* Effect.exit(conn.raw)
      assert.isTrue(Exit.isFailure(raw))
      // the slot is already back (SQLAlchemy checks in on invalidate); the scope's release is a no-op
      assert.deepStrictEqual(yield* pool.status, { size: 1, checkedIn: 1, checkedOut: 0, overflow: 0, waiting: 0 })
      yield* Scope.close(scope, Exit.void)
      assert.deepStrictEqual(events, ["invalidate", "close", "checkin"])
      const again = yield* Effect.scoped(Effect.map(pool.checkout, (c) => [c.slot, c.connection.id]))
      assert.deepStrictEqual(again, [conn.slot, 2])
    }))

  it.effect("soft invalidate: usable until returned, recycled at its next checkout", () =>
    Effect.gen(function*() {
      const { pool, mock, events } = yield* queuePool({ poolSize: 1, maxOverflow: 0 })
      yield* Effect.scoped(Effect.gen(function*() {
        const conn = yield* pool.checkout
        events.length = 0
        yield* conn.softInvalidate("stale")
        assert.deepStrictEqual(events, ["soft_invalidate"])
        assert.isTrue(conn.isValid)
        assert.strictEqual(conn.connection.id, 1)
        assert.isFalse(mock.connections[0]!.closed)
      }))
      assert.isFalse(mock.connections[0]!.closed)
      events.length = 0
      const id = yield* Effect.scoped(Effect.map(pool.checkout, (c) => c.connection.id))
      assert.strictEqual(id, 2)
      assert.isTrue(mock.connections[0]!.closed)
      assert.deepStrictEqual(events.slice(0, 3), ["close", "connect", "checkout"])
    }))

  it.effect("pool-wide invalidate: connections older than it are recycled at their next checkout, idle ones not closed eagerly", () =>
    Effect.gen(function*() {
      const { pool, mock } = yield* queuePool({ poolSize: 3, maxOverflow: 0 })
      const scope = yield* Scope.make()
      for (let i = 0; i < 3; i++) yield* pool.checkout.pipe(Scope.provide(scope))
      yield* Scope.close(scope, Exit.void)
      yield* TestClock.adjust("5 seconds")
      yield* pool.invalidateAll
      assert.deepStrictEqual(yield* pool.invalidationTime, Option.some(5000))
      assert.strictEqual(mock.open().length, 3)
      const id = yield* Effect.scoped(Effect.map(pool.checkout, (c) => c.connection.id))
      assert.strictEqual(id, 4)
      assert.strictEqual(mock.open().length, 3)
      // the new connection is younger than the invalidation: it is kept
      const s = yield* Scope.make()
      const ids = []
      for (let i = 0; i < 3; i++) ids.push((yield* pool.checkout.pipe(Scope.provide(s))).connection.id)
      assert.deepStrictEqual(ids, [5, 6, 4])
      yield* Scope.close(s, Exit.void)
    }))

  it.effect("invalidating a slot with no connection does nothing and fires no event", () =>
    Effect.gen(function*() {
      const { pool, events } = yield* queuePool({ poolSize: 1, maxOverflow: 0 })
      const scope = yield* Scope.make()
      const conn = yield* pool.checkout.pipe(Scope.provide(scope))
      yield* conn.invalidate()
      events.length = 0
      yield* conn.invalidate()
      yield* conn.softInvalidate()
      assert.deepStrictEqual(events, [])
      yield* Scope.close(scope, Exit.void)
    }))

  it.effect("a reconnect that fails fires no connect/checkout hooks; a later success fires [connect, checkout]", () =>
    Effect.gen(function*() {
      const { pool, mock, events } = yield* queuePool({ poolSize: 1, maxOverflow: 0 })
      const scope = yield* Scope.make()
      const conn = yield* pool.checkout.pipe(Scope.provide(scope))
      yield* conn.invalidate()
      yield* Scope.close(scope, Exit.void)
      mock.next("connect", "fail")
      events.length = 0
      const failed = yield* Effect.exit(Effect.scoped(pool.checkout))
      assert.isTrue(Exit.isFailure(failed))
      assert.deepStrictEqual(events, [])
      const ok = yield* Effect.scoped(Effect.map(pool.checkout, (c) => c.connection.id))
      assert.strictEqual(ok, 2)
      assert.deepStrictEqual(events.slice(0, 2), ["connect", "checkout"])
      assert.deepStrictEqual(yield* pool.status, { size: 1, checkedIn: 1, checkedOut: 0, overflow: 0, waiting: 0 })
    }))

  it.effect("a failing connect hook fails that checkout (ConnectError with the hook's error) but does not block the pool", () =>
    Effect.gen(function*() {
      let calls = 0
      const { pool, mock } = yield* queuePool({
        poolSize: 1,
        maxOverflow: 0,
        hooks: {
          onConnect: () => Effect.suspend(() => ++calls === 1 ? Effect.fail("hook says no") : Effect.void)
        }
      })
      const exit = yield* Effect.exit(Effect.scoped(pool.checkout))
      assert.isTrue(Exit.isFailure(exit))
      const error = Exit.isFailure(exit) ? (exit.cause.reasons[0] as any).error : undefined
      assert.strictEqual(error._tag, "ConnectError")
      assert.strictEqual(error.cause, "hook says no")
      assert.isTrue(mock.connections[0]!.closed)
      const id = yield* Effect.scoped(Effect.map(pool.checkout, (c) => c.connection.id))
      assert.strictEqual(id, 2)
      assert.strictEqual(mock.open().length, 1)
    }))
})

describe("Timeouts told apart", () => {
  it.effect("connectTimeout → ConnectTimeoutError; waiting for a slot → PoolTimeoutError", () =>
    Effect.gen(function*() {
      const { pool, mock } = yield* queuePool({
        poolSize: 1,
        maxOverflow: 0,
        timeout: "5 seconds",
        connectTimeout: "2 seconds"
      })
      mock.next("connect", "hang")
      const connecting = yield* Effect.forkChild(Effect.exit(Effect.scoped(pool.checkout)))
      yield* Effect.yieldNow
      yield* TestClock.adjust("2 seconds")
      const e1 = errorOf(yield* Fiber.join(connecting))
      assert.strictEqual(e1._tag, "ConnectTimeoutError")
      assert.strictEqual(e1.message, "Connecting timed out after 2000 ms (connectTimeout)")
      assert.strictEqual(mock.open().length, 0)
      const scope = yield* Scope.make()
      yield* pool.checkout.pipe(Scope.provide(scope))
      const waiting = yield* Effect.forkChild(Effect.exit(Effect.scoped(pool.checkout)))
      yield* Effect.yieldNow
      yield* TestClock.adjust("5 seconds")
      const e2 = errorOf(yield* Fiber.join(waiting))
      assert.strictEqual(e2._tag, "PoolTimeoutError")
      yield* Scope.close(scope, Exit.void)
    }))

  it.effect("connectRetry retries failed connects with its backoff", () =>
    Effect.gen(function*() {
      const { pool, mock } = yield* queuePool({
        poolSize: 1,
        connectRetry: Schedule.max([Schedule.exponential("100 millis"), Schedule.recurs(3)])
      })
      mock.next("connect", "fail", 2)
      const fiber = yield* Effect.forkChild(Effect.scoped(Effect.map(pool.checkout, (c) => c.connection.id)))
      yield* Effect.yieldNow
      assert.strictEqual(mock.connectAttempts(), 1)
      yield* TestClock.adjust("100 millis")
      assert.strictEqual(mock.connectAttempts(), 2)
      yield* TestClock.adjust("200 millis")
      assert.strictEqual(yield* Fiber.join(fiber), 1)
      assert.strictEqual(mock.connectAttempts(), 3)
    }))
})

describe("maxUses", () => {
  it.effect("a connection is replaced after maxUses checkouts", () =>
    Effect.gen(function*() {
      const { pool, mock } = yield* queuePool({ poolSize: 1, maxUses: 3 })
      const ids: Array<number> = []
      for (let i = 0; i < 7; i++) ids.push(yield* Effect.scoped(Effect.map(pool.checkout, (c) => c.connection.id)))
      assert.deepStrictEqual(ids, [1, 1, 1, 2, 2, 2, 3])
      assert.deepStrictEqual(mock.connections[0]!.calls, ["rollback", "rollback", "rollback", "close"])
    }))
})
