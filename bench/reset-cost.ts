/**
 * What the reset on return costs: SELECT 1 throughput through SqlClient over a QueuePool of
 * 10 connections with 16 fibers, with the reset skip (default) and with `alwaysReset: true`
 * (a ROLLBACK round trip on every return).
 *
 *   DATABASE_URL=postgres://postgres@127.0.0.1:5432/test npx tsx bench/reset-cost.ts [seconds]
 *
 * Without DATABASE_URL it starts an embedded server.
 */
import { PgClient } from "@effect/sql-pg"
import { Effect, Layer } from "effect"
import { QueuePool } from "effect-db-pool"
import { PgDriver, PgSql } from "effect-db-pool/pg"
import { PgDatabase } from "effect-db-pool/pg/embedded"
import { SqlClient } from "effect/sql"

const seconds = Number(process.argv[2] ?? 3)
const fibers = 16
const connections = 10

const run = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  // warm up: open every connection, prepare the statement
  yield* Effect.forEach(Array.from({ length: 200 }), () => sql`SELECT 1`, { concurrency: fibers, discard: true })
  let count = 0
  const deadline = Date.now() + seconds * 1000
  const worker = Effect.whileLoop({
    while: () => Date.now() < deadline,
    body: () => sql`SELECT 1`,
    step: () => {
      count++
    }
  })
  const started = Date.now()
  yield* Effect.all(Array.from({ length: fibers }, () => worker), { concurrency: "unbounded", discard: true })
  return Math.round(count / ((Date.now() - started) / 1000))
})

const measure = (alwaysReset: boolean) =>
  run.pipe(
    Effect.map((qps) => ({ alwaysReset, qps })),
    Effect.provide(
      PgSql.layer().pipe(
        Layer.provide(QueuePool.layer({ poolSize: connections, maxOverflow: 0 })),
        Layer.provide(Layer.unwrap(Effect.map(Effect.service(PgDatabase.PgDatabase), (db) =>
          PgDriver.layer({ url: db.url, alwaysReset }))))
      )
    )
  )

const program = Effect.gen(function*() {
  const results: Array<{ alwaysReset: boolean; qps: number }> = []
  for (const round of [1, 2]) {
    for (const alwaysReset of [false, true]) {
      const r = yield* measure(alwaysReset)
      results.push(r)
      console.log(
        `round ${round}: ${alwaysReset ? "ROLLBACK on every return" : "reset skipped when idle  "}  ${r.qps} q/s`
      )
    }
    const baseline = yield* run.pipe(
      Effect.provide(
        Layer.unwrap(
          Effect.map(
            Effect.service(PgDatabase.PgDatabase),
            (db) => PgClient.layer({ url: db.url, maxConnections: connections })
          )
        )
      )
    )
    console.log(`round ${round}: @effect/sql-pg PgClient.layer   ${baseline} q/s (reference)`)
  }
  const avg = (flag: boolean) => {
    const xs = results.filter((r) => r.alwaysReset === flag).map((r) => r.qps)
    return xs.reduce((a, b) => a + b, 0) / xs.length
  }
  console.log(
    `skip / always = ${
      (avg(false) / avg(true)).toFixed(2)
    }x  (${fibers} fibers, ${connections} connections, ${seconds}s per run)`
  )
}).pipe(Effect.provide(PgDatabase.layer()))

Effect.runPromise(program).catch((e) => {
  console.error(e)
  process.exit(1)
})
