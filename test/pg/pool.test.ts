/**
 * Pool behaviour against a real server (QueuePool): reset on return, the reset skip, dead
 * backends (killed idle, killed busy, killed in a transaction), and no leaked sessions.
 */
import { assert, describe, layer } from "@effect/vitest"
import { Effect, Exit, Fiber, Layer, Metric, Option, Schedule, Scope } from "effect"
import { ConnectionPool, PoolError, PoolMetrics, QueuePool } from "effect-db-pool"
import { PgDriver } from "effect-db-pool/pg"
import { SqlClient } from "effect/sql"
import { isSqlError } from "effect/sql/SqlError"
import type { SqlError } from "effect/sql/SqlError"
import { admin, appName, Database, sessions, sqlLayer, terminate } from "./fixture.ts"

const pidOf = Effect.flatMap(
  Effect.service(SqlClient.SqlClient),
  (sql) => Effect.map(sql<{ pid: number }>`select pg_backend_pid() as pid`, (rows) => rows[0]!.pid)
)

/** Poll until `check` holds (server-side effects such as a backend exiting are asynchronous). */
const eventually = <E, R>(check: Effect.Effect<boolean, E, R>) =>
  check.pipe(
    Effect.flatMap((ok) => (ok ? Effect.void : Effect.fail("not yet" as const))),
    Effect.retry(Schedule.spaced("20 millis").pipe(Schedule.upTo({ times: 150 }))),
    Effect.orDie
  )

const gone = (pid: number) =>
  Effect.scoped(
    Effect.flatMap(admin, (a) =>
      eventually(Effect.map(a.query("select count(*)::int as n from pg_stat_activity where pid = $1", [pid]), (r) =>
        r.rows[0]!.n === 0)))
  )

const pool = Effect.map(
  Effect.service(ConnectionPool.ConnectionPool),
  (p) => p as ConnectionPool.Service<PgDriver.Connection>
)

layer(Database, { timeout: "60 seconds", excludeTestServices: true })("pg pool behaviour", (it) => {
  describe("reset on return", () => {
    const name = appName("reset")
    it.layer(sqlLayer(QueuePool.layer({ poolSize: 1, maxOverflow: 0 }), name))("QueuePool(1)", (it) => {
      it.effect("returning a connection rolls back its uncommitted work (seen from another session)", () =>
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const p = yield* pool
          yield* sql`create table if not exists reset_probe (v text)`
          yield* sql`truncate reset_probe`
          const observer = yield* admin
          const seen = yield* Effect.scoped(Effect.gen(function*() {
            const conn = yield* p.checkout
            yield* conn.connection.query("BEGIN")
            yield* conn.connection.query("insert into reset_probe values ('uncommitted')")
            assert.isFalse(conn.connection.knownIdle)
            const inside = yield* conn.connection.query("select count(*)::int as n from reset_probe")
            return inside.rows[0]!.n as number
          }))
          assert.strictEqual(seen, 1)
          const outside = yield* observer.query("select count(*)::int as n from reset_probe")
          assert.strictEqual(outside.rows[0]!.n, 0)
          // The same (only) connection is back outside any transaction.
          const state = yield* p.use((conn) =>
            Effect.map(
              conn.connection.query("select count(*)::int as n from reset_probe"),
              (r) => [r.rows[0]!.n, conn.connection.knownIdle]
            )
          )
          assert.deepStrictEqual(state, [0, true])
        }))

      it.effect("the reset is skipped only when the session is known to be outside a transaction", () =>
        Effect.gen(function*() {
          const p = yield* pool
          const observed = yield* p.use((conn) =>
            Effect.gen(function*() {
              const c = conn.connection
              const states: Array<boolean> = [c.knownIdle]
              yield* c.query("select 1")
              states.push(c.knownIdle) // autocommit select: still idle
              yield* c.query("/* comment; */ select ';'")
              states.push(c.knownIdle) // a comment is blank space, a quoted ';' no separator: still idle
              yield* c.query("do $$ begin perform 1; end $$")
              states.push(c.knownIdle) // not a single select/insert/...: unknown
              yield* c.query("rollback")
              states.push(c.knownIdle) // a successful ROLLBACK: idle again
              yield* c.query("insert into reset_probe values ('a'); ")
              states.push(c.knownIdle) // single insert, trailing semicolon: idle
              yield* c.query("begin")
              states.push(c.knownIdle)
              yield* c.query("commit")
              states.push(c.knownIdle)
              void c.pg // untracked use of the raw session → unknown
              states.push(c.knownIdle)
              return states
            })
          )
          assert.deepStrictEqual(observed, [true, true, true, false, true, true, false, true, false])
          // ...and the return's ROLLBACK made it known-idle again.
          assert.isTrue(yield* p.use((conn) => Effect.succeed(conn.connection.knownIdle)))
        }))
    })
  })

  describe("interruption", () => {
    const name = appName("interrupt")
    it.layer(sqlLayer(QueuePool.layer({ poolSize: 1, maxOverflow: 0 }), name))("QueuePool(1)", (it) => {
      it.effect("an interrupted statement frees its connection, and the next statement works", () =>
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const p = yield* pool
          const observer = yield* admin
          const busy = yield* Effect.forkChild(sql`select pg_sleep(30)`)
          yield* eventually(Effect.map(
            observer.query(
              "select count(*)::int as n from pg_stat_activity where application_name = $1 and state = 'active'",
              [name]
            ),
            (r) => r.rows[0]!.n === 1
          ))
          yield* Fiber.interrupt(busy)
          assert.strictEqual((yield* p.status).checkedOut, 0)
          assert.deepStrictEqual(yield* sql`select 1 as ok`, [{ ok: 1 }])
          yield* eventually(Effect.map(
            observer.query(
              "select count(*)::int as n from pg_stat_activity where application_name = $1 and state = 'active'",
              [name]
            ),
            (r) => r.rows[0]!.n === 0
          ))
        }))
    })
  })

  describe("dead backends", () => {
    const name = appName("dead")
    it.layer(sqlLayer(QueuePool.layer({ poolSize: 2, maxOverflow: 0, prePing: true }), name))(
      "QueuePool(2, prePing)",
      (it) => {
        it.effect("a backend killed while idle is replaced by pre-ping; no error reaches the user", () =>
          Effect.gen(function*() {
            const observer = yield* admin
            const first = yield* pidOf
            yield* terminate(observer, first)
            yield* gone(first)
            const second = yield* pidOf
            assert.notStrictEqual(second, first)
          }))

        it.effect("killed during use: a typed disconnection error, and the connection never returns to the pool", () =>
          Effect.gen(function*() {
            const sql = yield* SqlClient.SqlClient
            const p = yield* pool
            const observer = yield* admin
            const invalidatedBefore = yield* p.invalidationTime
            const busy = yield* Effect.forkChild(sql<{ pid: number }>`select pg_backend_pid() as pid, pg_sleep(30)`)
            const busyPid = yield* eventually(Effect.map(
              observer.query(
                "select count(*)::int as n from pg_stat_activity where application_name = $1 and query like '%pg_sleep(30)%' and state = 'active'",
                [name]
              ),
              (r) => r.rows[0]!.n === 1
            )).pipe(
              Effect.andThen(observer.query(
                "select pid from pg_stat_activity where application_name = $1 and query like '%pg_sleep(30)%'",
                [name]
              )),
              Effect.map((r) => r.rows[0]!.pid as number)
            )
            yield* terminate(observer, busyPid)
            const exit = yield* Fiber.await(busy)
            assert.isTrue(Exit.isFailure(exit))
            const error = Exit.isFailure(exit) ? exit.cause.reasons.find((r) => r._tag === "Fail") : undefined
            assert.isDefined(error)
            const e = (error as { error: SqlError }).error
            assert.isTrue(isSqlError(e))
            assert.strictEqual(e.reason._tag, "ConnectionError")
            assert.instanceOf(e.reason.cause, PoolError.DisconnectionError)
            assert.isTrue(PgDriver.isDisconnect(e))
            assert.isTrue(e.isRetryable)
            // Invalidated and the pool-wide invalidation stamped; nothing dead sits idle in the pool.
            assert.isAbove(
              Option.getOrElse(yield* p.invalidationTime, () => -1),
              Option.getOrElse(invalidatedBefore, () => -1)
            )
            const byStatement = yield* Metric.value(PoolMetrics.forPool(p.name).invalidations("statement"))
            assert.isAtLeast(byStatement.count, 1)
            const status = yield* p.status
            assert.strictEqual(status.checkedOut, 0)
            const pids = yield* Effect.forEach([1, 2, 3], () => pidOf, { concurrency: 2 })
            assert.notInclude(pids, busyPid)
          }))

        it.effect("killed inside a transaction: the transaction fails with the typed error (no defect)", () =>
          Effect.gen(function*() {
            const sql = yield* SqlClient.SqlClient
            const observer = yield* admin
            const exit = yield* Effect.exit(sql.withTransaction(Effect.gen(function*() {
              const pid = yield* pidOf
              yield* terminate(observer, pid)
              yield* gone(pid)
              return yield* sql`select 1`
            })))
            assert.isTrue(Exit.isFailure(exit))
            if (Exit.isFailure(exit)) {
              assert.isTrue(exit.cause.reasons.every((r) => r._tag === "Fail"), "no defect")
              const failure = exit.cause.reasons[0] as { error: SqlError }
              assert.strictEqual(failure.error.reason._tag, "ConnectionError")
            }
            assert.deepStrictEqual(yield* sql`select 1 as ok`, [{ ok: 1 }])
          }))
      }
    )

    const noPing = appName("noping")
    it.layer(sqlLayer(QueuePool.layer({ poolSize: 1, maxOverflow: 0 }), noPing))("QueuePool(1), no pre-ping", (it) => {
      it.effect("without pre-ping a killed idle backend (57P01) is known dead: replaced at checkout, the statement succeeds", () =>
        Effect.gen(function*() {
          const observer = yield* admin
          const first = yield* pidOf
          yield* terminate(observer, first)
          yield* gone(first)
          // The driver saw the FATAL 57P01 (and the socket close) while idle: no statement fails.
          const second = yield* pidOf
          assert.notStrictEqual(second, first)
        }))
    })
  })

  describe("leaks", () => {
    it.effect("no session outlives its pool; overflow is closed on return", () =>
      Effect.gen(function*() {
        const name = appName("leak")
        const observer = yield* admin
        const scope = yield* Scope.make()
        const context = yield* Layer.buildWithScope(
          sqlLayer(QueuePool.layer({ poolSize: 3, maxOverflow: 4 }), name),
          scope
        )
        const sql = Effect.provideContext(
          Effect.flatMap(Effect.service(SqlClient.SqlClient), (sql) => sql`select pg_sleep(0.02)`),
          context
        )
        yield* Effect.forEach(Array.from({ length: 40 }), () => sql, { concurrency: 12, discard: true })
        yield* Effect.scoped(Effect.provideContext(
          Effect.flatMap(Effect.service(SqlClient.SqlClient), (c) =>
            Effect.ignore(c.withTransaction(Effect.andThen(c`select 1`, Effect.fail("x"))))),
          context
        ))
        yield* eventually(Effect.map(sessions(observer, name), (n) =>
          n === 3))
        yield* Scope.close(scope, Exit.void)
        yield* eventually(Effect.map(sessions(observer, name), (n) => n === 0))
      }))
  })
})
