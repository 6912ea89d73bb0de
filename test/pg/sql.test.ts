/**
 * The basic SQL suite, run over every pool strategy: whatever decides which connection a
 * statement gets, SqlClient/PgClient behave the same against a real server.
 */
import { PgClient } from "@effect/sql-pg"
import { assert, describe, layer } from "@effect/vitest"
import { Effect, Exit, Queue, Stream } from "effect"
import type { Layer } from "effect"
import { SqlClient } from "effect/sql"
import type { ConnectionPool, Driver, PoolError } from "effect-db-pool"
import { AssertionPool, FiberPool, NullPool, QueuePool, StaticPool } from "effect-db-pool"
import { appName, Database, sqlLayer } from "./fixture.ts"

type PoolLayer = Layer.Layer<ConnectionPool.ConnectionPool, PoolError.PoolConfigError, Driver.Driver>

/** Every strategy. AssertionPool forbids a second checkout while one is out. */
const strategies: ReadonlyArray<readonly [string, PoolLayer, { readonly concurrent: boolean }]> = [
  ["QueuePool", QueuePool.layer({ poolSize: 3, maxOverflow: 2, prePing: true }), { concurrent: true }],
  ["NullPool", NullPool.layer({}), { concurrent: true }],
  ["StaticPool", StaticPool.layer({}), { concurrent: true }],
  ["FiberPool", FiberPool.layer({ poolSize: 4 }), { concurrent: true }],
  ["AssertionPool", AssertionPool.layer({}), { concurrent: false }]
]

const pid = Effect.flatMap(Effect.service(SqlClient.SqlClient), (sql) =>
  Effect.map(sql<{ pid: number }>`select pg_backend_pid() as pid`, (rows) => rows[0]!.pid))

layer(Database, { timeout: "60 seconds", excludeTestServices: true })("pg SQL suite", (it) => {
  for (const [name, pool, traits] of strategies) {
    const table = `sql_suite_${name.toLowerCase()}`
    it.layer(sqlLayer(pool, appName(name)))(name, (it) => {
      describe("statements", () => {
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
            const rows = yield* Stream.runCollect(sql<{ g: number }>`select g from generate_series(1, 5) g`.stream)
            assert.deepStrictEqual(rows.map((r) => r.g), [1, 2, 3, 4, 5])
          }))

        it.effect("json round-trips as jsonb", () =>
          Effect.gen(function*() {
            const pg = yield* PgClient.PgClient
            yield* pg`insert into ${pg(table)} ${pg.insert({ name: "json", doc: pg.json({ a: [1, 2], b: "c" }) })}`
            const rows = yield* pg<{ doc: unknown }>`select doc from ${pg(table)} where name = 'json'`
            assert.deepStrictEqual(rows, [{ doc: { a: [1, 2], b: "c" } }])
          }))
      })

      describe("transactions", () => {
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
      })

      describe("listen/notify", () => {
        it.effect("notify reaches a listener", () =>
          Effect.gen(function*() {
            const pg = yield* PgClient.PgClient
            const channel = `edp_${name.toLowerCase()}`
            const queue = yield* pg.listen(channel)
            yield* pg.notify(channel, "hello")
            const note = yield* Queue.take(queue)
            assert.strictEqual(note.channel, channel)
            assert.strictEqual(note.payload, "hello")
          }))
      })

      describe("concurrency", () => {
        it.effect.skipIf(!traits.concurrent)("32 concurrent statements all succeed", () =>
          Effect.gen(function*() {
            const sql = yield* SqlClient.SqlClient
            const results = yield* Effect.forEach(
              Array.from({ length: 32 }, (_, i) => i),
              (i) => sql<{ n: number }>`select ${i}::int as n, pg_sleep(0.005)::text as s`,
              { concurrency: "unbounded" }
            )
            assert.deepStrictEqual(results.map((r) => r[0]!.n), Array.from({ length: 32 }, (_, i) => i))
          }))
      })
    })
  }
})
