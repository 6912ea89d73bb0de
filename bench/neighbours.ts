/**
 * The end-to-end subjects in one process, and which of them run: the pipelined subject and
 * `PgClient.layer({ multiplex: true })` are measured beside neighbours of your choosing (the others
 * are opened and left idle), to see how a neighbour changes what each pays per statement.
 *
 *   npm run bench -- --neighbours [active=ours-pipelined,multiplex,...] [query=select|point] [c=16] [rounds=30]
 *
 * Subjects: ours, ours-lifo, pgclient, pgpool, ours-pipelined, multiplex, postgresjs. Each round
 * runs the active ones once in a seeded shuffled order; per subject it prints the median µs and
 * Node CPU µs per statement and the young-generation collections that fell in its rounds (count
 * and ms per 1,000 statements). `DATABASE_URL` or the machine's default local server; the point
 * query needs the e2e run's `bench_points` table. Node is not pinned here: run it under
 * `taskset -c 0` to match the e2e run.
 */
import { PgClient } from "@effect/sql-pg"
import { Effect, Layer, ManagedRuntime, Redacted } from "effect"
import { QueuePool } from "effect-db-pool"
import { PgDriver, PgSql } from "effect-db-pool/pg"
import { SqlClient } from "effect/sql"
import { constants, performance, PerformanceObserver } from "node:perf_hooks"
import pg from "pg"
import postgres from "postgres"
import { median } from "./stats.ts"

const flags = new Map(process.argv.slice(2).map((a) => a.split("=") as [string, string]))
const url = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test"
const active = (flags.get("active") ?? "ours-pipelined,multiplex").split(",")
const query = flags.get("query") ?? "select"
const workers = Number(flags.get("c") ?? 16)
const rounds = Number(flags.get("rounds") ?? 30)
const perWorker = Math.ceil(3008 / workers)
const statements = perWorker * workers
if (query !== "select" && query !== "point") throw new Error(`query=${query}: select or point`)

interface Subject {
  readonly name: string
  readonly run: (n: number) => Promise<void>
  readonly close: () => Promise<unknown>
}

const pointId = (i: number) => (i % 1000) + 1

const effectSubject = async (name: string, layer: Layer.Layer<SqlClient.SqlClient, unknown>): Promise<Subject> => {
  const runtime = ManagedRuntime.make(layer)
  const sql = await runtime.runPromise(Effect.service(SqlClient.SqlClient))
  const select1 = sql`SELECT 1`
  const op = query === "select"
    ? () => select1
    : (i: number) => sql`select id, name from ${sql("bench_points")} where id = ${pointId(i)}`
  return {
    name,
    run: (n) =>
      Effect.runPromise(Effect.forEach(
        Array.from({ length: workers }, (_, w) => w),
        (w) =>
          Effect.gen(function*() {
            for (let i = 0; i < n; i++) yield* op(w * n + i)
          }),
        { concurrency: "unbounded", discard: true }
      )),
    close: () => runtime.dispose()
  }
}

const promiseSubject = (name: string, op: (i: number) => Promise<unknown>, close: () => Promise<unknown>): Subject => ({
  name,
  run: (n) =>
    Promise.all(Array.from({ length: workers }, async (_, w) => {
      for (let i = 0; i < n; i++) await op(w * n + i)
    })).then(() => undefined),
  close
})

const ours = (lifo: boolean, pipelined: boolean) =>
  PgSql.layer(pipelined ? { pipeline: {} } : {}).pipe(
    Layer.provide(QueuePool.layer({ poolSize: 10, maxOverflow: 0, lifo })),
    Layer.provide(PgDriver.layer({ url: Redacted.make(url) }))
  )
const pgClient = (multiplex: boolean) => PgClient.layer({ url: Redacted.make(url), maxConnections: 10, multiplex })
const pool = new pg.Pool({ connectionString: url, max: 10 })
const pgjs = postgres(url, { max: 10, onnotice: () => {} })

const subjects: ReadonlyArray<Subject> = [
  await effectSubject("ours", ours(false, false)),
  await effectSubject("ours-lifo", ours(true, false)),
  await effectSubject("pgclient", pgClient(false)),
  promiseSubject(
    "pgpool",
    (i) =>
      query === "select"
        ? pool.query("SELECT 1")
        : pool.query("select id, name from bench_points where id = $1", [pointId(i)]),
    () => pool.end()
  ),
  await effectSubject("ours-pipelined", ours(false, true)),
  await effectSubject("multiplex", pgClient(true)),
  promiseSubject(
    "postgresjs",
    (i) => query === "select" ? pgjs`SELECT 1` : pgjs`select id, name from bench_points where id = ${pointId(i)}`,
    () => pgjs.end()
  )
]
const unknown = active.filter((name) => !subjects.some((s) => s.name === name))
if (unknown.length > 0) throw new Error(`unknown subjects: ${unknown.join(", ")}`)
const running = subjects.filter((s) => active.includes(s.name))

// Young-generation collections, by start time (to charge each to the round it fell in).
const scavenges: Array<{ readonly start: number; readonly ms: number }> = []
const observer = new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    const kind = (entry as { readonly detail?: { readonly kind?: number } }).detail?.kind
    if (kind === constants.NODE_PERFORMANCE_GC_MINOR) scavenges.push({ start: entry.startTime, ms: entry.duration })
  }
})
observer.observe({ entryTypes: ["gc"] })

for (const s of running) await s.run(Math.max(1, perWorker >> 1))
let seed = 0x2545f491
const next = () => {
  seed = (Math.imul(seed, 1103515245) + 12345) >>> 0
  return seed / 4294967296
}
const measured = new Map(running.map((s) => [s.name, { us: [] as Array<number>, cpu: [] as Array<number> }]))
const windows: Array<{ readonly name: string; readonly start: number; readonly end: number }> = []
for (let r = 0; r < rounds; r++) {
  const order = running.slice()
  for (let j = order.length - 1; j > 0; j--) {
    const m = Math.floor(next() * (j + 1))
    const swap = order[j]!
    order[j] = order[m]!
    order[m] = swap
  }
  for (const s of order) {
    const c0 = process.cpuUsage()
    const start = performance.now()
    await s.run(perWorker)
    const end = performance.now()
    const c = process.cpuUsage(c0)
    windows.push({ name: s.name, start, end })
    measured.get(s.name)!.us.push(((end - start) * 1000) / statements)
    measured.get(s.name)!.cpu.push((c.user + c.system) / statements)
  }
}
await new Promise((resolve) => setTimeout(resolve, 50))
observer.disconnect()

console.log(`${query}, ${workers} fibers, ${rounds} rounds of ${statements} statements; active: ${active.join(", ")}`)
for (const s of running) {
  const m = measured.get(s.name)!
  const mine = scavenges.filter((g) => windows.some((w) => w.name === s.name && g.start >= w.start && g.start <= w.end))
  const ms = mine.reduce((sum, g) => sum + g.ms, 0)
  console.log(
    `${s.name.padEnd(16)} ${median(m.us).toFixed(2).padStart(7)} µs/stmt  CPU ${
      median(m.cpu).toFixed(2).padStart(7)
    } µs/stmt  ` +
      `scavenges ${String(mine.length).padStart(3)}, ${
        (ms * 1000 / (rounds * statements)).toFixed(2)
      } ms per 1,000 stmts`
  )
}
for (const s of subjects) await s.close()
process.exit(0)
