/**
 * End to end against PostgreSQL: `SELECT 1` and a short transaction (BEGIN; SELECT 1; COMMIT)
 * through
 *   - SqlClient over our QueuePool (PgSql + PgDriver, library defaults, poolSize 10),
 *   - @effect/sql-pg's own `PgClient.layer` (maxConnections 10),
 *   - node-postgres `pg.Pool` (max 10),
 *   - one dedicated connection per worker: sql-pg `PgClient.makeClient`, and a raw `pg.Client`,
 * at concurrency 1/16/64 (the pools have 10 connections; "dedicated" has one per worker);
 * and through PgBouncer in transaction mode (its own, default_pool_size 10, started by
 * test/pg/pgbouncer-fixture.ts; skipped with a message when `pgbouncer` is not installed):
 * SqlClient over NullPool and over QueuePool (10), `PgDriver.layer({ pooler: "transaction" })`.
 * The server: DATABASE_URL if set, else an embedded one (PgDatabase.layer).
 *
 * Loaded by bench/e2e.ts (by computed path).
 */
import { Effect, Layer, ManagedRuntime, Redacted } from "effect"
import { SqlClient } from "effect/sql"
import { PgClient } from "@effect/sql-pg"
import pg from "pg"
import { NullPool, QueuePool } from "effect-db-pool"
import type { ConnectionPool, Driver } from "effect-db-pool"
import { PgDriver, PgSql } from "effect-db-pool/pg"
import { PgDatabase } from "effect-db-pool/pg/embedded"
import type { E2eOptions, E2eResult } from "./e2e.ts"
import { median, now } from "./stats.ts"
import * as PgBouncer from "../test/pg/pgbouncer-fixture.ts"

type Query = "SELECT 1" | "transaction"
const queries: ReadonlyArray<Query> = ["SELECT 1", "transaction"]
const connections = 10

interface E2eSubject {
  readonly name: string
  /** `workers` concurrent loops of `perWorker` operations. */
  readonly run: (query: Query, workers: number, perWorker: number) => Promise<void>
  readonly close: () => Promise<void>
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i)

const loop = <E>(op: Effect.Effect<unknown, E>, n: number): Effect.Effect<void, E> =>
  Effect.gen(function*() {
    for (let i = 0; i < n; i++) yield* op
  })

const sqlOps = (sql: SqlClient.SqlClient): Record<Query, Effect.Effect<unknown, unknown>> => ({
  "SELECT 1": sql`SELECT 1`,
  transaction: sql.withTransaction(sql`SELECT 1`)
})

/** One SqlClient shared by all workers. */
const sqlSubject = async (
  name: string,
  layer: Layer.Layer<SqlClient.SqlClient, unknown>
): Promise<E2eSubject> => {
  const runtime = ManagedRuntime.make(layer)
  const ops = sqlOps(await runtime.runPromise(Effect.service(SqlClient.SqlClient)))
  return {
    name,
    run: (query, workers, perWorker) =>
      Effect.runPromise(
        Effect.forEach(range(workers), () => loop(ops[query], perWorker), { concurrency: "unbounded", discard: true })
      ),
    close: () => runtime.dispose()
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
    run: (query, n, perWorker) =>
      Effect.runPromise(
        Effect.forEach(range(n), (i) => loop(ops[i]![query], perWorker), { concurrency: "unbounded", discard: true })
      ),
    close: () => Promise.all(runtimes.map((rt) => rt.dispose())).then(() => undefined)
  }
}

const pgQuery = async (client: pg.ClientBase | pg.Pool, query: Query): Promise<void> => {
  if (query === "SELECT 1") {
    await client.query("SELECT 1")
    return
  }
  await client.query("BEGIN")
  await client.query("SELECT 1")
  await client.query("COMMIT")
}

const pgPoolSubject = (url: string): E2eSubject => {
  const pool = new pg.Pool({ connectionString: url, max: connections })
  const op = async (query: Query) => {
    if (query === "SELECT 1") return pgQuery(pool, query)
    const client = await pool.connect()
    try {
      await pgQuery(client, query)
    } finally {
      client.release()
    }
  }
  return {
    name: "node-postgres pg.Pool",
    run: (query, workers, perWorker) =>
      Promise.all(range(workers).map(async () => {
        for (let i = 0; i < perWorker; i++) await op(query)
      })).then(() => undefined),
    close: () => pool.end()
  }
}

const dedicatedPgSubject = async (url: string, workers: number): Promise<E2eSubject> => {
  const clients = range(workers).map(() => new pg.Client({ connectionString: url }))
  await Promise.all(clients.map((c) => c.connect()))
  return {
    name: "dedicated pg.Client / worker",
    run: (query, n, perWorker) =>
      Promise.all(range(n).map(async (i) => {
        for (let k = 0; k < perWorker; k++) await pgQuery(clients[i]!, query)
      })).then(() => undefined),
    close: () => Promise.all(clients.map((c) => c.end())).then(() => undefined)
  }
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
  const through = (name: string, pool: Layer.Layer<ConnectionPool.ConnectionPool, unknown, Driver.Driver>) => async () => {
    const bouncer = await PgBouncer.start({ target: url, poolSize: connections })
    try {
      const subject = await sqlSubject(
        name,
        PgSql.layer.pipe(
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

export const runPgBench = async (options: E2eOptions): Promise<ReadonlyArray<E2eResult>> => {
  const dbRuntime = ManagedRuntime.make(PgDatabase.layer())
  try {
    const db = await dbRuntime.runPromise(Effect.service(PgDatabase.PgDatabase))
    const url = Redacted.value(db.url)
    options.log(`e2e: ${db.embedded === undefined ? "DATABASE_URL" : "embedded PostgreSQL"} server`)
    const ops = options.quick ? 1_000 : 5_000
    const rounds = options.quick ? 3 : 5
    const results: Array<E2eResult> = []
    const factories: ReadonlyArray<(workers: number) => Promise<E2eSubject>> = [
      () =>
        sqlSubject(
          "SqlClient over QueuePool (PgSql)",
          PgSql.layer.pipe(
            Layer.provide(QueuePool.layer({ poolSize: connections, maxOverflow: 0 })),
            Layer.provide(PgDriver.layer({ url: Redacted.make(url) }))
          )
        ),
      () =>
        sqlSubject(
          "SqlClient over QueuePool lifo (PgSql)",
          PgSql.layer.pipe(
            Layer.provide(QueuePool.layer({ poolSize: connections, maxOverflow: 0, lifo: true })),
            Layer.provide(PgDriver.layer({ url: Redacted.make(url) }))
          )
        ),
      () => sqlSubject("@effect/sql-pg PgClient.layer", PgClient.layer({ url: Redacted.make(url), maxConnections: connections })),
      async () => pgPoolSubject(url),
      (workers) => dedicatedSqlSubject(url, workers),
      (workers) => dedicatedPgSubject(url, workers),
      ...bouncerSubjects(url, options)
    ]
    for (const concurrency of [1, 16, 64]) {
      const perWorker = Math.max(1, Math.ceil(ops / concurrency))
      const total = perWorker * concurrency
      options.log(`e2e concurrency ${concurrency} (${total} ops x ${rounds} rounds per query)`)
      for (const factory of factories) {
        const subject = await factory(concurrency)
        for (const query of queries) {
          await subject.run(query, concurrency, Math.max(1, perWorker >> 2))
          const samples: Array<number> = []
          for (let r = 0; r < rounds; r++) {
            const t0 = now()
            await subject.run(query, concurrency, perWorker)
            samples.push(((now() - t0) * 1000) / total)
          }
          results.push({
            subject: subject.name,
            query,
            concurrency,
            connections: subject.name.startsWith("dedicated") ? concurrency : connections,
            medianUs: median(samples),
            rounds: samples
          })
        }
        await subject.close()
      }
    }
    return results
  } finally {
    await dbRuntime.dispose()
  }
}
