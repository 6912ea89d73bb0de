/**
 * Random interrupts across pipelined statements (`PgSql.layer({ pipeline })`) on a real server:
 * every statement ends exactly one way (its result, its own typed error, or interrupted), what the
 * caller was told matches the table, and afterwards every connection of the pool is back, idle,
 * outside a transaction and serving pipelined and exclusive work.
 *
 * `PIPELINE_INTERRUPTS=n` sets the number of interrupts over QueuePool (default 10,000; the other
 * pools get a fifth and a tenth of it);
 * `PIPELINE_INTERRUPTS_VERBOSE=1` prints the outcome counts.
 */
import { assert, describe, layer } from "@effect/vitest"
import { Cause, Effect, Exit, Fiber, Layer, Option } from "effect"
import { ConnectionPool, NullPool, QueuePool } from "effect-db-pool"
import type { Driver, PoolError } from "effect-db-pool"
import { PgSql } from "effect-db-pool/pg"
import { SqlClient } from "effect/sql"
import { isSqlError } from "effect/sql/SqlError"
import { admin, appName, Database, driverLayer, eventually, sessions } from "./fixture.ts"

const target = Number(process.env.PIPELINE_INTERRUPTS ?? 10_000)
const verbose = process.env.PIPELINE_INTERRUPTS_VERBOSE === "1"

/** Connections at most, whatever the pool. */
const maxConnections = 3

/** A pool over the driver: how each case lends its connections. */
type PoolLayer = Layer.Layer<ConnectionPool.ConnectionPool, PoolError.PoolConfigError, Driver.Driver>

const pipelined = (name: string, pool: PoolLayer) =>
  PgSql.layer({ pipeline: { maxInFlight: 8, maxConnections } }).pipe(
    Layer.provideMerge(pool),
    Layer.provideMerge(driverLayer(name))
  )

const cases: ReadonlyArray<{
  readonly title: string
  readonly interrupts: number
  readonly pool: PoolLayer
  /** The pool keeps its connections (no replacement): the same sessions answer after the run. */
  readonly stable: boolean
}> = [
  {
    title: "QueuePool",
    interrupts: target,
    stable: true,
    pool: QueuePool.layer({ poolSize: maxConnections, maxOverflow: 0 })
  },
  {
    // Connections replaced every 25 checkouts, pinged on reuse: interrupts hit connects and pings too.
    title: "QueuePool, prePing, maxUses 25",
    interrupts: Math.ceil(target / 5),
    stable: false,
    pool: QueuePool.layer({ poolSize: maxConnections, maxOverflow: 0, prePing: true, maxUses: 25 })
  },
  {
    // A connection per lane, closed when the lane goes back.
    title: "NullPool",
    interrupts: Math.ceil(target / 10),
    stable: false,
    pool: NullPool.layer()
  }
]

/** The SQLSTATE of a server error carried by an `SqlError`. */
const serverCode = (error: unknown): unknown =>
  isSqlError(error) ? (error.reason.cause as { readonly code?: unknown } | undefined)?.code : undefined

/** What a statement is, and how it must end when nothing interrupts it. */
type Kind =
  | "select" // select $i: its own value back
  | "sleep" // select $i, pg_sleep(0.00x)
  | "insert" // insert (id $i, tag $i): the row is there
  | "duplicate" // insert (id -1, tag $i): unique violation 23505, no row tagged $i
  | "divide" // select 1 / 0: 22012
  | "divideInsert" // insert (id $i, tag 1 / 0): 22012, no row $i
  | "exclusive" // PgSql.exclusive(select $i): a connection of its own
  | "transaction" // BEGIN; insert (id $i, tag $i); COMMIT on a connection of its own

const kinds: ReadonlyArray<Kind> = [
  "select",
  "sleep",
  "sleep",
  "insert",
  "insert",
  "duplicate",
  "divide",
  "divideInsert",
  "select",
  "sleep",
  "insert",
  "exclusive",
  "select",
  "sleep",
  "insert",
  "transaction"
]

const expectedCode: Partial<Record<Kind, string>> = { duplicate: "23505", divide: "22012", divideInsert: "22012" }

type Outcome = "done" | "failed" | "interrupted"

interface Statement {
  readonly id: number
  readonly kind: Kind
  outcome: Outcome | undefined
  /** Seen inside the statement's own fiber: it succeeded / it failed. */
  succeededInside: boolean
  failedInside: boolean
}

const sqlClient = Effect.service(SqlClient.SqlClient)

const poolService = Effect.service(ConnectionPool.ConnectionPool)

describe("pipelined statements under random interrupts", () => {
  layer(Database, { timeout: "300 seconds", excludeTestServices: true })((it) => {
    it.effect.each(cases)(
      "$title: $interrupts random interrupts: one outcome each, the table agrees, every connection comes back clean",
      ({ interrupts, pool: poolLayer, stable, title }) =>
        Effect.scoped(Effect.gen(function*() {
          const name = appName("pipe-interrupts")
          const table = `edp_pipe_interrupts_${process.pid}_${Math.random().toString(36).slice(2, 8)}`
          const conn = yield* admin
          yield* conn.query(`create table ${table} (id int primary key, tag int not null)`)
          yield* Effect.addFinalizer(() => Effect.ignore(conn.query(`drop table if exists ${table}`)))
          yield* conn.query(`insert into ${table} (id, tag) values (-1, -1)`)
          assert.strictEqual(yield* sessions(conn, name), 0)

          const records: Array<Statement> = []
          const started = Date.now()
          yield* Effect.gen(function*() {
            const sql = yield* sqlClient
            const pool = yield* poolService

            const statement = (r: Statement): Effect.Effect<unknown, unknown> => {
              const i = r.id
              switch (r.kind) {
                case "select":
                  return Effect.map(sql<{ v: number }>`select ${i}::int as v`, (rows) => {
                    assert.strictEqual(rows[0]!.v, i, "another statement's result")
                  })
                case "sleep":
                  return Effect.map(
                    sql<{ v: number }>`select ${i}::int as v, pg_sleep(${(i % 4) / 1000})`,
                    (rows) => assert.strictEqual(rows[0]!.v, i, "another statement's result")
                  )
                case "insert":
                  return Effect.map(
                    sql<{ id: number }>`insert into ${sql(table)} (id, tag) values (${i}, ${i}) returning id`,
                    (rows) => assert.strictEqual(rows[0]!.id, i, "another statement's result")
                  )
                case "duplicate":
                  return sql`insert into ${sql(table)} (id, tag) values (-1, ${i})`
                case "divide":
                  return sql`select ${i} / ${0}::int as v`
                case "divideInsert":
                  return sql`insert into ${sql(table)} (id, tag) values (${i}, ${i} / ${0}::int)`
                case "exclusive":
                  return Effect.map(
                    PgSql.exclusive(sql<{ v: number }>`select ${i}::int as v, pg_sleep(${(i % 3) / 1000})`),
                    (rows) => assert.strictEqual(rows[0]!.v, i, "another statement's result")
                  )
                case "transaction":
                  return sql.withTransaction(
                    Effect.andThen(
                      sql`insert into ${sql(table)} (id, tag) values (${i}, ${i})`,
                      sql`select pg_sleep(${(i % 3) / 1000})`
                    )
                  )
              }
            }

            /** Run one statement, interrupted (or not) at a random point; record how it ended. */
            const one = (r: Statement) =>
              Effect.gen(function*() {
                const inner = statement(r).pipe(
                  Effect.tap(() => Effect.sync(() => void (r.succeededInside = true))),
                  Effect.tapError(() => Effect.sync(() => void (r.failedInside = true)))
                )
                const mode = Math.random()
                let exit: Exit.Exit<unknown, unknown>
                if (mode < 0.2) {
                  exit = yield* Effect.exit(inner)
                } else if (mode < 0.45) {
                  // A bound of 0–2 ms: before the lane, queued, on the wire, or after the result.
                  const timed = yield* Effect.exit(Effect.timeoutOption(inner, Math.random() * 2))
                  exit = Exit.isSuccess(timed) && Option.isNone(timed.value) ? Exit.interrupt() : timed
                } else {
                  const fiber = yield* Effect.forkChild(inner)
                  if (mode < 0.75) {
                    for (let y = Math.floor(Math.random() * 5); y > 0; y--) yield* Effect.yieldNow
                  } else {
                    yield* Effect.sleep(Math.random() * 3)
                  }
                  exit = yield* Effect.andThen(Fiber.interrupt(fiber), Fiber.await(fiber))
                }
                assert.isUndefined(r.outcome, `statement ${r.id} ended twice`)
                if (Exit.isSuccess(exit)) {
                  r.outcome = "done"
                } else if (Cause.hasInterruptsOnly(exit.cause)) {
                  r.outcome = "interrupted"
                } else {
                  r.outcome = "failed"
                  const error = Cause.squash(exit.cause)
                  const code = expectedCode[r.kind]
                  assert.isDefined(code, `${r.kind} ${r.id} failed: ${Cause.pretty(exit.cause)}`)
                  assert.isTrue(isSqlError(error), `${r.kind} ${r.id}: not an SqlError: ${String(error)}`)
                  assert.strictEqual(serverCode(error), code, `${r.kind} ${r.id}: ${String(error)}`)
                }
              })

            let interrupted = 0
            let id = 0
            while (interrupted < interrupts) {
              const batch: Array<Statement> = Array.from({ length: 48 }, () => {
                const i = id++
                const r: Statement = {
                  id: i,
                  kind: kinds[i % kinds.length]!,
                  outcome: undefined,
                  succeededInside: false,
                  failedInside: false
                }
                records.push(r)
                return r
              })
              yield* Effect.forEach(batch, one, { concurrency: "unbounded", discard: true })
              for (const r of batch) if (r.outcome === "interrupted") interrupted++
            }

            // -- every statement ended exactly one way
            for (const r of records) {
              assert.isDefined(r.outcome, `statement ${r.id} never ended`)
              assert.isFalse(r.succeededInside && r.failedInside, `${r.kind} ${r.id} reported both done and failed`)
              if (r.outcome === "done") assert.isTrue(r.succeededInside && expectedCode[r.kind] === undefined)
              if (r.outcome === "failed") assert.isTrue(r.failedInside && !r.succeededInside)
            }

            // -- the pool: nothing in flight, nothing checked out, every connection idle and reachable
            yield* eventually(
              Effect.map(pool.status, (s) => s.checkedOut === 0 && s.waiting === 0),
              "nothing checked out"
            )
            assert.deepStrictEqual((yield* PgSql.pipelineStatus) ?? [], [])
            const stats = yield* pool.stats
            assert.strictEqual(stats.used, 0)
            assert.strictEqual(stats.pending, 0)
            // Every server session of this client is idle (no statement left running, no
            // transaction open), and there are no more of them than idle connections in the pool.
            const serverSessions = Effect.map(
              conn.query(
                "select pid, state from pg_stat_activity where application_name = $1 order by pid",
                [name]
              ),
              (result) => result.rows as ReadonlyArray<{ readonly pid: number; readonly state: string }>
            )
            yield* eventually(
              Effect.map(
                Effect.zip(serverSessions, pool.stats),
                ([rows, s]) => rows.length <= s.idle && rows.every((row) => row.state === "idle")
              ),
              "every server session idle, no more than the pool's idle connections"
            )
            const before = (yield* serverSessions).map((row) => row.pid)

            // Every connection the pool can lend answers, at once, each in a transaction of its own.
            const held = yield* Effect.forEach(
              Array.from({ length: maxConnections }, (_, i) => i),
              (i) =>
                sql.withTransaction(Effect.gen(function*() {
                  const [row] = yield* sql<{ pid: number; v: number }>`select pg_backend_pid() as pid, ${i}::int as v`
                  yield* Effect.sleep(50)
                  assert.strictEqual(row!.v, i)
                  return row!.pid
                })),
              { concurrency: "unbounded" }
            )
            const lent = new Set(held)
            assert.strictEqual(lent.size, maxConnections, "the transactions shared a connection")
            // Connections kept across the run are the same sessions, answering.
            if (stable) { for (const pid of before) assert.isTrue(lent.has(pid), `session ${pid} is not the pool's`) }
            // No orphan: every server session of this client is a connection the pool lends.
            yield* eventually(
              Effect.map(serverSessions, (rows) => rows.every((row) => lent.has(row.pid) && row.state === "idle")),
              "every server session is one of the pool's connections, idle"
            )

            // -- the table agrees with what every caller was told
            const rows = (yield* conn.query(`select id, tag from ${table}`)).rows as ReadonlyArray<
              { readonly id: number; readonly tag: number }
            >
            const ids = new Set(rows.map((row) => row.id))
            const tags = new Set(rows.map((row) => row.tag))
            let interruptedButWritten = 0
            for (const r of records) {
              if (r.kind === "insert" || r.kind === "transaction") {
                if (r.outcome === "done") assert.isTrue(ids.has(r.id), `${r.kind} ${r.id} reported done: no row`)
                if (r.outcome === "failed") assert.fail(`${r.kind} ${r.id} failed`)
                if (r.outcome === "interrupted" && ids.has(r.id)) interruptedButWritten++
              }
              if (r.kind === "duplicate") {
                assert.isFalse(tags.has(r.id), `duplicate insert ${r.id} (${r.outcome}) wrote a row`)
              }
              if (r.kind === "divideInsert") {
                assert.isFalse(ids.has(r.id), `failing insert ${r.id} (${r.outcome}) wrote a row`)
              }
            }
            // Nothing else was written.
            for (const row of rows) {
              if (row.id === -1) continue
              const r = records[row.id]
              assert.isTrue(r?.kind === "insert" || r?.kind === "transaction", `unexpected row ${row.id}`)
              assert.strictEqual(row.tag, row.id)
            }

            // -- still serving: pipelined statements and exclusive transactions, committed or rolled back
            const after = yield* Effect.forEach(
              Array.from({ length: 64 }, (_, i) => i),
              (i) => sql<{ v: number }>`select ${i}::int as v`,
              { concurrency: "unbounded" }
            )
            after.forEach((r, i) => assert.strictEqual(r[0]!.v, i))
            const base = 10_000_000
            yield* Effect.forEach([0, 1, 2, 3], (k) =>
              Effect.exit(sql.withTransaction(Effect.gen(function*() {
                yield* sql`insert into ${sql(table)} (id, tag) values (${base + k}, ${base + k})`
                yield* Effect.sleep(10)
                if (k % 2 === 1) return yield* Effect.fail("roll back")
              }))), { concurrency: "unbounded" })
            const kept = (yield* conn.query(`select id from ${table} where id >= $1 order by id`, [base])).rows
              .map((row) => row.id as number)
            assert.deepStrictEqual(kept, [base, base + 2])
            yield* eventually(
              Effect.map(pool.status, (s) => s.checkedOut === 0),
              "nothing checked out at the end"
            )
            const counts = { done: 0, failed: 0, interrupted: 0 }
            for (const r of records) counts[r.outcome!]++
            const message = `pipeline interrupts (${title}): ${records.length} statements, ${
              JSON.stringify(counts)
            }, interrupted inserts that ran anyway ${interruptedButWritten}, ${before.length} sessions kept, ${
              Date.now() - started
            } ms`
            if (verbose) console.info(message)
            assert.isAtLeast(counts.interrupted, interrupts)
            assert.isAbove(counts.done, 0)
            assert.isAbove(counts.failed, 0)
          }).pipe(Effect.provide(pipelined(name, poolLayer)))
          // The client and its pool closed: no server session left behind.
          yield* eventually(Effect.map(sessions(conn, name), (n) => n === 0), "no server session left")
        })),
      300_000
    )
  })
})
