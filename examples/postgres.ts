/**
 * effect/sql over a pool strategy, on a real Postgres: `npm run example:pg`.
 * Uses DATABASE_URL when set, else starts an embedded server (and removes it at the end).
 * The same program runs over QueuePool and then NullPool: only the layer changes.
 */
import { Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import { ConnectionPool, NullPool, QueuePool } from "effect-db-pool"
import type { Driver } from "effect-db-pool"
import { PgDriver, PgSql } from "effect-db-pool/pg"
import { PgDatabase } from "effect-db-pool/pg/embedded"

const program = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const [{ one }] = yield* sql<{ one: number }>`select ${1}::int as one`
  const pids = yield* sql.withTransaction(
    Effect.all([sql`select pg_backend_pid() as pid`, sql`select pg_backend_pid() as pid`])
  )
  const pool = yield* ConnectionPool.ConnectionPool
  return { strategy: pool.strategy, one, sameBackendInTransaction: pids[0][0]!.pid === pids[1][0]!.pid, status: yield* pool.status }
})

// The driver for whichever database PgDatabase found (DATABASE_URL or embedded).
const DriverLive = Layer.unwrap(
  Effect.map(Effect.service(PgDatabase.PgDatabase), (db) => PgDriver.layer({ url: db.url, applicationName: "example" }))
)
const sqlOver = (pool: Layer.Layer<ConnectionPool.ConnectionPool, unknown, Driver.Driver>) =>
  PgSql.layer.pipe(Layer.provideMerge(pool), Layer.provideMerge(DriverLive))

const main = Effect.gen(function*() {
  yield* Effect.log(yield* program.pipe(Effect.provide(sqlOver(QueuePool.layer({ poolSize: 5, prePing: true })))))
  yield* Effect.log(yield* program.pipe(Effect.provide(sqlOver(NullPool.layer()))))
}).pipe(Effect.provide(PgDatabase.layer()))

Effect.runPromise(main).catch((error) => {
  console.error(error)
  process.exit(1)
})
