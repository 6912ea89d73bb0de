/**
 * effect/sql over a pool strategy, on a real Postgres: `npm run example:pg`.
 * Uses DATABASE_URL when set, else starts an embedded server (and removes it at the end).
 * The same program runs over QueuePool and then NullPool: only the layer changes.
 */
import { Effect, Layer } from "effect"
import { ConnectionPool, NullPool, QueuePool } from "effect-db-pool"
import { PgDriver, PgSql } from "effect-db-pool/pg"
import { PgDatabase } from "effect-db-pool/pg/embedded"
import { SqlClient } from "effect/sql"

const program = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`create table if not exists orders (id serial primary key, item text not null, qty int not null)`
  // A transaction keeps one connection (nested ones are savepoints); a statement borrows one.
  const id = yield* sql.withTransaction(Effect.gen(function*() {
    const [order] = yield* sql<{ id: number }>`insert into orders ${
      sql.insert({ item: "widget", qty: 2 })
    } returning id`
    yield* sql`update orders set qty = qty + 1 where id = ${order!.id}`
    return order!.id
  }))
  const [order] = yield* sql<{ id: number; item: string; qty: number }>`select * from orders where id = ${id}`
  const pool = yield* ConnectionPool.ConnectionPool
  return { strategy: pool.strategy, order, status: yield* pool.status }
})

// The driver for whichever database PgDatabase found (DATABASE_URL or embedded). With a URL of
// your own: PgDriver.layer({ url: Redacted.make(process.env.DATABASE_URL!), applicationName: "orders" })
const Driver = Layer.unwrap(
  Effect.map(Effect.service(PgDatabase.PgDatabase), (db) => PgDriver.layer({ url: db.url, applicationName: "orders" }))
)
const Pool = QueuePool.layer({ poolSize: 5, prePing: true }) // swap: NullPool.layer(), FiberPool.layer(), ...
const Sql = (pool: typeof Pool) => PgSql.layer().pipe(Layer.provideMerge(pool), Layer.provideMerge(Driver))

const main = Effect.gen(function*() {
  console.log(yield* program.pipe(Effect.provide(Sql(Pool))))
  console.log(yield* program.pipe(Effect.provide(Sql(NullPool.layer()))))
}).pipe(Effect.provide(PgDatabase.layer()))

Effect.runPromise(main).catch((error) => {
  console.error(error)
  process.exit(1)
})
