/**
 * `PgSql.layer({ pipeline })` against a real server: autocommit statements from many fibers
 * share a few pooled connections (each statement its own Sync, so its own result and error);
 * transactions and session-changing statements get a connection of their own; a terminated
 * shared connection fails exactly its statements in flight; interrupts leave nothing behind.
 */
import { assert, describe, layer } from "@effect/vitest"
import { Cause, Effect, Exit, Fiber, Layer } from "effect"
import { ConnectionPool, FiberPool, QueuePool, StaticPool } from "effect-db-pool"
import { PgSql } from "effect-db-pool/pg"
import { SqlClient } from "effect/sql"
import { isSqlError } from "effect/sql/SqlError"
import { admin, appName, Database, driverLayer, eventually, sessions, terminate } from "./fixture.ts"

const pipelined = (name: string, pipeline: PgSql.PipelineOptions = {}) =>
  PgSql.layer({ pipeline }).pipe(
    Layer.provideMerge(QueuePool.layer({ poolSize: 2, maxOverflow: 0 })),
    Layer.provideMerge(driverLayer(name))
  )

const sqlClient = Effect.service(SqlClient.SqlClient)

/** Statements in flight on the shared connections now (0 when none is open). */
const inFlight = Effect.map(PgSql.pipelineStatus, (lanes) => (lanes ?? []).reduce((n, lane) => n + lane.inFlight, 0))

const checkedOut = Effect.flatMap(
  Effect.service(ConnectionPool.ConnectionPool),
  (pool) => Effect.map(pool.status, (s) => s.checkedOut)
)

describe("pipelined statements", () => {
  layer(Database, { timeout: "120 seconds", excludeTestServices: true })((it) => {
    it.effect("64 fibers share at most 2 server connections, each gets its own result", () =>
      Effect.scoped(Effect.gen(function*() {
        const name = appName("pipe-load")
        const conn = yield* admin
        let maxSessions = 0
        let maxInFlight = 0
        const results = yield* Effect.gen(function*() {
          const sql = yield* sqlClient
          const fibers = 64
          const rounds = 20
          const work = Effect.forEach(
            Array.from({ length: fibers }, (_, f) => f),
            (f) =>
              Effect.forEach(
                Array.from({ length: rounds }, (_, r) => f * 1000 + r),
                (id) =>
                  Effect.map(sql<{ v: number; t: string }>`select ${id}::int as v, ${`t${id}`}::text as t`, (rows) => ({
                    id,
                    row: rows[0]!
                  }))
              ),
            { concurrency: "unbounded" }
          )
          const running = yield* Effect.forkChild(work)
          // Sample while the load runs: server sessions of this client, statements sharing a connection.
          while (running.pollUnsafe() === undefined) {
            maxInFlight = Math.max(maxInFlight, ...((yield* PgSql.pipelineStatus) ?? []).map((l) => l.inFlight))
            maxSessions = Math.max(maxSessions, yield* sessions(conn, name))
            yield* Effect.yieldNow
          }
          return yield* Fiber.join(running)
        }).pipe(Effect.provide(pipelined(name)))
        const flat = results.flat()
        assert.strictEqual(flat.length, 64 * 20)
        for (const { id, row } of flat) {
          assert.strictEqual(row.v, id)
          assert.strictEqual(row.t, `t${id}`)
        }
        assert.isAtMost(maxSessions, 2, "server connections used")
        assert.isAtLeast(maxSessions, 1)
        // Statements shared a connection (more than one in flight on one), within the bound.
        assert.isAbove(maxInFlight, 1, "no statement ever shared a connection")
        assert.isAtMost(maxInFlight, 32, "the default maxInFlight")
      })))

    it.effect("a failing statement fails alone: its neighbours on the connection succeed", () =>
      Effect.gen(function*() {
        const sql = yield* sqlClient
        for (let round = 0; round < 5; round++) {
          const ids = Array.from({ length: 24 }, (_, i) => i)
          // All submitted in the same tick: one write, one connection (maxConnections 1).
          const exits = yield* Effect.forEach(ids, (i) =>
            Effect.exit(
              i === 7
                ? sql<{ v: number }>`select 1 / ${0}::int as v`
                : sql<{ v: number }>`select ${i}::int as v`
            ), { concurrency: "unbounded" })
          for (const i of ids) {
            const exit = exits[i]!
            if (i === 7) {
              assert.isTrue(Exit.isFailure(exit), "division by zero succeeded")
              const error = Exit.isFailure(exit) ? Cause.squash(exit.cause) : undefined
              assert.isTrue(isSqlError(error), String(error))
              const server = isSqlError(error)
                ? error.reason.cause as { readonly code?: unknown } | undefined
                : undefined
              assert.strictEqual(server?.code, "22012", "not the division by zero")
            } else {
              assert.isTrue(
                Exit.isSuccess(exit),
                `neighbour ${i} failed: ${Exit.isFailure(exit) ? Cause.pretty(exit.cause) : ""}`
              )
              if (Exit.isSuccess(exit)) assert.strictEqual(exit.value[0]!.v, i)
            }
          }
        }
      }).pipe(Effect.provide(pipelined(appName("pipe-error"), { maxConnections: 1 }))))

    it.effect("a SET and a transaction get a connection of their own; the SET never reaches pipelined statements", () =>
      Effect.gen(function*() {
        const sql = yield* sqlClient
        const setting = Effect.map(sql<{ w: string }>`select current_setting('work_mem') as w`, (rows) => rows[0]!.w)
        const defaultMem = yield* setting
        assert.notStrictEqual(defaultMem, "7MB")
        // One shared connection (maxConnections 1), kept busy by a slow statement: every pipelined
        // statement below goes to it, after the SET had it been sent there.
        const holder = yield* Effect.forkChild(sql`select pg_sleep(0.5)`)
        yield* eventually(Effect.map(inFlight, (n) => n === 1), "the slow statement is in flight")
        const [lane] = (yield* PgSql.pipelineStatus) ?? []
        yield* sql`set work_mem = '7MB'`
        const seen = yield* Effect.forEach(Array.from({ length: 20 }, () => setting), (e) => e, {
          concurrency: "unbounded"
        })
        for (const w of seen) assert.strictEqual(w, defaultMem, "the SET reached a pipelined statement")
        assert.strictEqual((yield* PgSql.pipelineStatus)?.[0]?.processId, lane!.processId)
        const inTransaction = yield* sql.withTransaction(Effect.gen(function*() {
          yield* sql`set local work_mem = '9MB'`
          const [a] = yield* sql<
            { w: string; pid: number }
          >`select current_setting('work_mem') as w, pg_backend_pid() as pid`
          // The transaction's connection is not the shared one.
          assert.notStrictEqual(a!.pid, lane!.processId, "transaction ran on the shared connection")
          return a!.w
        }))
        assert.strictEqual(inTransaction, "9MB")
        yield* Fiber.join(holder)
        assert.strictEqual(yield* setting, defaultMem)
      }).pipe(Effect.provide(pipelined(appName("pipe-set"), { maxConnections: 1 }))))

    it.effect(
      "a terminated shared connection fails only its statements in flight, retryable; later ones succeed",
      () =>
        Effect.scoped(Effect.gen(function*() {
          const conn = yield* admin
          yield* Effect.gen(function*() {
            const sql = yield* sqlClient
            // An exclusive transaction on the pool's other connection: untouched by the failure.
            const transaction = yield* Effect.forkChild(
              sql.withTransaction(sql<{ v: number }>`select pg_sleep(0.6), 42 as v`)
            )
            yield* eventually(Effect.map(checkedOut, (n) => n === 1), "the transaction holds a connection")
            const statements = yield* Effect.forEach(
              Array.from({ length: 8 }, (_, i) => i),
              (i) => Effect.forkChild(sql<{ v: number }>`select pg_sleep(5), ${i}::int as v`)
            )
            yield* eventually(Effect.map(inFlight, (n) => n === 8), "8 statements in flight")
            const lanes = (yield* PgSql.pipelineStatus) ?? []
            assert.strictEqual(lanes.length, 1)
            yield* terminate(conn, lanes[0]!.processId)
            for (const fiber of statements) {
              const exit = yield* Fiber.await(fiber)
              assert.isTrue(Exit.isFailure(exit), "a statement on the terminated connection succeeded")
              const error = Exit.isFailure(exit) ? Cause.squash(exit.cause) : undefined
              assert.isTrue(isSqlError(error) && error.reason._tag === "ConnectionError", String(error))
              assert.isTrue(isSqlError(error) && error.reason.isRetryable)
            }
            const committed = yield* Fiber.join(transaction)
            assert.strictEqual(committed[0]!.v, 42)
            const after = yield* Effect.forEach(
              Array.from({ length: 10 }, (_, i) => i),
              (i) => sql<{ v: number; pid: number }>`select ${i}::int as v, pg_backend_pid() as pid`,
              { concurrency: "unbounded" }
            )
            after.forEach((rows, i) => {
              assert.strictEqual(rows[0]!.v, i)
              assert.notStrictEqual(rows[0]!.pid, lanes[0]!.processId)
            })
            yield* eventually(Effect.map(checkedOut, (n) => n === 0), "nothing checked out")
          }).pipe(Effect.provide(pipelined(appName("pipe-kill"), { maxConnections: 1 })))
        })),
      60_000
    )

    it.effect(
      "1,000+ random interrupts leave every connection usable and nothing checked out",
      () =>
        Effect.scoped(Effect.gen(function*() {
          const name = appName("pipe-interrupt")
          const conn = yield* admin
          yield* Effect.gen(function*() {
            const sql = yield* sqlClient
            let interrupted = 0
            let completed = 0
            let failed = 0
            let both = 0
            let id = 0
            // Exclusive statements run alongside: each gets a connection a lane may just have left.
            const exclusive = (i: number) =>
              Effect.map(PgSql.exclusive(sql<{ v: number }>`select ${i}::int as v`), (rows) => {
                assert.strictEqual(rows[0]!.v, i, "an exclusive statement got another statement's result")
              })
            while (interrupted < 1000 && id < 20_000) {
              const batch = Array.from({ length: 32 }, () => id++)
              yield* Effect.forEach(batch, (i) =>
                i % 8 === 0 ?
                  exclusive(i) :
                  Effect.gen(function*() {
                    let done = false
                    let bad = false
                    const statement = sql<{ v: number }>`select ${i}::int as v, pg_sleep(${(i % 4) / 1000})`.pipe(
                      Effect.tap((rows) =>
                        Effect.sync(() => {
                          assert.strictEqual(rows[0]!.v, i, "another statement's result")
                          done = true
                        })
                      ),
                      Effect.tapError(() => Effect.sync(() => void (bad = true)))
                    )
                    const fiber = yield* Effect.forkChild(statement)
                    // Interrupted at a random point: before it is sent, while queued, on the wire.
                    if (Math.random() < 0.5) {
                      for (let y = Math.floor(Math.random() * 4); y > 0; y--) yield* Effect.yieldNow
                    } else {
                      yield* Effect.sleep(Math.random() * 3)
                    }
                    const exit = yield* Fiber.interrupt(fiber).pipe(Effect.andThen(Fiber.await(fiber)))
                    if (done && bad) both++
                    if (Exit.isSuccess(exit)) completed++
                    else if (Cause.hasInterruptsOnly(exit.cause)) interrupted++
                    else failed++
                  }), { concurrency: "unbounded" })
            }
            assert.isAtLeast(interrupted, 1000)
            // Every pipelined statement ended one way: done (interrupt too late) or interrupted.
            assert.strictEqual(completed + interrupted + failed, id - Math.ceil(id / 8))
            assert.strictEqual(failed, 0, "a statement failed instead of being interrupted or done")
            assert.strictEqual(both, 0, "a statement reported both failed and done")
            // Shared connections go back once their abandoned statements have left the wire.
            yield* eventually(Effect.map(checkedOut, (n) => n === 0), "nothing checked out")
            assert.deepStrictEqual((yield* PgSql.pipelineStatus) ?? [], [])
            assert.isAtMost(yield* sessions(conn, name), 2)
            // Every connection serves pipelined and exclusive work correctly afterwards.
            for (let round = 0; round < 5; round++) {
              const rows = yield* Effect.forEach(
                Array.from({ length: 64 }, (_, i) => i),
                (i) => sql<{ v: number }>`select ${i}::int as v`,
                { concurrency: "unbounded" }
              )
              rows.forEach((r, i) => assert.strictEqual(r[0]!.v, i))
              const pids = yield* Effect.all(
                [0, 1].map(() =>
                  sql.withTransaction(Effect.gen(function*() {
                    const [row] = yield* sql<
                      { pid: number; tx: string }
                    >`select pg_backend_pid() as pid, current_setting('transaction_isolation') as tx`
                    yield* Effect.sleep(20)
                    return row!.pid
                  }))
                ),
                { concurrency: "unbounded" }
              )
              assert.strictEqual(new Set(pids).size, 2, "both connections served a transaction")
            }
            const states = yield* conn.query(
              "select state from pg_stat_activity where application_name = $1 and pid <> pg_backend_pid()",
              [name]
            )
            for (const row of states.rows) assert.strictEqual(row.state, "idle")
            yield* eventually(Effect.map(checkedOut, (n) => n === 0), "nothing checked out at the end")
          }).pipe(Effect.provide(pipelined(name)))
        })),
      120_000
    )

    it.effect("the layer refuses bad pipeline options", () =>
      Effect.gen(function*() {
        const cases: ReadonlyArray<readonly [unknown, string]> = [
          [{ maxInFlight: 0 }, "maxInFlight must be an integer from 1 to 128"],
          [{ maxInFlight: 129 }, "maxInFlight must be an integer from 1 to 128"],
          [{ maxConnections: 0 }, "maxConnections must be an integer of at least 1"],
          [{ depth: 3 }, "unknown key \"depth\""]
        ]
        for (const [bad, reason] of cases) {
          const exit = yield* Effect.exit(
            Effect.provide(sqlClient, pipelined(appName("pipe-bad"), bad as PgSql.PipelineOptions))
          )
          assert.isTrue(Exit.isFailure(exit), JSON.stringify(bad))
          const message = String(Cause.squash((exit as Exit.Failure<unknown, unknown>).cause))
          assert.include(message, "\"pipeline\"")
          assert.include(message, reason)
        }
        // A pool that shares one session across borrowers cannot lend lanes.
        const shared = PgSql.layer({ pipeline: {} }).pipe(
          Layer.provideMerge(StaticPool.layer()),
          Layer.provideMerge(driverLayer(appName("pipe-static")))
        )
        const refused = yield* Effect.exit(Effect.provide(sqlClient, shared))
        assert.isTrue(Exit.isFailure(refused))
        const error = Cause.squash((refused as Exit.Failure<unknown, unknown>).cause)
        assert.instanceOf(error, PgSql.PgSqlConfigError)
        assert.strictEqual((error as PgSql.PgSqlConfigError).field, "pipeline")
        assert.include(String(error), "not StaticPool")
        // Nor one whose fiber's checkouts share a connection: a lane opened by a fiber would be
        // handed back to that fiber's own exclusive checkout.
        for (const pool of [FiberPool.layer(), QueuePool.layer({ poolSize: 2, reentrant: true })]) {
          const perFiber = PgSql.layer({ pipeline: {} }).pipe(
            Layer.provideMerge(pool),
            Layer.provideMerge(driverLayer(appName("pipe-fiber")))
          )
          const exit = yield* Effect.exit(Effect.provide(sqlClient, perFiber))
          assert.isTrue(Exit.isFailure(exit))
          const failure = Cause.squash((exit as Exit.Failure<unknown, unknown>).cause)
          assert.instanceOf(failure, PgSql.PgSqlConfigError)
          assert.include(String(failure), "FiberPool or reentrant leases")
        }
      }))
  })
})
