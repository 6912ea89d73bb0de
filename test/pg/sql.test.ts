/**
 * The basic SQL suite, run over every pool strategy: whatever decides which connection a
 * statement gets, SqlClient/PgClient behave the same against a real server.
 */
import { PgClient } from "@effect/sql-pg"
import { assert, describe, layer } from "@effect/vitest"
import { Effect, Queue, Stream } from "effect"
import type { Layer } from "effect"
import { SqlClient } from "effect/sql"
import type { ConnectionPool, Driver, PoolError } from "effect-db-pool"
import { AssertionPool, FiberPool, NullPool, QueuePool, StaticPool } from "effect-db-pool"
import { appName, Database, sqlLayer } from "./fixture.ts"
import { transactionTests } from "./transaction-suite.ts"

type PoolLayer = Layer.Layer<ConnectionPool.ConnectionPool, PoolError.PoolConfigError, Driver.Driver>

/** Every strategy. AssertionPool forbids a second checkout while one is out. */
const strategies: ReadonlyArray<readonly [string, PoolLayer, { readonly concurrent: boolean }]> = [
  ["QueuePool", QueuePool.layer({ poolSize: 3, maxOverflow: 2, prePing: true }), { concurrent: true }],
  ["NullPool", NullPool.layer({}), { concurrent: true }],
  ["StaticPool", StaticPool.layer({}), { concurrent: true }],
  ["FiberPool", FiberPool.layer({ poolSize: 4 }), { concurrent: true }],
  ["AssertionPool", AssertionPool.layer({}), { concurrent: false }]
]


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
        transactionTests(it, table)
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
