import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Stream } from "effect"
import { ConnectionPool, Driver, PoolEvent, QueuePool } from "effect-db-pool"
import { MockDriver } from "effect-db-pool/testing"
import { hookNames } from "../src/internal/hooks.ts"
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

describe("Hooks", () => {
  // The hook list is the pool's own (src/internal/core.ts, which option validation reads too):
  // a hook added there without an event that fires it, an event whose hook is missing from it,
  // or a hook fired with another hook's event fails here.
  it.effect("every hook of the pool's list fires, each with an event type of its own, as the events stream shows", () =>
    Effect.gen(function*() {
      const heard: Array<readonly [name: string, type: PoolEvent.PoolEventType]> = []
      const hooks: Record<string, PoolEvent.Hook<MockDriver.MockConnection>> = {}
      for (const name of hookNames) hooks[name] = (event) => Effect.sync(() => heard.push([name, event.type]))
      const pool = yield* QueuePool.make<MockDriver.MockConnection>({ poolSize: 1, hooks }).pipe(
        Effect.provide(Driver.layer(MockDriver.make().driver)),
        Effect.orDie
      )
      const streamed: Array<PoolEvent.PoolEventType> = []
      const subscriber = yield* Effect.forkChild(
        Stream.runForEach(pool.events, (e) => Effect.sync(() => streamed.push(e.type)))
      )
      yield* Effect.yieldNow
      // Every event the pool has: first_connect, connect, checkout, reset, checkin; then
      // invalidate, close; soft_invalidate; detach, close_detached; suspend, resume, resize.
      yield* Effect.scoped(pool.checkout)
      yield* Effect.scoped(Effect.flatMap(pool.checkout, (c) => c.invalidate("hard")))
      yield* Effect.scoped(Effect.flatMap(pool.checkout, (c) => c.softInvalidate("soft")))
      yield* Effect.scoped(Effect.flatMap(pool.checkout, (c) => c.detach))
      yield* pool.suspend
      yield* pool.resume
      yield* pool.resize({ poolSize: 2 })
      yield* Effect.yieldNow
      yield* Fiber.interrupt(subscriber)

      const typesOf = new Map<string, Set<PoolEvent.PoolEventType>>()
      for (const [name, type] of heard) typesOf.set(name, (typesOf.get(name) ?? new Set()).add(type))
      for (const name of hookNames) {
        const types = [...(typesOf.get(name) ?? [])]
        assert.strictEqual(types.length, 1, `${name} heard ${types.length === 0 ? "nothing" : types.join(", ")}`)
        // PoolEvent's naming rule: `connect` → `onConnect`, `close_detached` → `onCloseDetached`.
        const hookOf = `on${types[0]!.split("_").map((w) => w[0]!.toUpperCase() + w.slice(1)).join("")}`
        assert.strictEqual(name, hookOf, `the hook of ${types[0]}`)
      }
      assert.strictEqual(new Set(heard.map(([, type]) => type)).size, hookNames.length, "one event type per hook")
      // No event fires without its hook in the list: the stream, which sees every event, saw the same.
      assert.deepStrictEqual(streamed, heard.map(([, type]) => type))
    }))
})
