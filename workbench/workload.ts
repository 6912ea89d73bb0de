/**
 * The workload: a bank-like schema (accounts and a ledger) and workers that loop until a
 * deadline over a seeded mix of short point queries, transfer transactions, small reports and
 * a few slow statements (`pg_sleep`), all through effect/sql's `SqlClient` over the pool.
 *
 * A statement that fails because its session died (chaos) is retried once, as an application
 * would; both the failure and the recovery are recorded.
 *
 * Behind `PgReplicas` (`--topology replicas`) the reads are marked read-only, and each transfer
 * is read back at once (read-only): the read-back tells whether the read saw the commit.
 *
 * In pipelined mode (`PgSql.layer({ pipeline })`) the point queries and reports, lone
 * autocommit statements, are pipelined over the shared connections; the transfers, transactions,
 * take a connection of their own, and so do the slow statements, run under `PgSql.exclusive`
 * (cancellable on interrupt, and no pipelined statement queues behind them): both paths at work.
 */
import { Cause, Duration, Effect, Exit } from "effect"
import { PgDriver, PgReplicas, PgSql } from "effect-db-pool/pg"
import type { SqlClient } from "effect/sql/SqlClient"
import { isSqlError } from "effect/sql/SqlError"
import type * as Random from "../support/random.ts"
import type { OpKind, ReadMode, StrategyRun } from "./recorder.ts"

/** Accounts in the schema. */
export const accounts = 1000

/** Table names of one run (unique, so runs sharing a DATABASE_URL do not collide). */
export interface Tables {
  readonly accounts: string
  readonly ledger: string
}

/** Table names for a run id (letters, digits and `_` only). */
export const tables = (runId: string): Tables => ({
  accounts: `workbench_${runId}_accounts`,
  ledger: `workbench_${runId}_ledger`
})

/** DDL and data creating the schema. */
export const setupStatements = (t: Tables): ReadonlyArray<string> => [
  `create table ${t.accounts} (id int primary key, balance bigint not null)`,
  `insert into ${t.accounts} select g, 10000 from generate_series(1, ${accounts}) g`,
  `create table ${t.ledger} (id bigserial primary key, src int not null, dst int not null, amount int not null, at timestamptz not null default now())`
]

/** DDL removing the schema. */
export const teardownStatements = (t: Tables): ReadonlyArray<string> => [
  `drop table if exists ${t.ledger}`,
  `drop table if exists ${t.accounts}`
]

/** Share of each kind of operation, in order of the draw. */
export const mix: ReadonlyArray<readonly [OpKind, number]> = [["query", 0.72], ["transaction", 0.2], ["report", 0.06], [
  "slow",
  0.02
]]

/** Statements each kind runs (a transaction counts BEGIN and COMMIT; behind replicas, its read-back). */
const statementsOf = (kind: OpKind, singleStatementTransactions: boolean, readBack: boolean): number =>
  kind === "transaction" ? (singleStatementTransactions ? 1 : 6) + (readBack ? 1 : 0) : 1

/**
 * Error type shown in the view and report: "disconnect", the pool's error tag, or the SQL reason.
 * A connect that found no acceptable host (`--topology failover`: the primary down, the standby
 * not yet promoted) is `PgHostsError`, though it counts as a disconnect for `isDisconnect`.
 */
export const classify = (error: unknown): string => {
  if (isSqlError(error) && (error.reason.cause as { _tag?: unknown } | undefined)?._tag === "PgHostsError") {
    return "PgHostsError"
  }
  if (PgDriver.isDisconnect(error)) return "disconnect"
  if (isSqlError(error)) {
    const cause = error.reason.cause as { _tag?: unknown } | undefined
    return typeof cause === "object" && cause !== null && typeof cause._tag === "string"
      ? cause._tag
      : error.reason._tag
  }
  const tag = (error as { _tag?: unknown } | null)?._tag
  return typeof tag === "string" ? tag : "defect"
}

/** What a worker needs. */
export interface WorkerContext {
  readonly sql: SqlClient
  readonly run: StrategyRun
  readonly tables: Tables
  /** Epoch ms after which the worker starts no new operation. */
  readonly deadline: number
  readonly singleStatementTransactions: boolean
  /** The client pipelines (`PgSql.layer({ pipeline })`): slow statements run under `PgSql.exclusive`. */
  readonly pipelined: boolean
}

const draw = (rng: Random.Random): OpKind => {
  let r = rng.next()
  for (const [kind, share] of mix) {
    if (r < share) return kind
    r -= share
  }
  return "query"
}

/** One operation of `kind`, its parameters drawn from `rng`; `mode`: behind replicas, how its read-back is held. */
export const operation = (
  ctx: WorkerContext,
  kind: OpKind,
  rng: Random.Random,
  mode: ReadMode = "eventual"
): Effect.Effect<unknown, unknown> => {
  const { sql, tables: t } = ctx
  const accountsTable = sql(t.accounts)
  const ledgerTable = sql(t.ledger)
  const replicas = ctx.run.replicas
  const read = <A, E, R>(effect: Effect.Effect<A, E, R>) => (replicas === undefined ? effect : PgSql.readOnly(effect))
  switch (kind) {
    case "query":
      return read(sql`select balance from ${accountsTable} where id = ${rng.int(1, accounts)}`)
    case "report":
      return read(
        sql`select count(*)::int as n, coalesce(sum(amount), 0)::bigint as total from ${ledgerTable} where id > (select coalesce(max(id), 0) - 200 from ${ledgerTable})`
      )
    case "slow": {
      const slow = sql`select pg_sleep(${(rng.int(150, 600) / 1000).toFixed(3)}::float8)`
      return ctx.pipelined ? PgSql.exclusive(slow) : slow
    }
    case "transaction": {
      const a = rng.int(1, accounts)
      const b = ((a + rng.int(1, accounts - 1) - 1) % accounts) + 1
      const amount = rng.int(1, 100)
      const transfer: Effect.Effect<ReadonlyArray<{ readonly id: string }>, unknown> = ctx.singleStatementTransactions
        ? sql<
          { id: string }
        >`with debit as (update ${accountsTable} set balance = balance - ${amount} where id = ${a} returning id),
          credit as (update ${accountsTable} set balance = balance + ${amount} where id = ${b} returning id)
          insert into ${ledgerTable} (src, dst, amount) select ${a}, ${b}, ${amount} from debit, credit returning id`
        // Lock both rows in id order first, so concurrent transfers cannot deadlock.
        : sql.withTransaction(Effect.gen(function*() {
          yield* sql`select id from ${accountsTable} where id in (${Math.min(a, b)}, ${
            Math.max(a, b)
          }) order by id for update`
          yield* sql`update ${accountsTable} set balance = balance - ${amount} where id = ${a}`
          yield* sql`update ${accountsTable} set balance = balance + ${amount} where id = ${b}`
          return yield* sql<
            { id: string }
          >`insert into ${ledgerTable} (src, dst, amount) values (${a}, ${b}, ${amount}) returning id`
        }))
      if (replicas === undefined) return transfer
      // Read the row back at once: seen, or stale (a replica that had not replayed the commit).
      return Effect.flatMap(transfer, (rows) =>
        Effect.map(
          PgSql.readOnly(
            sql<{ n: number }>`select count(*)::int as n from ${ledgerTable} where id = ${rows[0]?.id ?? -1}`
          ),
          (found) => replicas.recordReadBack(mode, found[0]?.n === 1)
        ))
    }
  }
}

/** Run one operation, recording its outcome; a disconnect is retried once. Interruption passes through. */
const runOne = (ctx: WorkerContext, kind: OpKind, rng: Random.Random, mode: ReadMode): Effect.Effect<void> =>
  Effect.gen(function*() {
    const { run } = ctx
    const op = operation(ctx, kind, rng, mode)
    const succeeded = () =>
      run.recordOp(kind, statementsOf(kind, ctx.singleStatementTransactions, run.replicas !== undefined))
    for (let attempt = 1; attempt <= 2; attempt++) {
      const exit = yield* Effect.exit(op)
      if (Exit.isSuccess(exit)) {
        succeeded()
        if (attempt > 1) run.recovered++
        return
      }
      if (Cause.hasInterruptsOnly(exit.cause)) return yield* Effect.interrupt
      const type = classify(Cause.squash(exit.cause))
      run.recordError(type)
      if (type !== "disconnect") return
    }
  })

/**
 * A worker: operations with a short think time between them, until the deadline. Behind
 * replicas, worker `mode` reads back its transfers eventual or read-your-writes (a session per
 * worker).
 */
export const worker = (ctx: WorkerContext, rng: Random.Random, mode: ReadMode = "eventual"): Effect.Effect<void> => {
  const loop = Effect.gen(function*() {
    while (Date.now() < ctx.deadline) {
      yield* runOne(ctx, draw(rng), rng, mode)
      yield* Effect.sleep(Duration.millis(rng.int(1, 5)))
    }
  })
  return ctx.run.replicas === undefined ? loop : PgReplicas.consistency(loop, mode)
}
