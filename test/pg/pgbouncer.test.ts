/**
 * Through PgBouncer in transaction mode (Debian's `pgbouncer`, started by
 * support/pgbouncer.ts on a free loopback port in front of the test server).
 *
 * - The core of the SQL suite (statements, errors, streams, jsonb, transactions on one backend,
 *   rollback, savepoints, an aborted COMMIT, notify, concurrency) over NullPool and QueuePool,
 *   with `PgDriver.layer({ pooler: "transaction", listenUrl })`: no named statement is left on
 *   the server sessions, no `DISCARD ALL` is sent, `listen` goes straight to the server.
 * - Without the setting (PgBouncer before 1.21 does not track protocol-level prepared
 *   statements): a transaction that reuses a statement prepared on another server session fails
 *   with a `SqlError` whose cause is `PgDriver.TransactionPoolerError`, naming the setting; over
 *   NullPool the statements "work" but leave their names on the server sessions.
 *
 * Skipped, with the reason, only when `pgbouncer` is not installed and `CI` is not set.
 */
import { PgClient, PgConnection } from "@effect/sql-pg"
import { assert, describe, it as vitestIt, layer } from "@effect/vitest"
import { Cause, Effect, Exit, Layer, Queue } from "effect"
import { SqlClient } from "effect/sql"
import type { ConnectionPool, Driver, PoolError } from "effect-db-pool"
import { NullPool, QueuePool } from "effect-db-pool"
import { PgDriver, PgSql } from "effect-db-pool/pg"
import { PgDatabase } from "effect-db-pool/pg/embedded"
import { appName, Database } from "./fixture.ts"
import { statementTests, transactionTests } from "./sql-suite.ts"
import * as PgBouncer from "../../support/pgbouncer.ts"

type PoolLayer = Layer.Layer<ConnectionPool.ConnectionPool, PoolError.PoolConfigError, Driver.Driver>

const available = PgBouncer.availability()
if (available.skip !== undefined) console.warn(`[pgbouncer.test] ${available.skip}`)

/** The driver through the PgBouncer in context; `settings` on top (e.g. `pooler`). */
const bouncedDriver = (applicationName: string, settings: Partial<PgDriver.Config>) =>
  Layer.unwrap(Effect.gen(function*() {
    const bouncer = yield* Effect.service(PgBouncer.PgBouncerService)
    return PgDriver.layer({ url: bouncer.url, applicationName, connectTimeout: "5 seconds", ...settings })
  }))

/** SqlClient + PgClient + pool + driver through PgBouncer, with `pooler: "transaction"` and the server's own address for `listen`. */
const bouncedSql = (pool: PoolLayer, applicationName: string) =>
  PgSql.layer().pipe(
    Layer.provideMerge(pool),
    Layer.provideMerge(Layer.unwrap(Effect.gen(function*() {
      const db = yield* Effect.service(PgDatabase.PgDatabase)
      return bouncedDriver(applicationName, { pooler: "transaction", listenUrl: db.url })
    })))
  )

/** PgBouncer in front of the test database, with the database still in context (for `listenUrl`). */
const Bouncer = PgBouncer.layer().pipe(Layer.provideMerge(Database))

const strategies: ReadonlyArray<readonly [string, PoolLayer]> = [
  ["NullPool", NullPool.layer({})],
  ["QueuePool", QueuePool.layer({ poolSize: 3, maxOverflow: 2, prePing: true })]
]


/** The driver's named statements held by the server session this (unnamed) statement lands on. */
const namedOnServer = Effect.flatMap(Effect.service(SqlClient.SqlClient), (sql) =>
  Effect.map(
    sql<{ n: number }>`select count(*)::int as n from pg_prepared_statements where name like 'effect\\_%'`.unprepared,
    (rows) => rows[0]!.n
  ))

const suite = available.skip === undefined ? layer(Bouncer, { timeout: "60 seconds", excludeTestServices: true }) : undefined

if (suite === undefined) {
  describe("PgBouncer (transaction mode)", () => {
    vitestIt.skip(`skipped: ${available.skip}`, () => {})
  })
} else {
  suite(`PgBouncer ${available.version ?? "?"} (transaction mode), pooler: "transaction"`, (it) => {
    for (const [name, pool] of strategies) {
      const table = `pgbouncer_suite_${name.toLowerCase()}`
      it.layer(bouncedSql(pool, appName(`bouncer-${name}`)))(name, (it) => {
        describe("settings", () => {
          it.effect("pooler: \"transaction\" means unnamed statements and no DISCARD ALL", () =>
            Effect.gen(function*() {
              const { config } = yield* Effect.service(PgDriver.PgDriver)
              assert.strictEqual(config.pooler, "transaction")
              assert.strictEqual(config.prepare, false)
              assert.strictEqual(config.sessionReset, "none")
              // A statement that marks a session for DISCARD ALL under "auto" marks nothing here.
              const pool = yield* PgDriver.Pool
              const marked = yield* pool.use((conn) =>
                Effect.map(
                  conn.connection.query("select set_config('application_name', 'x', false)"),
                  () => conn.connection.needsDiscard || conn.connection.sessionDirty
                )
              )
              assert.isFalse(marked)
            }))
        })

        describe("statements", () => {
          statementTests(it, table)

          it.effect("the same statements again and again leave no named statement on the server sessions", () =>
            Effect.gen(function*() {
              const sql = yield* SqlClient.SqlClient
              for (let i = 0; i < 20; i++) {
                yield* sql`select ${i}::int as n`
                yield* sql.withTransaction(sql`select ${i}::int as n from ${sql(table)} limit 1`)
              }
              assert.strictEqual(yield* namedOnServer, 0)
            }))
        })

        describe("transactions", () => {
          transactionTests(it, table)

          it.effect("16 concurrent transactions and statements all succeed", () =>
            Effect.gen(function*() {
              const sql = yield* SqlClient.SqlClient
              const results = yield* Effect.forEach(
                Array.from({ length: 32 }, (_, i) => i),
                (i) =>
                  i % 2 === 0
                    ? Effect.map(sql<{ n: number }>`select ${i}::int as n, pg_sleep(0.002)::text as s`, (r) => r[0]!.n)
                    : sql.withTransaction(Effect.gen(function*() {
                      yield* sql`insert into ${sql(table)} (name) values (${`c${i}`})`
                      const [row] = yield* sql<{ n: number }>`select ${i}::int as n`
                      return row!.n
                    })),
                { concurrency: 16 }
              )
              assert.deepStrictEqual(results, Array.from({ length: 32 }, (_, i) => i))
            }))
        })

        describe("listen/notify", () => {
          it.effect("notify goes through PgBouncer; listen goes to listenUrl (the server) and hears it", () =>
            Effect.gen(function*() {
              const pg = yield* PgClient.PgClient
              const channel = `edp_bouncer_${name.toLowerCase()}`
              const queue = yield* pg.listen(channel)
              yield* pg.notify(channel, "hello")
              const note = yield* Queue.take(queue).pipe(Effect.timeout("5 seconds"))
              assert.strictEqual(note.channel, channel)
              assert.strictEqual(note.payload, "hello")
            }))
        })
      })
    }

    it.layer(
      PgSql.layer().pipe(
        Layer.provideMerge(QueuePool.layer({ poolSize: 1 })),
        Layer.provideMerge(bouncedDriver(appName("bouncer-nolisten"), { pooler: "transaction" }))
      )
    )("listen without listenUrl", (it) => {
      it.effect("fails at once with a TransactionPoolerError naming listenUrl (LISTEN through the pooler never hears anything)", () =>
        Effect.gen(function*() {
          const pg = yield* PgClient.PgClient
          const error = yield* Effect.flip(Effect.scoped(pg.listen("edp_bouncer_nolisten")))
          assert.isTrue(PgDriver.isTransactionPoolerError(error))
          assert.strictEqual((error.reason.cause as PgDriver.TransactionPoolerError).feature, "listen")
          assert.include(error.message, "listenUrl")
        }))
    })
  })

  // Its own PgBouncer: the statements this leaves on server sessions stay out of the suite above.
  layer(Bouncer, { timeout: "60 seconds", excludeTestServices: true })("PgBouncer without pooler: \"transaction\"", (it) => {
    const raw = (applicationName: string) =>
      Effect.flatMap(Effect.service(PgBouncer.PgBouncerService), (bouncer) => PgConnection.make({ url: bouncer.url, applicationName }))

    it.layer(
      PgSql.layer().pipe(
        Layer.provideMerge(QueuePool.layer({ poolSize: 1, maxOverflow: 0 })),
        // `sessionReset: "none"` so that only the prepared statements are in play.
        Layer.provideMerge(bouncedDriver(appName("bouncer-named"), { sessionReset: "none" }))
      )
    )("QueuePool, named statements (the default)", (it) => {
      it.effect("a transaction reusing a statement prepared on another server session fails with a TransactionPoolerError naming the setting", () =>
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const statement = sql<{ n: number }>`select ${1}::int as n`
          let error: unknown = undefined
          // PgBouncer hands out its most recently used server session first: once another client
          // holds the session our first transaction ran on, the next one runs on another session.
          for (let attempt = 0; attempt < 10 && error === undefined; attempt++) {
            yield* sql.withTransaction(statement)
            const other = yield* raw(appName("bouncer-other"))
            yield* other.query("BEGIN", [], false)
            const exit = yield* Effect.exit(sql.withTransaction(statement))
            yield* other.query("ROLLBACK", [], false)
            if (Exit.isFailure(exit)) error = Cause.squash(exit.cause)
          }
          assert.isDefined(error, "expected a transaction to fail on a lost prepared statement")
          assert.isTrue(PgDriver.isTransactionPoolerError(error), String(error))
          const message = (error as Error).message
          assert.include(message, "does not exist")
          assert.include(message, "pooler: \"transaction\"")
          // The client connection is still usable (the next transaction parses again).
          assert.deepStrictEqual(yield* sql.withTransaction(statement), [{ n: 1 }])
        }).pipe(Effect.scoped))
    })

    it.layer(
      PgSql.layer().pipe(
        Layer.provideMerge(NullPool.layer({})),
        Layer.provideMerge(bouncedDriver(appName("bouncer-nullpool-named"), { sessionReset: "none" }))
      )
    )("NullPool, named statements (the default)", (it) => {
      it.effect("statements succeed but leave their names on PgBouncer's server sessions", () =>
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          for (let i = 0; i < 10; i++) {
            assert.deepStrictEqual(yield* sql`select ${i}::int as n`, [{ n: i }])
            yield* sql.withTransaction(sql`select ${i}::int as n`)
          }
          assert.isAbove(yield* namedOnServer, 0)
        }))
    })
  })
}
