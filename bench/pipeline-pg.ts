/**
 * Pipelined statements (issue 22) against PostgreSQL: `SELECT 1` and a point query by id over a
 * 1,000-row table, at 16 and 64 fibers, through
 *   - SqlClient over QueuePool (10), exclusive (today's path),
 *   - SqlClient over QueuePool (10), `PgSql.layer({ pipeline: { maxInFlight: 16 } })`,
 *   - @effect/sql-pg `PgClient.layer({ multiplex: true, maxConnections: 10 })`,
 *   - postgres.js (`postgres`, max 10),
 * in interleaved rounds (order rotated), and pgbench (10 clients, prepared) as the ceiling row.
 * Per subject: ops/s (median of rounds), the most server connections seen (pg_stat_activity by
 * application_name, sampled), Node CPU µs per operation (process.cpuUsage), RSS after the run.
 *
 * Run: DATABASE_URL=postgres://postgres@127.0.0.1:5432/test npx tsx bench/pipeline-pg.ts [--quick]
 */
import { PgClient } from "@effect/sql-pg"
import { Effect, Layer, ManagedRuntime, Redacted } from "effect"
import { QueuePool } from "effect-db-pool"
import { PgDriver, PgSql } from "effect-db-pool/pg"
import { SqlClient } from "effect/sql"
import { execFileSync } from "node:child_process"
import { existsSync, mkdtempSync, writeFileSync } from "node:fs"
import * as os from "node:os"
import { join } from "node:path"
import pg from "pg"
import postgres from "postgres"
import { median, now } from "./stats.ts"

const url = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test"
const quick = process.argv.includes("--quick")
const connections = 10
const table = "bench_pipeline_points"
const rows = 1000
type Workload = "SELECT 1" | "point query"
const workloads: ReadonlyArray<Workload> = ["SELECT 1", "point query"]
const range = (n: number) => Array.from({ length: n }, (_, i) => i)
const tag = `${process.pid}`

interface Subject {
  readonly name: string
  readonly app: string
  readonly run: (workload: Workload, workers: number, perWorker: number) => Promise<void>
  readonly close: () => Promise<void>
}

const sqlSubject = async (
  name: string,
  app: string,
  layer: Layer.Layer<SqlClient.SqlClient, unknown>
): Promise<Subject> => {
  const runtime = ManagedRuntime.make(layer)
  const sql = await runtime.runPromise(Effect.service(SqlClient.SqlClient))
  const op = (workload: Workload, i: number) =>
    workload === "SELECT 1" ? sql`SELECT 1` : sql`select id, name from ${sql(table)} where id = ${(i % rows) + 1}`
  return {
    name,
    app,
    run: (workload, workers, perWorker) =>
      Effect.runPromise(Effect.forEach(range(workers), (w) =>
        Effect.gen(function*() {
          for (let i = 0; i < perWorker; i++) yield* op(workload, w * 7919 + i)
        }), { concurrency: "unbounded", discard: true })),
    close: () => runtime.dispose()
  }
}

const ours = (pipeline: boolean) => {
  const app = `bench-${pipeline ? "pipelined" : "exclusive"}-${tag}`
  return sqlSubject(
    pipeline ? "ours pipelined (QueuePool 10, maxInFlight 16)" : "ours exclusive (QueuePool 10)",
    app,
    PgSql.layer(pipeline ? { pipeline: { maxInFlight: 16 } } : {}).pipe(
      Layer.provide(QueuePool.layer({ poolSize: connections, maxOverflow: 0 })),
      Layer.provide(PgDriver.layer({ url: Redacted.make(url), applicationName: app }))
    )
  )
}

const multiplexed = () => {
  const app = `bench-multiplex-${tag}`
  return sqlSubject(
    "PgClient.layer multiplex (max 10)",
    app,
    PgClient.layer({ url: Redacted.make(url), maxConnections: connections, multiplex: true, applicationName: app })
  )
}

const postgresJs = async (): Promise<Subject> => {
  const app = `bench-postgresjs-${tag}`
  const sql = postgres(url, { max: connections, connection: { application_name: app }, onnotice: () => {} })
  return {
    name: "postgres.js (max 10)",
    app,
    run: (workload, workers, perWorker) =>
      Promise.all(
        range(workers).map(async (w) => {
          for (let i = 0; i < perWorker; i++) {
            if (workload === "SELECT 1") await sql`SELECT 1`
            else await sql`select id, name from ${sql(table)} where id = ${((w * 7919 + i) % rows) + 1}`
          }
        })
      ).then(() => undefined),
    close: () => sql.end()
  }
}

const pgbench = (workload: Workload, clients: number, seconds: number): number | undefined => {
  const bin = ["/usr/lib/postgresql/15/bin/pgbench", "/usr/bin/pgbench"].find(existsSync)
  if (bin === undefined) return undefined
  const dir = mkdtempSync(join(os.tmpdir(), "pgbench-"))
  const file = join(dir, "script.sql")
  writeFileSync(
    file,
    workload === "SELECT 1"
      ? "SELECT 1;\n"
      : `\\set id random(1, ${rows})\nselect id, name from ${table} where id = :id;\n`
  )
  const out = execFileSync(bin, [
    "-n",
    "-M",
    "prepared",
    "-c",
    String(clients),
    "-j",
    "2",
    "-T",
    String(seconds),
    "-f",
    file,
    url
  ], {
    encoding: "utf8"
  })
  const tps = /tps = ([\d.]+)/.exec(out)
  return tps ? Number(tps[1]) : undefined
}

const main = async () => {
  const admin = new pg.Client({ connectionString: url })
  await admin.connect()
  await admin.query(`create table if not exists ${table} (id int primary key, name text not null)`)
  await admin.query(
    `insert into ${table} select g, 'row ' || g from generate_series(1, ${rows}) g on conflict do nothing`
  )
  const serverSessions = async (app: string) =>
    (await admin.query("select count(*)::int as n from pg_stat_activity where application_name = $1", [app])).rows[0]
      .n as number
  const factories = [() => ours(false), () => ours(true), multiplexed, postgresJs]
  const subjects: Array<Subject> = []
  for (const factory of factories) subjects.push(await factory())
  const ops = quick ? 5_000 : 20_000
  const rounds = quick ? 3 : 5
  console.log(
    `load average: ${os.loadavg().map((l) => l.toFixed(2)).join(" ")}; ${ops} ops x ${rounds} rounds per cell`
  )
  const lines: Array<string> = []
  for (const workload of workloads) {
    for (const workers of [16, 64]) {
      const perWorker = Math.ceil(ops / workers)
      const total = perWorker * workers
      const opsPerSec = subjects.map((): Array<number> => [])
      const cpu = subjects.map((): Array<number> => [])
      const maxConns = subjects.map(() => 0)
      for (const subject of subjects) await subject.run(workload, workers, Math.max(1, perWorker >> 2))
      for (let r = 0; r < rounds; r++) {
        for (let k = 0; k < subjects.length; k++) {
          const i = (k + r) % subjects.length
          const subject = subjects[i]!
          let sampling = true
          const sampler = (async () => {
            while (sampling) {
              maxConns[i] = Math.max(maxConns[i]!, await serverSessions(subject.app))
              await new Promise((resolve) => setTimeout(resolve, 20))
            }
          })()
          const c0 = process.cpuUsage()
          const t0 = now()
          await subject.run(workload, workers, perWorker)
          const ms = now() - t0
          const c = process.cpuUsage(c0)
          sampling = false
          await sampler
          opsPerSec[i]!.push(total / (ms / 1000))
          cpu[i]!.push((c.user + c.system) / total)
        }
      }
      const base = median(opsPerSec[0]!)
      const bench = pgbench(workload, connections, quick ? 3 : 5)
      subjects.forEach((subject, i) => {
        const m = median(opsPerSec[i]!)
        lines.push(
          `| ${workload}, ${workers} fibers | ${subject.name} | ${Math.round(m)} | ${(m / base).toFixed(2)}x | ${
            bench === undefined ? "-" : (m / bench).toFixed(2)
          } | ${maxConns[i]} | ${median(cpu[i]!).toFixed(1)} |`
        )
      })
      if (bench !== undefined) {
        lines.push(
          `| ${workload}, ${connections} clients | pgbench -M prepared (ceiling) | ${Math.round(bench)} | ${
            (bench / base).toFixed(2)
          }x | 1.00 | ${connections} | - |`
        )
      }
      console.log(lines.slice(-subjects.length - 1).join("\n"))
    }
  }
  for (const subject of subjects) await subject.close()
  await admin.end()
  console.log("\n| workload | subject | ops/s | vs ours exclusive | of pgbench | server connections | Node CPU µs/op |")
  console.log("|---|---|---|---|---|---|---|")
  console.log(lines.join("\n"))
  console.log(
    `RSS after the run: ${(process.memoryUsage().rss / 1048576).toFixed(0)} MiB; load average: ${
      os.loadavg().map((l) => l.toFixed(2)).join(" ")
    }`
  )
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
