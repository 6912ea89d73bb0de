import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Exit, Fiber, Scope } from "effect"
import type { ConnectionPool } from "effect-db-pool"
import { TestClock } from "effect/testing"
import { checkoutIn, counts, queuePool } from "./helpers.ts"

/** Check out n connections, then return them in checkout order (c1, c2, c3). */
const checkoutThenReturnInOrder = (pool: ConnectionPool.Service<any>, n: number) =>
  Effect.gen(function*() {
    const scopes = yield* Effect.forEach(Array.from({ length: n }), () => Scope.make())
    const slots = yield* Effect.forEach(scopes, (scope) => Effect.map(checkoutIn(pool, scope), (c) => c.slot))
    for (const scope of scopes) yield* Scope.close(scope, Exit.void)
    return slots
  })

describe("QueuePool accounting", () => {
  it.effect("nothing is connected at construction; overflow starts at -poolSize", () =>
    Effect.gen(function*() {
      const { pool, mock } = yield* queuePool({ poolSize: 3 })
      assert.deepStrictEqual(yield* pool.status, { size: 3, checkedIn: 0, checkedOut: 0, overflow: -3, waiting: 0 })
      assert.strictEqual(mock.connectAttempts(), 0)
    }))

  it.effect("poolSize 3, unlimited overflow: the catalogue's count sequence", () =>
    Effect.gen(function*() {
      const { pool } = yield* queuePool({ poolSize: 3, maxOverflow: -1 })
      const scopes: Array<Scope.Closeable> = []
      const seen: Array<Array<number>> = []
      for (let i = 0; i < 6; i++) {
        const scope = yield* Scope.make()
        scopes.push(scope)
        yield* checkoutIn(pool, scope)
        const [size, idle, overflow, out] = yield* counts(pool)
        seen.push([size, idle, overflow, out])
      }
      assert.deepStrictEqual(seen, [[3, 0, -2, 1], [3, 0, -1, 2], [3, 0, 0, 3], [3, 0, 1, 4], [3, 0, 2, 5], [
        3,
        0,
        3,
        6
      ]])
      for (const scope of scopes.slice(0, 3)) yield* Scope.close(scope, Exit.void)
      assert.deepStrictEqual(yield* counts(pool), [3, 3, 3, 3])
      for (const scope of scopes.slice(3)) yield* Scope.close(scope, Exit.void)
      assert.deepStrictEqual(yield* counts(pool), [3, 3, 0, 0])
      const a = yield* Scope.make()
      const b = yield* Scope.make()
      yield* checkoutIn(pool, a)
      yield* checkoutIn(pool, b)
      assert.deepStrictEqual(yield* counts(pool), [3, 1, 0, 2])
      yield* Scope.close(a, Exit.void)
      assert.deepStrictEqual(yield* counts(pool), [3, 2, 0, 1])
    }))

  it.effect("a return into a full idle queue closes that connection and decrements overflow", () =>
    Effect.gen(function*() {
      const { pool, mock, events } = yield* queuePool({ poolSize: 1, maxOverflow: 1 })
      const a = yield* Scope.make()
      const b = yield* Scope.make()
      const c1 = yield* checkoutIn(pool, a)
      const c2 = yield* checkoutIn(pool, b)
      assert.deepStrictEqual(yield* counts(pool), [1, 0, 1, 2])
      yield* Scope.close(a, Exit.void)
      yield* Scope.close(b, Exit.void)
      assert.deepStrictEqual(yield* counts(pool), [1, 1, 0, 0])
      assert.isFalse(mock.connections[c1.slot - 1]!.closed)
      assert.isTrue(mock.connections[c2.slot - 1]!.closed)
      assert.deepStrictEqual(events.slice(-3), ["reset", "checkin", "close"])
    }))

  it.effect("at the limit a checkout waits up to timeout, then fails naming size, overflow and timeout", () =>
    Effect.gen(function*() {
      const { pool } = yield* queuePool({ poolSize: 2, maxOverflow: 1, timeout: "2.5 seconds" })
      for (let i = 0; i < 3; i++) yield* pool.checkout
      const waiter = yield* Effect.forkChild(Effect.scoped(pool.checkout))
      yield* Effect.yieldNow
      assert.strictEqual((yield* pool.status).waiting, 1)
      yield* TestClock.adjust("2499 millis")
      assert.isUndefined(waiter.pollUnsafe())
      yield* TestClock.adjust("1 millis")
      const exit = yield* Fiber.await(waiter)
      assert.isTrue(Exit.isFailure(exit))
      const error = Exit.isFailure(exit) ? (exit.cause.reasons[0] as any).error : undefined
      assert.strictEqual(error._tag, "PoolTimeoutError")
      assert.strictEqual(
        error.message,
        "QueuePool limit of size 2 overflow 1 reached, connection timed out, timeout 2500 ms"
      )
      assert.deepStrictEqual(yield* pool.status, { size: 2, checkedIn: 0, checkedOut: 3, overflow: 1, waiting: 0 })
    }))

  it.effect("timeout Infinity waits forever, and is served when a slot frees", () =>
    Effect.gen(function*() {
      const { pool } = yield* queuePool({ poolSize: 1, maxOverflow: 0, timeout: "Infinity" })
      const holder = yield* Scope.make()
      const first = yield* checkoutIn(pool, holder)
      const waiter = yield* Effect.forkChild(Effect.scoped(Effect.map(pool.checkout, (c) => c.slot)))
      yield* TestClock.adjust(Duration.days(365))
      assert.isUndefined(waiter.pollUnsafe())
      yield* Scope.close(holder, Exit.void)
      assert.strictEqual(yield* Fiber.join(waiter), first.slot)
    }))

  it.effect("a failing connect leaves the counts as they were", () =>
    Effect.gen(function*() {
      const { pool, mock } = yield* queuePool({ poolSize: 2, maxOverflow: 0 })
      mock.next("connect", "fail")
      const exit = yield* Effect.exit(Effect.scoped(pool.checkout))
      assert.isTrue(Exit.isFailure(exit))
      assert.deepStrictEqual(yield* pool.status, { size: 2, checkedIn: 0, checkedOut: 0, overflow: -2, waiting: 0 })
      // the slot was not leaked: both slots still usable
      yield* pool.checkout
      yield* pool.checkout
      assert.deepStrictEqual(yield* counts(pool), [2, 0, 0, 2])
    }))

  it.effect("a connect that hangs does not block other checkouts that can be served", () =>
    Effect.gen(function*() {
      const { pool, mock } = yield* queuePool({ poolSize: 2, maxOverflow: 0 })
      mock.next("connect", "hang")
      const hung = yield* Effect.forkChild(Effect.scoped(pool.checkout))
      yield* Effect.yieldNow
      const other = yield* Effect.scoped(Effect.map(pool.checkout, (c) => c.slot))
      assert.strictEqual(other, 2)
      assert.isUndefined(hung.pollUnsafe())
      yield* Fiber.interrupt(hung)
      assert.deepStrictEqual(yield* pool.status, { size: 2, checkedIn: 1, checkedOut: 0, overflow: -1, waiting: 0 })
      assert.strictEqual(mock.open().length, 1)
    }))

  it.effect("poolSize 0 means no size limit; nothing is closed on return", () =>
    Effect.gen(function*() {
      const { pool, mock } = yield* queuePool({ poolSize: 0, maxOverflow: 0 })
      const scope = yield* Scope.make()
      for (let i = 0; i < 20; i++) yield* checkoutIn(pool, scope)
      assert.strictEqual((yield* pool.status).checkedOut, 20)
      yield* Scope.close(scope, Exit.void)
      assert.deepStrictEqual(yield* pool.status, { size: 0, checkedIn: 20, checkedOut: 0, overflow: 0, waiting: 0 })
      assert.strictEqual(mock.open().length, 20)
    }))

  for (const maxOverflow of [0, 5]) {
    it.live(`40 concurrent users, poolSize 3, maxOverflow ${maxOverflow}: overflow never exceeds it; dispose closes all`, () =>
      Effect.gen(function*() {
        const { pool, mock } = yield* queuePool({ poolSize: 3, maxOverflow, timeout: "Infinity" })
        let maxSeen = -Infinity
        const user = Effect.gen(function*() {
          for (let i = 0; i < 10; i++) {
            yield* pool.use(() =>
              Effect.gen(function*() {
                maxSeen = Math.max(maxSeen, (yield* pool.status).overflow)
                yield* Effect.sleep(Duration.millis(Math.floor(Math.random() * 3)))
              })
            )
          }
        })
        yield* Effect.all(Array.from({ length: 40 }, () => user), { concurrency: "unbounded", discard: true })
        assert.isAtMost(maxSeen, maxOverflow)
        assert.strictEqual(maxSeen, maxOverflow)
        assert.strictEqual((yield* pool.status).checkedOut, 0)
        yield* pool.dispose
        assert.strictEqual(mock.open().length, 0)
      }))
  }

  it.effect("LIFO: returned c1,c2,c3 → c3, c3 again after return, then c2", () =>
    Effect.gen(function*() {
      const { pool } = yield* queuePool({ poolSize: 3, lifo: true })
      const ids = yield* checkoutThenReturnInOrder(pool, 3)
      const s1 = yield* Scope.make()
      const first = yield* checkoutIn(pool, s1)
      yield* Scope.close(s1, Exit.void)
      const s2 = yield* Scope.make()
      const again = yield* checkoutIn(pool, s2)
      const next = yield* checkoutIn(pool, s2)
      assert.deepStrictEqual([first.slot, again.slot, next.slot], [ids[2], ids[2], ids[1]])
    }))

  it.effect("FIFO (default): returned c1,c2,c3 → c1, then c2, c3", () =>
    Effect.gen(function*() {
      const { pool } = yield* queuePool({ poolSize: 3 })
      const ids = yield* checkoutThenReturnInOrder(pool, 3)
      const s = yield* Scope.make()
      const got = [yield* checkoutIn(pool, s), yield* checkoutIn(pool, s), yield* checkoutIn(pool, s)].map((c) =>
        c.slot
      )
      assert.deepStrictEqual(got, ids)
    }))

  it.effect("waiters are served first come, first served; a newcomer never overtakes", () =>
    Effect.gen(function*() {
      const { pool } = yield* queuePool({ poolSize: 1, maxOverflow: 0, timeout: "Infinity" })
      const holder = yield* Scope.make()
      yield* checkoutIn(pool, holder)
      const order: Array<number> = []
      const waiter = (n: number) => Effect.scoped(Effect.tap(pool.checkout, () => Effect.sync(() => order.push(n))))
      const w1 = yield* Effect.forkChild(waiter(1))
      yield* Effect.yieldNow
      const w2 = yield* Effect.forkChild(waiter(2))
      yield* Effect.yieldNow
      assert.strictEqual((yield* pool.status).waiting, 2)
      yield* Scope.close(holder, Exit.void)
      // a newcomer arriving right after the return must queue behind w1 and w2
      const w3 = yield* Effect.forkChild(waiter(3))
      yield* Fiber.joinAll([w1, w2, w3])
      assert.deepStrictEqual(order, [1, 2, 3])
    }))

  it.live("5,000 waiters on one connection, with work that never yields, are all served in arrival order", () =>
    Effect.gen(function*() {
      const { pool } = yield* queuePool({ poolSize: 1, maxOverflow: 0, timeout: "Infinity", resetOnReturn: "none" })
      const served: Array<number> = []
      yield* Effect.forEach(
        Array.from({ length: 5_000 }, (_, i) => i),
        (i) => pool.use(() => Effect.sync(() => served.push(i))),
        { concurrency: "unbounded", discard: true }
      )
      assert.strictEqual(served.length, 5_000)
      assert.deepStrictEqual(served, Array.from({ length: 5_000 }, (_, i) => i))
      assert.deepStrictEqual(yield* pool.status, { size: 1, checkedIn: 1, checkedOut: 0, overflow: 0, waiting: 0 })
    }))

  it.effect("waiters are woken when a slot frees by invalidation", () =>
    Effect.gen(function*() {
      const { pool, mock } = yield* queuePool({ poolSize: 1, maxOverflow: 0, timeout: "Infinity" })
      const holder = yield* Scope.make()
      const conn = yield* checkoutIn(pool, holder)
      const waiter = yield* Effect.forkChild(Effect.scoped(Effect.map(pool.checkout, (c) => c.connection.id)))
      yield* Effect.yieldNow
      yield* conn.invalidate()
      assert.strictEqual(yield* Fiber.join(waiter), 2)
      assert.strictEqual(mock.connections.length, 2)
      yield* Scope.close(holder, Exit.void)
    }))

  it.effect("waiters are woken when a waiter's slot connect fails (the slot is passed on)", () =>
    Effect.gen(function*() {
      const { pool, mock } = yield* queuePool({ poolSize: 1, maxOverflow: 0, timeout: "Infinity" })
      mock.next("connect", "fail")
      const first = yield* Effect.exit(Effect.scoped(pool.checkout))
      assert.isTrue(Exit.isFailure(first))
      const ok = yield* Effect.scoped(Effect.map(pool.checkout, (c) => c.connection.id))
      assert.strictEqual(ok, 1)
    }))

  it.effect("dispose closes idle connections; checked-out ones come back normally", () =>
    Effect.gen(function*() {
      const { pool, mock, events } = yield* queuePool({ poolSize: 3 })
      const held = yield* Scope.make()
      const idle = yield* Scope.make()
      yield* checkoutIn(pool, idle)
      yield* checkoutIn(pool, idle)
      const kept = yield* checkoutIn(pool, held)
      yield* Scope.close(idle, Exit.void)
      events.length = 0
      yield* pool.dispose
      assert.deepStrictEqual(events, ["close", "close"])
      // decided: dispose removes the idle slots, so counts never go negative
      assert.deepStrictEqual(yield* pool.status, { size: 3, checkedIn: 0, checkedOut: 1, overflow: -2, waiting: 0 })
      assert.isFalse(mock.connections[kept.slot - 1]!.closed)
      yield* Scope.close(held, Exit.void)
      assert.deepStrictEqual(yield* pool.status, { size: 3, checkedIn: 1, checkedOut: 0, overflow: -2, waiting: 0 })
      assert.strictEqual(mock.open().length, 1)
      assert.strictEqual(mock.connectAttempts(), 3)
    }))

  it.effect("recreate builds an identical fresh pool without connecting", () =>
    Effect.gen(function*() {
      const { pool, mock, events } = yield* queuePool({ poolSize: 2, maxOverflow: 0 })
      yield* Effect.scoped(pool.checkout)
      yield* pool.dispose
      const fresh = yield* pool.recreate
      assert.strictEqual(mock.connectAttempts(), 1)
      assert.deepStrictEqual(yield* fresh.status, { size: 2, checkedIn: 0, checkedOut: 0, overflow: -2, waiting: 0 })
      events.length = 0
      yield* Effect.scoped(fresh.checkout)
      // same hooks, and first_connect again for the new pool
      assert.deepStrictEqual(events, ["first_connect", "connect", "checkout", "reset", "checkin"])
    }))

  it.effect("after the pool's scope closes, checkouts fail with PoolClosedError and waiters are released", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const { pool, mock } = yield* queuePool({ poolSize: 1, maxOverflow: 0, timeout: "Infinity" }).pipe(
        Scope.provide(scope)
      )
      const holder = yield* Scope.make()
      yield* checkoutIn(pool, holder)
      const waiter = yield* Effect.forkChild(Effect.scoped(pool.checkout))
      yield* Effect.yieldNow
      yield* Scope.close(scope, Exit.void)
      const exit = yield* Fiber.await(waiter)
      assert.isTrue(Exit.isFailure(exit) && (exit.cause.reasons[0] as any).error._tag === "PoolClosedError")
      yield* Scope.close(holder, Exit.void)
      assert.strictEqual(mock.open().length, 0)
      const after = yield* Effect.exit(Effect.scoped(pool.checkout))
      assert.isTrue(Exit.isFailure(after))
    }))
})
