/**
 * Through PgBouncer in transaction mode (Debian's `pgbouncer`, started by
 * support/pgbouncer.ts on a free loopback port in front of the test server).
 *
 * - The core of the SQL suite (statements, errors, streams, jsonb, transactions on one backend,
 *   rollback, savepoints, an aborted COMMIT, notify, concurrency) over NullPool and QueuePool,
 *   with `PgDriver.layer({ pooler: "transaction", listenUrl })`: no named statement is left on
 *   the server sessions, no `DISCARD ALL` is sent, `listen` goes straight to the server.
 * - Session state with `pooler: "transaction"`: a statement that would leave it on a server
 *   session (a plain `SET`, `set_config(..., false)`, session advisory locks, temp objects,
 *   `PREPARE`, `LISTEN`, `WITH HOLD`, `DISCARD`) fails with a `TransactionPoolerError` naming the
 *   feature and the fix, before it is sent: no other client sees a changed setting (one
 *   client's `SET statement_timeout` used to change 19-20 of 40 later statements of others);
 *   `SET LOCAL`, `set_config(..., true)`, `ON COMMIT DROP` temp tables, `pg_advisory_xact_lock`
 *   inside a transaction and `DO` work.
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
import type { ConnectionPool, Driver, PoolError } from "effect-db-pool"
import { NullPool, QueuePool } from "effect-db-pool"
import { PgDriver, PgSql } from "effect-db-pool/pg"
import { PgDatabase } from "effect-db-pool/pg/embedded"
import { SqlClient } from "effect/sql"
import * as PgBouncer from "../../support/pgbouncer.ts"
import { appName, Database } from "./fixture.ts"
import { statementTests, transactionTests } from "./sql-suite.ts"

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

const lockKey = 500_000 + Math.floor(Math.random() * 100_000)

/** The feature of a `TransactionPoolerError` cause, if that is what `error` is. */
const refusedFeature = (error: unknown): string | undefined =>
  PgDriver.isTransactionPoolerError(error)
    ? (error as { reason: { cause: PgDriver.TransactionPoolerError } }).reason.cause.feature
    : undefined

/**
 * 40 statements of 4 other clients (their own connections through the same PgBouncer, 4 at a
 * time): how many see `setting` at `value`.
 */
const otherClientsSee = (setting: string, value: string) =>
  Effect.scoped(Effect.gen(function*() {
    const bouncer = yield* Effect.service(PgBouncer.PgBouncerService)
    const clients = yield* Effect.forEach(
      [1, 2, 3, 4],
      (i) => PgConnection.make({ url: bouncer.url, applicationName: appName(`bouncer-other-${i}`) })
    )
    const seen = yield* Effect.forEach(
      Array.from({ length: 40 }, (_, i) => clients[i % 4]!),
      (client) => Effect.map(client.query("select current_setting($1) as v", [setting], false), (r) => r.rows[0]!.v),
      { concurrency: 4 }
    )
    return seen.filter((v) => v === value).length
  }))

/** Advisory locks of `key` held by any server session (asked of the server directly). */
const locksHeld = (key: number) =>
  Effect.scoped(
    Effect.flatMap(Effect.service(PgDatabase.PgDatabase), (db) =>
      Effect.flatMap(PgConnection.make({ url: db.url, applicationName: appName("bouncer-admin") }), (admin) =>
        Effect.map(
          admin.query(
            "select count(*)::int as n from pg_locks where locktype = 'advisory' and objid = $1 and granted",
            [key]
          ),
          (r) =>
            r.rows[0]!.n as number
        )))
  )

const suite = available.skip === undefined
  ? layer(Bouncer, { timeout: "60 seconds", excludeTestServices: true })
  : undefined

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
              // A statement that marks a session for DISCARD ALL under "auto" (a DO block: it may
              // change anything) marks nothing here.
              const pool = yield* PgDriver.Pool
              const marked = yield* pool.use((conn) =>
                Effect.map(
                  conn.connection.query("do $$ begin perform 1; end $$"),
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

    it.layer(bouncedSql(QueuePool.layer({ poolSize: 2, maxOverflow: 0 }), appName("bouncer-state")))(
      "session state (QueuePool of 2)",
      (it) => {
        it.effect("one client's plain SET fails before it is sent (TransactionPoolerError); 0 of 40 later statements of other clients see it", () =>
          Effect.gen(function*() {
            const sql = yield* SqlClient.SqlClient
            const exit = yield* Effect.exit(sql.unsafe("SET statement_timeout = '4321ms'"))
            const error = Exit.isFailure(exit) ? Cause.squash(exit.cause) : undefined
            const changed = yield* otherClientsSee("statement_timeout", "4321ms")
            assert.deepStrictEqual({ refused: refusedFeature(error), changed }, { refused: "set", changed: 0 })
            const message = (error as Error).message
            assert.include(message, "SET LOCAL")
            assert.include(message, "The statement was not sent")
            // The client goes on working.
            assert.deepStrictEqual(yield* sql<{ n: number }>`select 1::int as n`, [{ n: 1 }])
          }))

        it.effect("each session-level feature is refused before it is sent, naming it and its fix", () =>
          Effect.gen(function*() {
            const sql = yield* SqlClient.SqlClient
            const cases: ReadonlyArray<readonly [string, PgDriver.TransactionPoolerError["feature"], string]> = [
              [`select pg_advisory_lock(${lockKey})`, "advisory-lock", "pg_advisory_xact_lock"],
              [`select pg_try_advisory_lock_shared(${lockKey})`, "advisory-lock", "pg_advisory_xact_lock"],
              ["select set_config('statement_timeout', '4321ms', false)", "set", "set_config(name, value, true)"],
              ["SET/**/ROLE postgres", "set", "SET LOCAL"],
              ["-- note\rRESET ALL", "set", "SET LOCAL"],
              ["create temp table edp_bouncer_tmp (x int)", "temp-object", "ON COMMIT DROP"],
              ["select 1 as v into temporary edp_bouncer_tmp2", "temp-object", "ON COMMIT DROP"],
              ["prepare edp_bouncer_p as select 1", "prepare", "send the statement itself"],
              ["listen edp_bouncer_chan", "listen", "listenUrl"],
              ["declare edp_bouncer_c cursor with hold for select 1", "hold-cursor", "without HOLD"],
              ["discard all", "discard", "server_reset_query"]
            ]
            const wrong: Array<unknown> = []
            for (const [text, feature, fix] of cases) {
              const error = yield* Effect.flip(sql.unsafe(text))
              if (refusedFeature(error) !== feature || !error.message.includes(fix)) {
                wrong.push([text, refusedFeature(error), error.message])
              }
            }
            assert.deepStrictEqual(wrong, [])
            // Not sent: no server session holds the lock.
            assert.strictEqual(yield* locksHeld(lockKey), 0)
          }))

        it.effect("a plain SET inside a transaction is refused too: it would outlive the COMMIT", () =>
          Effect.gen(function*() {
            const sql = yield* SqlClient.SqlClient
            const error = yield* Effect.flip(sql.withTransaction(sql`SET statement_timeout = '4321ms'`))
            assert.strictEqual(refusedFeature(error), "set")
            assert.strictEqual(yield* otherClientsSee("statement_timeout", "4321ms"), 0)
          }))

        it.effect("inside a transaction, SET LOCAL, set_config(..., true), an ON COMMIT DROP temp table and pg_advisory_xact_lock work; DO passes", () =>
          Effect.gen(function*() {
            const sql = yield* SqlClient.SqlClient
            const inside = yield* sql.withTransaction(Effect.gen(function*() {
              yield* sql`SET LOCAL statement_timeout = '4321ms'`
              yield* sql`select set_config('app.edp_bouncer', 'tx', true)`
              yield* sql`create temp table edp_bouncer_tx (x int) on commit drop`
              yield* sql`insert into edp_bouncer_tx values (1)`
              yield* sql`select pg_advisory_xact_lock(${lockKey + 1})`
              const [row] = yield* sql<{ timeout: string; app: string; n: number }>`
                select current_setting('statement_timeout') as timeout, current_setting('app.edp_bouncer') as app,
                       (select count(*)::int from edp_bouncer_tx) as n`
              return row
            }))
            assert.deepStrictEqual(inside, { timeout: "4321ms", app: "tx", n: 1 })
            yield* sql`do $$ begin perform 1; end $$`
            assert.strictEqual(yield* otherClientsSee("statement_timeout", "4321ms"), 0)
            assert.strictEqual(yield* locksHeld(lockKey + 1), 0)
          }))
      }
    )

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
  layer(Bouncer, { timeout: "60 seconds", excludeTestServices: true })(
    "PgBouncer without pooler: \"transaction\"",
    (it) => {
      const raw = (applicationName: string) =>
        Effect.flatMap(
          Effect.service(PgBouncer.PgBouncerService),
          (bouncer) => PgConnection.make({ url: bouncer.url, applicationName })
        )

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
              if (Exit.isFailure(exit)) {
                error = Cause.squash(exit.cause)
              }
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
    }
  )
}
