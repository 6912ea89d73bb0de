/**
 * The basic SQL suite, run over every pool strategy: whatever decides which connection a
 * statement gets, SqlClient/PgClient behave the same against a real server.
 */
import { PgClient } from "@effect/sql-pg"
import { assert, describe, layer } from "@effect/vitest"
import { Effect, Queue } from "effect"
import type { Layer } from "effect"
import type { ConnectionPool, Driver, PoolError } from "effect-db-pool"
import { AssertionPool, FiberPool, NullPool, QueuePool, StaticPool } from "effect-db-pool"
import { SqlClient } from "effect/sql"
import { everyStrategy } from "../helpers.ts"
import { appName, Database, sqlLayer } from "./fixture.ts"
import { statementTests, transactionTests } from "./sql-suite.ts"

type PoolLayer = Layer.Layer<ConnectionPool.ConnectionPool, PoolError.PoolConfigError, Driver.Driver>

/** Every strategy. AssertionPool forbids a second checkout while one is out. */
const strategies = everyStrategy<readonly [PoolLayer, { readonly concurrent: boolean }]>({
  QueuePool: [QueuePool.layer({ poolSize: 3, maxOverflow: 2, prePing: true }), { concurrent: true }],
  NullPool: [NullPool.layer({}), { concurrent: true }],
  StaticPool: [StaticPool.layer({}), { concurrent: true }],
  FiberPool: [FiberPool.layer({ poolSize: 4 }), { concurrent: true }],
  AssertionPool: [AssertionPool.layer({}), { concurrent: false }]
})

layer(Database, { timeout: "60 seconds", excludeTestServices: true })("pg SQL suite", (it) => {
  for (const [name, [pool, traits]] of strategies) {
    const table = `sql_suite_${name.toLowerCase()}`
    it.layer(sqlLayer(pool, appName(name)))(name, (it) => {
      describe("statements", () => {
        statementTests(it, table)
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
