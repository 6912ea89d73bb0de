/**
 * The transaction tests every SQL-path suite runs (direct, through PgBouncer): one `describe`
 * body, registered on each suite's layer-scoped `it` with its own table.
 */
import { assert } from "@effect/vitest"
import type { Vitest } from "@effect/vitest"
import { Effect, Exit } from "effect"
import { SqlClient } from "effect/sql"

/** The backend pid of the session a statement lands on. */
export const pid = Effect.flatMap(Effect.service(SqlClient.SqlClient), (sql) =>
  Effect.map(sql<{ pid: number }>`select pg_backend_pid() as pid`, (rows) => rows[0]!.pid))

/** Commit on one backend, rollback on failure, savepoints, a failing COMMIT of an aborted transaction. */
export const transactionTests = (it: Vitest.MethodsNonLive<SqlClient.SqlClient>, table: string): void => {
    it.effect("a transaction commits, every statement on one backend", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const pids = yield* sql.withTransaction(Effect.gen(function*() {
          const a = yield* pid
          yield* sql`insert into ${sql(table)} (name) values ('committed')`
          const b = yield* pid
          const c = yield* pid
          return [a, b, c]
        }))
        assert.strictEqual(new Set(pids).size, 1)
        const rows = yield* sql`select name from ${sql(table)} where name = 'committed'`
        assert.strictEqual(rows.length, 1)
      }))

    it.effect("a failure rolls the transaction back", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const exit = yield* Effect.exit(sql.withTransaction(Effect.gen(function*() {
          yield* sql`insert into ${sql(table)} (name) values ('rolled-back')`
          return yield* Effect.fail("boom" as const)
        })))
        assert.isTrue(Exit.isFailure(exit))
        assert.strictEqual((yield* sql`select 1 from ${sql(table)} where name = 'rolled-back'`).length, 0)
      }))

    it.effect("a nested transaction is a savepoint that rolls back on its own", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* sql.withTransaction(Effect.gen(function*() {
          yield* sql`insert into ${sql(table)} (name) values ('outer')`
          yield* Effect.ignore(sql.withTransaction(Effect.gen(function*() {
            yield* sql`insert into ${sql(table)} (name) values ('inner')`
            return yield* Effect.fail("inner fails")
          })))
          yield* sql.withTransaction(sql`insert into ${sql(table)} (name) values ('inner-kept')`)
        }))
        const names = (yield* sql<{ name: string }>`select name from ${sql(table)} where name in ('outer', 'inner', 'inner-kept') order by id`)
          .map((r) => r.name)
        assert.deepStrictEqual(names, ["outer", "inner-kept"])
      }))

    it.effect("COMMIT of an aborted transaction fails instead of silently rolling back", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const exit = yield* Effect.exit(sql.withTransaction(Effect.gen(function*() {
          yield* sql`insert into ${sql(table)} (name) values ('aborted')`
          yield* Effect.ignore(sql`selec 1`) // aborts the transaction; the error is swallowed
        })))
        assert.isTrue(Exit.isFailure(exit))
        assert.include(String(Exit.isFailure(exit) ? exit.cause : ""), "COMMIT rolled back")
        assert.strictEqual((yield* sql`select 1 from ${sql(table)} where name = 'aborted'`).length, 0)
        assert.deepStrictEqual(yield* sql`select 3 as three`, [{ three: 3 }])
      }))
}
