/**
 * What read-your-writes costs, per write and per read, on a real primary + streaming standby
 * (support/replication.ts: embedded binaries, no apply delay, `synchronous_commit = on`; never
 * the machine's server).
 *
 *   npx tsx bench/replicas-consistency.ts [ops=300] [rounds=5]
 *
 * One fiber, operations one after another, through `PgReplicas` with `consistency: "eventual"`
 * and with `"read-your-writes"`; subjects interleaved per round, median µs per operation of each
 * round, then the median of the rounds:
 *
 * - `write`: an autocommit insert on the primary;
 * - `read`: a read marked read-only, the session's writes already replayed (no write since);
 * - `write+read`: an insert, then a read-only read of the row: under read-your-writes the read
 *   first reads the primary's WAL position, then waits for the standby to replay it (or, past
 *   `maxReplayWait`, runs on the primary).
 *
 * A latency benchmark on a shared machine: run it alone, compare subjects of one run only.
 */
import { Effect, Layer } from "effect"
import { QueuePool } from "effect-db-pool"
import { PgReplicas, PgSql } from "effect-db-pool/pg"
import { SqlClient } from "effect/sql"
import * as Fixture from "../support/replication.ts"

const arg = (k: string, d: string) => process.argv.find((a) => a.startsWith(k + "="))?.slice(k.length + 1) ?? d
const ops = Number(arg("ops", "300"))
const rounds = Number(arg("rounds", "5"))

const median = (values: ReadonlyArray<number>): number => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]!
}

const router = (cluster: Fixture.Cluster, options: PgReplicas.Options) =>
  PgReplicas.layer({
    primary: PgReplicas.pool(QueuePool.layer({ poolSize: 2 }), { url: cluster.primary.url }),
    replicas: [PgReplicas.pool(QueuePool.layer({ poolSize: 2 }), { url: cluster.standby.url })]
  }, options)

let nextId = 0
const write = Effect.flatMap(
  Effect.service(SqlClient.SqlClient),
  (sql) => sql`insert into bench_ryw (id) values (${++nextId})`
)
const read = Effect.flatMap(
  Effect.service(SqlClient.SqlClient),
  (sql) => PgSql.readOnly(sql<{ n: number }>`select count(*)::int as n from bench_ryw where id = ${nextId}`)
)
const subjects = {
  write,
  read,
  "write+read": Effect.andThen(write, read)
} as const

/** Per-operation times (µs) of `op`, run `ops` times. */
const time = <E, R>(op: Effect.Effect<unknown, E, R>) =>
  Effect.gen(function*() {
    const times: Array<number> = []
    for (let i = 0; i < ops; i++) {
      const t0 = performance.now()
      yield* op
      times.push((performance.now() - t0) * 1000)
    }
    return times
  })

const program = Effect.scoped(Effect.gen(function*() {
  const cluster = yield* Fixture.makeWith({ synchronousCommit: true })
  yield* cluster.query(cluster.primary, "create table bench_ryw (id int primary key)")
  for (let i = 0; i < 500; i++) {
    const [row] = yield* cluster.query<{ ok: boolean }>(
      cluster.standby,
      "select to_regclass('bench_ryw') is not null as ok"
    )
    if (row!.ok) break
    yield* Effect.sleep("10 millis")
  }
  const modes = ["eventual", "read-your-writes"] as const
  const contexts = yield* Effect.forEach(modes, (consistency) => Layer.build(router(cluster, { consistency })))
  const results = new Map<string, Array<number>>()
  for (let round = 0; round < rounds; round++) {
    for (const [name, op] of Object.entries(subjects)) {
      for (let m = 0; m < modes.length; m++) {
        const run = Effect.provideContext(Effect.andThen(op, time(op)), contexts[m]!)
        const times = yield* run
        const key = `${name} / ${modes[m]}`
        results.set(key, [...(results.get(key) ?? []), median(times)])
      }
    }
  }
  const status = yield* Effect.provideContext(
    Effect.flatMap(Effect.service(PgReplicas.PgReplicas), (r) => r.status),
    contexts[1]!
  )
  console.log(`replicas-consistency: ${ops} ops x ${rounds} rounds, median µs per operation (median of round medians)`)
  for (const name of Object.keys(subjects)) {
    const eventual = median(results.get(`${name} / eventual`)!)
    const ryw = median(results.get(`${name} / read-your-writes`)!)
    console.log(
      `${name.padEnd(11)} eventual ${eventual.toFixed(0).padStart(6)} µs   read-your-writes ${
        ryw.toFixed(0).padStart(6)
      } µs   difference ${(ryw - eventual).toFixed(0).padStart(6)} µs`
    )
  }
  console.log(`read-your-writes outcomes: ${JSON.stringify(status.readYourWrites)}`)
}))

Effect.runPromise(program).then(
  () => process.exit(0),
  (error) => {
    console.error(error)
    process.exit(1)
  }
)
