/**
 * What the pipelined mode shows of itself (`PgSql.layer({ pipeline })`) against a real server:
 * `PgSql.pipelineStatus` per shared connection, the `db.client.connection.pipeline.*` metrics
 * (`PoolMetrics.forPipeline`) and `PgSql.pipelineEvents`.
 */
import { assert, describe, layer } from "@effect/vitest"
import { Effect, Fiber, Layer, Metric, Redacted, Stream } from "effect"
import { PoolMetrics, QueuePool } from "effect-db-pool"
import { PgDriver, PgSql } from "effect-db-pool/pg"
import type { PgSql as PgSqlTypes } from "effect-db-pool/pg"
import { PgDatabase } from "effect-db-pool/pg/embedded"
import { SqlClient } from "effect/sql"
import * as net from "node:net"
import { appName, Database, driverLayer, eventually } from "./fixture.ts"

/** A loopback proxy to `host:port` that holds each new session back `delayMs` before it connects. */
const slowProxy = (host: string, port: number, delayMs: number) =>
  Effect.acquireRelease(
    Effect.callback<{ readonly port: number; readonly close: () => void }>((resume) => {
      const sockets = new Set<net.Socket>()
      const track = (socket: net.Socket) => {
        sockets.add(socket)
        socket.on("close", () => sockets.delete(socket))
        socket.on("error", () => socket.destroy())
      }
      const server = net.createServer((client) => {
        track(client)
        client.pause()
        setTimeout(() => {
          const upstream = net.connect({ host, port })
          track(upstream)
          client.pipe(upstream)
          upstream.pipe(client)
          client.resume()
          upstream.on("close", () => client.destroy())
          client.on("close", () => upstream.destroy())
        }, delayMs)
      })
      server.listen(0, "127.0.0.1", () => {
        const address = server.address()
        resume(Effect.succeed({
          port: typeof address === "object" && address !== null ? address.port : 0,
          close: () => {
            for (const socket of sockets) socket.destroy()
            server.close()
          }
        }))
      })
    }),
    (proxy) => Effect.sync(proxy.close)
  ).pipe(Effect.map((proxy) => proxy.port))

/**
 * 8 fibers keep one shared connection busy with autocommit statements while `transactions`
 * transactions run one after another, each on a connection of its own: how many times the shared
 * connection was drained for them (`close` events with reason `exclusive`).
 */
const drainsUnderTraffic = (transactions: number) =>
  Effect.scoped(Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const events: Array<PgSqlTypes.PipelineEvent> = []
    yield* Effect.forkScoped(Stream.runForEach(PgSql.pipelineEvents, (e) => Effect.sync(() => events.push(e))))
    yield* Effect.yieldNow
    let stop = false
    const traffic = yield* Effect.forkChild(Effect.forEach(
      Array.from({ length: 8 }, (_, i) => i),
      (i) => Effect.whileLoop({ while: () => !stop, body: () => sql`select ${i}::int as v`, step: () => {} }),
      { concurrency: "unbounded", discard: true }
    ))
    yield* eventually(
      Effect.map(PgSql.pipelineStatus, (lanes) => (lanes ?? []).length === 1),
      "one shared connection serving"
    )
    for (let i = 0; i < transactions; i++) {
      const rows = yield* sql.withTransaction(sql<{ v: number }>`select ${i}::int as v`)
      assert.strictEqual(rows[0]!.v, i)
    }
    stop = true
    yield* Fiber.join(traffic)
    return events.filter((e) => e.type === "close" && e.reason === "exclusive").length
  }))

const pipelined = (name: string, pool: string) =>
  PgSql.layer({ pipeline: { maxInFlight: 8, maxConnections: 2 } }).pipe(
    Layer.provideMerge(QueuePool.layer({ poolSize: 3, maxOverflow: 0, name: pool })),
    Layer.provideMerge(driverLayer(name))
  )

describe("pipelined statements: status, metrics, events", () => {
  layer(Database, { timeout: "120 seconds", excludeTestServices: true })((it) => {
    it.effect("status, metrics and events follow the work on each shared connection", () =>
      Effect.scoped(Effect.gen(function*() {
        const pool = appName("pipe-metrics-pool")
        const m = PoolMetrics.forPipeline(pool)
        const gauge = (metric: Metric.Gauge<number>) => Effect.map(Metric.value(metric), (s) => s.value)
        const count = (metric: Metric.Counter<number>) => Effect.map(Metric.value(metric), (s) => s.count)
        yield* Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const events: Array<PgSqlTypes.PipelineEvent> = []
          yield* Effect.forkScoped(Stream.runForEach(PgSql.pipelineEvents, (e) => Effect.sync(() => events.push(e))))
          yield* Effect.yieldNow

          // 12 slow statements: 8 fill the first shared connection, 4 open the second.
          const slow = yield* Effect.forEach(
            Array.from({ length: 12 }, (_, i) => i),
            (i) => Effect.forkChild(sql`select pg_sleep(0.4), ${i}::int as v`)
          )
          yield* eventually(
            Effect.map(gauge(m.inFlight), (n) => n === 12),
            "12 statements in flight (db.client.connection.pipeline.in_flight)"
          )
          assert.strictEqual(yield* gauge(m.connections), 2)
          const lanes = (yield* PgSql.pipelineStatus) ?? []
          assert.deepStrictEqual(lanes.map((lane) => lane.inFlight).sort(), [4, 8])
          assert.deepStrictEqual(lanes.map((lane) => lane.statements).sort(), [4, 8])
          assert.strictEqual(new Set(lanes.map((lane) => lane.processId)).size, 2)
          for (const fiber of slow) yield* Fiber.join(fiber)

          // Interrupted pipelined statements are counted as abandoned (the server still runs them).
          const doomed = yield* Effect.forEach(
            Array.from({ length: 3 }, () => 0),
            // Long enough that none ends on its own before the interrupt, on a loaded machine too.
            () => Effect.forkChild(sql`select pg_sleep(2)`)
          )
          yield* eventually(Effect.map(gauge(m.inFlight), (n) => n === 3), "3 statements in flight")
          for (const fiber of doomed) yield* Fiber.interrupt(fiber)
          assert.strictEqual(yield* count(m.abandoned), 3)
          assert.strictEqual(yield* count(m.statements), 15)

          // Every shared connection goes back once it is empty: gauges at 0, each open closed.
          yield* eventually(
            Effect.map(gauge(m.connections), (n) => n === 0),
            "no shared connection left (db.client.connection.pipeline.connections)"
          )
          assert.strictEqual(yield* gauge(m.inFlight), 0)
          assert.deepStrictEqual(yield* PgSql.pipelineStatus, [])
          yield* eventually(Effect.sync(() => events.filter((e) => e.type === "close").length >= 2), "close events")
          const opens = events.filter((e) => e.type === "open")
          const closes = events.filter((e) => e.type === "close")
          assert.isAtLeast(opens.length, 2)
          assert.strictEqual(closes.length, opens.length)
          // Every connection that opened closed, idle, after carrying its statements.
          assert.deepStrictEqual(
            new Set(closes.map((e) => e.processId)),
            new Set(opens.map((e) => e.processId))
          )
          for (const e of closes) {
            assert.strictEqual(e.pool, pool)
            if (e.type === "close") {
              assert.strictEqual(e.reason, "idle")
              assert.strictEqual(e.inFlight, 0)
            }
          }
          assert.strictEqual(closes.reduce((n, e) => n + (e.type === "close" ? e.statements : 0), 0), 15)
        }).pipe(Effect.provide(pipelined(appName("pipe-metrics"), pool)))
        // The series leave the registry with the client.
        const names = (yield* Metric.snapshot).map((s) => s.id)
        assert.notInclude(names, PoolMetrics.pipelineNames.inFlight)
      })))

    it.effect(
      "transactions with room in the pool leave the shared connection serving; an exhausted pool drains it",
      () =>
        Effect.scoped(Effect.gen(function*() {
          const run = (poolSize: number) =>
            drainsUnderTraffic(20).pipe(Effect.provide(
              PgSql.layer({ pipeline: { maxConnections: 1 } }).pipe(
                Layer.provideMerge(QueuePool.layer({ poolSize, maxOverflow: 0 })),
                Layer.provideMerge(driverLayer(appName("pipe-drain")))
              )
            ))
          // Room for the transactions beside the shared connection: it is never drained for them.
          assert.strictEqual(yield* run(3), 0, "shared connection drained although the pool had room")
          // One connection: each transaction needs the shared one, which drains for it (no starvation).
          assert.isAtLeast(yield* run(1), 1)
        })),
      60_000
    )

    it.effect(
      "a transaction whose own connection is slow to open does not drain the shared one",
      () =>
        Effect.scoped(Effect.gen(function*() {
          // Every new session takes 150 ms to reach the server: far past the 20 ms grace.
          const db = yield* PgDatabase.PgDatabase
          const target = new URL(Redacted.value(db.url))
          target.port = String(yield* slowProxy(target.hostname, Number(target.port), 150))
          // The first transaction opens a connection of its own (150 ms); the others reuse it.
          const closes = yield* drainsUnderTraffic(3).pipe(Effect.provide(
            PgSql.layer({ pipeline: { maxConnections: 1 } }).pipe(
              Layer.provideMerge(QueuePool.layer({ poolSize: 3, maxOverflow: 0 })),
              Layer.provideMerge(PgDriver.layer({
                url: Redacted.make(target.href),
                applicationName: appName("pipe-slow-connect"),
                connectTimeout: "5 seconds"
              }))
            )
          ))
          assert.strictEqual(closes, 0, "shared connection drained for a checkout that was only connecting")
        })),
      60_000
    )

    it.effect("a client that does not pipeline has no status and no events", () =>
      Effect.gen(function*() {
        assert.isUndefined(yield* PgSql.pipelineStatus)
        const events = yield* Stream.runCollect(PgSql.pipelineEvents)
        assert.strictEqual(events.length, 0)
      }).pipe(Effect.provide(
        PgSql.layer().pipe(
          Layer.provide(QueuePool.layer({ poolSize: 1 })),
          Layer.provide(driverLayer(appName("pipe-none")))
        )
      )))
  })
})
