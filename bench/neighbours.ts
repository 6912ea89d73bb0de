/**
 * The end-to-end subjects in one process, and which of them run: the pipelined subject and
 * `PgClient.layer({ multiplex: true })` are measured beside neighbours of your choosing (the others
 * are opened and left idle), to see how a neighbour changes what each pays per statement.
 *
 *   npm run bench -- --neighbours [active=ours-pipelined,multiplex,...] [query=select|point] [c=16] [rounds=30]
 *
 * Subjects: the end-to-end run's interleaved ones, by short name (`interleavedSubjects` in
 * e2e-pg.ts: ours, ours-lifo, pgclient, pgpool, ours-pipelined, multiplex, postgresjs). Each round
 * runs the active ones once in a seeded shuffled order; per subject it prints the median µs and
 * Node CPU µs per statement and the young-generation collections that fell in its rounds (count
 * and ms per 1,000 statements). `DATABASE_URL` or the machine's default local server (the point
 * query's table is made if missing). Node is not pinned here: run it under `taskset -c 0` to
 * match the e2e run.
 */
import { constants, performance, PerformanceObserver } from "node:perf_hooks"
import pg from "pg"
import { createPointTable, interleavedSubjects } from "./e2e-pg.ts"
import type { E2eSubject, Query } from "./e2e-pg.ts"
import { median } from "./stats.ts"

const flags = new Map(process.argv.slice(2).map((a) => a.split("=") as [string, string]))
const url = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test"
const active = (flags.get("active") ?? "ours-pipelined,multiplex").split(",")
const queryNames: Record<string, Query> = { select: "SELECT 1", point: "point query" }
const query = queryNames[flags.get("query") ?? "select"]
if (query === undefined) throw new Error(`query=${flags.get("query")}: select or point`)
const workers = Number(flags.get("c") ?? 16)
const rounds = Number(flags.get("rounds") ?? 30)
const perWorker = Math.ceil(3008 / workers)
const statements = perWorker * workers

const admin = new pg.Client({ connectionString: url })
await admin.connect()
await createPointTable(admin)
await admin.end()

// Every subject opened (the end-to-end run's, in its order), only the active ones run.
const all = interleavedSubjects(url)
const unknown = active.filter((name) => !all.some(([short]) => short === name))
if (unknown.length > 0) throw new Error(`unknown subjects: ${unknown.join(", ")}`)
const subjects: Array<{ readonly short: string; readonly subject: E2eSubject }> = []
for (const [short, open] of all) subjects.push({ short, subject: await open() })
const running = subjects.filter((s) => active.includes(s.short))
/** Each operation's latency, pushed by the subjects' loops (the same cost for each); not read here. */
const latencies: Array<number> = []
const run = (s: (typeof subjects)[number], n: number) => {
  latencies.length = 0
  return s.subject.run(query, workers, n, latencies)
}

// Young-generation collections, by start time (to charge each to the round it fell in).
const scavenges: Array<{ readonly start: number; readonly ms: number }> = []
const observer = new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    const kind = (entry as { readonly detail?: { readonly kind?: number } }).detail?.kind
    if (kind === constants.NODE_PERFORMANCE_GC_MINOR) scavenges.push({ start: entry.startTime, ms: entry.duration })
  }
})
observer.observe({ entryTypes: ["gc"] })

for (const s of running) await run(s, Math.max(1, perWorker >> 1))
let seed = 0x2545f491
const next = () => {
  seed = (Math.imul(seed, 1103515245) + 12345) >>> 0
  return seed / 4294967296
}
const measured = new Map(running.map((s) => [s.short, { us: [] as Array<number>, cpu: [] as Array<number> }]))
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
    await run(s, perWorker)
    const end = performance.now()
    const c = process.cpuUsage(c0)
    windows.push({ name: s.short, start, end })
    measured.get(s.short)!.us.push(((end - start) * 1000) / statements)
    measured.get(s.short)!.cpu.push((c.user + c.system) / statements)
  }
}
await new Promise((resolve) => setTimeout(resolve, 50))
observer.disconnect()

console.log(`${query}, ${workers} fibers, ${rounds} rounds of ${statements} statements; active: ${active.join(", ")}`)
for (const s of running) {
  const m = measured.get(s.short)!
  const mine = scavenges.filter((g) =>
    windows.some((w) => w.name === s.short && g.start >= w.start && g.start <= w.end)
  )
  const ms = mine.reduce((sum, g) => sum + g.ms, 0)
  console.log(
    `${s.short.padEnd(16)} ${median(m.us).toFixed(2).padStart(7)} µs/stmt  CPU ${
      median(m.cpu).toFixed(2).padStart(7)
    } µs/stmt  ` +
      `scavenges ${String(mine.length).padStart(3)}, ${
        (ms * 1000 / (rounds * statements)).toFixed(2)
      } ms per 1,000 stmts`
  )
}
for (const s of subjects) await s.subject.close()
process.exit(0)
