/**
 * Shared connections of `PgSql.layer({ pipeline })` over their life against a real server: the
 * client closing while statements are in flight on them, a shared connection dying under its
 * statements, and leak detection while a shared connection serves a stream of statements.
 */
import type { PgConnection } from "@effect/sql-pg"
import { assert, describe, layer } from "@effect/vitest"
import { Cause, Context, Effect, Exit, Fiber, Layer, Metric, Scope } from "effect"
import { ConnectionPool, PoolMetrics, QueuePool } from "effect-db-pool"
import { PgSql } from "effect-db-pool/pg"
import { SqlClient } from "effect/sql"
import { isSqlError } from "effect/sql/SqlError"
import type { LogLine } from "../helpers.ts"
import { captureLogs } from "../helpers.ts"
import { admin, appName, Database, driverLayer, eventually, sessions, terminate } from "./fixture.ts"

const poolLayer = (name: string, options: QueuePool.Options = {}) =>
  QueuePool.layer({ poolSize: 2, maxOverflow: 0, ...options }).pipe(Layer.provideMerge(driverLayer(name)))

const clientLayer = (pipeline: PgSql.PipelineOptions) => PgSql.layer({ pipeline })

/** Statements in flight on the shared connections now. */
const inFlight = Effect.map(PgSql.pipelineStatus, (lanes) => (lanes ?? []).reduce((n, lane) => n + lane.inFlight, 0))

/** A table of this test's own (dropped with the scope): `id` unique, `tag`. */
const scratchTable = (conn: PgConnection.PgConnection, tag: string) =>
  Effect.gen(function*() {
    const table = `edp_pipe_${tag}_${process.pid}_${Math.random().toString(36).slice(2, 8)}`
    yield* conn.query(`create table ${table} (id int primary key, tag int not null)`)
    yield* Effect.addFinalizer(() => Effect.ignore(conn.query(`drop table if exists ${table}`)))
    return table
  })

const rowIds = (conn: PgConnection.PgConnection, table: string) =>
  Effect.map(conn.query(`select id from ${table}`), (r) => new Set(r.rows.map((row) => row.id as number)))

const describeExit = (exit: Exit.Exit<unknown, unknown>): string =>
  Exit.isSuccess(exit) ? "success" : Cause.hasInterruptsOnly(exit.cause) ? "interrupted" : (() => {
    const error = Cause.squash(exit.cause)
    return isSqlError(error) ? `SqlError/${error.reason._tag}: ${error.message}` : `other: ${String(error)}`
  })()

layer(Database, { timeout: "120 seconds", excludeTestServices: true })("pipelined statements over their life", (it) => {
  describe("the client closes with statements in flight", () => {
    it.effect(
      "statements in flight get their result, waiting ones a result or a typed error; every session ends",
      () =>
        Effect.scoped(Effect.gen(function*() {
          const name = appName("pipe-close")
          const conn = yield* admin
          const table = yield* scratchTable(conn, "close")
          const scope = yield* Scope.make()
          const context = yield* Layer.buildWithScope(
            clientLayer({ maxInFlight: 4 }).pipe(Layer.provideMerge(poolLayer(name))),
            scope
          )
          const sql = Context.get(context, SqlClient.SqlClient)
          // 8 inserts in flight on the 2 shared connections (4 each), 4 more waiting for room.
          const fibers = yield* Effect.forEach(
            Array.from({ length: 12 }, (_, i) => i),
            (i) =>
              Effect.forkDetach(
                sql`insert into ${sql(table)} (id, tag) select ${i}, ${i} from pg_sleep(0.3)`
              )
          )
          yield* eventually(
            Effect.map(Effect.provideContext(inFlight, context), (n) => n === 8),
            "8 statements in flight"
          )
          // The close does not wait for the statements (they take 1.2 s on each connection).
          const closing = Date.now()
          yield* Scope.close(scope, Exit.void)
          assert.isBelow(Date.now() - closing, 1000, "the close waited for the statements in flight")
          const exits = yield* Effect.forEach(fibers, Fiber.await)
          const written = yield* rowIds(conn, table)
          exits.forEach((exit, i) => {
            if (i < 8) {
              // On the wire when the client closed: the server runs them to their end; so are they reported.
              assert.isTrue(Exit.isSuccess(exit), `in-flight insert ${i}: ${describeExit(exit)}`)
            } else {
              // Waiting for room: run on a connection the closing pool still lent, or refused, typed.
              assert.isTrue(
                Exit.isSuccess(exit) || isSqlError(Cause.squash((exit as Exit.Failure<unknown, unknown>).cause)),
                `waiting insert ${i}: ${describeExit(exit)}`
              )
            }
            // What the caller was told is what the table holds.
            assert.strictEqual(written.has(i), Exit.isSuccess(exit), `insert ${i}: ${describeExit(exit)}`)
          })
          yield* eventually(Effect.map(sessions(conn, name), (n) => n === 0), "no server session left")
        }))
    )
    it.effect(
      "a client closed over a pool that outlives it: its shared connections come back to the pool clean",
      () =>
        Effect.scoped(Effect.gen(function*() {
          const name = appName("pipe-close-pool")
          const conn = yield* admin
          const poolContext = yield* Layer.build(poolLayer(name, { poolSize: 3 }))
          const pool = Context.get(poolContext, ConnectionPool.ConnectionPool)
          const scope = yield* Scope.make()
          const context = yield* Layer.buildWithScope(clientLayer({ maxInFlight: 4, maxConnections: 2 }), scope).pipe(
            Effect.provideContext(poolContext)
          )
          const sql = Context.get(context, SqlClient.SqlClient)
          const fibers = yield* Effect.forEach(
            Array.from({ length: 8 }, (_, i) => i),
            (i) => Effect.forkDetach(sql<{ v: number }>`select ${i}::int as v from pg_sleep(0.3)`)
          )
          yield* eventually(Effect.map(Effect.provideContext(inFlight, context), (n) => n === 8), "8 in flight")
          yield* Scope.close(scope, Exit.void)
          // Closed: the client's shared connections are still out, serving the statements they carry.
          assert.strictEqual((yield* pool.status).checkedOut, 2)
          const results = yield* Effect.forEach(fibers, Fiber.join)
          results.forEach((rows, i) => assert.strictEqual(rows[0]!.v, i))
          yield* eventually(Effect.map(pool.status, (s) => s.checkedOut === 0), "the shared connections came back")
          // Back in the pool, idle (no transaction, no statement), and lent again as usual.
          const states = yield* conn.query("select state from pg_stat_activity where application_name = $1", [name])
          assert.deepStrictEqual(states.rows.map((row) => row.state), ["idle", "idle"])
          const again = yield* Effect.scoped(Effect.gen(function*() {
            const client = yield* Layer.build(clientLayer({})).pipe(Effect.provideContext(poolContext))
            const next = Context.get(client, SqlClient.SqlClient)
            return yield* Effect.forEach(
              Array.from({ length: 16 }, (_, i) => i),
              (i) => next<{ v: number }>`select ${i}::int as v`,
              { concurrency: "unbounded" }
            )
          }))
          again.forEach((rows, i) => assert.strictEqual(rows[0]!.v, i))
          assert.isAtMost(yield* sessions(conn, name), 3)
        }))
    )
  })

  describe("a shared connection dies", () => {
    it.effect(
      "a terminated shared connection fails exactly its statements in flight; the other's and a transaction's succeed",
      () =>
        Effect.scoped(Effect.gen(function*() {
          const conn = yield* admin
          const name = appName("pipe-kill-two")
          yield* Effect.gen(function*() {
            const sql = yield* SqlClient.SqlClient
            const pool = yield* ConnectionPool.ConnectionPool
            // A transaction on the pool's third connection: untouched by the failure.
            const transaction = yield* Effect.forkChild(
              sql.withTransaction(sql<{ v: number }>`select 42 as v from pg_sleep(0.8)`)
            )
            yield* eventually(Effect.map(pool.status, (s) => s.checkedOut === 1), "the transaction holds a connection")
            // Six on each shared connection (the server runs a connection's statements one after another).
            const statements = yield* Effect.forEach(
              Array.from({ length: 12 }, (_, i) => i),
              (i) =>
                Effect.forkChild(
                  sql<{ v: number; pid: number }>`select ${i}::int as v, pg_backend_pid() as pid from pg_sleep(0.2)`
                )
            )
            yield* eventually(Effect.map(inFlight, (n) => n === 12), "12 statements in flight")
            const lanes = (yield* PgSql.pipelineStatus) ?? []
            assert.strictEqual(lanes.length, 2)
            const [victim, survivor] = lanes
            assert.isAbove(victim!.inFlight, 0)
            assert.isAbove(survivor!.inFlight, 0)
            yield* terminate(conn, victim!.processId)
            // A statement sent after the failure: not touched by it.
            const late = yield* Effect.forkChild(sql<{ v: number }>`select 99 as v`)
            const exits = yield* Effect.forEach(statements, Fiber.await)
            const failed = exits.filter(Exit.isFailure)
            assert.strictEqual(
              failed.length,
              victim!.inFlight,
              "failed: exactly the statements on the terminated connection"
            )
            for (const exit of failed) {
              const error = Cause.squash(exit.cause)
              assert.isTrue(isSqlError(error) && error.reason._tag === "ConnectionError", String(error))
              assert.isTrue(isSqlError(error) && error.reason.isRetryable)
            }
            exits.forEach((exit, i) => {
              if (Exit.isSuccess(exit)) {
                assert.strictEqual(exit.value[0]!.v, i)
                assert.strictEqual(exit.value[0]!.pid, survivor!.processId)
              }
            })
            assert.strictEqual((yield* Fiber.join(transaction))[0]!.v, 42)
            assert.strictEqual((yield* Fiber.join(late))[0]!.v, 99)
            yield* eventually(Effect.map(pool.status, (s) => s.checkedOut === 0), "nothing checked out")
            // The terminated session is gone from the pool; the others are idle.
            const states = yield* conn.query(
              "select pid, state from pg_stat_activity where application_name = $1",
              [name]
            )
            assert.isFalse(states.rows.some((row) => row.pid === victim!.processId))
            assert.isTrue(states.rows.every((row) => row.state === "idle"))
          }).pipe(Effect.provide(
            clientLayer({ maxInFlight: 6, maxConnections: 2 }).pipe(
              Layer.provideMerge(poolLayer(name, { poolSize: 3 }))
            )
          ))
        }))
    )
  })

  describe("leak detection", () => {
    it.effect(
      "a shared connection serving statements is no leak; a statement held past the threshold is, named by its site",
      () =>
        Effect.gen(function*() {
          const lines: Array<LogLine> = []
          const name = appName("pipe-leak")
          const leakWarnings = () => lines.filter((l) => l.message.includes("leak suspected"))
          yield* Effect.gen(function*() {
            const sql = yield* SqlClient.SqlClient
            const leaks = Effect.map(Metric.value(PoolMetrics.forPool(name).leaks), (s) => s.count)
            // 16 fibers keep one or two shared connections busy with short statements for 4 thresholds.
            const until = Date.now() + 1200
            yield* Effect.forEach(Array.from({ length: 16 }, (_, f) => f), (f) =>
              Effect.gen(function*() {
                while (Date.now() < until) {
                  const rows = yield* sql<{ v: number }>`select ${f}::int as v`
                  assert.strictEqual(rows[0]!.v, f)
                }
              }), { concurrency: "unbounded" })
            assert.deepStrictEqual(leakWarnings().map((l) => l.message), [], "a busy shared connection reported")
            assert.strictEqual(yield* leaks, 0)
            // One statement held on its shared connection past the threshold: reported once, as a
            // checkout held that long is, naming where it was run.
            const slowReport = Effect.fn("Reports.slow")(function*() {
              return yield* sql`select pg_sleep(0.7)`
            })
            yield* slowReport()
            const warnings = leakWarnings()
            assert.strictEqual(warnings.length, 1, warnings.map((l) => l.message).join("\n"))
            assert.strictEqual(warnings[0]!.level, "Warn")
            assert.include(warnings[0]!.message, "Reports.slow")
            assert.strictEqual(warnings[0]!.annotations.pool, name)
            assert.strictEqual(yield* leaks, 1)
            // As under an exclusive connection.
            yield* Effect.fn("Reports.exclusive")(function*() {
              return yield* PgSql.exclusive(sql`select pg_sleep(0.7)`)
            })()
            assert.strictEqual(leakWarnings().length, 2)
            assert.include(leakWarnings()[1]!.message, "Reports.exclusive")
            assert.strictEqual(yield* leaks, 2)
          }).pipe(
            Effect.provide(
              clientLayer({}).pipe(
                Layer.provideMerge(poolLayer(name, { name, leakDetectionThreshold: "300 millis" }))
              )
            ),
            Effect.provide(captureLogs(lines)),
            Effect.provideService(Metric.MetricRegistry, new Map())
          )
        })
    )
  })
})
