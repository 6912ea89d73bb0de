/**
 * OpenTelemetry, for real: the OpenTelemetry SDK (`@effect/opentelemetry`'s `NodeSdk`, the SDK's
 * in-memory metric and span exporters) receives the pool's metrics under the database-client
 * semantic conventions (`db.client.connection.count` by `db.client.connection.state`, `.max`,
 * `.pending_requests`, `.timeouts`, `.create_time`, `.wait_time`, `.use_time`; times in seconds;
 * attribute `db.client.connection.pool.name`), the pool's spans, and PgSql's statement spans.
 *
 * The first suite runs over MockDriver with TestClock (exact numbers); the second against a
 * real server (DATABASE_URL or an embedded one).
 */
import * as NodeSdk from "@effect/opentelemetry/NodeSdk"
import { assert, describe, it, layer } from "@effect/vitest"
import {
  AggregationTemporality,
  DataPointType,
  InMemoryMetricExporter,
  PeriodicExportingMetricReader
} from "@opentelemetry/sdk-metrics"
import type { DataPoint, Histogram, MetricData } from "@opentelemetry/sdk-metrics"
import { InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base"
import { Effect, Exit, Fiber, Layer, Metric, Scope } from "effect"
import { PoolMetrics, QueuePool } from "effect-db-pool"
import { PgSql } from "effect-db-pool/pg"
import { SqlClient } from "effect/sql"
import { TestClock } from "effect/testing"
import { checkoutIn, queuePool } from "./helpers.ts"
import { Database, driverLayer } from "./pg/fixture.ts"

/** The SDK's in-memory exporters behind `NodeSdk.layer`, and a way to collect what arrived. */
const telemetry = () => {
  const metrics = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE)
  const reader = new PeriodicExportingMetricReader({ exporter: metrics, exportIntervalMillis: 3_600_000 })
  const spans = new InMemorySpanExporter()
  const Sdk = NodeSdk.layer(() => ({
    resource: { serviceName: "otel-sdk-test" },
    metricReader: reader,
    spanProcessor: new SimpleSpanProcessor(spans)
  }))
  /** Export now and return the metrics of the latest export, by name. */
  const collect = Effect.promise(async () => {
    metrics.reset()
    await reader.forceFlush()
    const exported = metrics.getMetrics().at(-1)?.scopeMetrics.flatMap((s) => s.metrics) ?? []
    return new Map(exported.map((m) => [m.descriptor.name, m] as const))
  })
  return { Sdk, collect, spans }
}

const points = (metric: MetricData | undefined): ReadonlyArray<DataPoint<unknown>> => metric?.dataPoints ?? []

/** The value of the one data point of `pool` (and the given attributes), else undefined. */
const valueOf = (metric: MetricData | undefined, pool: string, attributes: Record<string, string> = {}): unknown =>
  points(metric).find((p) =>
    p.attributes[PoolMetrics.poolAttribute] === pool &&
    Object.entries(attributes).every(([k, v]) => p.attributes[k] === v)
  )?.value

describe("OpenTelemetry SDK: the pool's metrics and spans (MockDriver, TestClock)", () => {
  it.effect("semantic-convention names, units, attributes and values arrive in the SDK's exporter", () => {
    const { Sdk, collect, spans } = telemetry()
    return Effect.gen(function*() {
      const { pool } = yield* queuePool({
        name: "orders",
        poolSize: 2,
        maxOverflow: 1,
        timeout: "1 second",
        tracing: true
      })
      const held = yield* Scope.make()
      for (let i = 0; i < 3; i++) yield* checkoutIn(pool, held) // 2 + 1 overflow
      const waiter = yield* Effect.forkChild(Effect.exit(Effect.scoped(pool.checkout)))
      yield* Effect.yieldNow

      const busy = yield* collect
      const count = busy.get("db.client.connection.count")
      assert.strictEqual(count?.descriptor.unit, "{connection}")
      assert.strictEqual(valueOf(count, "orders", { "db.client.connection.state": "used" }), 3)
      assert.strictEqual(valueOf(count, "orders", { "db.client.connection.state": "idle" }), 0)
      assert.strictEqual(valueOf(busy.get("db.client.connection.max"), "orders"), 3)
      assert.strictEqual(busy.get("db.client.connection.max")?.descriptor.unit, "{connection}")
      assert.strictEqual(valueOf(busy.get("db.client.connection.pending_requests"), "orders"), 1)
      assert.strictEqual(busy.get("db.client.connection.pending_requests")?.descriptor.unit, "{request}")

      yield* TestClock.adjust("1 second") // the waiter times out; the three were held 1 s
      assert.isTrue(Exit.isFailure(yield* Fiber.join(waiter)))
      yield* Scope.close(held, Exit.void)

      const after = yield* collect
      const countAfter = after.get("db.client.connection.count")
      assert.strictEqual(valueOf(countAfter, "orders", { "db.client.connection.state": "used" }), 0)
      assert.strictEqual(valueOf(countAfter, "orders", { "db.client.connection.state": "idle" }), 2)
      assert.strictEqual(valueOf(after.get("db.client.connection.pending_requests"), "orders"), 0)
      const timeouts = after.get("db.client.connection.timeouts")
      assert.strictEqual(timeouts?.dataPointType, DataPointType.SUM)
      assert.isTrue(timeouts?.dataPointType === DataPointType.SUM && timeouts.isMonotonic)
      assert.strictEqual(timeouts?.descriptor.unit, "{timeout}")
      assert.strictEqual(valueOf(timeouts, "orders"), 1)
      const histogram = (name: string) => {
        const metric = after.get(name)
        assert.strictEqual(metric?.dataPointType, DataPointType.HISTOGRAM, name)
        assert.strictEqual(metric?.descriptor.unit, "s", name)
        return valueOf(metric, "orders") as Histogram
      }
      assert.strictEqual(histogram("db.client.connection.create_time").count, 3)
      assert.strictEqual(histogram("db.client.connection.wait_time").count, 3)
      const use = histogram("db.client.connection.use_time")
      assert.strictEqual(use.count, 3)
      assert.strictEqual(use.sum, 3) // seconds: three checkouts held 1 s each
      assert.strictEqual(use.max, 1)
      // Every series carries the pool's name.
      for (const [name, metric] of after) {
        if (!name.startsWith("db.client.connection.")) continue
        assert.isTrue(points(metric).every((p) => p.attributes[PoolMetrics.poolAttribute] === "orders"), name)
      }

      // The pool's spans went through the SDK's tracer.
      const finished = spans.getFinishedSpans()
      const checkouts = finished.filter((s) => s.name === "effect-db-pool.checkout")
      const connects = finished.filter((s) => s.name === "effect-db-pool.connect")
      assert.strictEqual(checkouts.length, 4) // three served, one timed out
      assert.strictEqual(connects.length, 3)
      assert.isTrue(checkouts.every((s) => s.attributes["db.client.connection.pool.name"] === "orders"))
      assert.strictEqual(checkouts.filter((s) => s.status.code === 2).length, 1) // ERROR: the timeout
    }).pipe(Effect.provide(Sdk), Effect.provideService(Metric.MetricRegistry, new Map()))
  })

  it.effect("db.client.connection.max follows resize, and is not published while the pool has no limit", () => {
    const { Sdk, collect } = telemetry()
    return Effect.gen(function*() {
      const { pool } = yield* queuePool({ name: "sized", poolSize: 2, maxOverflow: 3 })
      const max = () => Effect.map(collect, (m) => valueOf(m.get("db.client.connection.max"), "sized"))
      assert.strictEqual(yield* max(), 5)
      yield* pool.resize({ poolSize: 4, maxOverflow: 0 })
      assert.strictEqual(yield* max(), 4)
      yield* pool.resize({ maxOverflow: -1 })
      assert.isUndefined(yield* max())
      yield* pool.resize({ maxOverflow: 1 })
      assert.strictEqual(yield* max(), 5)
    }).pipe(Effect.provide(Sdk), Effect.provideService(Metric.MetricRegistry, new Map()))
  })
})

layer(Database, { timeout: "60 seconds", excludeTestServices: true })(
  "OpenTelemetry SDK: PgSql on a real server",
  (it) => {
    it.effect("statement spans and the pool's metrics of a PgSql stack arrive in the SDK's exporters", () => {
      const { Sdk, collect, spans } = telemetry()
      const Sql = PgSql.layerWith({}).pipe(
        Layer.provide(QueuePool.layer({ name: "pg-otel", poolSize: 2, tracing: true })),
        Layer.provide(driverLayer("edp-otel-sdk"))
      )
      return Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* sql`select 1 as one`
        yield* sql.withTransaction(sql`select ${"x"}::text as x`)
        const metrics = yield* collect
        const finished = spans.getFinishedSpans()
        const statements = finished.filter((s) => typeof s.attributes["db.query.text"] === "string")
        assert.deepStrictEqual(
          statements.map((s) => s.attributes["db.query.text"]).filter((q) => !/^(BEGIN|COMMIT)/i.test(String(q))),
          [
            "select 1 as one",
            "select $1::text as x"
          ]
        )
        for (const span of statements) {
          assert.strictEqual(span.attributes["db.system.name"], "postgresql")
          assert.strictEqual(span.kind, 2) // SpanKind.CLIENT
          assert.isString(span.attributes["db.namespace"])
          assert.isString(span.attributes["server.address"])
        }
        // A transaction's checkout is a child of its span: one trace from the transaction to the pool.
        const transaction = finished.find((s) => s.name === "sql.transaction")
        const checkouts = finished.filter((s) => s.name === "effect-db-pool.checkout")
        assert.strictEqual(checkouts.length, 2)
        assert.isTrue(checkouts.some((s) => s.parentSpanContext?.spanId === transaction?.spanContext().spanId))
        assert.isTrue(checkouts.every((s) => s.attributes["db.client.connection.pool.name"] === "pg-otel"))
        // The pool's series arrive for this pool, by state.
        const count = metrics.get("db.client.connection.count")
        assert.strictEqual(valueOf(count, "pg-otel", { "db.client.connection.state": "used" }), 0)
        assert.strictEqual(valueOf(count, "pg-otel", { "db.client.connection.state": "idle" }), 1)
        assert.strictEqual(valueOf(metrics.get("db.client.connection.max"), "pg-otel"), 12)
        assert.isAbove((valueOf(metrics.get("db.client.connection.create_time"), "pg-otel") as Histogram).sum ?? 0, 0)
      }).pipe(Effect.provide(Sql), Effect.provide(Sdk), Effect.provideService(Metric.MetricRegistry, new Map()))
    })
  }
)
