import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Metric, Scope, Tracer } from "effect"
import { PoolMetrics } from "effect-db-pool"
import { TestClock } from "effect/testing"
import type { LogLine } from "./helpers.ts"
import { captureLogs, queuePool, recordingTracer } from "./helpers.ts"

/** Run with a private metric registry, so counts start at zero. */
const withRegistry = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.provideService(effect, Metric.MetricRegistry, new Map())

const count = (metric: Metric.Counter<number>) => Effect.map(Metric.value(metric), (s) => s.count)
const gauge = (metric: Metric.Gauge<number>) => Effect.map(Metric.value(metric), (s) => s.value)

describe("Metrics", () => {
  it.effect("counters, gauges and histograms after a scripted workload, attributed by pool name", () =>
    withRegistry(Effect.gen(function*() {
      const { pool, mock } = yield* queuePool({ name: "orders", poolSize: 2, maxOverflow: 0, timeout: "1 second" })
      const m = PoolMetrics.forPool("orders")
      const held = yield* Scope.make()
      const a = yield* pool.checkout.pipe(Scope.provide(held))
      yield* pool.checkout.pipe(Scope.provide(held))
      assert.deepStrictEqual(
        [yield* gauge(m.used), yield* gauge(m.idle), yield* gauge(m.max), yield* gauge(m.overflow)],
        [2, 0, 2, 0]
      )
      // a third checkout waits, is counted as pending, then times out
      const waiter = yield* Effect.forkChild(Effect.exit(Effect.scoped(pool.checkout)))
      yield* Effect.yieldNow
      assert.strictEqual(yield* gauge(m.pending), 1)
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(waiter)
      assert.strictEqual(yield* gauge(m.pending), 0)
      yield* TestClock.adjust("250 millis") // held 1.25 s in all
      yield* a.invalidate("bad")
      yield* Scope.close(held, Exit.void)
      // a failed connect
      mock.next("connect", "fail")
      yield* Effect.exit(Effect.scoped(pool.checkout))
      // recycle by pool-wide invalidation
      yield* pool.invalidateAll
      yield* Effect.scoped(pool.checkout)

      assert.strictEqual(yield* count(m.connects), 3)
      assert.strictEqual(yield* count(m.connectFailures), 1)
      assert.strictEqual(yield* count(m.checkouts), 3)
      assert.strictEqual(yield* count(m.timeouts), 1)
      assert.strictEqual(yield* count(m.invalidations("user")), 1)
      assert.strictEqual(yield* count(m.recycles), 1)
      const use = yield* Metric.value(m.useTime)
      assert.strictEqual(use.count, 3)
      assert.strictEqual(use.max, 1.25) // seconds
      const wait = yield* Metric.value(m.waitTime)
      assert.strictEqual(wait.count, 3)
      assert.deepStrictEqual([yield* gauge(m.used), yield* gauge(m.idle)], [0, 2])
      // the series carry the pool name
      const snapshot = yield* Metric.snapshot
      const ours = snapshot.filter((s) => s.id.startsWith("db.client.connection."))
      assert.isAbove(ours.length, 10)
      assert.isTrue(ours.every((s) => s.attributes?.[PoolMetrics.poolAttribute] === "orders"))
    })))

  it.effect("gauges are removed when the pool closes", () =>
    withRegistry(Effect.gen(function*() {
      const scope = yield* Scope.make()
      yield* queuePool({ name: "gone" }).pipe(Scope.provide(scope))
      const before = (yield* Metric.snapshot).filter((s) => s.id === PoolMetrics.names.max).length
      yield* Scope.close(scope, Exit.void)
      const after = (yield* Metric.snapshot).filter((s) => s.id === PoolMetrics.names.max).length
      assert.deepStrictEqual([before, after], [1, 0])
    })))

  it.effect("metrics: false records nothing", () =>
    withRegistry(Effect.gen(function*() {
      const { pool } = yield* queuePool({ name: "quiet", metrics: false })
      yield* Effect.scoped(pool.checkout)
      const ours = (yield* Metric.snapshot).filter((s) => s.id.startsWith("db.client.connection."))
      assert.strictEqual(ours.length, 0)
    })))
})

describe("Tracing", () => {
  it.effect("a span for checkout (with wait time) and for connect, with pool attributes", () =>
    Effect.gen(function*() {
      const spans: Array<Tracer.Span> = []
      const tracer = recordingTracer(spans)
      const { pool } = yield* queuePool({ name: "traced", tracing: true })
      yield* Effect.scoped(pool.checkout).pipe(Effect.withTracer(tracer))
      const names = spans.map((s) => s.name)
      assert.deepStrictEqual(names, ["effect-db-pool.checkout", "effect-db-pool.connect"])
      const checkout = spans[0]!
      assert.strictEqual(checkout.attributes.get("db.client.connection.pool.name"), "traced")
      assert.strictEqual(checkout.attributes.get("effect-db-pool.strategy"), "QueuePool")
      assert.strictEqual(checkout.attributes.get("db.client.connection.wait_time_ms"), 0)
      assert.strictEqual(spans[1]!.attributes.get("db.system.name"), "mock")
      const parent = spans[1]!.parent
      assert.strictEqual(
        parent._tag === "Some" && parent.value._tag === "Span" ? parent.value.name : undefined,
        "effect-db-pool.checkout"
      )
    }))
})

describe("Leak detection", () => {
  it.effect("one warning per leaked checkout, naming the checkout site; counted", () =>
    withRegistry(Effect.gen(function*() {
      const lines: Array<LogLine> = []
      yield* Effect.gen(function*() {
        const { pool } = yield* queuePool({ name: "leaky", leakDetectionThreshold: "10 seconds" })
        const held = yield* Scope.make()
        const leakyRepository = Effect.fn("OrderRepository.find")(function*() {
          return yield* pool.checkout.pipe(Scope.provide(held))
        })
        yield* leakyRepository()
        yield* leakyRepository()
        yield* Effect.scoped(pool.checkout) // returned in time: no warning
        yield* TestClock.adjust("9 seconds")
        assert.strictEqual(lines.filter((l) => l.message.includes("leak")).length, 0)
        yield* TestClock.adjust("1 minute")
        const warnings = lines.filter((l) => l.message.includes("leak"))
        assert.strictEqual(warnings.length, 2)
        assert.isTrue(warnings.every((w) => w.level === "Warn"))
        assert.isTrue(warnings.every((w) => w.message.includes("OrderRepository.find")))
        // and the user's own source line, not a frame of effect or of this library
        assert.isTrue(warnings.every((w) => w.message.includes("observability.test.ts")), warnings[0]!.message)
        assert.isTrue(warnings.every((w) => w.annotations.pool === "leaky"))
        assert.strictEqual(yield* count(PoolMetrics.forPool("leaky").leaks), 2)
        yield* Scope.close(held, Exit.void)
        yield* TestClock.adjust("1 minute")
        assert.strictEqual(lines.filter((l) => l.message.includes("leak")).length, 2)
      }).pipe(Effect.provide(captureLogs(lines)))
    })))
})

describe("Logging", () => {
  it.effect("echo logs every event with the pool name annotated", () =>
    Effect.gen(function*() {
      const lines: Array<LogLine> = []
      yield* Effect.gen(function*() {
        const { pool } = yield* queuePool({ name: "echoed", echo: true })
        yield* Effect.scoped(pool.checkout)
      }).pipe(Effect.provide(captureLogs(lines)))
      assert.deepStrictEqual(lines.map((l) => l.message), [
        "first_connect slot 1",
        "connect slot 1",
        "checkout slot 1",
        "reset slot 1",
        "checkin slot 1"
      ])
      assert.isTrue(lines.every((l) => l.annotations.pool === "echoed"))
    }))

  it.effect("failures in the background are logged as warnings with the pool name, never raised", () =>
    Effect.gen(function*() {
      const lines: Array<LogLine> = []
      yield* Effect.gen(function*() {
        const { pool, mock } = yield* queuePool({ name: "noisy", poolSize: 1, maxOverflow: 0 })
        const scope = yield* Scope.make()
        const c = yield* pool.checkout.pipe(Scope.provide(scope))
        mock.next("close", "fail")
        yield* c.invalidate()
        yield* Scope.close(scope, Exit.void)
      }).pipe(Effect.provide(captureLogs(lines)))
      const warning = lines.find((l) => l.message.includes("closing a connection failed"))
      assert.isDefined(warning)
      assert.strictEqual(warning!.annotations.pool, "noisy")
    }))
})
