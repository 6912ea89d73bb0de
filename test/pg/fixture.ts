/**
 * Shared wiring for the PostgreSQL tests: the database (DATABASE_URL or an embedded server,
 * one per test file), a pooled SqlClient over any strategy, and an unpooled admin session
 * for observing the server from outside the pool.
 */
import { PgConnection } from "@effect/sql-pg"
import { assert } from "@effect/vitest"
import { Effect, Layer } from "effect"
import type { Scope } from "effect"
import type { ConnectionPool, Driver, PoolError } from "effect-db-pool"
import { PgDriver, PgSql } from "effect-db-pool/pg"
import { PgDatabase } from "effect-db-pool/pg/embedded"
import type { SqlError } from "effect/sql/SqlError"

export const Database = PgDatabase.layer({ logs: process.env.EMBEDDED_PG_LOGS === "1" })

/** A unique application_name, so a test counts only its own sessions in pg_stat_activity. */
export const appName = (tag: string) => `edp-${tag}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`

/** Driver for the database in context, tagged with `applicationName`. */
export const driverLayer = (applicationName: string) =>
  Layer.unwrap(
    Effect.map(Effect.service(PgDatabase.PgDatabase), (db) =>
      PgDriver.layer({ url: db.url, applicationName, connectTimeout: "5 seconds" }))
  )

/** SqlClient + PgClient + ConnectionPool + PgDriver over the given strategy layer. */
export const sqlLayer = (
  pool: Layer.Layer<ConnectionPool.ConnectionPool, PoolError.PoolConfigError, Driver.Driver>,
  applicationName: string
) =>
  PgSql.layer().pipe(
    Layer.provideMerge(pool),
    Layer.provideMerge(driverLayer(applicationName))
  )

/** An unpooled session to the same database, for observing and killing backends. */
export const admin: Effect.Effect<PgConnection.PgConnection, SqlError, PgDatabase.PgDatabase | Scope.Scope> = Effect
  .flatMap(
    Effect.service(PgDatabase.PgDatabase),
    (db) => PgConnection.make({ url: db.url, applicationName: "edp-admin" })
  )

/** Sessions whose application_name is `name`. */
export const sessions = (conn: PgConnection.PgConnection, name: string) =>
  Effect.map(
    conn.query("select count(*)::int as n from pg_stat_activity where application_name = $1", [name]),
    (r) => r.rows[0]!.n as number
  )

export const terminate = (conn: PgConnection.PgConnection, pid: number) =>
  conn.query("select pg_terminate_backend($1) as ok", [pid])

/** Poll `check` (short sleeps, up to 10 s) until it holds, or fail naming `what`. */
export const eventually = <E, R>(check: Effect.Effect<boolean, E, R>, what: string) =>
  Effect.gen(function*() {
    for (let i = 0; i < 2000; i++) {
      if (yield* check) return
      yield* Effect.sleep(5)
    }
    assert.fail(`never: ${what}`)
  })
