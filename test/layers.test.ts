/**
 * Layers are fresh per use: effect memoizes a layer value by reference, also across nested
 * `Effect.provide`s, so every layer of the library that reads services from below or holds
 * state is a function. Over MockDriver (the two-database version is test/pg/layers.test.ts).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { ConnectionPool, QueuePool } from "effect-db-pool"
import { MockDriver } from "effect-db-pool/testing"

const stack = () => QueuePool.layer({ poolSize: 1 }).pipe(Layer.provideMerge(MockDriver.layer()))

/** The mock in context, after one checkout through the pool in context. */
const used = Effect.gen(function*() {
  const pool = yield* ConnectionPool.ConnectionPool
  yield* pool.use(() => Effect.void)
  return yield* MockDriver.MockDriver
})

describe("layers are fresh per use", () => {
  it.effect("a mock stack provided inside a program over another mock is a mock of its own", () =>
    Effect.gen(function*() {
      const { outer, inner } = yield* Effect.gen(function*() {
        const outer = yield* used
        const inner = yield* Effect.provide(used, stack())
        return { outer, inner }
      }).pipe(Effect.provide(stack()))
      assert.notStrictEqual(inner, outer)
      // Each pool connected through its own mock: one connection each.
      assert.deepStrictEqual([outer.connections.length, inner.connections.length], [1, 1])
    }))
})
