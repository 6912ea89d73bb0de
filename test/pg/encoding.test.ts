/**
 * A statement the client cannot encode is no disconnect. Text or string parameters with a NUL
 * character or a lone UTF-16 surrogate are refused before anything is sent: a typed,
 * non-retryable error naming the cause. The session is untouched: no invalidation, and the same
 * backend serves the next statement. A message the server refuses as malformed (08P01 with
 * severity ERROR, e.g. a Bind with the wrong number of parameters) is not a disconnect either.
 */
import { assert, layer } from "@effect/vitest"
import { Effect, Layer, Stream } from "effect"
import { QueuePool } from "effect-db-pool"
import type { PoolEvent } from "effect-db-pool"
import { PgDriver, PgSql } from "effect-db-pool/pg"
import { SqlClient } from "effect/sql"
import { isSqlError } from "effect/sql/SqlError"
import type { SqlError } from "effect/sql/SqlError"
import { appName, Database, driverLayer } from "./fixture.ts"

/** Every invalidation the pool makes (a disconnect invalidates the slot and the whole pool). */
const invalidations: Array<unknown> = []
const hooks: PoolEvent.PoolHooks<unknown> = {
  onInvalidate: (event) => Effect.sync(() => void invalidations.push(event.cause))
}

const stack = PgSql.layer().pipe(
  Layer.provideMerge(QueuePool.layer({ poolSize: 1, maxOverflow: 0, hooks })),
  Layer.provideMerge(driverLayer(appName("unsendable")))
)

const pid = Effect.flatMap(
  Effect.service(SqlClient.SqlClient),
  (sql) => Effect.map(sql<{ pid: number }>`select pg_backend_pid() as pid`, (rows) => rows[0]!.pid)
)

/**
 * `statement` fails with a non-retryable, non-disconnect `SqlError`; nothing is invalidated and
 * the same backend serves the next statement. The error, for its own assertions.
 */
const refused = <A>(statement: Effect.Effect<A, SqlError, SqlClient.SqlClient>) =>
  Effect.gen(function*() {
    const before = yield* pid
    const seen = invalidations.length
    const error = yield* Effect.flip(statement)
    assert.isTrue(isSqlError(error), String(error))
    assert.isFalse(error.isRetryable, `not retryable: ${error.message}`)
    assert.strictEqual(error.reason._tag, "UnknownError")
    assert.isFalse(PgDriver.isDisconnect(error), "not a disconnect")
    assert.deepStrictEqual(invalidations.slice(seen), [], "nothing invalidated")
    assert.strictEqual(yield* pid, before, "the same backend serves the next statement")
    return error
  })

const encodingError = (error: SqlError): PgDriver.EncodingError => {
  assert.instanceOf(error.reason.cause, PgDriver.EncodingError)
  return error.reason.cause as PgDriver.EncodingError
}

layer(Database, { timeout: "60 seconds", excludeTestServices: true })("statements the protocol cannot carry", (it) => {
  it.layer(stack)("PgSql over QueuePool(1)", (it) => {
    it.effect("a NUL in the statement text: refused before sending, naming where", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const error = yield* refused(sql.unsafe("select 1\0"))
        assert.strictEqual(
          error.message,
          "PgDriver: the statement text contains a NUL character (U+0000) at offset 8; PostgreSQL cannot receive it, nothing was sent"
        )
        const cause = encodingError(error)
        assert.deepStrictEqual([cause.part, cause.problem, cause.offset], ["statement", "nul", 8])
        // Unprepared, streamed, positional: the same.
        encodingError(yield* refused(sql.unsafe("select 1\0").unprepared))
        encodingError(yield* refused(sql.unsafe("select 1\0").values))
        encodingError(yield* refused(Stream.runCollect(sql.unsafe("select 1\0").stream)))
      }))

    it.effect("a NUL in a string parameter (or in an element of an array parameter): refused, naming the parameter", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const scalar = yield* refused(sql`select ${1}::int as n, ${"a\0b"}::text as t`)
        assert.strictEqual(
          scalar.message,
          "PgDriver: parameter $2 contains a NUL character (U+0000) at offset 1; PostgreSQL cannot receive it, nothing was sent"
        )
        const array = encodingError(yield* refused(sql.unsafe("select $1::text[] as t", [["ok", "b\0"]])))
        assert.deepStrictEqual([array.part, array.parameter, array.problem, array.offset], ["parameter", 1, "nul", 1])
      }))

    it.effect("a lone surrogate (no UTF-8 form): refused instead of silently sent as U+FFFD; a surrogate pair goes through", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const inText = encodingError(yield* refused(sql.unsafe("select 'a\ud800' as t")))
        assert.deepStrictEqual([inText.part, inText.problem, inText.offset], ["statement", "lone-surrogate", 9])
        const inParameter = yield* refused(sql`select ${"x\udc00"}::text as t`)
        assert.strictEqual(
          inParameter.message,
          "PgDriver: parameter $1 contains a lone UTF-16 surrogate at offset 1 (it has no UTF-8 form); " +
            "PostgreSQL cannot receive it, nothing was sent"
        )
        const rows = yield* sql<{ t: string }>`select ${"emoji \ud83d\ude00"}::text as t`
        assert.strictEqual(rows[0]!.t, "emoji \ud83d\ude00")
      }))

    it.effect("a Bind the server refuses (wrong number of parameters, 08P01 ERROR): its words, not a disconnect", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const error = yield* refused(sql.unsafe("select $1::int as n").unprepared)
        assert.strictEqual(
          error.message,
          "PgSql: the server refused the statement's message: " +
            "bind message supplies 0 parameters, but prepared statement \"\" requires 1 (08P01)"
        )
        assert.strictEqual((error.reason.cause as { code?: string }).code, "08P01")
      }))

    it.effect("through the pool directly (PgDriver.Connection): the same typed error, the session kept", () =>
      Effect.gen(function*() {
        const pool = yield* PgDriver.Pool
        const seen = invalidations.length
        const [error, pidBefore, pidAfter] = yield* pool.use((conn) =>
          Effect.gen(function*() {
            const before = conn.connection.processId
            const error = yield* Effect.flip(conn.connection.query("select 1\0"))
            const after = (yield* conn.connection.query("select pg_backend_pid() as pid")).rows[0]!.pid
            return [error, before, after] as const
          })
        )
        encodingError(error)
        assert.strictEqual(pidAfter, pidBefore)
        assert.deepStrictEqual(invalidations.slice(seen), [])
      }))
  })
})
