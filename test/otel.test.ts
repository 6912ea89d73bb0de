import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Metric } from "effect"
import { HttpClient, HttpClientResponse } from "effect/http"
import { OtlpExporter, OtlpMetrics, OtlpSerialization } from "effect/observability"
import { queuePool } from "./helpers.ts"

describe("Metrics reach an OpenTelemetry exporter with effect's own OTLP layer", () => {
  it.live("OtlpMetrics exports the pool's series with its name attribute, no glue", () =>
    Effect.gen(function*() {
      const bodies: Array<string> = []
      const collector = HttpClient.make((request) =>
        Effect.sync(() => {
          const body = request.body
          bodies.push(
            body._tag === "Uint8Array"
              ? new TextDecoder().decode(body.body)
              : body._tag === "Raw"
              ? String(body.body)
              : ""
          )
          return HttpClientResponse.fromWeb(request, new Response("{}", { status: 200 }))
        })
      )
      const Otlp = OtlpMetrics.layer({
        url: "http://127.0.0.1:4318/v1/metrics",
        exportInterval: "1 hour",
        resource: { serviceName: "pool-test", serviceVersion: "0" }
      }).pipe(
        Layer.provide(OtlpSerialization.layerJson),
        Layer.provide(Layer.succeed(HttpClient.HttpClient, collector))
      )
      yield* Effect.gen(function*() {
        const { pool } = yield* queuePool({ name: "exported" })
        yield* Effect.scoped(pool.checkout)
        yield* Effect.scoped(pool.checkout)
        const flusher = yield* OtlpExporter.Flusher
        yield* flusher.flush
      }).pipe(Effect.provide(Otlp), Effect.provideService(Metric.MetricRegistry, new Map()))
      const exported = bodies.join("\n")
      assert.include(exported, "db.client.connection.checkouts")
      assert.include(exported, "db.client.connection.count")
      assert.include(exported, "db.client.connection.wait_time")
      assert.include(exported, "exported")
    }))
})
