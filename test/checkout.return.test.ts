import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Scope } from "effect"
import { TestClock } from "effect/testing"
import { queuePool } from "./helpers.ts"

describe("Reset on return", () => {
  it.effect("order on a normal return: reset hook → rollback → checkin hook → back to pool", () =>
    Effect.gen(function*() {
      const { pool, mock } = yield* queuePool({ poolSize: 1, maxOverflow: 0 })
      const order: Array<string> = []
      const { pool: p2, mock: m2 } = yield* queuePool({
        poolSize: 1,
        maxOverflow: 0,
        hooks: {
          onReset: (e) => Effect.sync(() => order.push(`reset:${e.connection!.calls.join(",")}`)),
          onCheckin: (e) => Effect.sync(() => order.push(`checkin:${e.connection!.calls.join(",")}`))
        }
      })
      yield* Effect.scoped(p2.checkout)
      assert.deepStrictEqual(order, ["reset:", "checkin:rollback"])
      assert.deepStrictEqual(m2.connections[0]!.calls, ["rollback"])
      yield* Effect.scoped(pool.checkout)
      assert.deepStrictEqual(mock.connections[0]!.calls, ["rollback"])
    }))

  it.effect("resetOnReturn commit commits; none runs nothing but still fires the reset hook", () =>
    Effect.gen(function*() {
      const commit = yield* queuePool({ resetOnReturn: "commit" })
      yield* Effect.scoped(commit.pool.checkout)
      assert.deepStrictEqual(commit.mock.connections[0]!.calls, ["commit"])
      const none = yield* queuePool({ resetOnReturn: "none" })
      yield* Effect.scoped(none.pool.checkout)
      assert.deepStrictEqual(none.mock.connections[0]!.calls, [])
      assert.deepStrictEqual(none.events, ["first_connect", "connect", "checkout", "reset", "checkin"])
    }))

  it.effect("a failing reset invalidates the slot (reset → invalidate → close → checkin); the next checkout reconnects", () =>
    Effect.gen(function*() {
      const { pool, mock, events } = yield* queuePool({ poolSize: 1, maxOverflow: 0 })
      mock.next("rollback", "fail")
      yield* Effect.scoped(pool.checkout)
      assert.deepStrictEqual(events.slice(3), ["reset", "invalidate", "close", "checkin"])
      assert.isTrue(mock.connections[0]!.closed)
      assert.deepStrictEqual(yield* pool.status, { size: 1, checkedIn: 1, checkedOut: 0, overflow: 0, waiting: 0 })
      const id = yield* Effect.scoped(Effect.map(pool.checkout, (c) => c.connection.id))
      assert.strictEqual(id, 2)
    }))

  it.effect("a reset that hangs is bounded by resetTimeout: the slot is invalidated and freed", () =>
    Effect.gen(function*() {
      const { pool, mock } = yield* queuePool({ poolSize: 1, maxOverflow: 0, resetTimeout: "2 seconds" })
      mock.next("rollback", "hang")
      const releaser = yield* Effect.forkChild(Effect.scoped(pool.checkout))
      yield* Effect.yieldNow
      assert.strictEqual((yield* pool.status).checkedOut, 1)
      yield* TestClock.adjust("2 seconds")
      yield* Fiber.join(releaser)
      assert.isTrue(mock.connections[0]!.closed)
      assert.deepStrictEqual(yield* pool.status, { size: 1, checkedIn: 1, checkedOut: 0, overflow: 0, waiting: 0 })
    }))

  it.effect("interrupting the fiber whose scope is releasing still checks the slot in", () =>
    Effect.gen(function*() {
      const { pool, mock } = yield* queuePool({ poolSize: 1, maxOverflow: 0 })
      mock.next("rollback", { delay: "1 second" })
      const user = yield* Effect.forkChild(Effect.scoped(pool.checkout))
      yield* Effect.yieldNow
      const interrupter = yield* Effect.forkChild(Fiber.interrupt(user))
      yield* Effect.yieldNow
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(interrupter)
      assert.deepStrictEqual(mock.connections[0]!.calls, ["rollback"])
      assert.isFalse(mock.connections[0]!.closed)
      assert.deepStrictEqual(yield* pool.status, { size: 1, checkedIn: 1, checkedOut: 0, overflow: 0, waiting: 0 })
    }))
})

describe("Detach and info", () => {
  it.effect("detach: the slot connects anew next time; returning the handle resets and closes its connection", () =>
    Effect.gen(function*() {
      const { pool, mock, events } = yield* queuePool({ poolSize: 1, maxOverflow: 0 })
      const scope = yield* Scope.make()
      const conn = yield* pool.checkout.pipe(Scope.provide(scope))
      const slot = conn.slot
      events.length = 0
      yield* conn.detach
      assert.deepStrictEqual(events, ["detach"])
      assert.isTrue(conn.isDetached)
      assert.strictEqual(conn.connection.id, 1)
      // the slot is free at once: another checkout gets a new connection on the same slot
      const other = yield* Effect.scoped(Effect.map(pool.checkout, (c) => [c.slot, c.connection.id]))
      assert.deepStrictEqual(other, [slot, 2])
      events.length = 0
      yield* Scope.close(scope, Exit.void)
      assert.deepStrictEqual(events, ["reset", "close_detached"])
      assert.deepStrictEqual(mock.connections[0]!.calls, ["rollback", "close"])
      assert.isFalse(mock.connections[1]!.closed)
      assert.deepStrictEqual(yield* pool.status, { size: 1, checkedIn: 1, checkedOut: 0, overflow: 0, waiting: 0 })
    }))

  it.effect("info survives checkin, is cleared on reconnect, and is copied to a detached handle; recordInfo lives with the slot", () =>
    Effect.gen(function*() {
      const { pool } = yield* queuePool({ poolSize: 1, maxOverflow: 0 })
      yield* Effect.scoped(Effect.map(pool.checkout, (c) => {
        c.info.set("tenant", "a")
        c.recordInfo?.set("slot-note", 1)
      }))
      const seen = yield* Effect.scoped(
        Effect.map(pool.checkout, (c) => [c.info.get("tenant"), c.recordInfo?.get("slot-note")])
      )
      assert.deepStrictEqual(seen, ["a", 1])
      // detach: the handle keeps a copy; the slot's info goes with the next connection (cleared)
      const scope = yield* Scope.make()
      const detached = yield* pool.checkout.pipe(Scope.provide(scope))
      yield* detached.detach
      detached.info.set("only-detached", true)
      assert.strictEqual(detached.info.get("tenant"), "a")
      const after = yield* Effect.scoped(
        Effect.map(
          pool.checkout,
          (c) => [c.info.get("tenant"), c.info.get("only-detached"), c.recordInfo?.get("slot-note")]
        )
      )
      assert.deepStrictEqual(after, [undefined, undefined, 1])
      yield* Scope.close(scope, Exit.void)
      // invalidate → reconnect clears info, keeps recordInfo
      yield* Effect.scoped(
        Effect.flatMap(pool.checkout, (c) => Effect.andThen(Effect.sync(() => c.info.set("x", 1)), c.invalidate()))
      )
      const fresh = yield* Effect.scoped(
        Effect.map(pool.checkout, (c) => [c.info.get("x"), c.recordInfo?.get("slot-note")])
      )
      assert.deepStrictEqual(fresh, [undefined, 1])
    }))
})
