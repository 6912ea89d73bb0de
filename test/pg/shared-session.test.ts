/**
 * Sessions shared by several checkouts, against a real server.
 *
 * - StaticPool shares its one session across fibers: a transaction (or `reserve`) owns it, and
 *   other fibers' statements and transactions wait until it ends — none of them may run inside
 *   it (lost when it rolls back) or end it (committing its failed work).
 * - A fiber reading a `sql.stream` must not wait for its own session: a statement from it on the
 *   stream's session (reentrant leases, FiberPool, StaticPool, and any transaction) fails at once
 *   with a typed `SqlError` instead of hanging.
 *
 * Every hang this file guards against is bounded by `Effect.timeout` (and the test timeout).
 */
import { assert, describe, layer } from "@effect/vitest"
import { Cause, Context, Deferred, Effect, Exit, Fiber, Stream } from "effect"
import type { Layer } from "effect"
import { AssertionPool, ConnectionPool, FiberPool, NullPool, QueuePool, StaticPool } from "effect-db-pool"
import type { Driver, PoolError } from "effect-db-pool"
import { PgSql } from "effect-db-pool/pg"
import { SqlClient } from "effect/sql"
import { isSqlError } from "effect/sql/SqlError"
import { appName, Database, sqlLayer } from "./fixture.ts"

type PoolLayer = Layer.Layer<ConnectionPool.ConnectionPool, PoolError.PoolConfigError, Driver.Driver>

/** A hang shows up as a failure after this long, not as a stuck test. */
const hang = "3 seconds"
const testTimeout = 10_000

const table = (sql: SqlClient.SqlClient, name: string) =>
  Effect.andThen(
    sql`create table if not exists ${sql(name)} (v text not null)`,
    sql`truncate ${sql(name)}`
  )

const values = (sql: SqlClient.SqlClient, name: string) =>
  Effect.map(sql<{ v: string }>`select v from ${sql(name)} order by v`, (rows) => rows.map((r) => r.v))

const checkedOut = Effect.flatMap(
  Effect.service(ConnectionPool.ConnectionPool),
  (pool) => Effect.map(pool.status, (s) => s.checkedOut)
)

/** Read a few rows of a stream and run a statement for each row, from the reading fiber. */
const statementWhileReading = (sql: SqlClient.SqlClient) =>
  sql<{ g: number }>`select g from generate_series(1, 3) g`.stream.pipe(
    Stream.runForEach((row) => sql`select ${row.g}::int as g`)
  )

/**
 * Fails at once with the typed self-deadlock error (not a hang, not another error). `kind`
 * "owned" is not wrapped in `Effect.timeout`: that runs the effect in another fiber (a race),
 * which is not the owner (the test timeout bounds a hang instead).
 */
const expectSelfDeadlock = <A, E, R>(effect: Effect.Effect<A, E, R>, kind: "stream" | "owned" = "stream") =>
  Effect.gen(function*() {
    const started = Date.now()
    const error = yield* Effect.flip(kind === "owned" ? effect : Effect.timeout(effect, hang))
    const elapsed = Date.now() - started
    assert.isTrue(PgSql.isSelfDeadlock(error), `expected the self-deadlock SqlError, got ${String(error)}`)
    assert.isTrue(isSqlError(error))
    const cause = (error as any).reason.cause
    assert.instanceOf(cause, PgSql.SelfDeadlockError)
    assert.strictEqual(cause.kind, kind)
    if (kind === "stream") assert.match((error as Error).message, /while a stream on the same session is being read/)
    assert.isBelow(elapsed, 500, `failed after ${elapsed} ms`)
    return error
  })

const strategies: ReadonlyArray<readonly [string, PoolLayer]> = [
  ["QueuePool", QueuePool.layer({ poolSize: 2, maxOverflow: 0 })],
  ["QueuePool reentrant", QueuePool.layer({ poolSize: 2, maxOverflow: 0, reentrant: true })],
  ["NullPool", NullPool.layer({})],
  ["StaticPool", StaticPool.layer({})],
  ["FiberPool", FiberPool.layer({ poolSize: 2 })],
  ["AssertionPool", AssertionPool.layer({})]
]

layer(Database, { timeout: "60 seconds", excludeTestServices: true })("pg shared sessions", (it) => {
  describe("StaticPool: a transaction owns the shared session", () => {
    it.layer(sqlLayer(StaticPool.layer({}), appName("shared-static")))("StaticPool", (it) => {
      it.effect(
        "another fiber's autocommit insert waits for the open transaction and survives its rollback",
        () =>
          Effect.gen(function*() {
            const sql = yield* SqlClient.SqlClient
            yield* table(sql, "shared_a")
            const began = yield* Deferred.make<void>()
            let bDone = false
            const b = yield* Deferred.await(began).pipe(
              Effect.andThen(sql<{ v: string }>`insert into shared_a values ('b') returning v`),
              Effect.tap(() => Effect.sync(() => (bDone = true))),
              Effect.forkChild
            )
            const aExit = yield* Effect.exit(sql.withTransaction(Effect.gen(function*() {
              yield* sql`insert into shared_a values ('a')`
              yield* Deferred.succeed(began, void 0)
              yield* Effect.sleep("200 millis")
              // B's statement must not have run inside this transaction.
              assert.isFalse(bDone, "B's insert completed while A's transaction was open")
              return yield* Effect.fail("roll back" as const)
            })))
            assert.isTrue(aExit._tag === "Failure")
            const told = yield* Fiber.join(b).pipe(Effect.timeout(hang))
            assert.deepStrictEqual(told, [{ v: "b" }])
            // What B was told is what the table holds: B's row was committed on its own.
            assert.deepStrictEqual(yield* values(sql, "shared_a"), ["b"])
            assert.strictEqual(yield* checkedOut, 0)
          }),
        testTimeout
      )

      it.effect(
        "another fiber's transaction does not commit a failed transaction's work",
        () =>
          Effect.gen(function*() {
            const sql = yield* SqlClient.SqlClient
            yield* table(sql, "shared_b")
            const began = yield* Deferred.make<void>()
            const b = yield* Deferred.await(began).pipe(
              Effect.andThen(sql.withTransaction(sql`insert into shared_b values ('b')`)),
              Effect.forkChild
            )
            const aError = yield* Effect.flip(sql.withTransaction(Effect.gen(function*() {
              yield* sql`insert into shared_b values ('a')`
              yield* Deferred.succeed(began, void 0)
              yield* Effect.sleep("200 millis")
              yield* sql`select 1 / 0` // a statement error: A's transaction fails
            })))
            assert.strictEqual(aError._tag, "SqlError")
            yield* Fiber.join(b).pipe(Effect.timeout(hang))
            assert.deepStrictEqual(yield* values(sql, "shared_b"), ["b"])
            assert.strictEqual(yield* checkedOut, 0)
          }),
        testTimeout
      )

      it.effect(
        "another fiber's COMMIT statement does not commit a failed transaction's work",
        () =>
          Effect.gen(function*() {
            const sql = yield* SqlClient.SqlClient
            yield* table(sql, "shared_c")
            const began = yield* Deferred.make<void>()
            const b = yield* Deferred.await(began).pipe(
              Effect.andThen(sql`commit`),
              Effect.forkChild
            )
            const aError = yield* Effect.flip(sql.withTransaction(Effect.gen(function*() {
              yield* sql`insert into shared_c values ('a')`
              yield* Deferred.succeed(began, void 0)
              yield* Effect.sleep("200 millis")
              yield* sql`select 1 / 0`
            })))
            assert.strictEqual(aError._tag, "SqlError")
            yield* Fiber.join(b).pipe(Effect.timeout(hang))
            assert.deepStrictEqual(yield* values(sql, "shared_c"), [])
            assert.strictEqual(yield* checkedOut, 0)
          }),
        testTimeout
      )

      it.effect("statements of the transaction's own child fibers run inside it", () =>
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          yield* table(sql, "shared_d")
          const exit = yield* Effect.exit(
            sql.withTransaction(Effect.gen(function*() {
              yield* Effect.all([
                sql`insert into shared_d values ('c1')`,
                sql`insert into shared_d values ('c2')`,
                sql.withTransaction(sql`insert into shared_d values ('c3')`) // a savepoint
              ], { concurrency: 3 })
              assert.deepStrictEqual(yield* values(sql, "shared_d"), ["c1", "c2", "c3"])
              return yield* Effect.fail("roll back" as const)
            })).pipe(Effect.timeout(hang))
          )
          assert.isTrue(exit._tag === "Failure")
          assert.deepStrictEqual(yield* values(sql, "shared_d"), [])
        }), testTimeout)

      it.effect(
        "reserve owns the session: other fibers wait, the owner's own pool statement fails fast",
        () =>
          Effect.gen(function*() {
            const sql = yield* SqlClient.SqlClient
            yield* table(sql, "shared_e")
            let bDone = false
            const b = yield* Effect.scoped(Effect.gen(function*() {
              const conn = yield* sql.reserve
              yield* conn.executeRaw("begin", [])
              yield* conn.executeRaw("insert into shared_e values ('reserved')", [])
              const b = yield* sql`insert into shared_e values ('b')`.pipe(
                Effect.tap(() => Effect.sync(() => (bDone = true))),
                Effect.forkChild
              )
              yield* Effect.sleep("150 millis")
              assert.isFalse(bDone, "B's insert ran inside the reserved session")
              yield* expectSelfDeadlock(sql`select 1`, "owned")
              yield* conn.executeRaw("rollback", [])
              return b
            }))
            yield* Fiber.join(b).pipe(Effect.timeout(hang))
            assert.deepStrictEqual(yield* values(sql, "shared_e"), ["b"])
            assert.strictEqual(yield* checkedOut, 0)
          }),
        testTimeout
      )

      it.effect(
        "a reserve's connection kept past its scope never runs inside the next owner's transaction",
        () =>
          Effect.gen(function*() {
            const sql = yield* SqlClient.SqlClient
            yield* table(sql, "shared_f")
            const bBegan = yield* Deferred.make<void>()
            const bMayEnd = yield* Deferred.make<void>()
            let b: Fiber.Fiber<unknown, unknown> | undefined
            // The reserve's connection, used after its scope closed (kept by mistake, or by a fiber
            // it forked). Transaction B is queued behind the reserve, so the shared session passes
            // from one owner to the next without being returned to the pool.
            const leaked = yield* Effect.scoped(Effect.gen(function*() {
              const conn = yield* sql.reserve
              yield* conn.executeRaw("insert into shared_f values ('reserved')", [])
              b = yield* sql.withTransaction(Effect.gen(function*() {
                yield* sql`insert into shared_f values ('b')`
                yield* Deferred.succeed(bBegan, void 0)
                yield* Deferred.await(bMayEnd)
                return yield* Effect.fail("roll back B" as const)
              })).pipe(Effect.forkChild({ startImmediately: true }))
              return conn
            }))
            yield* Deferred.await(bBegan).pipe(Effect.timeout(hang))
            // B owns the session now: the former owner's statement must not run inside it.
            const exit = yield* Effect.exit(
              leaked.executeRaw("insert into shared_f values ('leaked')", []).pipe(Effect.timeout(hang))
            )
            yield* Deferred.succeed(bMayEnd, void 0)
            assert.isTrue(Exit.isFailure(yield* Fiber.await(b!)))
            assert.isTrue(Exit.isFailure(exit), "the former owner's insert was told it succeeded")
            const error = Cause.squash((exit as Exit.Failure<unknown, unknown>).cause)
            assert.isTrue(isSqlError(error) && error.reason._tag === "ConnectionError", String(error))
            assert.match((error as Error).message, /This connection is closed/)
            // Nothing acknowledged was lost with B's rollback.
            assert.deepStrictEqual(yield* values(sql, "shared_f"), ["reserved"])
            assert.strictEqual(yield* checkedOut, 0)
          }),
        testTimeout
      )

      it.effect(
        "a fiber forked inside a transaction that outlives it never runs inside the next owner's transaction",
        () =>
          Effect.gen(function*() {
            const sql = yield* SqlClient.SqlClient
            yield* table(sql, "shared_g")
            const forkedMayRun = yield* Deferred.make<void>()
            const bBegan = yield* Deferred.make<void>()
            const bMayEnd = yield* Deferred.make<void>()
            let b: Fiber.Fiber<unknown, unknown> | undefined
            const transactionB = sql.withTransaction(Effect.gen(function*() {
              yield* sql`insert into shared_g values ('b')`
              yield* Deferred.succeed(bBegan, void 0)
              yield* Deferred.await(bMayEnd)
              return yield* Effect.fail("roll back B" as const)
            }))
            const forked = yield* sql.withTransaction(Effect.gen(function*() {
              yield* sql`insert into shared_g values ('a')`
              // B is not A's (its context has no transaction): it queues for the session, which
              // passes from A to B without being returned to the pool.
              b = yield* Effect.updateContext(
                transactionB,
                (context: Context.Context<never>) => Context.omit(sql.transactionService)(context)
              ).pipe(
                Effect.forkDetach({ startImmediately: true })
              )
              return yield* Deferred.await(forkedMayRun).pipe(
                Effect.andThen(sql`insert into shared_g values ('forked')`),
                Effect.forkDetach
              )
            }))
            yield* Deferred.await(bBegan).pipe(Effect.timeout(hang))
            yield* Deferred.succeed(forkedMayRun, void 0)
            const exit = yield* Fiber.await(forked).pipe(Effect.timeout(hang))
            yield* Deferred.succeed(bMayEnd, void 0)
            assert.isTrue(Exit.isFailure(yield* Fiber.await(b!)))
            assert.isTrue(Exit.isFailure(exit), "the forked insert was told it succeeded")
            assert.deepStrictEqual(yield* values(sql, "shared_g"), ["a"])
            assert.strictEqual(yield* checkedOut, 0)
          }),
        testTimeout
      )

      it.effect("another fiber's statement waits for a stream being read, then runs", () =>
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const first = yield* Deferred.make<void>()
          const other = yield* Deferred.await(first).pipe(Effect.andThen(sql`select 42 as n`), Effect.forkChild)
          const rows = yield* sql<{ g: number }>`select g from generate_series(1, 3) g`.stream.pipe(
            Stream.tap(() => Deferred.succeed(first, void 0)),
            Stream.tap(() => Effect.sleep("20 millis")),
            Stream.runCollect,
            Effect.timeout(hang)
          )
          assert.deepStrictEqual(rows.map((r) => r.g), [1, 2, 3])
          assert.deepStrictEqual(yield* Fiber.join(other).pipe(Effect.timeout(hang)), [{ n: 42 }])
          assert.strictEqual(yield* checkedOut, 0)
        }), testTimeout)
    })
  })

  describe("reentrant QueuePool: no cross-fiber sharing (leases are per fiber)", () => {
    it.layer(sqlLayer(QueuePool.layer({ poolSize: 2, maxOverflow: 0, reentrant: true }), appName("shared-reentrant")))(
      "QueuePool reentrant",
      (it) => {
        it.effect(
          "another fiber's autocommit insert runs on its own connection and survives the rollback",
          () =>
            Effect.gen(function*() {
              const sql = yield* SqlClient.SqlClient
              yield* table(sql, "shared_r")
              const began = yield* Deferred.make<void>()
              const b = yield* Deferred.await(began).pipe(
                Effect.andThen(sql<{ v: string }>`insert into shared_r values ('b') returning v`),
                Effect.forkChild
              )
              yield* Effect.exit(
                sql.withTransaction(Effect.gen(function*() {
                  yield* sql`insert into shared_r values ('a')`
                  yield* Deferred.succeed(began, void 0)
                  yield* Fiber.await(b) // B does not wait for A: it has a connection of its own
                  return yield* Effect.fail("roll back" as const)
                })).pipe(Effect.timeout(hang))
              )
              assert.deepStrictEqual(yield* Fiber.join(b), [{ v: "b" }])
              assert.deepStrictEqual(yield* values(sql, "shared_r"), ["b"])
              assert.strictEqual(yield* checkedOut, 0)
            }),
          testTimeout
        )
      }
    )
  })

  describe("self-deadlock: a statement from the fiber reading a stream on the same session", () => {
    for (const [name, pool] of strategies) {
      it.layer(sqlLayer(pool, appName(`selfdl-${name.replace(/\s/g, "-")}`)))(name, (it) => {
        const sharesWithReader = name === "QueuePool reentrant" || name === "FiberPool" || name === "StaticPool"
        if (sharesWithReader) {
          it.effect(
            "a statement from the stream's consumer fails fast with the typed error",
            () =>
              Effect.gen(function*() {
                const sql = yield* SqlClient.SqlClient
                yield* expectSelfDeadlock(statementWhileReading(sql))
                assert.strictEqual(yield* checkedOut, 0)
                // The session is usable afterwards.
                assert.deepStrictEqual(yield* sql`select 1 as one`, [{ one: 1 }])
              }),
            testTimeout
          )

          it.effect(
            "a stream or a transaction from the stream's consumer fails fast too",
            () =>
              Effect.gen(function*() {
                const sql = yield* SqlClient.SqlClient
                const rows = sql<{ g: number }>`select g from generate_series(1, 3) g`.stream
                yield* expectSelfDeadlock(Stream.runForEach(rows, () => Stream.runDrain(rows)))
                yield* expectSelfDeadlock(Stream.runForEach(rows, () => sql.withTransaction(sql`select 1`)))
                assert.strictEqual(yield* checkedOut, 0)
              }),
            testTimeout
          )
        } else if (name !== "AssertionPool") {
          it.effect(
            "without sharing, the consumer's statements use another connection and succeed",
            () =>
              Effect.gen(function*() {
                const sql = yield* SqlClient.SqlClient
                yield* Effect.timeout(statementWhileReading(sql), hang)
                assert.strictEqual(yield* checkedOut, 0)
              }),
            testTimeout
          )
        }

        it.effect(
          "inside withTransaction: a statement from the stream's consumer fails fast and rolls back",
          () =>
            Effect.gen(function*() {
              const sql = yield* SqlClient.SqlClient
              const t = `selfdl_${name.replace(/\s/g, "_").toLowerCase()}`
              yield* table(sql, t)
              yield* expectSelfDeadlock(sql.withTransaction(Effect.gen(function*() {
                yield* sql`insert into ${sql(t)} values ('tx')`
                yield* statementWhileReading(sql)
              })))
              assert.deepStrictEqual(yield* values(sql, t), [])
              assert.strictEqual(yield* checkedOut, 0)
              // A stream read to its end inside a transaction, then statements: fine.
              const after = yield* sql.withTransaction(Effect.gen(function*() {
                const rows = yield* Stream.runCollect(sql<{ g: number }>`select g from generate_series(1, 3) g`.stream)
                yield* sql`insert into ${sql(t)} values (${String(rows.length)})`
                return yield* values(sql, t)
              })).pipe(Effect.timeout(hang))
              assert.deepStrictEqual(after, ["3"])
              assert.strictEqual(yield* checkedOut, 0)
            }),
          testTimeout
        )
      })
    }
  })
})
