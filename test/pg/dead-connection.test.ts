/**
 * A connection the driver already knows is dead is never handed out (`DriverShape.isDead`,
 * checked synchronously at checkout: no round trip).
 *
 * The server ends idle sessions itself here: `idle_session_timeout = 200ms` in the startup
 * packet, so a pooled connection left idle past it receives FATAL 57P05 and its socket closes.
 * Without pre-ping, the next checkout must replace it: the user's statement succeeds, on a new
 * backend, every round.
 */
import { assert, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { AssertionPool, FiberPool, QueuePool, StaticPool } from "effect-db-pool"
import type { ConnectionPool, Driver, PoolError, PoolEvent } from "effect-db-pool"
import { PgDriver, PgSql } from "effect-db-pool/pg"
import { PgDatabase } from "effect-db-pool/pg/embedded"
import { SqlClient } from "effect/sql"
import { isSqlError } from "effect/sql/SqlError"
import { isUnsent } from "../../src/pg/internal/connection.ts"
import { admin, appName, Database, eventually, terminate } from "./fixture.ts"

type PoolLayer = Layer.Layer<ConnectionPool.ConnectionPool, PoolError.PoolConfigError, Driver.Driver>

const idleTimeoutMs = 200

const stack = (pool: PoolLayer) =>
  PgSql.layer().pipe(
    Layer.provideMerge(pool),
    Layer.provideMerge(Layer.unwrap(Effect.map(Effect.service(PgDatabase.PgDatabase), (db) =>
      PgDriver.layer({
        url: db.url,
        applicationName: appName("dead"),
        startupParameters: { idle_session_timeout: `${idleTimeoutMs}ms` }
      }))))
  )

const pid = Effect.flatMap(
  Effect.service(SqlClient.SqlClient),
  (sql) => Effect.map(sql<{ pid: number }>`select pg_backend_pid() as pid`, (rows) => rows[0]!.pid)
)

/** `rounds` times: a statement, idle past the server's timeout, a statement that must succeed on a new backend. */
const rounds = (name: string, make: (hooks: PoolEvent.PoolHooks<unknown>) => PoolLayer, count: number) =>
  Effect.gen(function*() {
    const reasons: Array<unknown> = []
    const hooks: PoolEvent.PoolHooks<unknown> = {
      onInvalidate: (event) =>
        Effect.sync(() => {
          reasons.push(event.cause)
        })
    }
    let succeeded = 0
    yield* Effect.gen(function*() {
      for (let round = 0; round < count; round++) {
        const before = yield* pid
        yield* Effect.sleep(idleTimeoutMs * 2)
        const after = yield* Effect.result(pid)
        if (after._tag === "Success") {
          succeeded++
          assert.notStrictEqual(after.success, before, `${name}: the dead session was handed out`)
        }
      }
    }).pipe(Effect.provide(stack(make(hooks))))
    console.log(
      `[dead idle connection] ${name}: ${succeeded}/${count} statements after the server ended the idle session succeeded`
    )
    assert.strictEqual(succeeded, count, `${name}: ${succeeded} of ${count} rounds`)
    assert.strictEqual(reasons.length, count, `${name}: each dead connection invalidated once`)
  })

layer(Database, { timeout: "60 seconds", excludeTestServices: true })("dead connections are not handed out", (it) => {
  it.effect("QueuePool without pre-ping: 5 of 5 statements succeed after idle_session_timeout ended the session", () =>
    rounds("QueuePool", (hooks) => QueuePool.layer({ poolSize: 1, maxOverflow: 0, hooks }), 5))

  it.effect("StaticPool, FiberPool, AssertionPool: the same", () =>
    Effect.gen(function*() {
      yield* rounds("StaticPool", (hooks) => StaticPool.layer({ hooks }), 2)
      yield* rounds("FiberPool", (hooks) => FiberPool.layer({ poolSize: 1, hooks }), 2)
      yield* rounds("AssertionPool", (hooks) => AssertionPool.layer({ hooks }), 2)
    }))

  it.effect("a statement on a session the driver saw die fails at once, marked never sent", () =>
    Effect.scoped(Effect.gen(function*() {
      const db = yield* PgDatabase.PgDatabase
      const conn = yield* admin
      const driver = PgDriver.make({ url: db.url, applicationName: appName("dead-unsent") })
      const connection = yield* Effect.acquireRelease(driver.connect, (c) => Effect.ignore(driver.close(c)))
      const pid = (yield* connection.query("select pg_backend_pid() as pid")).rows[0]!.pid as number
      yield* terminate(conn, pid)
      yield* eventually(Effect.sync(() => connection.isDead), "the driver saw the session die")
      // Never written to the socket: another session may run it (a pipelined statement that took
      // a shared connection between its death and its removal is sent again on another).
      const error = yield* Effect.flip(connection.query("select 1"))
      assert.isTrue(isSqlError(error), String(error))
      assert.isTrue(isUnsent(error), "the statement was not marked never sent")
      // The driver's own reason for the death (here FATAL 57P01, terminated by an administrator).
      assert.include(String(error.reason.cause), "terminat")
      assert.isTrue(isUnsent(yield* Effect.flip(connection.queryValues("select 2"))))
    })))
})
