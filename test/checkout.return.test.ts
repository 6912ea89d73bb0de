import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Scope, Stream } from "effect"
import { ConnectionPool, PoolEvent } from "effect-db-pool"
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

describe("Events", () => {
  it.effect("first checkout and return: first_connect, connect, checkout, reset, checkin", () =>
    Effect.gen(function*() {
      const { pool, events } = yield* queuePool()
      yield* Effect.scoped(pool.checkout)
      assert.deepStrictEqual(events, ["first_connect", "connect", "checkout", "reset", "checkin"])
      events.length = 0
      yield* Effect.scoped(pool.checkout)
      assert.deepStrictEqual(events, ["checkout", "reset", "checkin"])
    }))

  it.effect("first_connect fires once per pool, connect once per connection", () =>
    Effect.gen(function*() {
      const { pool, events } = yield* queuePool({ poolSize: 3 })
      yield* Effect.scoped(Effect.all([pool.checkout, pool.checkout, pool.checkout]))
      assert.strictEqual(events.filter((e) => e === "first_connect").length, 1)
      assert.strictEqual(events.filter((e) => e === "connect").length, 3)
      assert.strictEqual(events.filter((e) => e === "close").length, 0)
    }))

  it.effect("the events stream shows the same events, in the same order, as the hooks", () =>
    Effect.gen(function*() {
      const { pool, events } = yield* queuePool({ poolSize: 1, maxOverflow: 0 })
      const collector = yield* Effect.forkChild(Stream.runCollect(Stream.take(pool.events, 12)))
      yield* Effect.yieldNow
      yield* Effect.scoped(pool.checkout)
      yield* Effect.scoped(Effect.flatMap(pool.checkout, (c) => c.invalidate("bad")))
      yield* Effect.scoped(Effect.flatMap(pool.checkout, (c) => c.detach))
      const streamed = yield* Fiber.join(collector)
      assert.deepStrictEqual(streamed.map((e) => e.type), events.slice(0, 12))
      assert.deepStrictEqual(events.slice(0, 12), [
        "first_connect",
        "connect",
        "checkout",
        "reset",
        "checkin",
        "checkout",
        "invalidate",
        "close",
        "checkin",
        "connect",
        "checkout",
        "detach"
      ])
      assert.strictEqual(streamed[6]!.cause, "bad")
      assert.strictEqual(streamed[0]!.pool, "QueuePool")
    }))

  it.effect("dispose fires close per idle connection; an ordinary checkin fires no close", () =>
    Effect.gen(function*() {
      const { pool, events } = yield* queuePool({ poolSize: 3 })
      yield* Effect.scoped(Effect.all([pool.checkout, pool.checkout]))
      assert.strictEqual(events.filter((e) => e === "close").length, 0)
      events.length = 0
      yield* pool.dispose
      assert.deepStrictEqual(events, ["close", "close"])
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

describe("The events stream is bounded", () => {
  it.effect("a stalled subscriber loses the newest events (counted), holds no connection, never blocks the pool", () =>
    Effect.gen(function*() {
      const { pool } = yield* queuePool({ poolSize: 2 })
      const stall = yield* Deferred.make<void>()
      const first: Array<PoolEvent.ObservedEvent> = []
      // Takes one event, then never pulls again.
      yield* Effect.forkChild(
        Stream.runForEach(pool.events, (e) => Effect.andThen(Effect.sync(() => first.push(e)), Deferred.await(stall)))
      )
      yield* Effect.yieldNow
      const cycles = 3_000 // 3 events each (checkout, reset, checkin) + first_connect, connect
      for (let i = 0; i < cycles; i++) yield* pool.use(() => Effect.void)
      const emitted = 3 * cycles + 2
      const dropped = yield* pool.droppedEvents
      // The subscriber pulled one batch before it stalled; everything past its buffer was dropped.
      assert.isAtMost(dropped, emitted - ConnectionPool.eventBufferSize)
      assert.isAtLeast(dropped, emitted - ConnectionPool.eventBufferSize - 1024)
      assert.deepStrictEqual(first.map((e) => e.type), ["first_connect"])
      assert.deepStrictEqual(Object.keys(first[0]!).sort(), ["pool", "slot", "type"])
      assert.deepStrictEqual(yield* pool.status, { size: 2, checkedIn: 1, checkedOut: 0, overflow: -1, waiting: 0 })
    }))
})
