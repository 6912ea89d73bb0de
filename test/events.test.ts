import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Stream } from "effect"
import { ConnectionPool, PoolEvent } from "effect-db-pool"
import { queuePool } from "./helpers.ts"

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
