/**
 * Soak: does memory stay flat under a long mixed load? `npm run soak -- 10m` (also `90s`, `1h`,
 * a number of seconds; at most 24 h; default 10 m).
 *
 * Runs, as a user would (public entry points only), a QueuePool + PgSql over the server of
 * DATABASE_URL (else an embedded one) for the given time, with a mixed load: statements,
 * parameterized statements, transactions that commit and transactions that fail and roll back,
 * statements interrupted by a timeout while the server works on them (a cancel), scoped
 * checkouts interrupted while waiting for a slot, event subscribers, and a resize/suspend now
 * and then. Twenty times over the run (at least every 5 s) it collects garbage (`global.gc()`,
 * the script runs under `node --expose-gc`) and samples the heap; at the end it prints every
 * sample and the least-squares slope of heap-after-GC in MB per minute over the samples taken
 * under load (the first, taken before the load has warmed up, is left out of the fit). It stops by itself: the load stops at
 * the deadline, the pool closes, an embedded server is removed.
 *
 * A slope near 0 (well under 0.1 MB/min on a 10-minute run) says there is no leak; a steady
 * climb names one. `SOAK_HEAP_SNAPSHOTS=dir` also writes a heap snapshot after the warm-up and
 * one when the load stops, to compare in Chrome DevTools (Memory, "Comparison"). The numbers measure this machine under whatever else runs on it: the heap
 * slope, not the throughput, is the result.
 */
import { Cause, Duration, Effect, Fiber, Layer, Random, Ref, Schedule, Stream } from "effect"
import { ConnectionPool, QueuePool } from "effect-db-pool"
import { PgDriver, PgSql } from "effect-db-pool/pg"
import { PgDatabase } from "effect-db-pool/pg/embedded"
import { SqlClient } from "effect/sql"
import * as path from "node:path"
import * as v8 from "node:v8"

// ------------------------------------------------------------------------------- arguments

const maxMillis = 24 * 3_600_000

/** `10m`, `90s`, `1h`, `2500ms`, or a number of seconds. */
const parseDuration = (text: string): number | undefined => {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim())
  if (m === null) return undefined
  const n = Number(m[1])
  const unit = m[2] ?? "s"
  const ms = n * (unit === "ms" ? 1 : unit === "s" ? 1_000 : unit === "m" ? 60_000 : 3_600_000)
  return ms > 0 && ms <= maxMillis ? ms : undefined
}

const arg = process.argv[2] ?? "10m"
const runMillis = parseDuration(arg)
if (runMillis === undefined) {
  console.error(`soak: "${arg}" is no duration between 1 ms and 24 h (10m, 90s, 1h, or seconds)`)
  process.exit(2)
}
// tsx turns on source maps; Node then parses a module's map the first time a stack shows one
// of its frames and keeps it: heap that grows with the code a run happens to touch, not with the
// work. Off, the samples measure the library.
process.setSourceMapsEnabled(false)
const gc = (globalThis as { gc?: () => void }).gc
if (gc === undefined) {
  console.error("soak: run it with node --expose-gc (npm run soak does)")
  process.exit(2)
}

// ---------------------------------------------------------------------------------- the load

const table = "soak_events"
const fibers = 24

interface Tally {
  /** Units of work done. */
  readonly ok: number
  /** Units cut short by their timeout (an interrupted statement, checkout or transaction). */
  readonly timedOut: number
  /** Units that failed: none expected. */
  readonly failed: number
}

const program = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const pool = yield* ConnectionPool.ConnectionPool
  yield* sql`drop table if exists ${sql(table)}`
  yield* sql`create table ${sql(table)} (id bigserial primary key, worker int not null, note text not null)`

  const tally = yield* Ref.make<Tally>({ ok: 0, timedOut: 0, failed: 0 })
  const count = (key: keyof Tally) => Ref.update(tally, (t) => ({ ...t, [key]: t[key] + 1 }))

  class Rollback {
    readonly _tag = "Rollback"
  }
  /** One unit of work, picked at random: each kind a path a user takes. */
  const unit = (worker: number) =>
    Effect.gen(function*() {
      const kind = yield* Random.nextIntBetween(0, 9)
      switch (kind) {
        case 0:
        case 1:
          return yield* sql`select 1 as one`
        case 2:
          return yield* sql`select ${worker}::int as worker, ${"x".repeat(64)}::text as pad`
        case 3:
          // a transaction that commits (and keeps the table small)
          return yield* sql.withTransaction(Effect.gen(function*() {
            yield* sql`insert into ${sql(table)} (worker, note) values (${worker}, ${"committed"})`
            yield* sql`delete from ${sql(table)} where worker = ${worker} and id < (select max(id) from ${
              sql(table)
            }) - 1000`
          }))
        case 4:
          // a transaction that fails after writing: rolled back
          return yield* sql.withTransaction(Effect.gen(function*() {
            yield* sql`insert into ${sql(table)} (worker, note) values (${worker}, ${"rolled back"})`
            return yield* Effect.fail(new Rollback())
          })).pipe(Effect.catchTag("Rollback", () => Effect.void))
        case 5:
          // interrupted while the server works: the driver sends a cancel
          return yield* sql`select pg_sleep(0.05)`.pipe(Effect.timeout("5 millis"))
        case 6:
          // a scoped checkout held a moment, raced against a short timeout (interrupted waiting)
          return yield* Effect.scoped(Effect.andThen(pool.checkout, Effect.sleep("2 millis"))).pipe(
            Effect.timeout("3 millis")
          )
        case 7:
          // a stream of rows
          return yield* Stream.runDrain(sql`select g from generate_series(1, 50) g`.stream)
        default:
          // an interrupted transaction
          return yield* sql.withTransaction(sql`select pg_sleep(0.02)`).pipe(Effect.timeout("5 millis"))
      }
    }).pipe(
      Effect.matchCauseEffect({
        onSuccess: () => count("ok"),
        onFailure: (cause) => {
          const timedOut = cause.reasons.some((r) => r._tag === "Fail" && Cause.isTimeoutError(r.error))
          if (!timedOut) console.error(`soak: unexpected failure: ${Cause.pretty(cause)}`)
          return count(timedOut ? "timedOut" : "failed")
        }
      })
    )

  const deadline = Date.now() + runMillis
  const worker = (n: number) =>
    Effect.whileLoop({ while: () => Date.now() < deadline, body: () => unit(n), step: () => {} })

  // Observers come and go: a subscriber to the pool's events for a few seconds at a time.
  const observer = Effect.whileLoop({
    while: () => Date.now() < deadline,
    body: () => Stream.runDrain(pool.events).pipe(Effect.timeout("2 seconds"), Effect.ignore),
    step: () => {}
  })
  // Maintenance now and then: a short suspension, a resize up and back.
  const maintenance = Effect.gen(function*() {
    yield* pool.suspend
    yield* Effect.sleep("20 millis")
    yield* pool.resume
    yield* pool.resize({ poolSize: 8 })
    yield* Effect.sleep("200 millis")
    yield* pool.resize({ poolSize: 5 })
  }).pipe(Effect.repeat(Schedule.spaced("5 seconds")), Effect.timeout(Duration.millis(runMillis)), Effect.ignore)

  // Heap after GC, sampled.
  const samples: Array<readonly [minutes: number, mb: number]> = []
  const started = Date.now()
  const interval = Math.min(5_000, Math.max(250, runMillis / 20))
  const snapshots = process.env.SOAK_HEAP_SNAPSHOTS
  const snapshot = (label: string) =>
    Effect.sync(() => {
      if (snapshots === undefined) return
      const file = v8.writeHeapSnapshot(path.join(snapshots, `soak-${label}-${process.pid}.heapsnapshot`))
      console.log(`soak: heap snapshot ${file}`)
    })
  const sample = Effect.sync(() => {
    gc()
    const mb = process.memoryUsage().heapUsed / 1_048_576
    const minutes = (Date.now() - started) / 60_000
    samples.push([minutes, mb])
    console.log(`soak: t=${(minutes * 60).toFixed(0).padStart(5)} s  heap after GC ${mb.toFixed(2)} MB`)
  }).pipe(Effect.andThen(Effect.suspend(() => samples.length === 2 ? snapshot("warm") : Effect.void)))
  const sampler = yield* Effect.forkChild(
    Effect.repeat(Effect.andThen(Effect.sleep(Duration.millis(interval)), sample), {
      while: () => Date.now() < deadline
    })
  )

  console.log(`soak: ${fibers} fibers for ${arg} (${runMillis} ms), heap sampled every ${interval} ms`)
  const load = yield* Effect.forkChild(Effect.all(
    [...Array.from({ length: fibers }, (_, n) => worker(n)), observer, observer, maintenance],
    { concurrency: "unbounded", discard: true }
  ))
  yield* Fiber.join(load)
  yield* Fiber.interrupt(sampler)
  yield* snapshot("end")
  const loaded = samples.slice()
  console.log("soak: the load stopped; one more sample:")
  yield* sample
  yield* sql`drop table if exists ${sql(table)}`
  return { samples: loaded, tally: yield* Ref.get(tally), status: yield* pool.status }
})

/** Least-squares slope of y over x. */
const slope = (points: ReadonlyArray<readonly [number, number]>): number => {
  const n = points.length
  const mx = points.reduce((s, [x]) => s + x, 0) / n
  const my = points.reduce((s, [, y]) => s + y, 0) / n
  const sxy = points.reduce((s, [x, y]) => s + (x - mx) * (y - my), 0)
  const sxx = points.reduce((s, [x]) => s + (x - mx) ** 2, 0)
  return sxx === 0 ? 0 : sxy / sxx
}

const Driver = Layer.unwrap(
  Effect.map(Effect.service(PgDatabase.PgDatabase), (db) => PgDriver.layer({ url: db.url, applicationName: "soak" }))
)
const Sql = PgSql.layerWith({}).pipe(
  Layer.provideMerge(QueuePool.layer({ name: "soak", poolSize: 5, maxOverflow: 5, timeout: "10 seconds" })),
  Layer.provide(Driver),
  Layer.provide(PgDatabase.layer())
)

Effect.runPromise(program.pipe(Effect.provide(Sql))).then(
  ({ samples, status, tally }) => {
    const fitted = samples.slice(1)
    const first = fitted[0]
    const last = fitted[fitted.length - 1]
    console.log(`soak: work ${JSON.stringify(tally)}, pool at the end ${JSON.stringify(status)}`)
    if (first === undefined || last === undefined || fitted.length < 3) {
      console.log("soak: too few samples for a slope (run longer)")
      return
    }
    console.log(
      `soak: heap after GC ${first[1].toFixed(2)} -> ${last[1].toFixed(2)} MB over ${
        (last[0] - first[0]).toFixed(1)
      } min; ` +
        `least-squares slope ${
          slope(fitted).toFixed(4)
        } MB/min (${fitted.length} samples under load, the first left out)`
    )
  },
  (error) => {
    console.error("soak failed:", error)
    process.exit(1)
  }
)
