/**
 * Timeout contract (live clock): under saturation every QueuePool checkout gets a connection or
 * its `PoolTimeoutError` within `timeout` + 50 ms. `timeout` bounds the wait for a slot; connects
 * here are quick (0–2 ms), since a connect is bounded by `connectTimeout`, not `timeout`.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Ref } from "effect"
import { Driver, PoolError, QueuePool } from "effect-db-pool"
import { MockDriver } from "effect-db-pool/testing"
import { seeded, seedFromEnv } from "./harness.ts"

const TIMEOUT_MS = 100
const SLACK_MS = 50

describe("timeout contract", () => {
  it.live(`under saturation every checkout ends within timeout + ${SLACK_MS} ms`, () =>
    Effect.gen(function*() {
      const seed = seedFromEnv()
      const rng = seeded(seed)
      const mock = MockDriver.make()
      mock.set("connect", () => ({ delay: `${rng.int(0, 2)} millis` }))
      const pool = yield* QueuePool.make<MockDriver.MockConnection>({
        poolSize: 4,
        maxOverflow: 2,
        timeout: `${TIMEOUT_MS} millis`,
        prePing: true
      }).pipe(Effect.provide(Driver.layer(mock.driver)))

      const worst = yield* Ref.make({ ms: 0, what: "" })
      let served = 0
      let timedOut = 0
      const deadline = Date.now() + 1500
      const user = Effect.gen(function*() {
        while (Date.now() < deadline) {
          const started = performance.now()
          let acquiredAfter = -1
          const hold = rng.int(5, 60)
          const exit = yield* Effect.exit(pool.use(() =>
            Effect.andThen(
              Effect.sync(() => {
                acquiredAfter = performance.now() - started
              }),
              Effect.sleep(`${hold} millis`)
            )
          ))
          const took = acquiredAfter >= 0 ? acquiredAfter : performance.now() - started
          if (Exit.isSuccess(exit)) served++
          else {
            const error = (exit.cause.reasons[0] as { error?: unknown }).error
            assert.instanceOf(error, PoolError.PoolTimeoutError, "only timeouts are expected")
            timedOut++
          }
          yield* Ref.update(worst, (w) =>
            took > w.ms ? { ms: took, what: Exit.isSuccess(exit) ? "connection" : "timeout" } : w)
        }
      })
      yield* Effect.forEach(Array.from({ length: 40 }), () =>
        user, { concurrency: "unbounded", discard: true })
      const w = yield* Ref.get(worst)
      const overshoot = Math.max(0, w.ms - TIMEOUT_MS)
      console.log(
        `[timeout contract] seed=${seed} served=${served} timedOut=${timedOut} worst=${
          w.ms.toFixed(1)
        } ms (${w.what}), ` +
          `worst overshoot over timeout=${overshoot.toFixed(1)} ms`
      )
      assert.isAbove(timedOut, 10, "the pool was saturated")
      assert.isAbove(served, 100)
      assert.isAtMost(w.ms, TIMEOUT_MS + SLACK_MS)
      const status = yield* pool.status
      assert.strictEqual(status.checkedOut, 0)
      assert.strictEqual(status.waiting, 0)
    }), 30_000)
})
