/**
 * Layers are fresh per use, on two real databases (the test database and a second one created
 * here on the same server, dropped afterwards). effect memoizes layers by reference, also across
 * nested `Effect.provide`s: a constant layer provided again inside a program that built it is
 * reused as built, over the outer program's pool. Where work ran is read from the server
 * (`current_database()`).
 */
import { PgClient, PgConnection } from "@effect/sql-pg"
import { assert, layer } from "@effect/vitest"
import { Effect, Fiber, Layer, Queue, Redacted } from "effect"
import { PoolManager, QueuePool } from "effect-db-pool"
import { PgDriver, PgSql } from "effect-db-pool/pg"
import { PgDatabase } from "effect-db-pool/pg/embedded"
import { SqlClient } from "effect/sql"
import { Database } from "./fixture.ts"

/** The database the client in context reaches, and the one its `PgClient.config` names. */
const whereAmI = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const pg = yield* PgClient.PgClient
  const [row] = yield* sql<{ db: string }>`select current_database() as db`
  const url = pg.config.url === undefined ? undefined : new URL(Redacted.value(pg.config.url))
  return { server: row!.db, config: url?.pathname.slice(1) }
})

/** `url` with another database. */
const withDatabase = (url: Redacted.Redacted<string>, database: string): Redacted.Redacted<string> => {
  const parsed = new URL(Redacted.value(url))
  parsed.pathname = `/${database}`
  return Redacted.make(parsed.toString())
}

/** A second database on the test server, dropped when the test's scope closes. */
const secondDatabase = Effect.gen(function*() {
  const db = yield* PgDatabase.PgDatabase
  const admin = yield* PgConnection.make({ url: db.url, applicationName: "edp-layers-admin" })
  const [first] = (yield* admin.query("select current_database() as db")).rows
  const name = `edp_layers_${process.pid}_${Math.random().toString(36).slice(2, 8)}`
  yield* admin.query(`create database ${name}`)
  yield* Effect.addFinalizer(() => Effect.ignore(admin.query(`drop database if exists ${name} with (force)`)))
  return { a: { name: first!.db as string, url: db.url }, b: { name, url: withDatabase(db.url, name) } }
})

/** SqlClient + PgClient over a QueuePool over `url`; the driver stays in context (`provideMerge`). */
const stack = (url: Redacted.Redacted<string>) =>
  PgSql.layer().pipe(
    Layer.provideMerge(QueuePool.layer({ poolSize: 2 })),
    Layer.provideMerge(PgDriver.layer({ url, applicationName: "edp-layers", connectTimeout: "5 seconds" }))
  )

layer(Database, { timeout: "60 seconds", excludeTestServices: true })(
  "layers are fresh per use (two databases)",
  (it) => {
    it.effect("a stack provided inside a program over database A reaches its own database B", () =>
      Effect.gen(function*() {
        const { a, b } = yield* secondDatabase
        const seen = yield* Effect.gen(function*() {
          const outer = yield* whereAmI
          const inner = yield* Effect.provide(whereAmI, stack(b.url))
          // Each nesting level builds its own client: A inside B inside A.
          const innermost = yield* Effect.provide(Effect.provide(whereAmI, stack(a.url)), stack(b.url))
          const after = yield* whereAmI
          return { outer, inner, innermost, after }
        }).pipe(Effect.provide(stack(a.url)))
        assert.deepStrictEqual(seen, {
          outer: { server: a.name, config: a.name },
          inner: { server: b.name, config: b.name },
          innermost: { server: a.name, config: a.name },
          after: { server: a.name, config: a.name }
        })
      }).pipe(Effect.scoped))

    it.effect("PoolManager.provide + PgSql.layer() inside a program over A: the tenant's database, config and listen", () =>
      Effect.gen(function*() {
        const { a, b } = yield* secondDatabase
        const databases: Record<string, Redacted.Redacted<string>> = { [a.name]: a.url, [b.name]: b.url }
        const manager = yield* PoolManager.make({
          pool: (tenant: { readonly db: string }) =>
            QueuePool.layer({ poolSize: 2 }).pipe(
              Layer.provide(PgDriver.layer({ url: databases[tenant.db]!, applicationName: "edp-layers-tenant" }))
            )
        })
        const seen = yield* Effect.gen(function*() {
          const app = yield* whereAmI
          // The program's own PgDriver (database A) is in context: the tenant's client must not use it.
          const tenant = yield* manager.provide({ db: b.name })(Effect.provide(
            Effect.gen(function*() {
              const where = yield* whereAmI
              // LISTEN opens a session of its own: on the tenant's database, where B's NOTIFY is heard.
              const pg = yield* PgClient.PgClient
              const queue = yield* pg.listen("edp_layers_channel")
              const heard = yield* Effect.forkChild(Queue.take(queue))
              const notifier = yield* PgConnection.make({ url: b.url })
              yield* notifier.query("select pg_notify('edp_layers_channel', 'to B')")
              const notification = yield* Fiber.join(heard).pipe(Effect.timeout("5 seconds"))
              return { ...where, heard: notification.payload }
            }).pipe(Effect.scoped),
            PgSql.layer()
          ))
          return { app, tenant }
        }).pipe(Effect.provide(stack(a.url)))
        assert.deepStrictEqual(seen, {
          app: { server: a.name, config: a.name },
          tenant: { server: b.name, config: b.name, heard: "to B" }
        })
      }).pipe(Effect.scoped))
  }
)
