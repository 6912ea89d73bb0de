/**
 * A checkout never waits forever on the driver: a pre-ping that hangs (a half-open socket: the
 * server's host vanished without a reset) is bounded by half of `connectTimeout`; the connection
 * is then treated as disconnected, invalidated, and the checkout retried on a fresh one within
 * the other half (ping and reconnect share one `connectTimeout`).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { AssertionPool, FiberPool, StaticPool } from "effect-db-pool"
import { TestClock } from "effect/testing"
import type { MakePool } from "../helpers.ts"
import { queuePool, strategyPool } from "../helpers.ts"

describe("bounded checkout", () => {
  it.effect("QueuePool: a hanging pre-ping ends at half of connectTimeout; the checkout gets a fresh connection", () =>
    Effect.gen(function*() {
      const { pool, mock, events } = yield* queuePool({
        poolSize: 1,
        maxOverflow: 0,
        prePing: true,
        connectTimeout: "2 seconds",
        timeout: "Infinity"
      })
      assert.strictEqual(yield* pool.use((c) => Effect.succeed(c.connection.id)), 1)
      mock.next("ping", "hang")
      const fiber = yield* Effect.forkChild(pool.use((c) => Effect.succeed(c.connection.id)))
      yield* TestClock.adjust("999 millis")
      assert.isUndefined(fiber.pollUnsafe(), "still pinging before half of connectTimeout")
      yield* TestClock.adjust("1 millis")
      assert.strictEqual(yield* Fiber.join(fiber), 2)
      assert.isTrue(mock.connections[0]!.closed)
      assert.include(events, "invalidate")
      assert.deepStrictEqual(yield* pool.status, { size: 1, checkedIn: 1, checkedOut: 0, overflow: 0, waiting: 0 })
      assert.strictEqual(mock.open().length, 1)
    }))

  it.effect("QueuePool: when every ping hangs, half a connectTimeout later a fresh (unpinged) connection serves", () =>
    Effect.gen(function*() {
      const { pool, mock } = yield* queuePool({
        poolSize: 1,
        maxOverflow: 0,
        prePing: true,
        connectTimeout: "1 second"
      })
      yield* pool.use(() => Effect.void)
      mock.set("ping", "hang")
      // Retries reconnect (fresh connections are not pinged), so one hang costs half a connectTimeout.
      const fiber = yield* Effect.forkChild(pool.use((c) => Effect.succeed(c.connection.id)))
      yield* TestClock.adjust("499 millis")
      assert.isUndefined(fiber.pollUnsafe())
      yield* TestClock.adjust("1 millis")
      assert.strictEqual(yield* Fiber.join(fiber), 2)
      assert.strictEqual((yield* pool.status).checkedOut, 0)
    }))

  const singles: ReadonlyArray<readonly [string, MakePool]> = [
    ["StaticPool", StaticPool.make],
    ["FiberPool", FiberPool.make],
    ["AssertionPool", AssertionPool.make]
  ]
  for (const [name, make] of singles) {
    it.effect(`${name}: a hanging pre-ping ends at half of connectTimeout with a fresh connection`, () =>
      Effect.gen(function*() {
        const { pool, mock } = yield* strategyPool(make, { prePing: true, connectTimeout: "2 seconds" })
        // One fiber checks out twice (FiberPool keeps a connection per fiber).
        const fiber = yield* Effect.forkChild(Effect.gen(function*() {
          yield* pool.use(() => Effect.void)
          mock.next("ping", "hang")
          return yield* pool.use((c) => Effect.succeed(c.connection.id))
        }))
        yield* TestClock.adjust("999 millis")
        assert.isUndefined(fiber.pollUnsafe())
        yield* TestClock.adjust("1 millis")
        assert.strictEqual(yield* Fiber.join(fiber), 2)
        assert.isTrue(mock.connections[0]!.closed)
        assert.strictEqual((yield* pool.status).checkedOut, 0)
      }))
  }
})
