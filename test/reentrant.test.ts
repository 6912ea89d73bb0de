import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Latch, Scope } from "effect"
import type { ConnectionPool } from "effect-db-pool"
import { NullPool, QueuePool, StaticPool } from "effect-db-pool"
import type { MockDriver } from "effect-db-pool/testing"
import { checkoutIn, strategyPool } from "./helpers.ts"

const idOf = (pool: ConnectionPool.Service<MockDriver.MockConnection>) =>
  Effect.scoped(Effect.map(pool.checkout, (c) => c.connection.id))

describe("reentrant checkout (use_threadlocal)", () => {
  it.effect("off by default: a nested checkout in the same fiber gets another connection", () =>
    Effect.gen(function*() {
      const { pool } = yield* strategyPool(QueuePool.make)
      const scope = yield* Scope.make()
      const outer = yield* checkoutIn(pool, scope)
      assert.strictEqual(yield* idOf(pool), 2)
      assert.strictEqual(outer.connection.id, 1)
      yield* Scope.close(scope, Exit.void)
    }))

  it.effect("a nested checkout returns the same connection; only the outermost release resets and checks in", () =>
    Effect.gen(function*() {
      const { pool, mock, events } = yield* strategyPool(QueuePool.make, { reentrant: true })
      const outerScope = yield* Scope.make()
      const outer = yield* checkoutIn(pool, outerScope)
      const innerScope = yield* Scope.make()
      const inner = yield* checkoutIn(pool, innerScope)
      const deeper = yield* pool.use((c) => Effect.succeed(c))
      assert.strictEqual(inner, outer)
      assert.strictEqual(deeper, outer)
      yield* Scope.close(innerScope, Exit.void)
      assert.deepStrictEqual(mock.connections[0]!.calls, [])
      assert.isTrue(outer.isValid)
      assert.deepStrictEqual(yield* pool.status, { size: 5, checkedIn: 0, checkedOut: 1, overflow: -4, waiting: 0 })
      yield* Scope.close(outerScope, Exit.void)
      assert.deepStrictEqual(mock.connections[0]!.calls, ["rollback"])
      assert.deepStrictEqual(events, ["first_connect", "connect", "checkout", "reset", "checkin"])
      assert.deepStrictEqual(yield* pool.status, { size: 5, checkedIn: 1, checkedOut: 0, overflow: -4, waiting: 0 })
      assert.strictEqual(mock.connectAttempts(), 1)
    }))

  it.effect("use nested in use shares the connection too", () =>
    Effect.gen(function*() {
      const { pool, mock } = yield* strategyPool(NullPool.make, { reentrant: true })
      const ids = yield* pool.use((outer) =>
        pool.use((inner) => Effect.succeed([outer.connection.id, inner.connection.id, mock.open().length]))
      )
      assert.deepStrictEqual(ids, [1, 1, 1])
      assert.strictEqual(mock.open().length, 0)
      assert.deepStrictEqual(mock.connections[0]!.calls, ["rollback", "close"])
    }))

  it.effect("child fibers are other fibers: they get their own connection", () =>
    Effect.gen(function*() {
      const { pool } = yield* strategyPool(QueuePool.make, { reentrant: true })
      const scope = yield* Scope.make()
      yield* checkoutIn(pool, scope)
      const child = yield* Effect.flatMap(Effect.forkChild(idOf(pool)), Fiber.join)
      assert.strictEqual(child, 2)
      yield* Scope.close(scope, Exit.void)
    }))

  it.effect("after the outermost release, the next checkout is a fresh lease (checkout hook fires again)", () =>
    Effect.gen(function*() {
      const { pool, events } = yield* strategyPool(QueuePool.make, { reentrant: true })
      yield* Effect.scoped(Effect.andThen(pool.checkout, Effect.scoped(pool.checkout)))
      yield* Effect.scoped(pool.checkout)
      assert.deepStrictEqual(events.filter((e) => e === "checkout" || e === "checkin"), [
        "checkout",
        "checkin",
        "checkout",
        "checkin"
      ])
    }))

  it.effect("a hard invalidation inside a nested checkout: the outer handle is invalid; the next checkout connects anew", () =>
    Effect.gen(function*() {
      const { pool, mock } = yield* strategyPool(QueuePool.make, { reentrant: true })
      const scope = yield* Scope.make()
      const outer = yield* checkoutIn(pool, scope)
      yield* Effect.scoped(Effect.flatMap(pool.checkout, (c) => c.invalidate()))
      assert.isFalse(outer.isValid)
      assert.isTrue(mock.connections[0]!.closed)
      const next = yield* checkoutIn(pool, scope)
      assert.notStrictEqual(next, outer)
      assert.strictEqual(next.connection.id, 2)
      yield* Scope.close(scope, Exit.void)
      assert.deepStrictEqual(yield* pool.status, { size: 5, checkedIn: 1, checkedOut: 0, overflow: -4, waiting: 0 })
      assert.deepStrictEqual(mock.open().map((c) => c.id), [2])
    }))
})

describe("reentrant checkout: interruption", () => {
  it.effect("a fiber interrupted while holding nested checkouts releases once: one reset, one checkin", () =>
    Effect.gen(function*() {
      const { pool, mock, events } = yield* strategyPool(QueuePool.make, { reentrant: true })
      const latch = yield* Latch.make()
      const fiber = yield* Effect.forkChild(Effect.scoped(Effect.gen(function*() {
        yield* pool.checkout
        yield* pool.use(() => Effect.andThen(latch.open, Effect.never))
      })))
      yield* latch.await
      assert.strictEqual((yield* pool.status).checkedOut, 1)
      yield* Fiber.interrupt(fiber)
      assert.deepStrictEqual(mock.connections[0]!.calls, ["rollback"])
      assert.deepStrictEqual(events.filter((e) => e === "reset" || e === "checkin"), ["reset", "checkin"])
      assert.deepStrictEqual(yield* pool.status, { size: 5, checkedIn: 1, checkedOut: 0, overflow: -4, waiting: 0 })
    }))

  it.effect("a checkout interrupted while waiting for a slot leaves no lease or slot behind", () =>
    Effect.gen(function*() {
      const { pool } = yield* strategyPool(QueuePool.make, {
        reentrant: true,
        poolSize: 1,
        maxOverflow: 0,
        timeout: "Infinity"
      })
      const holder = yield* Scope.make()
      yield* checkoutIn(pool, holder)
      const waiter = yield* Effect.forkChild(idOf(pool))
      yield* Effect.yieldNow
      assert.strictEqual((yield* pool.status).waiting, 1)
      yield* Fiber.interrupt(waiter)
      assert.strictEqual((yield* pool.status).waiting, 0)
      yield* Scope.close(holder, Exit.void)
      assert.deepStrictEqual(yield* pool.status, { size: 1, checkedIn: 1, checkedOut: 0, overflow: 0, waiting: 0 })
      // the interrupted fiber's lease is gone: a new fiber checks out normally
      assert.strictEqual(yield* Effect.flatMap(Effect.forkChild(idOf(pool)), Fiber.join), 1)
    }))

  it.effect("StaticPool: checkouts joining a connect whose opener is interrupted retry and connect", () =>
    Effect.gen(function*() {
      const { pool, mock } = yield* strategyPool(StaticPool.make)
      mock.next("connect", "hang")
      const opener = yield* Effect.forkChild(idOf(pool))
      yield* Effect.yieldNow
      const joiner = yield* Effect.forkChild(idOf(pool))
      yield* Effect.yieldNow
      assert.isUndefined(joiner.pollUnsafe())
      yield* Fiber.interrupt(opener)
      assert.strictEqual(yield* Fiber.join(joiner), 1)
      assert.strictEqual(mock.connectAttempts(), 2)
      assert.deepStrictEqual(yield* pool.status, { size: 1, checkedIn: 1, checkedOut: 0, overflow: 0, waiting: 0 })
      assert.strictEqual(mock.open().length, 1)
    }))

  it.effect("StaticPool: a joiner interrupted while the connect is in progress does not disturb the others", () =>
    Effect.gen(function*() {
      const { pool, mock } = yield* strategyPool(StaticPool.make)
      const gate = yield* Latch.make()
      mock.next("connect", "hang")
      const opener = yield* Effect.forkChild(idOf(pool))
      yield* Effect.yieldNow
      const joiner = yield* Effect.forkChild(Effect.scoped(Effect.andThen(pool.checkout, gate.await)))
      yield* Effect.yieldNow
      yield* Fiber.interrupt(joiner)
      assert.isUndefined(opener.pollUnsafe())
      yield* Fiber.interrupt(opener)
      assert.strictEqual(mock.open().length, 0)
      assert.strictEqual(yield* idOf(pool), 1)
      assert.deepStrictEqual(yield* pool.status, { size: 1, checkedIn: 1, checkedOut: 0, overflow: 0, waiting: 0 })
    }))
})
