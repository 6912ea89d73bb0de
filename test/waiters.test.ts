/**
 * The waiter queue's memory stays bounded under steady load: a pool that always has someone
 * waiting never runs its queue empty, and the queue's array must not keep a slot for every wait
 * ever made (found by `npm run soak`: the array of a busy QueuePool grew by ~8 bytes per wait).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import type { PoolCore } from "../src/internal/core.ts"
import { ConnectionRecord } from "../src/internal/record.ts"
import type { Restore } from "../src/internal/strategy.ts"
import { WaiterQueue } from "../src/internal/waiters.ts"

/** The queue reads only the clock and the (absent) instruments of its pool. */
const core = { now: () => 0, instruments: undefined } as unknown as PoolCore<unknown>
const restore: Restore = (effect) => effect

describe("WaiterQueue", () => {
  it.effect("never empty under steady load: 5,000 waits served in order, the array stays small", () =>
    Effect.gen(function*() {
      const queue = new WaiterQueue<unknown, never>(core, -1, () => undefined as never, () => Effect.void)
      const record = new ConnectionRecord<unknown>(1)
      let oldest = yield* Effect.forkChild(queue.wait(restore))
      let largest = 0
      for (let i = 0; i < 5_000; i++) {
        // Someone new queues up before the oldest is served: the queue is never empty.
        const next = yield* Effect.forkChild(queue.wait(restore))
        yield* Effect.yieldNow
        assert.strictEqual(queue.size, 2)
        assert.isTrue(queue.handOff(record))
        assert.strictEqual(yield* Fiber.join(oldest), record)
        largest = Math.max(largest, queue.footprint)
        oldest = next
      }
      assert.isAtMost(largest, 2048)
      assert.isTrue(queue.handOff(record))
      assert.strictEqual(yield* Fiber.join(oldest), record)
      assert.strictEqual(queue.size, 0)
      assert.strictEqual(queue.footprint, 0)
    }))

  it.effect("waiters interrupted while another waits keep no slot once the queue empties", () =>
    Effect.gen(function*() {
      const queue = new WaiterQueue<unknown, never>(core, -1, () => undefined as never, () => Effect.void)
      const first = yield* Effect.forkChild(queue.wait(restore))
      for (let i = 0; i < 100; i++) {
        const gone = yield* Effect.forkChild(queue.wait(restore))
        yield* Effect.yieldNow
        yield* Fiber.interrupt(gone)
      }
      assert.strictEqual(queue.size, 1)
      yield* Fiber.interrupt(first)
      assert.strictEqual(queue.size, 0)
      assert.strictEqual(queue.footprint, 0)
    }))
})
