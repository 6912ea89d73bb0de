/**
 * @effect/sql-pg's own client tests, run against PgSql over QueuePool, NullPool and StaticPool.
 *
 * Ported from the Effect-TS/effect-smol repository (the npm package ships no tests):
 * - `packages/sql/pg/test/Client.test.ts` (the native-driver version with `listen`/`notify`,
 *   `makeClient` and `acquireForStream` sections): every case, in the same order;
 * - `packages/sql/pg/test/TransactionAcquire.test.ts`: a failed acquire in `withTransaction`;
 * - upstream has no PgMigrator test: `packages/sql/sqlite-node/test/SqliteMigrator.test.ts`'s two
 *   cases (a lock error fails the run; a constraint error is not swallowed), made PostgreSQL's
 *   (`lock_timeout` against `LOCK TABLE`, a `CHECK` constraint), plus a `schemaDirectory` run,
 *   the one PgMigrator path that reads `PgClient.config` (it feeds `pg_dump`).
 *
 * Adapted: the client is PgSql over each strategy and PgDriver, on DATABASE_URL or an embedded
 * server (upstream: `PgClient.layer` on a test container), and `@effect/sql-pg`'s own
 * `PgClient.layer` runs every case too, as the reference: an assertion that holds for PgSql must
 * hold for it. Upstream's `people` table is never created (those cases only compile
 * statements). effect 4.1 quotes `updateValues`' alias (`AS "data"(...)`), effect 4.0 does not:
 * both are accepted. `makeClient` (one session) has no PgSql equivalent: its cases run on every
 * target, expecting StaticPool (one shared session) to behave as `makeClient`, and the pools
 * that give each checkout a connection of its own as `acquireForStream`. The prepared-statement
 * case reads `pg_prepared_statements` inside one transaction (a pool hands each statement any
 * connection). "interruption" runs with `cancelTimeout: "5 seconds"`: past PgDriver's default
 * bound (30 ms) an interrupted statement's session is closed instead of drained (by design).
 * Upstream's message for a failed acquire ("Failed to acquire connection for transaction") is
 * not PgSql's: the reason kind is compared. The SQLite migrator's "does not swallow non-lock
 * constraint errors" does not hold for effect's generic migrator, which PgMigrator uses: it
 * reads a constraint error while recording as "Locked" (another run got there first) and
 * returns `[]`; the case asserts that, for the reference and PgSql alike. The migrator cases
 * give the url's parts as explicit settings too: @effect/sql-pg 4.0's PgMigrator hands
 * `pg_dump` those fields only (a url-only client dumps nothing there, the reference included).
 */
import { NodeServices } from "@effect/platform-node"
import { PgClient, PgConnection, PgMigrator } from "@effect/sql-pg"
import { assert, describe, expect, it, layer } from "@effect/vitest"
import { Deferred, Effect, Fiber, Layer, Option, Queue, Redacted, Stream, String } from "effect"
import type { Scope } from "effect"
import { ConnectionPool, NullPool, QueuePool, StaticPool } from "effect-db-pool"
import type { Driver, PoolError } from "effect-db-pool"
import { PgDriver, PgSql } from "effect-db-pool/pg"
import { PgDatabase } from "effect-db-pool/pg/embedded"
import { Migrator, SqlClient } from "effect/sql"
import * as SqlError from "effect/sql/SqlError"
import * as Statement from "effect/sql/Statement"
import { execFileSync } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { appName, Database } from "./fixture.ts"

type PoolLayer = Layer.Layer<ConnectionPool.ConnectionPool, PoolError.PoolConfigError, Driver.Driver>

const compilerTransform = PgClient.makeCompiler(String.camelToSnake)
const transformsNested = Statement.defaultTransforms(String.snakeToCamel)
const transforms = Statement.defaultTransforms(String.snakeToCamel, false)

/** The driver for the database in context, with extra settings. */
const driver = (applicationName: string, extra: DriverExtra = {}) =>
  Layer.unwrap(
    Effect.map(Effect.service(PgDatabase.PgDatabase), (db) =>
      PgDriver.layer({ url: db.url, applicationName, connectTimeout: "5 seconds", ...settingsOf(extra, db) }))
  )

/** PgClient + SqlClient (PgSql over `pool`), the pool and the driver. */
const client = (pool: PoolLayer, applicationName: string, options: PgSql.Options = {}, extra: DriverExtra = {}) =>
  PgClient.layerFrom(PgSql.make(options)).pipe(
    Layer.provideMerge(pool),
    Layer.provideMerge(driver(applicationName, extra))
  )

type ClientOptions = Pick<PgSql.Options, "transformQueryNames" | "transformResultNames">
/** Driver settings the cases use (PgClient takes the same, but `cancelTimeout`). */
interface DriverSettings extends
  Pick<
    PgDriver.Config,
    "stream" | "startupParameters" | "cancelTimeout" | "host" | "username" | "database" | "password"
  >
{
  readonly port?: number | undefined
}
/** Extra settings, or a function of the database's url (for settings read from it). */
type DriverExtra = DriverSettings | ((url: URL) => DriverSettings)
const settingsOf = (extra: DriverExtra, db: PgDatabase.PgDatabase["Service"]): DriverSettings =>
  typeof extra === "function" ? extra(new URL(Redacted.value(db.url))) : extra

/**
 * The url's parts as explicit settings: @effect/sql-pg 4.0's PgMigrator hands `pg_dump` only
 * `config.host`, `port`, `username`, `password` and `database` (4.1 resolves the url too).
 */
const explicitParts = (url: URL): DriverSettings => ({
  host: url.hostname,
  port: Number(url.port || 5432),
  username: decodeURIComponent(url.username),
  database: decodeURIComponent(url.pathname.slice(1)),
  ...(url.password === "" ? {} : { password: Redacted.make(decodeURIComponent(url.password)) })
})

/** A client under test: PgSql over a strategy, or the reference. */
interface Target {
  readonly name: string
  /** One session for everything (`makeClient`'s behaviour). */
  readonly oneSession: boolean
  readonly layer: (
    applicationName: string,
    options?: ClientOptions,
    extra?: DriverExtra
  ) => Layer.Layer<PgClient.PgClient | SqlClient.SqlClient, unknown, PgDatabase.PgDatabase>
}

const pgSql = (name: string, pool: () => PoolLayer, oneSession: boolean): Target => ({
  name,
  oneSession,
  layer: (applicationName, options = {}, extra = {}) => client(pool(), applicationName, options, extra)
})

/** `@effect/sql-pg`'s own pooled client, with the same settings (PgDriver's own ones dropped). */
const reference: Target = {
  name: "PgClient.layer (reference)",
  oneSession: false,
  layer: (applicationName, options = {}, extra = {}) =>
    Layer.unwrap(Effect.map(Effect.service(PgDatabase.PgDatabase), (db) => {
      const { cancelTimeout: _cancelTimeout, ...config } = settingsOf(extra, db)
      return PgClient.layer({ url: db.url, applicationName, connectTimeout: "5 seconds", ...options, ...config })
    }))
}

/** `makeClient`'s single session is StaticPool's; the others give each checkout a connection of its own. */
const targets: ReadonlyArray<Target> = [
  pgSql("QueuePool", () => QueuePool.layer({ poolSize: 3, maxOverflow: 2 }), false),
  pgSql("NullPool", () => NullPool.layer(), false),
  pgSql("StaticPool", () => StaticPool.layer(), true),
  reference
]

/** Connections checked out of the PgSql pool now (0 for the reference, which has no such pool). */
const checkedOut = Effect.flatMap(
  Effect.serviceOption(ConnectionPool.ConnectionPool),
  (pool) => pool._tag === "Some" ? Effect.map(pool.value.status, (s) => s.checkedOut) : Effect.succeed(0)
)

/** effect 4.1 quotes `updateValues`' alias, effect 4.0 does not: compare without the quotes. */
const unquoteAlias = (query: string, alias: string) => query.replace(`AS "${alias}"(`, `AS ${alias}(`)

/** A stream of two rows paused on its first row until `release`; returns once it is paused. */
const pausedStream = (sql: SqlClient.SqlClient) =>
  Effect.gen(function*() {
    const started = yield* Deferred.make<void>()
    const release = yield* Deferred.make<void>()
    const fiber = yield* sql<{ value: number }>`SELECT generate_series(1, 2) AS value`.stream.pipe(
      Stream.tap(() => Effect.andThen(Deferred.succeed(started, undefined), Deferred.await(release))),
      Stream.runCollect,
      Effect.forkScoped
    )
    yield* Deferred.await(started)
    return { release: Deferred.succeed(release, undefined), fiber }
  })

/** `pg_dump` on PATH that can dump this server (its major version at least the server's). */
const pgDumpFor = (serverVersionNum: number): boolean => {
  try {
    const out = execFileSync("pg_dump", ["--version"], { encoding: "utf8" })
    const major = Number(/(\d+)(?:\.\d+)?/.exec(out)?.[1] ?? 0)
    return major >= Math.floor(serverVersionNum / 10000)
  } catch {
    return false
  }
}

describe("upstream: transforms (Statement)", () => {
  it("transform nested", () => {
    assert.deepEqual(
      transformsNested.array([{ a_key: 1, nested: [{ b_key: 2 }], arr_primitive: [1, "2", true] }]) as any,
      [{ aKey: 1, nested: [{ bKey: 2 }], arrPrimitive: [1, "2", true] }]
    )
  })

  it("transform non nested", () => {
    assert.deepEqual(
      transforms.array([{ a_key: 1, nested: [{ b_key: 2 }], arr_primitive: [1, "2", true] }]) as any,
      [{ aKey: 1, nested: [{ b_key: 2 }], arrPrimitive: [1, "2", true] }]
    )
    const json = { test_value: [1, true, null, "text"], test_nested: { test_value: [1, true, null, "text"] } }
    assert.deepEqual(transforms.array([{ json_field: json }]) as any, [{ jsonField: json }])
  })
})

layer(Database, { timeout: "90 seconds", excludeTestServices: true })(
  "upstream @effect/sql-pg client tests over PgSql",
  (it) => {
    for (const strategy of targets) {
      const tag = strategy === reference ? "reference" : strategy.name.toLowerCase()
      describe(strategy.name, () => {
        // ------------------------------------------------------------------ Client.test.ts "PgClient"
        it.layer(strategy.layer(appName(`up-${tag}`)))("PgClient", (it) => {
          it.effect("insert helper", () =>
            Effect.gen(function*() {
              const sql = yield* PgClient.PgClient
              const [query, params] = sql`INSERT INTO people ${sql.insert({ name: "Tim", age: 10 })}`.compile()
              expect(query).toEqual(`INSERT INTO people ("name","age") VALUES ($1,$2)`)
              expect(params).toEqual(["Tim", 10])
            }))

          it.effect("updateValues helper", () =>
            Effect.gen(function*() {
              const sql = yield* PgClient.PgClient
              const [query, params] = sql`UPDATE people SET name = data.name FROM ${
                sql.updateValues([{ name: "Tim" }, { name: "John" }], "data")
              }`.compile()
              expect(unquoteAlias(query, "data")).toEqual(
                `UPDATE people SET name = data.name FROM (values ($1),($2)) AS data("name")`
              )
              expect(params).toEqual(["Tim", "John"])
            }))

          it.effect("updateValues helper returning", () =>
            Effect.gen(function*() {
              const sql = yield* PgClient.PgClient
              const [query, params] = sql`UPDATE people SET name = data.name FROM ${
                sql.updateValues([{ name: "Tim" }, { name: "John" }], "data").returning("*")
              }`.compile()
              expect(unquoteAlias(query, "data")).toEqual(
                `UPDATE people SET name = data.name FROM (values ($1),($2)) AS data("name") RETURNING *`
              )
              expect(params).toEqual(["Tim", "John"])
            }))

          it.effect("update helper", () =>
            Effect.gen(function*() {
              const sql = yield* PgClient.PgClient
              let result = sql`UPDATE people SET ${sql.update({ name: "Tim" })}`.compile()
              expect(result[0]).toEqual(`UPDATE people SET "name" = $1`)
              expect(result[1]).toEqual(["Tim"])
              result = sql`UPDATE people SET ${sql.update({ name: "Tim", age: 10 }, ["age"])}`.compile()
              expect(result[0]).toEqual(`UPDATE people SET "name" = $1`)
              expect(result[1]).toEqual(["Tim"])
            }))

          it.effect("update helper returning", () =>
            Effect.gen(function*() {
              const sql = yield* PgClient.PgClient
              const result = sql`UPDATE people SET ${sql.update({ name: "Tim" }).returning("*")}`.compile()
              expect(result[0]).toEqual(`UPDATE people SET "name" = $1 RETURNING *`)
              expect(result[1]).toEqual(["Tim"])
            }))

          it.effect("array helper", () =>
            Effect.gen(function*() {
              const sql = yield* PgClient.PgClient
              const [query, params] = sql`SELECT * FROM ${sql("people")} WHERE id IN ${sql.in([1, 2, "string"])}`
                .compile()
              expect(query).toEqual(`SELECT * FROM "people" WHERE id IN ($1,$2,$3)`)
              expect(params).toEqual([1, 2, "string"])
            }))

          it.effect("array helper with column", () =>
            Effect.gen(function*() {
              const sql = yield* PgClient.PgClient
              let result = sql`SELECT * FROM ${sql("people")} WHERE ${sql.in("id", [1, 2, "string"])}`.compile()
              expect(result[0]).toEqual(`SELECT * FROM "people" WHERE "id" IN ($1,$2,$3)`)
              expect(result[1]).toEqual([1, 2, "string"])
              result = sql`SELECT * FROM ${sql("people")} WHERE ${sql.in("id", [])}`.compile()
              expect(result[0]).toEqual(`SELECT * FROM "people" WHERE 1=0`)
              expect(result[1]).toEqual([])
            }))

          it.effect("and", () =>
            Effect.gen(function*() {
              const sql = yield* PgClient.PgClient
              const now = new Date()
              const result = sql`SELECT * FROM ${sql("people")} WHERE ${
                sql.and([sql.in("name", ["Tim", "John"]), sql`created_at < ${now}`])
              }`.compile()
              expect(result[0]).toEqual(`SELECT * FROM "people" WHERE ("name" IN ($1,$2) AND created_at < $3)`)
              expect(result[1]).toEqual(["Tim", "John", now])
            }))

          it.effect("insert fragments", () =>
            Effect.gen(function*() {
              const sql = yield* PgClient.PgClient
              const [query, params] = sql`INSERT INTO people ${
                sql.insert({ name: "Tim", age: 10, json: sql.json({ a: 1 }) })
              }`
                .compile()
              assert.strictEqual(query, `INSERT INTO people ("name","age","json") VALUES ($1,$2,$3)`)
              assert.lengthOf(params, 3)
            }))

          it.effect("update fragments", () =>
            Effect.gen(function*() {
              const sql = yield* PgClient.PgClient
              const now = new Date()
              const [query, params] = sql`UPDATE people SET json = data.json FROM ${
                sql.updateValues([{ json: sql.json({ a: 1 }) }, { json: sql.json({ b: 1 }) }], "data")
              } WHERE created_at > ${now}`.compile()
              assert.strictEqual(
                unquoteAlias(query, "data"),
                `UPDATE people SET json = data.json FROM (values ($1),($2)) AS data("json") WHERE created_at > $3`
              )
              assert.lengthOf(params, 3)
            }))

          it.effect("onDialect", () =>
            Effect.gen(function*() {
              const sql = yield* PgClient.PgClient
              assert.strictEqual(
                sql.onDialect({
                  sqlite: () => "A",
                  pg: () => "B",
                  mysql: () => "C",
                  mssql: () => "D",
                  clickhouse: () => "E"
                }),
                "B"
              )
              assert.strictEqual(sql.onDialectOrElse({ orElse: () => "A", pg: () => "B" }), "B")
            }))

          it.effect("identifier transform", () =>
            Effect.gen(function*() {
              const sql = yield* PgClient.PgClient
              const [query] = compilerTransform.compile(sql`SELECT * from ${sql("peopleTest")}`, false)
              expect(query).toEqual(`SELECT * from "people_test"`)
            }))

          it.effect("jsonb", () =>
            Effect.gen(function*() {
              const sql = yield* PgClient.PgClient
              const rows = yield* sql<{ json: unknown }>`select ${sql.json({ testValue: 123 })}::jsonb as json`
              expect(rows[0]!.json).toEqual({ testValue: 123 })
            }))

          it.effect("stream", () =>
            Effect.gen(function*() {
              const sql = yield* SqlClient.SqlClient
              const rows = yield* sql`SELECT generate_series(1, 3)`.stream.pipe(Stream.runCollect)
              expect(rows).toEqual([{ generate_series: 1 }, { generate_series: 2 }, { generate_series: 3 }])
            }))

          it.effect("preserves successful concurrent nested transactions", () =>
            Effect.gen(function*() {
              const sql = yield* PgClient.PgClient
              const firstStarted = yield* Deferred.make<void>()
              const firstInserted = yield* Deferred.make<void>()
              const rows = yield* sql.withTransaction(Effect.gen(function*() {
                yield* sql`CREATE TEMP TABLE nested_transactions (value TEXT) ON COMMIT DROP`
                yield* Effect.all([
                  sql.withTransaction(Effect.gen(function*() {
                    yield* Deferred.succeed(firstStarted, undefined)
                    yield* Effect.sleep("100 millis")
                    yield* sql`INSERT INTO nested_transactions VALUES ('first')`
                    yield* Deferred.succeed(firstInserted, undefined)
                  })),
                  Deferred.await(firstStarted).pipe(
                    Effect.andThen(
                      sql.withTransaction(Deferred.await(firstInserted).pipe(Effect.andThen(Effect.fail("rollback"))))
                    )
                  )
                ], { concurrency: "unbounded" }).pipe(Effect.catch(() => Effect.void))
                return yield* sql<{ value: string }>`SELECT value FROM nested_transactions`
              }))
              assert.deepStrictEqual(rows, [{ value: "first" }])
              assert.strictEqual(yield* checkedOut, 0)
            }))

          // ------------------------------------------------- Client.test.ts "PgClient.makeClient"
          it.effect("connects before executing queries", () =>
            Effect.gen(function*() {
              const sql = yield* PgClient.PgClient
              assert.deepStrictEqual(yield* sql<{ value: number }>`SELECT 1 AS value`, [{ value: 1 }])
            }))

          it.effect("skips prepared statements for unprepared executions only (on one session: in a transaction)", () =>
            Effect.gen(function*() {
              const sql = yield* PgClient.PgClient
              yield* sql.withTransaction(Effect.gen(function*() {
                const rows = sql<{ unprepared_row: number }>`SELECT ${1}::int4 AS unprepared_row`
                const values = sql`SELECT ${2}::int4 AS unprepared_values`
                const prepared = sql<{ statement: string }>`
                SELECT statement FROM pg_prepared_statements
                WHERE statement IN ('SELECT $1::int4 AS unprepared_row', 'SELECT $1::int4 AS unprepared_values')
                ORDER BY statement
              `
                assert.deepStrictEqual(yield* rows.unprepared, [{ unprepared_row: 1 }])
                assert.deepStrictEqual(yield* values.valuesUnprepared, [[2]])
                assert.deepStrictEqual(yield* prepared, [])
                assert.deepStrictEqual(yield* rows, [{ unprepared_row: 1 }])
                assert.deepStrictEqual(yield* values.values, [[2]])
                assert.deepStrictEqual(yield* prepared, [
                  { statement: "SELECT $1::int4 AS unprepared_row" },
                  { statement: "SELECT $1::int4 AS unprepared_values" }
                ])
              }))
            }))

          it.effect(
            strategy.oneSession
              ? "pins the one session for streams: another fiber's statement waits (makeClient)"
              : "runs queries while a stream is active (acquireForStream)",
            () =>
              Effect.gen(function*() {
                const sql = yield* PgClient.PgClient
                const stream = yield* pausedStream(sql)
                const rows = yield* sql<{ value: number }>`SELECT 1 AS value`.pipe(
                  Effect.timeoutOption(strategy.oneSession ? "100 millis" : "3 seconds")
                )
                yield* stream.release
                yield* Fiber.join(stream.fiber)
                if (strategy.oneSession) assert.isTrue(Option.isNone(rows))
                else assert.deepStrictEqual(rows, Option.some([{ value: 1 }]))
              })
          )

          it.effect(
            strategy.oneSession
              ? "serializes transactions on its single connection (makeClient)"
              : "runs transactions side by side on connections of their own",
            () =>
              Effect.gen(function*() {
                const sql = yield* PgClient.PgClient
                const firstBodyStarted = yield* Deferred.make<void>()
                const releaseFirstBody = yield* Deferred.make<void>()
                const secondBodyStarted = yield* Deferred.make<void>()
                const first = yield* sql.withTransaction(Effect.andThen(
                  Deferred.succeed(firstBodyStarted, undefined),
                  Deferred.await(releaseFirstBody)
                )).pipe(Effect.forkScoped)
                yield* Deferred.await(firstBodyStarted)
                const second = yield* sql.withTransaction(Deferred.succeed(secondBodyStarted, undefined)).pipe(
                  Effect.forkScoped
                )
                const overlap = yield* Deferred.await(secondBodyStarted).pipe(
                  Effect.timeoutOption(strategy.oneSession ? "100 millis" : "3 seconds")
                )
                yield* Deferred.succeed(releaseFirstBody, undefined)
                yield* Fiber.join(first)
                yield* Fiber.join(second)
                assert.strictEqual(Option.isNone(overlap), strategy.oneSession)
              })
          )

          // ------------------------------------------------------ Client.test.ts "PgClient listen"
          it.effect("keeps queries available while a listener holds a connection", () =>
            Effect.gen(function*() {
              const sql = yield* PgClient.PgClient
              const channel = `pool_connection_listen_${tag}`
              const payloads = yield* sql.listen(channel)
              const rows = yield* sql<{ value: number }>`SELECT 1 as value`.pipe(
                Effect.timeoutOrElse({
                  duration: "3 seconds",
                  orElse: () => Effect.fail(new Error("query timed out while listener was active"))
                })
              )
              expect(rows).toEqual([{ value: 1 }])
              yield* sql.notify(channel, "payload")
              const payload = yield* Queue.take(payloads).pipe(
                Effect.timeoutOrElse({
                  duration: "3 seconds",
                  orElse: () => Effect.fail(new Error("listener did not receive notification in time"))
                })
              )
              expect(payload.payload).toEqual("payload")
            }))

          it.effect("notify sends payload", () =>
            Effect.gen(function*() {
              const sql = yield* PgClient.PgClient
              const channel = `pool_connection_notify_${tag}`
              const payloads = yield* sql.listen(channel)
              yield* sql.notify(channel, "payload")
              const payload = yield* Queue.take(payloads).pipe(
                Effect.timeoutOrElse({
                  duration: "3 seconds",
                  orElse: () => Effect.fail(new Error("listener did not receive notification in time"))
                })
              )
              expect(payload.payload).toEqual("payload")
            }))

          it.effect("listen rejects channel names longer than 63 UTF-8 bytes", () =>
            Effect.gen(function*() {
              const sql = yield* PgClient.PgClient
              const error = yield* Effect.flip(sql.listen("é".repeat(32)))
              assert.strictEqual(error.message, "PostgreSQL channel names must not exceed 63 UTF-8 bytes")
              assert.strictEqual(error.reason.operation, "listen")
            }))

          it.effect("notify rejects channel names longer than 63 UTF-8 bytes", () =>
            Effect.gen(function*() {
              const sql = yield* PgClient.PgClient
              const error = yield* Effect.flip(sql.notify("é".repeat(32), "payload"))
              assert.strictEqual(error.message, "PostgreSQL channel names must not exceed 63 UTF-8 bytes")
              assert.strictEqual(error.reason.operation, "notify")
              // Refused before a connection was asked for: the server never saw it.
              assert.strictEqual(yield* checkedOut, 0)
            }))
        })

        // ------------------------------------------------------- Client.test.ts "PgClient transforms"
        it.layer(strategy.layer(appName(`up-tr-${tag}`), {
          transformResultNames: String.snakeToCamel,
          transformQueryNames: String.camelToSnake
        }, { cancelTimeout: "5 seconds" }))("PgClient transforms", (it) => {
          it.effect("insert helper", () =>
            Effect.gen(function*() {
              const sql = yield* PgClient.PgClient
              const [query, params] = sql`INSERT INTO people ${sql.insert({ firstName: "Tim", age: 10 })}`.compile()
              expect(query).toEqual(`INSERT INTO people ("first_name","age") VALUES ($1,$2)`)
              expect(params).toEqual(["Tim", 10])
            }))

          it.effect("insert helper withoutTransforms", () =>
            Effect.gen(function*() {
              const sql = (yield* PgClient.PgClient).withoutTransforms()
              const [query, params] = sql`INSERT INTO people ${sql.insert({ first_name: "Tim", age: 10 })}`.compile()
              expect(query).toEqual(`INSERT INTO people ("first_name","age") VALUES ($1,$2)`)
              expect(params).toEqual(["Tim", 10])
            }))

          it.effect("rejects multi-statement queries", () =>
            Effect.gen(function*() {
              const sql = yield* SqlClient.SqlClient
              const error = yield* Effect.flip(sql`
              CREATE TABLE test_multi (id TEXT PRIMARY KEY, name TEXT);
              SELECT 1;
            `)
              assert.strictEqual(error.reason._tag, "SqlSyntaxError")
            }))

          it.effect("interruption", () =>
            Effect.gen(function*() {
              const sql = yield* SqlClient.SqlClient
              const conn = yield* sql.reserve
              yield* conn.executeRaw("select pg_sleep(1000)", []).pipe(Effect.timeoutOption("50 millis"))
              const value = yield* conn.executeValues("select 1", [])
              expect(value).toEqual([[1]])
            }))

          it.effect("retains the supplied config", () =>
            Effect.gen(function*() {
              const sql = yield* PgClient.PgClient
              assert.isDefined(sql.config.url)
              expect(sql.config.transformResultNames).toEqual(String.snakeToCamel)
              expect(sql.config.transformQueryNames).toEqual(String.camelToSnake)
            }))
        })

        // ------------------------------------- Client.test.ts "makeClient surfaces transport creation failures"
        it.layer(strategy.layer(appName(`up-transport-${tag}`), {}, {
          stream: () => {
            throw new Error("connection failed")
          }
        }))("a driver whose transport cannot be created", (it) => {
          it.effect("a statement surfaces the transport creation failure (ConnectionError, connect)", () =>
            Effect.gen(function*() {
              const sql = yield* SqlClient.SqlClient
              const error = yield* Effect.flip(sql`SELECT 1`)
              assert.strictEqual(error.reason._tag, "ConnectionError")
              assert.strictEqual(error.reason.operation, "connect")
            }))

          // TransactionAcquire.test.ts
          it.effect("withTransaction surfaces acquire failures instead of defecting", () =>
            Effect.gen(function*() {
              const sql = yield* SqlClient.SqlClient
              const exit = yield* Effect.exit(sql.withTransaction(sql`SELECT 1`))
              assert.isTrue(exit._tag === "Failure")
              const error = yield* Effect.flip(sql.withTransaction(sql`SELECT 1`))
              assert.isTrue(SqlError.isSqlError(error))
              assert.strictEqual(error.reason._tag, "ConnectionError")
              assert.strictEqual(yield* checkedOut, 0)
            }))
        })

        // ------------------------------------------ SqliteMigrator.test.ts, made PgMigrator's
        it.layer(strategy.layer(appName(`up-mig-${tag}`), {}, (url) => ({
          ...explicitParts(url),
          startupParameters: { lock_timeout: "100ms" }
        })))("PgMigrator", (it) => {
          const schemaFor = (what: string) =>
            `edp_up_${what}_${tag}_${process.pid}_${Math.random().toString(36).slice(2, 6)}`
          const withSchema = (
            schema: string
          ): Effect.Effect<void, SqlError.SqlError, SqlClient.SqlClient | Scope.Scope> =>
            Effect.gen(function*() {
              const sql = yield* SqlClient.SqlClient
              yield* sql`create schema ${sql(schema)}`
              yield* Effect.addFinalizer(() => Effect.ignore(sql`drop schema if exists ${sql(schema)} cascade`))
            })
          const run = (schema: string, loader: Migrator.Loader, options: { readonly schemaDirectory?: string } = {}) =>
            PgMigrator.run({ loader, table: `${schema}.effect_sql_migrations`, ...options }).pipe(
              Effect.provide(NodeServices.layer)
            )

          it.effect("fails on lock errors", () =>
            Effect.gen(function*() {
              const schema = schemaFor("lock")
              yield* withSchema(schema)
              yield* run(schema, Migrator.fromRecord({}))
              // Another session holds the migrations table's lock.
              const db = yield* PgDatabase.PgDatabase
              const locker = yield* PgConnection.make({ url: db.url, applicationName: "edp-up-locker" })
              yield* locker.query("BEGIN")
              yield* locker.query(`LOCK TABLE ${schema}.effect_sql_migrations IN ACCESS EXCLUSIVE MODE`)
              const error = yield* Effect.flip(run(schema, Migrator.fromRecord({ "1_test": Effect.void })))
              yield* locker.query("ROLLBACK")
              assert.strictEqual(error._tag, "SqlError")
              assert(SqlError.isSqlError(error))
              assert.strictEqual(error.reason._tag, "LockTimeoutError")
              assert.strictEqual(yield* checkedOut, 0)
            }))

          it.effect("a constraint error while recording reads as \"Locked\": the run returns [] and records nothing", () =>
            Effect.gen(function*() {
              const schema = schemaFor("check")
              yield* withSchema(schema)
              const sql = yield* SqlClient.SqlClient
              yield* sql`CREATE TABLE ${sql(`${schema}.effect_sql_migrations`)} (
              migration_id integer PRIMARY KEY NOT NULL,
              created_at timestamptz NOT NULL DEFAULT now(),
              name VARCHAR(255) NOT NULL CHECK (name = 'allowed')
            )`
              let ran = false
              const done = yield* run(schema, Migrator.fromRecord({ "1_test": Effect.sync(() => (ran = true)) }))
              assert.deepStrictEqual(done, [])
              assert.isFalse(ran)
              assert.deepStrictEqual(yield* sql`select 1 from ${sql(`${schema}.effect_sql_migrations`)}`, [])
              assert.strictEqual(yield* checkedOut, 0)
            }))

          it.effect("schemaDirectory: pg_dump connects with PgSql's config", () =>
            Effect.gen(function*() {
              const sql = yield* SqlClient.SqlClient
              const [{ v }] = (yield* sql<{ v: number }>`select current_setting('server_version_num')::int as v`) as [
                { v: number }
              ]
              if (!pgDumpFor(v)) return // no pg_dump on PATH that can dump this server
              const schema = schemaFor("dump")
              yield* withSchema(schema)
              const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "edp-up-dump-"))
              yield* Effect.addFinalizer(() => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true })))
              const done = yield* run(
                schema,
                Migrator.fromRecord({
                  "1_people": Effect.flatMap(
                    SqlClient.SqlClient,
                    (sql) => sql`create table ${sql(`${schema}.people`)} (id serial primary key)`
                  )
                }),
                { schemaDirectory: dir }
              )
              assert.deepStrictEqual(done, [[1, "people"]])
              const dump = Fs.readFileSync(Path.join(dir, "_schema.sql"), "utf8")
              assert.include(dump, `CREATE TABLE ${schema}.people`)
              assert.include(dump, `INSERT INTO ${schema}.effect_sql_migrations`)
            }))
        })
      })
    }

    it.effect("the config PgSql reports carries the driver's url, redacted", () =>
      Effect.gen(function*() {
        const db = yield* PgDatabase.PgDatabase
        const sql = yield* PgClient.PgClient.pipe(
          Effect.provide(client(QueuePool.layer({ poolSize: 1 }), appName("up-config"))),
          Effect.scoped
        )
        assert.isTrue(Redacted.isRedacted(sql.config.url))
        assert.strictEqual(Redacted.value(sql.config.url!), Redacted.value(db.url))
      }))
  }
)
