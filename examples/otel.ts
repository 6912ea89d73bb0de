/**
 * OpenTelemetry: the pool's metrics and spans, and PgSql's statement spans, through
 * `@effect/opentelemetry` into the OpenTelemetry SDK: `npx tsx examples/otel.ts`.
 *
 * Uses DATABASE_URL when set, else starts an embedded server. The exporters here are the SDK's
 * in-memory ones, so the program can print what arrived; in production give `NodeSdk.layer` an
 * OTLP exporter (`@opentelemetry/exporter-metrics-otlp-http`, `...-trace-otlp-http`) instead.
 *
 * Packages (beside effect, @effect/sql-pg and effect-db-pool): @effect/opentelemetry,
 * @opentelemetry/api, @opentelemetry/resources, @opentelemetry/sdk-metrics,
 * @opentelemetry/sdk-trace-base, @opentelemetry/sdk-trace-node, @opentelemetry/sdk-logs,
 * @opentelemetry/api-logs.
 */
import * as NodeSdk from "@effect/opentelemetry/NodeSdk"
import {
  AggregationTemporality,
  InMemoryMetricExporter,
  PeriodicExportingMetricReader
} from "@opentelemetry/sdk-metrics"
import { InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base"
import { Effect, Layer } from "effect"
import { QueuePool } from "effect-db-pool"
import { PgDriver, PgSql } from "effect-db-pool/pg"
import { PgDatabase } from "effect-db-pool/pg/embedded"
import { SqlClient } from "effect/sql"

// The OpenTelemetry SDK: a metric reader and a span processor, each with its exporter.
const metrics = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE)
const reader = new PeriodicExportingMetricReader({ exporter: metrics, exportIntervalMillis: 60_000 })
const spans = new InMemorySpanExporter()
const Telemetry = NodeSdk.layer(() => ({
  resource: { serviceName: "orders" },
  metricReader: reader,
  spanProcessor: new SimpleSpanProcessor(spans)
}))

// The database stack. With a URL of your own: PgDriver.layer({ url: Redacted.make(process.env.DATABASE_URL!) })
const Driver = Layer.unwrap(Effect.map(Effect.service(PgDatabase.PgDatabase), (db) => PgDriver.layer({ url: db.url })))
const Sql = PgSql.layerWith({}).pipe(
  // `name` is the db.client.connection.pool.name attribute; `tracing` adds a span per checkout.
  Layer.provide(QueuePool.layer({ name: "orders-db", poolSize: 5, tracing: true })),
  Layer.provide(Driver)
)

const program = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`select 1 as one`
  yield* sql.withTransaction(sql`select ${"widget"}::text as item`)

  // Export now (a real reader exports every `exportIntervalMillis`) and print what arrived.
  yield* Effect.promise(() => reader.forceFlush())
  const exported = metrics.getMetrics().at(-1)?.scopeMetrics.flatMap((scope) => scope.metrics) ?? []
  for (const metric of exported) {
    if (!metric.descriptor.name.startsWith("db.client.connection.")) continue
    for (const point of metric.dataPoints) {
      const value = typeof point.value === "number"
        ? point.value
        : `count ${point.value.count}, sum ${point.value.sum?.toFixed(6)}`
      console.log(
        `metric ${metric.descriptor.name} [${metric.descriptor.unit}] ${JSON.stringify(point.attributes)}: ${value}`
      )
    }
  }
  for (const span of spans.getFinishedSpans()) {
    console.log(`span ${span.name} ${JSON.stringify(span.attributes)}`)
  }
})

Effect.runPromise(program.pipe(Effect.provide(Sql), Effect.provide(Telemetry), Effect.provide(PgDatabase.layer())))
  .catch(
    (error) => {
      console.error(error)
      process.exit(1)
    }
  )
