/**
 * The statement and transaction tests every SQL-path suite runs (direct, through PgBouncer): one
 * `describe` body each, registered on each suite's layer-scoped `it` with its own table.
 */
import { PgClient } from "@effect/sql-pg"
import { assert } from "@effect/vitest"
import type { Vitest } from "@effect/vitest"
import { Effect, Exit, Stream } from "effect"
import { SqlClient } from "effect/sql"

/** The backend pid of the session a statement lands on. */
export const pid = Effect.flatMap(
  Effect.service(SqlClient.SqlClient),
  (sql) => Effect.map(sql<{ pid: number }>`select pg_backend_pid() as pid`, (rows) => rows[0]!.pid)
)

/**
 * Parameters (the test table is created here), a syntax error that leaves the connection usable,
 * a streamed result, jsonb.
 */
export const statementTests = (
  it: Vitest.MethodsNonLive<SqlClient.SqlClient | PgClient.PgClient>,
  table: string
): void => {
  it.effect("select with parameters", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const rows = yield* sql`select 1 as one, ${"x"}::text as t, ${41}::int + 1 as n`
      assert.deepStrictEqual(rows, [{ one: 1, t: "x", n: 42 }])
      yield* sql`drop table if exists ${sql(table)}`
      yield* sql`create table ${sql(table)} (id serial primary key, name text not null, doc jsonb)`
    }))

  it.effect("a syntax error is a typed SqlError and the connection stays usable", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const error = yield* Effect.flip(sql`selec 1`)
      assert.strictEqual(error._tag, "SqlError")
      assert.strictEqual(error.reason._tag, "SqlSyntaxError")
      assert.deepStrictEqual(yield* sql`select 2 as two`, [{ two: 2 }])
    }))

  it.effect("a statement streams its rows", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const rows = yield* Stream.runCollect(sql<{ g: number }>`select g from generate_series(1, 2000) g`.stream)
      assert.strictEqual(rows.length, 2000)
      assert.deepStrictEqual(rows.slice(0, 3).map((r) => r.g), [1, 2, 3])
    }))

  it.effect("json round-trips as jsonb", () =>
    Effect.gen(function*() {
      const pg = yield* PgClient.PgClient
      yield* pg`insert into ${pg(table)} ${pg.insert({ name: "json", doc: pg.json({ a: [1, 2], b: "c" }) })}`
      const rows = yield* pg<{ doc: unknown }>`select doc from ${pg(table)} where name = 'json'`
      assert.deepStrictEqual(rows, [{ doc: { a: [1, 2], b: "c" } }])
    }))
}

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
      const names =
        (yield* sql<{ name: string }>`select name from ${
          sql(table)
        } where name in ('outer', 'inner', 'inner-kept') order by id`)
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
