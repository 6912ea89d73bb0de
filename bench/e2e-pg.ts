/**
 * End to end against PostgreSQL: `SELECT 1` and a short transaction (BEGIN; SELECT 1; COMMIT)
 * through
 *   - SqlClient over our QueuePool (PgSql + PgDriver, library defaults, poolSize 10),
 *   - @effect/sql-pg's own `PgClient.layer` (maxConnections 10),
 *   - node-postgres `pg.Pool` (max 10),
 *   - SqlClient over QueuePool pipelined (`PgSql.layer({ pipeline })`), `PgClient.layer` with
 *     `multiplex: true`, postgres.js (max 10),
 *   - one dedicated connection per worker: sql-pg `PgClient.makeClient`, and a raw `pg.Client`,
 * at concurrency 1/16/64 (the pools have 10 connections; "dedicated" has one per worker);
 * and through PgBouncer in transaction mode (its own, default_pool_size 10, started by
 * support/pgbouncer.ts; skipped with a message when `pgbouncer` is not installed):
 * SqlClient over NullPool and over QueuePool (10), `PgDriver.layer({ pooler: "transaction" })`.
 * The server: DATABASE_URL if set, else an embedded one (PgDatabase.layer).
 *
 * Loaded by bench/e2e.ts (by computed path).
 */
import { PgClient } from "@effect/sql-pg"
import { Cause, Duration, Effect, Layer, ManagedRuntime, Redacted } from "effect"
import { NullPool, PoolError, QueuePool } from "effect-db-pool"
import type { ConnectionPool, Driver } from "effect-db-pool"
import { PgDriver, PgSql } from "effect-db-pool/pg"
import { PgDatabase } from "effect-db-pool/pg/embedded"
import { SqlClient } from "effect/sql"
import { isSqlError } from "effect/sql/SqlError"
import { execFileSync } from "node:child_process"
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import * as os from "node:os"
import { join } from "node:path"
import pg from "pg"
import postgres from "postgres"
import * as PgBouncer from "../support/pgbouncer.ts"
import type { E2eOptions, E2eResult, LatencySummary, OverloadResult, PgBenchOutcome } from "./e2e.ts"
import { median, now } from "./stats.ts"

export type Query = "SELECT 1" | "point query" | "transaction"
const queries: ReadonlyArray<Query> = ["SELECT 1", "point query", "transaction"]
const connections = 10
/** The point query's table: `rows` rows keyed by `id` (created if missing). */
const pointTable = "bench_points"
const rows = 1000
/** Operation `i` of a worker reads this row (spread over the table). */
const pointId = (i: number) => (i * 7919) % rows + 1
/** application_name of a subject's sessions (counted in pg_stat_activity). */
const appName = (short: string) => `bench-${short}-${process.pid}`

export interface E2eSubject {
  readonly name: string
  /** Its sessions' application_name, when it sets one (server connections are counted by it). */
  readonly app?: string
  /**
   * `workers` concurrent loops of `perWorker` operations; every operation's latency (µs) is pushed
   * to `latencies` (the same two clock readings per operation for every subject).
   */
  readonly run: (query: Query, workers: number, perWorker: number, latencies: Array<number>) => Promise<void>
  readonly close: () => Promise<void>
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i)

const loop = <E>(
  op: (i: number) => Effect.Effect<unknown, E>,
  n: number,
  latencies: Array<number>,
  worker: number
): Effect.Effect<void, E> =>
  Effect.gen(function*() {
    for (let i = 0; i < n; i++) {
      const t0 = now()
      yield* op(worker * n + i)
      latencies.push((now() - t0) * 1000)
    }
  })

/**
 * The order of the interleaved subjects in round `round`: a shuffle seeded by the round (the same
 * in every run), so that each subject's rounds follow a mix of predecessors. A rotation of one
 * order kept each behind the same one, and a round runs slower behind some subjects than behind
 * others (bench/README.md, "End to end").
 */
const roundOrder = (subjects: number, round: number): Array<number> => {
  let seed = 0x9e3779b9 ^ (round + 1)
  // mulberry32: a small deterministic PRNG.
  const next = () => {
    seed = (seed + 0x6d2b79f5) | 0
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  const order = range(subjects)
  for (let j = subjects - 1; j > 0; j--) {
    const m = Math.floor(next() * (j + 1))
    const swap = order[j]!
    order[j] = order[m]!
    order[m] = swap
  }
  return order
}

/** p50 / p99 / p99.9 / max of µs samples (nearest rank). */
export const summarize = (samples: ReadonlyArray<number>): LatencySummary => {
  const sorted = Float64Array.from(samples).sort()
  const at = (q: number) =>
    sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!
  return {
    count: sorted.length,
    p50: at(0.5),
    p99: at(0.99),
    p999: at(0.999),
    max: sorted.length === 0 ? NaN : sorted[sorted.length - 1]!
  }
}

const sqlOps = (sql: SqlClient.SqlClient): Record<Query, (i: number) => Effect.Effect<unknown, unknown>> => {
  const select1 = sql`SELECT 1`
  const transaction = sql.withTransaction(sql`SELECT 1`)
  return {
    "SELECT 1": () => select1,
    "point query": (i) => sql`select id, name from ${sql(pointTable)} where id = ${pointId(i)}`,
    transaction: () => transaction
  }
}

/** One SqlClient shared by all workers. */
const sqlSubject = async (
  name: string,
  layer: Layer.Layer<SqlClient.SqlClient, unknown>,
  app?: string
): Promise<E2eSubject> => {
  const runtime = ManagedRuntime.make(layer)
  const ops = sqlOps(await runtime.runPromise(Effect.service(SqlClient.SqlClient)))
  return {
    name,
    ...(app === undefined ? {} : { app }),
    run: (query, workers, perWorker, latencies) =>
      Effect.runPromise(
        Effect.forEach(range(workers), (w) => loop(ops[query], perWorker, latencies, w), {
          concurrency: "unbounded",
          discard: true
        })
      ),
    close: () => runtime.dispose()
  }
}

/**
 * `workers` concurrent promise loops of `perWorker` operations each (`op(worker, i)`, `i` counting
 * the worker's operations from `worker * perWorker`), every operation's latency (µs) pushed.
 */
const promiseWorkers = (
  workers: number,
  perWorker: number,
  latencies: Array<number>,
  op: (worker: number, i: number) => Promise<unknown>
): Promise<void> =>
  Promise.all(
    range(workers).map(async (w) => {
      for (let i = 0; i < perWorker; i++) {
        const t0 = now()
        await op(w, w * perWorker + i)
        latencies.push((now() - t0) * 1000)
      }
    })
  ).then(() => undefined)

/** postgres.js (`postgres`, max 10): pipelines autocommit statements on its own. */
const postgresJsSubject = (url: string): E2eSubject => {
  const app = appName("postgresjs")
  const sql = postgres(url, { max: connections, onnotice: () => {}, connection: { application_name: app } })
  const op = async (query: Query, i: number) => {
    if (query === "SELECT 1") await sql`SELECT 1`
    else if (query === "point query") await sql`select id, name from ${sql(pointTable)} where id = ${pointId(i)}`
    else await sql.begin((tx) => tx`SELECT 1`)
  }
  return {
    name: "postgres.js (max 10)",
    app,
    run: (query, workers, perWorker, latencies) =>
      promiseWorkers(workers, perWorker, latencies, (_, i) => op(query, i)),
    close: () => sql.end()
  }
}

/** A single-connection SqlClient per worker. */
const dedicatedSqlSubject = async (url: string, workers: number): Promise<E2eSubject> => {
  const runtimes = range(workers).map(() =>
    ManagedRuntime.make(PgClient.layerFrom(PgClient.makeClient({ url: Redacted.make(url) })))
  )
  const ops = await Promise.all(
    runtimes.map(async (rt) => sqlOps(await rt.runPromise(Effect.service(SqlClient.SqlClient))))
  )
  return {
    name: "dedicated sql-pg connection / worker",
    run: (query, n, perWorker, latencies) =>
      Effect.runPromise(
        Effect.forEach(range(n), (i) => loop(ops[i]![query], perWorker, latencies, i), {
          concurrency: "unbounded",
          discard: true
        })
      ),
    close: () => Promise.all(runtimes.map((rt) => rt.dispose())).then(() => undefined)
  }
}

const pgQuery = async (client: pg.ClientBase | pg.Pool, query: Query, i: number): Promise<void> => {
  if (query === "SELECT 1") {
    await client.query("SELECT 1")
    return
  }
  if (query === "point query") {
    await client.query(`select id, name from ${pointTable} where id = $1`, [pointId(i)])
    return
  }
  await client.query("BEGIN")
  await client.query("SELECT 1")
  await client.query("COMMIT")
}

const pgPoolSubject = (url: string): E2eSubject => {
  const app = appName("pgpool")
  const pool = new pg.Pool({ connectionString: url, max: connections, application_name: app })
  const op = async (query: Query, i: number) => {
    if (query !== "transaction") return pgQuery(pool, query, i)
    const client = await pool.connect()
    try {
      await pgQuery(client, query, i)
    } finally {
      client.release()
    }
  }
  return {
    name: "node-postgres pg.Pool",
    app,
    run: (query, workers, perWorker, latencies) =>
      promiseWorkers(workers, perWorker, latencies, (_, i) => op(query, i)),
    close: () => pool.end()
  }
}

const dedicatedPgSubject = async (url: string, workers: number): Promise<E2eSubject> => {
  const clients = range(workers).map(() => new pg.Client({ connectionString: url }))
  await Promise.all(clients.map((c) => c.connect()))
  return {
    name: "dedicated pg.Client / worker",
    run: (query, n, perWorker, latencies) =>
      promiseWorkers(n, perWorker, latencies, (w, i) => pgQuery(clients[w]!, query, i)),
    close: () => Promise.all(clients.map((c) => c.end())).then(() => undefined)
  }
}

/**
 * The subjects that share the machine in interleaved rounds, each on at most 10 server connections,
 * by short name (the `application_name` part; `--subjects=` and `--neighbours active=` pick from
 * these). Each is opened when its factory is called.
 */
export const interleavedSubjects = (url: string): ReadonlyArray<readonly [string, () => Promise<E2eSubject>]> => {
  const ourLayer = (app: string, pipelined: boolean, lifo = false) =>
    PgSql.layer(pipelined ? { pipeline: {} } : {}).pipe(
      Layer.provide(QueuePool.layer({ poolSize: connections, maxOverflow: 0, lifo })),
      Layer.provide(PgDriver.layer({ url: Redacted.make(url), applicationName: app }))
    )
  const ourSubject = (name: string, short: string, pipelined: boolean, lifo = false) => () => {
    const app = appName(short)
    return sqlSubject(name, ourLayer(app, pipelined, lifo), app)
  }
  const pgClientSubject = (name: string, short: string, multiplex: boolean) => () => {
    const app = appName(short)
    return sqlSubject(
      name,
      PgClient.layer({ url: Redacted.make(url), maxConnections: connections, multiplex, applicationName: app }),
      app
    )
  }
  return [
    ["ours", ourSubject("SqlClient over QueuePool (PgSql)", "ours", false)],
    ["ours-lifo", ourSubject("SqlClient over QueuePool lifo (PgSql)", "ours-lifo", false, true)],
    ["pgclient", pgClientSubject("@effect/sql-pg PgClient.layer", "pgclient", false)],
    ["pgpool", async () => pgPoolSubject(url)],
    // Pipelined autocommit statements (`PgSql.layer({ pipeline: {} })`, the defaults), and the
    // clients that pipeline on their own.
    ["ours-pipelined", ourSubject("SqlClient over QueuePool pipelined (PgSql)", "ours-pipelined", true)],
    ["multiplex", pgClientSubject("@effect/sql-pg PgClient.layer multiplex", "multiplex", true)],
    ["postgresjs", async () => postgresJsSubject(url)]
  ]
}

/** The point query's table (1,000 rows), made if missing. */
export const createPointTable = async (admin: pg.Client): Promise<void> => {
  await admin.query(`create table if not exists ${pointTable} (id int primary key, name text not null)`)
  await admin.query(
    `insert into ${pointTable} select g, 'row ' || g from generate_series(1, ${rows}) g on conflict do nothing`
  )
}

/**
 * SqlClient through PgBouncer (transaction mode, `default_pool_size` 10), `PgDriver.layer({ pooler:
 * "transaction" })`, over NullPool and over QueuePool (10). Each subject starts a PgBouncer of its
 * own and stops it when it closes (an idle PgBouncer keeps its server sessions open, which the
 * next subjects' connections may need). None (logged) when `pgbouncer` is not installed.
 */
const bouncerSubjects = (url: string, options: E2eOptions): ReadonlyArray<(workers: number) => Promise<E2eSubject>> => {
  const available = PgBouncer.availability()
  if (available.binary === undefined) {
    options.log("e2e: pgbouncer is not installed (apt-get install -y pgbouncer): the PgBouncer rows are skipped")
    return []
  }
  options.log(`e2e: PgBouncer ${available.version ?? "?"} (transaction mode, ${connections} server sessions)`)
  const through =
    (name: string, pool: Layer.Layer<ConnectionPool.ConnectionPool, unknown, Driver.Driver>) => async () => {
      const bouncer = await PgBouncer.start({ target: url, poolSize: connections })
      try {
        const subject = await sqlSubject(
          name,
          PgSql.layer().pipe(
            Layer.provide(pool),
            Layer.provide(PgDriver.layer({ url: Redacted.make(bouncer.url), pooler: "transaction" }))
          )
        )
        return { ...subject, close: () => subject.close().finally(() => bouncer.stop()) }
      } catch (error) {
        await bouncer.stop()
        throw error
      }
    }
  return [
    through("SqlClient over NullPool via PgBouncer", NullPool.layer()),
    through("SqlClient over QueuePool via PgBouncer", QueuePool.layer({ poolSize: connections, maxOverflow: 0 }))
  ]
}

// ---------------------------------------------------------------------------------- overload

/** The overload row: many more workers than connections, each checkout held by a short sleep. */
const overloadWorkers = 256
const overloadHold = "SELECT pg_sleep(0.05)"
const overloadTimeoutMs = 1000

type Attempt = { readonly outcome: "ok"; readonly waitUs: number } | { readonly outcome: "timeout" | "error" }

interface OverloadSubject {
  readonly name: string
  readonly timeoutMs: number | null
  /** Check out a connection (timing the wait), hold it with {@link overloadHold}, give it back. */
  readonly attempt: () => Promise<Attempt>
  readonly close: () => Promise<void>
}

/** A checkout through the SqlClient API (`reserve`), for ours and PgClient.layer alike. */
const sqlOverloadSubject = async (
  name: string,
  timeoutMs: number | null,
  layer: Layer.Layer<SqlClient.SqlClient, unknown>,
  isTimeout: (error: unknown) => boolean
): Promise<OverloadSubject> => {
  const runtime = ManagedRuntime.make(layer)
  const sql = await runtime.runPromise(Effect.service(SqlClient.SqlClient))
  const attempt: Effect.Effect<Attempt> = Effect.scoped(Effect.gen(function*() {
    const t0 = now()
    const conn = yield* sql.reserve
    const waitUs = (now() - t0) * 1000
    yield* conn.executeRaw(overloadHold, [])
    return { outcome: "ok", waitUs } as const
  })).pipe(Effect.catchCause((cause) => {
    const error = Cause.squash(cause)
    return Effect.succeed({ outcome: isTimeout(error) ? "timeout" : "error" } as const)
  }))
  return { name, timeoutMs, attempt: () => runtime.runPromise(attempt), close: () => runtime.dispose() }
}

const pgPoolOverloadSubject = (url: string): OverloadSubject => {
  const pool = new pg.Pool({ connectionString: url, max: connections, connectionTimeoutMillis: overloadTimeoutMs })
  // A pool error event (a backend gone while idle) must not crash the bench.
  pool.on("error", () => {})
  return {
    name: "node-postgres pg.Pool",
    timeoutMs: overloadTimeoutMs,
    attempt: async () => {
      const t0 = now()
      let client: pg.PoolClient
      try {
        client = await pool.connect()
      } catch (error) {
        return { outcome: /timeout/i.test(String((error as Error)?.message)) ? "timeout" : "error" }
      }
      const waitUs = (now() - t0) * 1000
      try {
        await client.query(overloadHold)
        return { outcome: "ok", waitUs }
      } catch {
        return { outcome: "error" }
      } finally {
        client.release()
      }
    },
    close: () => pool.end()
  }
}

const runOverload = async (url: string, options: E2eOptions): Promise<ReadonlyArray<OverloadResult>> => {
  const seconds = options.quick ? 2 : 5
  options.log(
    `e2e overload: ${overloadWorkers} workers on ${connections} connections, each checkout held by ${overloadHold}, ` +
      `checkout timeout ${overloadTimeoutMs} ms, ${seconds} s per subject`
  )
  const isPoolTimeout = (error: unknown) =>
    error instanceof PoolError.PoolTimeoutError ||
    (isSqlError(error) && error.reason.cause instanceof PoolError.PoolTimeoutError)
  const factories: ReadonlyArray<() => Promise<OverloadSubject>> = [
    () =>
      sqlOverloadSubject(
        "SqlClient over QueuePool (PgSql)",
        overloadTimeoutMs,
        PgSql.layer().pipe(
          Layer.provide(
            QueuePool.layer({ poolSize: connections, maxOverflow: 0, timeout: Duration.millis(overloadTimeoutMs) })
          ),
          Layer.provide(PgDriver.layer({ url: Redacted.make(url) }))
        ),
        isPoolTimeout
      ),
    // effect/Pool (under PgClient.layer) has no checkout timeout: a checkout waits as long as it takes.
    () =>
      sqlOverloadSubject(
        "@effect/sql-pg PgClient.layer",
        null,
        PgClient.layer({ url: Redacted.make(url), maxConnections: connections }),
        () => false
      ),
    async () => pgPoolOverloadSubject(url)
  ]
  const out: Array<OverloadResult> = []
  for (const factory of factories) {
    const subject = await factory()
    try {
      const drive = async (ms: number, record: boolean) => {
        const waits: Array<number> = []
        let timeouts = 0
        let errors = 0
        const end = now() + ms
        await Promise.all(
          range(overloadWorkers).map(async () => {
            while (now() < end) {
              const result = await subject.attempt()
              if (!record) continue
              if (result.outcome === "ok") waits.push(result.waitUs)
              else if (result.outcome === "timeout") timeouts++
              else errors++
            }
          })
        )
        return { waits, timeouts, errors }
      }
      await drive(500, false) // every connection open
      const { errors, timeouts, waits } = await drive(seconds * 1000, true)
      out.push({
        subject: subject.name,
        workers: overloadWorkers,
        connections,
        hold: overloadHold,
        seconds,
        timeoutMs: subject.timeoutMs,
        acquired: waits.length,
        wait: summarize(waits),
        timeouts,
        errors
      })
    } finally {
      await subject.close()
    }
  }
  return out
}

// ------------------------------------------------------------------------------- placement

/**
 * On Linux, pin this process (every thread) to CPU 0 while the end-to-end part runs, and put it
 * back afterwards. On a small machine the server's backends and Node share the cores, and whether
 * a backend sits on Node's core or the other one changes a round trip by up to 2x (a cross-core
 * wake-up in a VM is expensive): unpinned, each subject's connections draw their own placement,
 * which is what swung single runs by ±30 % and more. Pinned, Node stays on one core and the
 * backends are placed by the kernel as usual. `--no-pin` turns it off.
 */
const pinToOneCpu = (options: E2eOptions): { readonly placement?: string; readonly restore: () => void } => {
  const cores = os.cpus().length
  if (options.pin === false || process.platform !== "linux" || cores < 2) return { restore: () => {} }
  const taskset = (cpus: string) =>
    execFileSync("taskset", ["-a", "-p", "-c", cpus, String(process.pid)], { stdio: ["ignore", "ignore", "ignore"] })
  try {
    taskset("0")
  } catch {
    options.log("e2e: taskset not available: the process is not pinned")
    return { restore: () => {} }
  }
  const placement = `node pinned to CPU 0 of ${cores} (taskset) during the end-to-end part`
  options.log(`e2e: ${placement}`)
  return {
    placement,
    restore: () => {
      try {
        taskset(`0-${cores - 1}`)
      } catch {
        // best effort
      }
    }
  }
}

// ---------------------------------------------------------------------------------- ceiling

export const pgbenchSubject = "pgbench -M prepared (ceiling)"

/**
 * pgbench (libpq, C) on the same server: transactions per second of one workload with `clients`
 * clients and prepared statements, for `seconds`; `undefined` when pgbench is not installed.
 */
const pgbench = (url: string, query: Query, clients: number, seconds: number): number | undefined => {
  const bin = ["/usr/lib/postgresql/15/bin/pgbench", "/usr/bin/pgbench"].find((f) => existsSync(f))
  if (bin === undefined) return undefined
  const dir = mkdtempSync(join(os.tmpdir(), "pgbench-"))
  const file = join(dir, "script.sql")
  writeFileSync(
    file,
    query === "SELECT 1"
      ? "SELECT 1;\n"
      : query === "point query"
      ? `\\set id random(1, ${rows})\nselect id, name from ${pointTable} where id = :id;\n`
      : "BEGIN;\nSELECT 1;\nCOMMIT;\n"
  )
  try {
    const out = execFileSync(
      bin,
      [
        "-n",
        "-M",
        "prepared",
        "-c",
        String(clients),
        "-j",
        String(Math.min(clients, 2)),
        "-T",
        String(seconds),
        "-f",
        file,
        url
      ],
      { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }
    )
    const tps = /tps = ([\d.]+)/.exec(out)
    return tps ? Number(tps[1]) : undefined
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

// ------------------------------------------------------------------------------------- run

export const runPgBench = async (options: E2eOptions): Promise<PgBenchOutcome> => {
  const dbRuntime = ManagedRuntime.make(PgDatabase.layer())
  const pinned = pinToOneCpu(options)
  try {
    const db = await dbRuntime.runPromise(Effect.service(PgDatabase.PgDatabase))
    const url = Redacted.value(db.url)
    options.log(`e2e: ${db.embedded === undefined ? "DATABASE_URL" : "embedded PostgreSQL"} server`)
    const ops = options.quick ? 1_000 : 3_000
    const rounds = options.subset?.rounds ?? (options.quick ? 5 : 15)
    const results: Array<E2eResult> = []
    const admin = new pg.Client({ connectionString: url })
    await admin.connect()
    await createPointTable(admin)
    /** Server sessions of `app` now (pg_stat_activity). */
    const sessionsOf = async (app: string): Promise<number> =>
      (await admin.query<{ n: number }>(
        "select count(*)::int as n from pg_stat_activity where application_name = $1",
        [app]
      )).rows[0]!.n
    // The pools on 10 connections: open together, rounds interleaved (round r of each subject in
    // turn, starting with a different one each round).
    const allInterleaved = interleavedSubjects(url)
    const subset = options.subset
    const unknown = subset?.subjects?.filter((s) => !allInterleaved.some(([short]) => short === s)) ?? []
    if (unknown.length > 0) throw new Error(`unknown subjects: ${unknown.join(", ")}`)
    const interleaved = allInterleaved
      .filter(([short]) => subset?.subjects === undefined || subset.subjects.includes(short))
      .map(([, factory]) => factory)
    // One after another (a connection per worker, or a PgBouncer each): too many connections to
    // keep open beside the pools. Not in a subset run.
    const sequential: ReadonlyArray<(workers: number) => Promise<E2eSubject>> = subset !== undefined ? [] : [
      (workers) => dedicatedSqlSubject(url, workers),
      (workers) => dedicatedPgSubject(url, workers),
      ...bouncerSubjects(url, options)
    ]
    const queryNames: Record<string, Query> = { select: "SELECT 1", point: "point query", transaction: "transaction" }
    const cellQueries = subset?.queries === undefined ? queries : subset.queries.map((q) => {
      const query = queryNames[q]
      if (query === undefined) throw new Error(`unknown query ${q} (select, point, transaction)`)
      return query
    })
    const record = (
      subject: E2eSubject,
      query: Query,
      concurrency: number,
      samples: ReadonlyArray<number>,
      latencies: ReadonlyArray<number>,
      grouped: boolean,
      extra: { roundP99?: ReadonlyArray<number>; cpu?: ReadonlyArray<number>; sessions?: number } = {}
    ) =>
      results.push({
        subject: subject.name,
        query,
        concurrency,
        connections: subject.name.startsWith("dedicated") ? concurrency : connections,
        medianUs: median(samples),
        rounds: samples,
        ...(grouped ? { interleaved: true } : {}),
        latency: summarize(latencies),
        ...(extra.roundP99 === undefined ? {} : { roundP99: extra.roundP99 }),
        ...(extra.cpu === undefined ? {} : { cpuUs: median(extra.cpu), cpuRounds: extra.cpu }),
        ...(extra.sessions === undefined ? {} : { serverConnections: extra.sessions })
      })
    /**
     * One measured round of `subject`: µs per operation, CPU µs per operation, and the most
     * server sessions of the subject seen meanwhile (sampled every 20 ms: the sampler's own
     * queries cost every subject alike).
     */
    const measure = async (
      subject: E2eSubject,
      query: Query,
      concurrency: number,
      perWorker: number,
      latencies: Array<number>
    ): Promise<{ us: number; cpu: number; sessions: number }> => {
      const total = perWorker * concurrency
      let sessions = 0
      let sampling = subject.app !== undefined
      const sampler = (async () => {
        while (sampling) {
          sessions = Math.max(sessions, await sessionsOf(subject.app!))
          await new Promise((resolve) => setTimeout(resolve, 20))
        }
      })()
      const c0 = process.cpuUsage()
      const t0 = now()
      await subject.run(query, concurrency, perWorker, latencies)
      const us = ((now() - t0) * 1000) / total
      const c = process.cpuUsage(c0)
      sampling = false
      await sampler
      return { us, cpu: (c.user + c.system) / total, sessions }
    }
    for (const concurrency of options.subset?.concurrency ?? [1, 16, 64]) {
      const perWorker = Math.max(1, Math.ceil(ops / concurrency))
      const total = perWorker * concurrency
      options.log(`e2e concurrency ${concurrency} (${total} ops x ${rounds} rounds per query)`)
      const group: Array<E2eSubject> = []
      try {
        for (const factory of interleaved) group.push(await factory())
        for (const query of cellQueries) {
          for (const subject of group) await subject.run(query, concurrency, Math.max(1, perWorker >> 1), [])
          const samples = group.map((): Array<number> => [])
          const latencies = group.map((): Array<number> => [])
          const roundP99 = group.map((): Array<number> => [])
          const cpu = group.map((): Array<number> => [])
          const sessions = group.map(() => 0)
          for (let r = 0; r < rounds; r++) {
            const order = roundOrder(group.length, r)
            for (let k = 0; k < group.length; k++) {
              const i = order[k]!
              // No forced GC before a round: a full GC shrinks the young generation, and the
              // allocation-heavy (Effect) subjects then ran ~2x slower for the whole round.
              const from = latencies[i]!.length
              const round = await measure(group[i]!, query, concurrency, perWorker, latencies[i]!)
              samples[i]!.push(round.us)
              cpu[i]!.push(round.cpu)
              sessions[i] = Math.max(sessions[i]!, round.sessions)
              roundP99[i]!.push(summarize(latencies[i]!.slice(from)).p99)
            }
          }
          group.forEach((subject, i) =>
            record(subject, query, concurrency, samples[i]!, latencies[i]!, true, {
              roundP99: roundP99[i]!,
              cpu: cpu[i]!,
              ...(subject.app === undefined ? {} : { sessions: sessions[i]! })
            })
          )
        }
        // The ceiling: pgbench (libpq, C, prepared statements), min(concurrency, 10) clients.
        for (const query of subset === undefined ? queries : []) {
          const tps = pgbench(url, query, Math.min(concurrency, connections), options.quick ? 2 : 5)
          if (tps === undefined) continue
          results.push({
            subject: pgbenchSubject,
            query,
            concurrency,
            connections: Math.min(concurrency, connections),
            medianUs: 1e6 / tps,
            rounds: [1e6 / tps],
            serverConnections: Math.min(concurrency, connections)
          })
        }
      } finally {
        for (const subject of group) await subject.close()
      }
      for (const factory of sequential) {
        const subject = await factory(concurrency)
        try {
          for (const query of queries) {
            await subject.run(query, concurrency, Math.max(1, perWorker >> 1), [])
            const samples: Array<number> = []
            const latencies: Array<number> = []
            const cpu: Array<number> = []
            for (let r = 0; r < rounds; r++) {
              const round = await measure(subject, query, concurrency, perWorker, latencies)
              samples.push(round.us)
              cpu.push(round.cpu)
            }
            record(subject, query, concurrency, samples, latencies, false, { cpu })
          }
        } finally {
          await subject.close()
        }
      }
    }
    await admin.end()
    const overload = subset === undefined ? await runOverload(url, options) : []
    return {
      results,
      overload,
      ...(pinned.placement === undefined ? {} : { placement: pinned.placement }),
      rssMiB: Math.round(process.memoryUsage().rss / 1048576)
    }
  } finally {
    pinned.restore()
    await dbRuntime.dispose()
  }
}
