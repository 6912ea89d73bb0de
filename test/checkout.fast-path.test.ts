/**
 * The synchronous hot path (no hooks, no listeners, no pre-ping: checkout and return with no
 * effect at all) must keep every guarantee of the general path. The catalogue tests run with
 * recording hooks, which take the general path; these run the same behaviours without them.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Random, Scope } from "effect"
import { Driver, QueuePool } from "effect-db-pool"
import type { PoolOptions } from "effect-db-pool"
import { MockDriver } from "effect-db-pool/testing"

const plainPool = (options: QueuePool.Options<MockDriver.MockConnection>) =>
  Effect.gen(function*() {
    const mock = MockDriver.make()
    const pool = yield* QueuePool.make<MockDriver.MockConnection>(options).pipe(
      Effect.provide(Driver.layer(mock.driver)),
      Effect.orDie
    )
    return { pool, mock }
  })

const counts = (
  s: { size: number; checkedIn: number; overflow: number; checkedOut: number }
) => [s.size, s.checkedIn, s.overflow, s.checkedOut]

describe("The synchronous hot path keeps the guarantees", () => {
  it.effect("the catalogue's count sequence, and the connection that comes back (FIFO)", () =>
    Effect.gen(function*() {
      const { pool, mock } = yield* plainPool({ poolSize: 3, maxOverflow: -1, resetOnReturn: "none" })
      const scopes: Array<Scope.Closeable> = []
      const seen: Array<Array<number>> = []
      for (let i = 0; i < 6; i++) {
        const scope = yield* Scope.make()
        scopes.push(scope)
        yield* pool.checkout.pipe(Scope.provide(scope))
        seen.push(counts(yield* pool.status))
      }
      assert.deepStrictEqual(seen, [[3, 0, -2, 1], [3, 0, -1, 2], [3, 0, 0, 3], [3, 0, 1, 4], [3, 0, 2, 5], [
        3,
        0,
        3,
        6
      ]])
      for (const scope of scopes) yield* Scope.close(scope, Exit.void)
      assert.deepStrictEqual(counts(yield* pool.status), [3, 3, 0, 0])
      assert.strictEqual(mock.open().length, 3)
      // FIFO: the first returned of the kept three comes out first, then the next
      const ids = [
        yield* pool.use((c) => Effect.succeed(c.connection.id)),
        yield* pool.use((c) => Effect.succeed(c.connection.id))
      ]
      assert.deepStrictEqual(ids, [1, 2])
      assert.deepStrictEqual(mock.connections.map((c) => c.calls.length), [0, 0, 0, 1, 1, 1])
    }))

  it.effect("a waiter gets the returned connection at once; a newcomer does not overtake", () =>
    Effect.gen(function*() {
      const { pool } = yield* plainPool({ poolSize: 1, maxOverflow: 0, timeout: "Infinity", resetOnReturn: "none" })
      const holder = yield* Scope.make()
      const heldId = (yield* pool.checkout.pipe(Scope.provide(holder))).connection.id
      const order: Array<number> = []
      const waiter = (n: number) => pool.use((c) => Effect.sync(() => order.push(n * 100 + c.connection.id)))
      const w1 = yield* Effect.forkChild(waiter(1))
      yield* Effect.yieldNow
      yield* Scope.close(holder, Exit.void)
      const w2 = yield* Effect.forkChild(waiter(2))
      yield* Fiber.joinAll([w1, w2])
      assert.deepStrictEqual(order, [100 + heldId, 200 + heldId])
      assert.strictEqual((yield* pool.status).checkedOut, 0)
    }))

  it.effect("a handle is released once, whatever ends its scope; invalidation still checks in", () =>
    Effect.gen(function*() {
      const { pool, mock } = yield* plainPool({ poolSize: 1, maxOverflow: 0, resetOnReturn: "none" })
      const exit = yield* Effect.exit(pool.use(() => Effect.fail("boom")))
      assert.isTrue(Exit.isFailure(exit))
      assert.deepStrictEqual(counts(yield* pool.status), [1, 1, 0, 0])
      yield* pool.use((c) => c.invalidate())
      assert.deepStrictEqual(counts(yield* pool.status), [1, 1, 0, 0])
      assert.isTrue(mock.connections[0]!.closed)
      assert.strictEqual(yield* pool.use((c) => Effect.succeed(c.connection.id)), 2)
    }))

  for (const resetOnReturn of ["none", "rollback"] as ReadonlyArray<PoolOptions.ResetOnReturn>) {
    it.live(
      `resetOnReturn ${resetOnReturn}: 2,000 checkouts interrupted at random points leak nothing`,
      () =>
        Effect.gen(function*() {
          const { pool, mock } = yield* plainPool({ poolSize: 3, maxOverflow: 3, timeout: "20 millis", resetOnReturn })
          const user = (i: number) =>
            Effect.gen(function*() {
              const hold = yield* Random.nextIntBetween(0, 2)
              const work = i % 2 === 0
                ? Effect.scoped(Effect.andThen(pool.checkout, Effect.sleep(`${hold} millis`)))
                : pool.use(() => hold === 0 ? Effect.void : Effect.sleep(`${hold} millis`))
              const fiber = yield* Effect.forkChild(work)
              const after = yield* Random.nextIntBetween(0, 4)
              if (after < 3) {
                for (let k = 0; k < after; k++) yield* Effect.yieldNow
                yield* Fiber.interrupt(fiber)
              }
              yield* Fiber.await(fiber)
            })
          for (let round = 0; round < 4; round++) {
            yield* Effect.forEach(Array.from({ length: 500 }, (_, i) => i), user, { concurrency: 50, discard: true })
            const status = yield* pool.status
            assert.strictEqual(status.checkedOut, 0, `round ${round}`)
            assert.strictEqual(status.waiting, 0)
            assert.isAtMost(mock.open().length, status.checkedIn)
          }
          yield* pool.dispose
          assert.strictEqual(mock.open().length, 0)
        }),
      60_000
    )
  }
})
