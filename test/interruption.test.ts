import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Random, Scope } from "effect"
import type { MockDriver } from "effect-db-pool/testing"
import { checkoutIn, queuePool } from "./helpers.ts"

/** A behaviour that is "ok" most of the time, sometimes slow, sometimes failing. */
const flaky = (failRate: number, failure: "fail" | "disconnect" = "fail") => (): MockDriver.MockBehaviour => {
  const r = Math.random()
  if (r < failRate) return failure
  if (r < 0.5) return { delay: `${Math.floor(Math.random() * 2)} millis` }
  return "ok"
}

describe("Interruption", () => {
  it.live(
    "thousands of checkouts and releases interrupted at random points leak no slot, connection or waiter",
    () =>
      Effect.gen(function*() {
        const { pool, mock } = yield* queuePool({
          poolSize: 4,
          maxOverflow: 4,
          timeout: "20 millis",
          prePing: true,
          resetTimeout: "50 millis"
        })
        mock.set("connect", flaky(0.05))
        mock.set("ping", flaky(0.05, "disconnect"))
        mock.set("rollback", flaky(0.05))
        mock.set("close", flaky(0.05))
        let interrupted = 0
        let completed = 0
        let failed = 0
        const user = (i: number) =>
          Effect.gen(function*() {
            const hold = yield* Random.nextIntBetween(0, 3)
            const work = i % 2 === 0
              ? Effect.scoped(Effect.andThen(pool.checkout, Effect.sleep(`${hold} millis`)))
              : pool.use((c) => Effect.andThen(Effect.sleep(`${hold} millis`), c.raw))
            const fiber = yield* Effect.forkChild(work)
            // interrupt at a random point: before it starts, while waiting, connecting, holding or releasing
            const after = yield* Random.nextIntBetween(0, 4)
            if (after < 3) {
              for (let k = 0; k < after; k++) yield* Effect.yieldNow
              if ((yield* Random.nextBoolean)) yield* Effect.sleep(`${after} millis`)
              yield* Fiber.interrupt(fiber)
            }
            const exit = yield* Fiber.await(fiber)
            if (exit._tag === "Success") completed++
            else if (exit.cause.reasons.every((r) => r._tag === "Interrupt")) interrupted++
            else failed++
          })
        for (let round = 0; round < 10; round++) {
          yield* Effect.forEach(Array.from({ length: 300 }, (_, i) => i), user, { concurrency: 100, discard: true })
          const status = yield* pool.status
          assert.strictEqual(status.checkedOut, 0, `round ${round}: checkedOut`)
          assert.strictEqual(status.waiting, 0, `round ${round}: waiting`)
          assert.isAtMost(status.overflow, 4)
          // every connection the driver still holds is one the pool holds idle
          assert.isAtMost(mock.open().length, status.checkedIn, `round ${round}: orphaned connections`)
        }
        assert.strictEqual(completed + interrupted + failed, 3000)
        assert.isAbove(interrupted, 100)
        assert.isAbove(completed, 100)
        mock.set("close", "ok")
        yield* pool.dispose
        assert.strictEqual(mock.open().length, 0)
        assert.deepStrictEqual(yield* pool.status, { size: 4, checkedIn: 0, checkedOut: 0, overflow: -4, waiting: 0 })
      }),
    60_000
  )

  it.effect("a checkout interrupted while its connect hangs leaves no connection behind and frees its slot", () =>
    Effect.gen(function*() {
      const { pool, mock } = yield* queuePool({ poolSize: 1, maxOverflow: 0 })
      mock.next("connect", "hang")
      const fiber = yield* Effect.forkChild(Effect.scoped(pool.checkout))
      yield* Effect.yieldNow
      assert.strictEqual((yield* pool.status).checkedOut, 1)
      yield* Fiber.interrupt(fiber)
      assert.deepStrictEqual(yield* pool.status, { size: 1, checkedIn: 0, checkedOut: 0, overflow: -1, waiting: 0 })
      assert.strictEqual(mock.open().length, 0)
      const id = yield* Effect.scoped(Effect.map(pool.checkout, (c) => c.connection.id))
      assert.strictEqual(id, 1)
    }))

  it.effect("an interrupted waiter leaves the queue; the next waiter gets the slot", () =>
    Effect.gen(function*() {
      const { pool } = yield* queuePool({ poolSize: 1, maxOverflow: 0, timeout: "Infinity" })
      const holder = yield* Effect.forkChild(Effect.scoped(Effect.andThen(pool.checkout, Effect.never)))
      yield* Effect.yieldNow
      const w1 = yield* Effect.forkChild(Effect.scoped(pool.checkout))
      const w2 = yield* Effect.forkChild(Effect.scoped(Effect.map(pool.checkout, (c) => c.slot)))
      yield* Effect.yieldNow
      assert.strictEqual((yield* pool.status).waiting, 2)
      yield* Fiber.interrupt(w1)
      assert.strictEqual((yield* pool.status).waiting, 1)
      yield* Fiber.interrupt(holder)
      assert.strictEqual(yield* Fiber.join(w2), 1)
      assert.deepStrictEqual(yield* pool.status, { size: 1, checkedIn: 1, checkedOut: 0, overflow: 0, waiting: 0 })
    }))

  it.effect("a waiter interrupted after it was handed a connection, before it resumed, passes it to the next", () =>
    Effect.gen(function*() {
      const { pool, mock } = yield* queuePool({ poolSize: 1, maxOverflow: 0, timeout: "Infinity" })
      const held = yield* Scope.make()
      yield* checkoutIn(pool, held)
      const a = yield* Effect.forkChild(pool.use(() => Effect.succeed("a")))
      const b = yield* Effect.forkChild(pool.use((c) => Effect.succeed(c.slot)))
      yield* Effect.yieldNow
      assert.strictEqual((yield* pool.status).waiting, 2)
      // One synchronous step: the release hands the slot to A (woken in the scheduler's next
      // batch), and A is interrupted before that batch runs.
      yield* Effect.andThen(Scope.close(held, Exit.void), Effect.sync(() => a.interruptUnsafe()))
      const exitA = yield* Fiber.await(a)
      assert.isTrue(Exit.isFailure(exitA) && exitA.cause.reasons.every((r) => r._tag === "Interrupt"))
      assert.strictEqual(yield* Fiber.join(b), 1)
      assert.deepStrictEqual(yield* pool.status, { size: 1, checkedIn: 1, checkedOut: 0, overflow: 0, waiting: 0 })
      assert.strictEqual(mock.connections.length, 1)
    }))

  it.effect("a thousand waiters interrupted between two others: the queue stays first come, first served", () =>
    Effect.gen(function*() {
      const { pool } = yield* queuePool({ poolSize: 1, maxOverflow: 0, timeout: "Infinity" })
      const served: Array<string> = []
      const release = yield* Deferred.make<void>()
      const holder = yield* Effect.forkChild(pool.use(() => Deferred.await(release)))
      yield* Effect.yieldNow
      const waiter = (name: string) => Effect.forkChild(pool.use(() => Effect.sync(() => served.push(name))))
      const first = yield* waiter("first")
      // Every other one of the middle waiters leaves at once, the rest a batch at a time.
      const middle: Array<Fiber.Fiber<unknown, unknown>> = []
      for (let i = 0; i < 1000; i++) {
        middle.push(yield* waiter(`middle ${i}`))
        if (i % 2 === 0) yield* Fiber.interrupt(middle[i]!)
      }
      const last = yield* waiter("last")
      yield* Effect.yieldNow
      assert.strictEqual((yield* pool.status).waiting, 502)
      yield* Fiber.interruptAll(middle)
      assert.strictEqual((yield* pool.status).waiting, 2)
      // A newcomer after them queues behind them.
      const after = yield* waiter("after")
      yield* Effect.yieldNow
      yield* Deferred.succeed(release, undefined)
      yield* Fiber.join(holder)
      yield* Fiber.join(first)
      yield* Fiber.join(last)
      yield* Fiber.join(after)
      assert.deepStrictEqual(served, ["first", "last", "after"])
      assert.deepStrictEqual(yield* pool.status, { size: 1, checkedIn: 1, checkedOut: 0, overflow: 0, waiting: 0 })
    }))
})
