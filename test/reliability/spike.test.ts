/**
 * Spike (HikariCP's SpikeLoadTest, live clock): connects take 150 ms, statements 2 ms, 50 fibers
 * arrive at once on a pool of at most 50. Reports how many connections were opened and how long
 * the spike took, cold and with 5 connections warmed up beforehand (HikariCP's minimumIdle 5).
 *
 * QueuePool connects a slot for each checkout that finds no idle connection while below its
 * maximum; it does not hand a connection returned meanwhile to a checkout whose connect is in
 * flight. So a spike of N ≤ max opens about N minus the idle connections, and takes one connect.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { Driver, QueuePool } from "effect-db-pool"
import { MockDriver } from "effect-db-pool/testing"

const CONNECT_MS = 150
const STATEMENT_MS = 2
const FIBERS = 50

const spike = (warm: number) =>
  Effect.gen(function*() {
    const mock = MockDriver.make()
    mock.set("connect", { delay: `${CONNECT_MS} millis` })
    const pool = yield* QueuePool.make<MockDriver.MockConnection>({
      poolSize: 10,
      maxOverflow: 40,
      timeout: "10 seconds"
    })
      .pipe(Effect.provide(Driver.layer(mock.driver)))
    if (warm > 0) {
      yield* Effect.forEach(Array.from({ length: warm }), () => pool.use(() => Effect.void), {
        concurrency: "unbounded",
        discard: true
      })
    }
    const before = mock.connections.length
    const started = performance.now()
    const latencies = yield* Effect.forEach(
      Array.from({ length: FIBERS }),
      () => {
        const t0 = performance.now()
        return pool.use(() => Effect.sleep(`${STATEMENT_MS} millis`)).pipe(Effect.map(() => performance.now() - t0))
      },
      { concurrency: "unbounded" }
    )
    const took = performance.now() - started
    const opened = mock.connections.length - before
    const status = yield* pool.status
    const worst = Math.max(...latencies)
    console.log(
      `[spike] warm=${warm}: ${FIBERS} fibers, connect ${CONNECT_MS} ms, statement ${STATEMENT_MS} ms → ` +
        `opened ${opened} connections, spike took ${took.toFixed(0)} ms (worst checkout+statement ${
          worst.toFixed(0)
        } ms), ` +
        `after: ${status.checkedIn} idle, overflow ${status.overflow}`
    )
    assert.strictEqual(status.checkedOut, 0)
    assert.isAtMost(opened + warm, FIBERS)
    assert.isAtMost(mock.open().length, status.checkedIn)
    // One connect's worth of time, not a queue of them.
    assert.isBelow(took, 2 * CONNECT_MS + 150)
    return { opened, took }
  })

describe("spike", () => {
  it.live(
    `${FIBERS} fibers at once, connect ${CONNECT_MS} ms: cold and with 5 warm connections`,
    () =>
      Effect.gen(function*() {
        const cold = yield* spike(0)
        assert.strictEqual(cold.opened, FIBERS)
        const warm = yield* spike(5)
        assert.isAtMost(warm.opened, FIBERS - 5)
      }),
    30_000
  )
})
