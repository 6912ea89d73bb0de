// SqlClient over QueuePool + PgDriver on a real PostgreSQL (DATABASE_URL), plain ESM.
import { Effect, Layer, Redacted } from "effect"
import { ConnectionPool, QueuePool } from "effect-db-pool"
import { PgDriver, PgSql } from "effect-db-pool/pg"
import { SqlClient } from "effect/sql"

const url = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test"

const Live = PgSql.layer().pipe(
  Layer.provideMerge(QueuePool.layer({ poolSize: 2, prePing: true })),
  Layer.provideMerge(PgDriver.layer({ url: Redacted.make(url), applicationName: "effect-db-pool-test-package" }))
)

const program = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const [{ answer }] = yield* sql`select ${41}::int + 1 as answer`
  const pids = yield* sql.withTransaction(
    Effect.all([sql`select pg_backend_pid() as pid`, sql`select pg_backend_pid() as pid`])
  )
  const pool = yield* ConnectionPool.ConnectionPool
  return {
    strategy: pool.strategy,
    answer,
    sameBackendInTransaction: pids[0][0].pid === pids[1][0].pid,
    status: yield* pool.status
  }
})

Effect.runPromise(program.pipe(Effect.provide(Live))).then(
  (result) => console.log(`PG_RESULT ${JSON.stringify(result)}`),
  (error) => {
    console.error(error)
    process.exit(1)
  }
)
