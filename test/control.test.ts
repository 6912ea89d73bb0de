/**
 * Run-time resize and suspend/resume (HikariCP's maintenance controls), over MockDriver with
 * TestClock: growing serves waiters at once, shrinking never interrupts a user, a suspended
 * pool holds new checkouts (bounded by `timeout`) while checked-out work finishes.
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Metric, Random, Scope } from "effect"
import { NullPool, PoolMetrics, QueuePool, StaticPool } from "effect-db-pool"
import { TestClock } from "effect/testing"
import { checkoutIn, queuePool, strategyPool } from "./helpers.ts"

const tagOf = <A, E>(exit: Exit.Exit<A, E>): string =>
  Exit.isSuccess(exit) ? "Success" : String((exit.cause.reasons[0] as { error?: { _tag?: string } }).error?._tag)

describe("resize", () => {
  it.effect("growing serves waiters at once, on new connections", () =>
    Effect.gen(function*() {
      const { pool, mock, events } = yield* queuePool({ poolSize: 1, maxOverflow: 0, timeout: "10 seconds" })
      const held = yield* Scope.make()
      yield* checkoutIn(pool, held)
      const release = yield* Deferred.make<void>()
      const waiters = yield* Effect.forkChild(Effect.all(
        [1, 2].map(() => Effect.scoped(Effect.andThen(pool.checkout, Deferred.await(release)))),
        { concurrency: "unbounded" }
      ))
      yield* Effect.yieldNow
      assert.strictEqual((yield* pool.status).waiting, 2)
      events.length = 0
      yield* pool.resize({ poolSize: 3 })
      yield* Effect.yieldNow
      assert.deepStrictEqual(yield* pool.status, { size: 3, checkedIn: 0, checkedOut: 3, overflow: 0, waiting: 0 })
      // The slots are handed over during the resize; the woken waiters connect as they resume.
      assert.deepStrictEqual(events.filter((e) => e === "resize" || e === "connect"), ["resize", "connect", "connect"])
      assert.strictEqual(mock.connections.length, 3)
      assert.strictEqual(pool.settings.poolSize, 3)
      yield* Deferred.succeed(release, undefined)
      yield* Fiber.join(waiters)
      yield* Scope.close(held, Exit.void)
      assert.deepStrictEqual(yield* pool.status, { size: 3, checkedIn: 3, checkedOut: 0, overflow: 0, waiting: 0 })
    }))

  it.effect("shrinking closes idle connections beyond the new size now, busy ones as they return", () =>
    Effect.gen(function*() {
      const { pool, mock } = yield* queuePool({ poolSize: 4, maxOverflow: 2 })
      const scopes = yield* Effect.all(Array.from({ length: 6 }, () => Scope.make()))
      for (const scope of scopes) yield* checkoutIn(pool, scope)
      yield* Scope.close(scopes[0]!, Exit.void)
      yield* Scope.close(scopes[1]!, Exit.void)
      assert.deepStrictEqual(yield* pool.status, { size: 4, checkedIn: 2, checkedOut: 4, overflow: 2, waiting: 0 })
      yield* pool.resize({ poolSize: 2, maxOverflow: 0 })
      // 6 open, 2 idle: both idle are beyond capacity now and closed; the 4 busy stay busy.
      assert.strictEqual(mock.open().length, 4)
      assert.deepStrictEqual(yield* pool.status, { size: 2, checkedIn: 0, checkedOut: 4, overflow: 2, waiting: 0 })
      assert.isTrue(mock.connections.slice(2).every((c) => !c.closed))
      // Returns close while over capacity, then pool.
      for (const scope of scopes.slice(2)) yield* Scope.close(scope, Exit.void)
      assert.deepStrictEqual(yield* pool.status, { size: 2, checkedIn: 2, checkedOut: 0, overflow: 0, waiting: 0 })
      assert.strictEqual(mock.open().length, 2)
    }))

  it.effect("while over capacity a waiter is served only once the pool is back within its size", () =>
    Effect.gen(function*() {
      const { pool } = yield* queuePool({ poolSize: 3, maxOverflow: 0, timeout: "10 seconds" })
      const scopes = yield* Effect.all(Array.from({ length: 3 }, () => Scope.make()))
      for (const scope of scopes) yield* checkoutIn(pool, scope)
      yield* pool.resize({ poolSize: 1 })
      const waiter = yield* Effect.forkChild(Effect.scoped(Effect.map(pool.checkout, (c) => c.slot)))
      yield* Effect.yieldNow
      yield* Scope.close(scopes[0]!, Exit.void) // 3 open > 1: closed, the waiter still waits
      yield* Scope.close(scopes[1]!, Exit.void) // 2 open > 1: closed
      assert.strictEqual((yield* pool.status).waiting, 1)
      yield* Scope.close(scopes[2]!, Exit.void) // 1 open = size: handed to the waiter
      assert.strictEqual(yield* Fiber.join(waiter), 3)
      assert.deepStrictEqual(yield* pool.status, { size: 1, checkedIn: 1, checkedOut: 0, overflow: 0, waiting: 0 })
    }))

  it.effect("bad sizes and strategies without a size fail with PoolConfigError naming the field", () =>
    Effect.gen(function*() {
      const { pool } = yield* queuePool({ poolSize: 2 })
      for (
        const [change, field] of [[{ poolSize: -1 }, "poolSize"], [{ poolSize: 1.5 }, "poolSize"], [
          { maxOverflow: -2 },
          "maxOverflow"
        ]] as const
      ) {
        const error = yield* Effect.flip(pool.resize(change))
        assert.strictEqual(error._tag, "PoolConfigError")
        assert.strictEqual(error.field, field)
      }
      assert.strictEqual(pool.settings.poolSize, 2)
      for (const make of [NullPool.make, StaticPool.make]) {
        const { pool: fixed } = yield* strategyPool(make)
        const error = yield* Effect.flip(fixed.resize({ poolSize: 3 }))
        assert.match(error.message, /cannot be changed at run time/)
      }
    }))

  it.effect("resize({ poolSize: 0 }) is refused, pointing to suspend; maxOverflow: -1 lifts the limit", () =>
    Effect.gen(function*() {
      const { pool, mock } = yield* queuePool({ poolSize: 5, maxOverflow: 0, timeout: "1 minute" })
      const error = yield* Effect.flip(pool.resize({ poolSize: 0 }))
      assert.strictEqual(error._tag, "PoolConfigError")
      assert.strictEqual(error.field, "poolSize")
      assert.include(error.message, "use suspend")
      assert.include(error.message, "maxOverflow: -1")
      assert.strictEqual(pool.settings.poolSize, 5)
      // Still a pool of 5: 30 fibers get 5 connections, 25 wait.
      const release = yield* Deferred.make<void>()
      const users = yield* Effect.forkChild(Effect.all(
        Array.from({ length: 30 }, () => Effect.scoped(Effect.andThen(pool.checkout, Deferred.await(release)))),
        { concurrency: "unbounded" }
      ))
      yield* Effect.yieldNow
      assert.strictEqual(mock.connections.length, 5)
      assert.strictEqual((yield* pool.status).waiting, 25)
      // The explicit way to lift the limit: every waiter is served at once, on its own connection.
      yield* pool.resize({ maxOverflow: -1 })
      yield* Effect.yieldNow
      assert.strictEqual(mock.connections.length, 30)
      assert.strictEqual((yield* pool.status).waiting, 0)
      yield* Deferred.succeed(release, undefined)
      yield* Fiber.join(users)
      // 5 are kept (poolSize), the overflow is closed on return.
      assert.strictEqual(mock.open().length, 5)
      assert.deepStrictEqual(yield* pool.status, { size: 5, checkedIn: 5, checkedOut: 0, overflow: 0, waiting: 0 })
    }))

  it.effect("a pool built with poolSize 0 (no limit) refuses a maxOverflow it would ignore; a poolSize bounds it", () =>
    Effect.gen(function*() {
      const { pool } = yield* queuePool({ poolSize: 0 })
      const error = yield* Effect.flip(pool.resize({ maxOverflow: 2 }))
      assert.strictEqual(error.field, "maxOverflow")
      assert.include(error.message, "give a poolSize too")
      yield* pool.resize({ poolSize: 2, maxOverflow: 1 })
      assert.deepStrictEqual([pool.settings.poolSize, pool.settings.maxOverflow], [2, 1])
    }))
})

describe("suspend and resume", () => {
  it.effect("new checkouts wait; checked-out work finishes and returns; resume serves them in arrival order", () =>
    Effect.gen(function*() {
      const { pool, events } = yield* queuePool({ poolSize: 2, timeout: "30 seconds" })
      const held = yield* Scope.make()
      const busy = yield* checkoutIn(pool, held)
      yield* pool.suspend
      assert.isTrue(yield* pool.isSuspended)
      const order: Array<number> = []
      const fibers = yield* Effect.forEach(
        [1, 2, 3],
        (n) => Effect.forkChild(Effect.scoped(Effect.map(pool.checkout, () => order.push(n))))
      )
      yield* TestClock.adjust("5 seconds")
      assert.deepStrictEqual(order, [])
      assert.strictEqual((yield* pool.status).waiting, 3)
      // The work already out goes on and comes back normally.
      assert.isTrue(busy.isValid)
      yield* Scope.close(held, Exit.void)
      assert.strictEqual((yield* pool.status).checkedOut, 0)
      yield* pool.resume
      yield* Effect.forEach(fibers, Fiber.join)
      assert.deepStrictEqual(order, [1, 2, 3])
      assert.isFalse(yield* pool.isSuspended)
      assert.deepStrictEqual(events.filter((e) => e === "suspend" || e === "resume"), ["suspend", "resume"])
      assert.strictEqual((yield* pool.status).waiting, 0)
    }))

  it.effect("a suspended checkout is still bound by timeout", () =>
    Effect.gen(function*() {
      const { pool } = yield* queuePool({ poolSize: 2, timeout: "3 seconds" })
      yield* pool.suspend
      const waiting = yield* Effect.forkChild(Effect.exit(Effect.scoped(pool.checkout)))
      yield* TestClock.adjust("2999 millis")
      assert.isUndefined(waiting.pollUnsafe())
      yield* TestClock.adjust("1 millis")
      const exit = yield* Fiber.join(waiting)
      assert.strictEqual(tagOf(exit), "PoolTimeoutError")
      // It says the pool was suspended, not that the pool was full.
      const error = Exit.isFailure(exit) ? (exit.cause.reasons[0] as { error?: Error }).error : undefined
      assert.strictEqual(
        error?.message,
        "QueuePool is suspended: the checkout waited for resume, timed out, timeout 3000 ms"
      )
      assert.strictEqual((yield* pool.status).waiting, 0)
    }))

  it.effect("a reentrant holder's nested checkout is not held back (no self-deadlock)", () =>
    Effect.gen(function*() {
      const { pool } = yield* queuePool({ poolSize: 1, reentrant: true })
      const slots = yield* Effect.scoped(Effect.gen(function*() {
        const outer = yield* pool.checkout
        yield* pool.suspend
        const inner = yield* pool.checkout
        return [outer.slot, inner.slot]
      }))
      assert.deepStrictEqual(slots, [1, 1])
      yield* pool.resume
    }))

  it.effect("interrupted waiters at the gate leave nothing behind; the gauge follows the state", () =>
    Effect.gen(function*() {
      const { pool } = yield* queuePool({ name: "maintenance", poolSize: 2, timeout: "Infinity" })
      const suspended = PoolMetrics.forPool("maintenance").suspended
      yield* pool.suspend
      assert.strictEqual((yield* Metric.value(suspended)).value, 1)
      const fibers = yield* Effect.forEach(
        Array.from({ length: 5 }),
        () => Effect.forkChild(Effect.scoped(pool.checkout))
      )
      yield* Effect.yieldNow
      assert.strictEqual((yield* pool.status).waiting, 5)
      yield* Effect.forEach(fibers, Fiber.interrupt)
      assert.strictEqual((yield* pool.status).waiting, 0)
      yield* pool.resume
      assert.strictEqual((yield* Metric.value(suspended)).value, 0)
      assert.deepStrictEqual(yield* pool.status, { size: 2, checkedIn: 0, checkedOut: 0, overflow: -2, waiting: 0 })
    }))
})

describe("closing a suspended pool", () => {
  for (const [name, make] of [["QueuePool (no timeout)", QueuePool.make], ["NullPool", NullPool.make]] as const) {
    it.effect(`${name}: checkouts held at the gate fail with PoolClosedError, no connection opened`, () =>
      Effect.gen(function*() {
        const scope = yield* Scope.make()
        const { mock, pool } = yield* Scope.provide(strategyPool(make as never, { timeout: "Infinity" }), scope)
        yield* pool.suspend
        const fibers = yield* Effect.forEach(
          [1, 2, 3],
          () => Effect.forkChild(Effect.exit(Effect.scoped(pool.checkout)))
        )
        yield* Effect.yieldNow
        assert.strictEqual((yield* pool.status).waiting, 3)
        yield* Scope.close(scope, Exit.void)
        const exits = yield* Effect.forEach(fibers, Fiber.join)
        assert.deepStrictEqual(exits.map(tagOf), ["PoolClosedError", "PoolClosedError", "PoolClosedError"])
        assert.strictEqual(mock.connections.length, 0)
      }))
  }
})

describe("under load", () => {
  it.live("random resizes, suspensions and interruptions: every user is served or times out, nothing leaks", () =>
    Effect.gen(function*() {
      const { pool, mock } = yield* queuePool({ poolSize: 3, maxOverflow: 2, timeout: "200 millis" })
      const outcomes = new Map<string, number>()
      const user = Effect.gen(function*() {
        const hold = yield* Random.nextIntBetween(0, 3)
        const exit = yield* Effect.exit(Effect.scoped(Effect.andThen(pool.checkout, Effect.sleep(hold))))
        outcomes.set(tagOf(exit), (outcomes.get(tagOf(exit)) ?? 0) + 1)
      })
      const users = yield* Effect.forkChild(
        Effect.forEach(Array.from({ length: 400 }), () => user, { concurrency: 40 })
      )
      const interrupter = yield* Effect.forkChild(
        Effect.forEach(Array.from({ length: 60 }), () =>
          Effect.gen(function*() {
            const victim = yield* Effect.forkChild(user)
            yield* Effect.sleep(yield* Random.nextIntBetween(0, 3))
            yield* Fiber.interrupt(victim)
          }), { concurrency: 4 })
      )
      for (let i = 0; i < 40; i++) {
        const poolSize = yield* Random.nextIntBetween(1, 6)
        yield* pool.resize({ poolSize, maxOverflow: yield* Random.nextIntBetween(-1, 3) })
        if (i % 3 === 0) yield* pool.suspend
        yield* Effect.sleep(yield* Random.nextIntBetween(0, 5))
        yield* pool.resume
      }
      yield* pool.resize({ poolSize: 3, maxOverflow: 2 })
      yield* Fiber.join(users)
      yield* Fiber.join(interrupter)
      const status = yield* pool.status
      assert.strictEqual(status.checkedOut, 0)
      assert.strictEqual(status.waiting, 0)
      assert.strictEqual(mock.open().length, status.checkedIn)
      assert.isAtMost(status.checkedIn, 3)
      // The 400 users all finished (served or timed out); interrupted victims may not have.
      const finished = [...outcomes.values()].reduce((a, b) => a + b, 0)
      assert.isAtLeast(finished, 400)
      assert.isAtMost(finished, 460)
      assert.deepStrictEqual([...outcomes.keys()].filter((k) => k !== "Success" && k !== "PoolTimeoutError"), [])
    }))
})
