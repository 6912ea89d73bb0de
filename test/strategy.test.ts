/**
 * The strategy contract (src/internal/strategy.ts) as the service reports it: each strategy's own
 * settings, and how its checkouts share a connection (`settings.sharing`, what the SQL layer
 * reads instead of the strategy's name). MockDriver.
 */
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect } from "effect"
import { AssertionPool, Driver, FiberPool, NullPool, QueuePool, StaticPool } from "effect-db-pool"
import type { ConnectionPool } from "effect-db-pool"
import { MockDriver } from "effect-db-pool/testing"

const over = <E, R>(
  make: Effect.Effect<ConnectionPool.Service, E, R>
) => make.pipe(Effect.provide(Driver.layer(MockDriver.make().driver)))

describe("settings.sharing: how checkouts share a connection", () => {
  it.effect("StaticPool shares one connection across the pool", () =>
    Effect.gen(function*() {
      const pool = yield* over(StaticPool.make())
      assert.strictEqual(pool.settings.sharing, "pool")
    }))

  it.effect("FiberPool shares within a fiber (always reentrant)", () =>
    Effect.gen(function*() {
      const pool = yield* over(FiberPool.make())
      assert.strictEqual(pool.settings.sharing, "fiber")
      assert.isTrue(pool.settings.reentrant)
    }))

  it.effect("reentrant: true shares within a fiber, whatever the strategy", () =>
    Effect.gen(function*() {
      const queue = yield* over(QueuePool.make({ reentrant: true }))
      const assertion = yield* over(AssertionPool.make({ reentrant: true }))
      assert.deepStrictEqual([queue.settings.sharing, assertion.settings.sharing], ["fiber", "fiber"])
    }))

  it.effect("QueuePool, NullPool and AssertionPool lend each checkout its own", () =>
    Effect.gen(function*() {
      const pools = [
        yield* over(QueuePool.make()),
        yield* over(NullPool.make()),
        yield* over(AssertionPool.make())
      ]
      assert.deepStrictEqual(pools.map((pool) => pool.settings.sharing), [undefined, undefined, undefined])
    }))
})

describe("settings: each strategy's own", () => {
  it.effect("QueuePool reports its sizes, timeout and order; sizes as resized", () =>
    Effect.gen(function*() {
      const pool = yield* over(QueuePool.make({ poolSize: 2, maxOverflow: 1, timeout: "2 seconds", lifo: true }))
      const { lifo, maxOverflow, poolSize, timeout } = pool.settings
      assert.deepStrictEqual([poolSize, maxOverflow, lifo], [2, 1, true])
      assert.isTrue(Duration.equals(timeout!, Duration.seconds(2)))
      yield* pool.resize({ poolSize: 4, maxOverflow: 0 })
      assert.deepStrictEqual([pool.settings.poolSize, pool.settings.maxOverflow], [4, 0])
    }))

  it.effect("FiberPool reports its poolSize only", () =>
    Effect.gen(function*() {
      const { lifo, maxOverflow, poolSize, timeout } = (yield* over(FiberPool.make({ poolSize: 3 }))).settings
      assert.deepStrictEqual([poolSize, maxOverflow, timeout, lifo], [3, undefined, undefined, undefined])
    }))

  it.effect("NullPool, StaticPool and AssertionPool have none", () =>
    Effect.gen(function*() {
      const pools = [yield* over(NullPool.make()), yield* over(StaticPool.make()), yield* over(AssertionPool.make())]
      for (const { settings } of pools) {
        assert.deepStrictEqual(
          [settings.poolSize, settings.maxOverflow, settings.timeout, settings.lifo],
          [undefined, undefined, undefined, undefined]
        )
      }
    }))
})
