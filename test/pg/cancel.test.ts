/**
 * Interrupting a statement never fails another fiber's statement, against a real server.
 *
 * A cancel request cancels whatever the backend runs when it arrives. On a session shared across
 * fibers (StaticPool), the next fiber's statement is sent as soon as the interrupted one ends:
 * it must not go out before the cancel request has arrived, and a session whose request is not
 * confirmed in time is closed, its queued statements (never sent) sent again on a fresh session.
 * A session the driver retired after a cancel is never handed to a new checkout.
 *
 * The late cancel is made by a loopback proxy in front of the server that holds back every
 * CancelRequest for a while; the load tests run the load on the server directly.
 */
import { assert, describe, layer } from "@effect/vitest"
import { Cause, Effect, Exit, Fiber, Layer, Redacted } from "effect"
import type { Duration } from "effect"
import { ConnectionPool, QueuePool, StaticPool } from "effect-db-pool"
import type { Driver, PoolError } from "effect-db-pool"
import { PgDriver, PgSql } from "effect-db-pool/pg"
import { PgDatabase } from "effect-db-pool/pg/embedded"
import { SqlClient } from "effect/sql"
import { createConnection, createServer } from "node:net"
import type { Socket } from "node:net"
import { appName, Database } from "./fixture.ts"

type PoolLayer = Layer.Layer<ConnectionPool.ConnectionPool, PoolError.PoolConfigError, Driver.Driver>

/** A CancelRequest: length 16, code 80877102 (then the backend's pid and secret). */
const isCancelRequest = (chunk: Buffer): boolean =>
  chunk.length === 16 && chunk.readInt32BE(0) === 16 && chunk.readInt32BE(4) === 80877102

/**
 * A loopback proxy to `target` that forwards everything at once, except CancelRequests: those
 * reach the server `delayMs` later (as over a slow network or a busy server). Closed with the scope.
 */
const cancelDelayingProxy = (target: { readonly host: string; readonly port: number }, delayMs: number) =>
  Effect.acquireRelease(
    Effect.callback<{ readonly port: number; readonly close: () => void }>((resume) => {
      const sockets = new Set<Socket>()
      const track = (socket: Socket) => {
        sockets.add(socket)
        socket.on("close", () => sockets.delete(socket))
        socket.on("error", () => socket.destroy())
      }
      const server = createServer((client) => {
        const upstream = createConnection({ host: target.host, port: target.port })
        track(client)
        track(upstream)
        client.on("data", (chunk: Buffer) => {
          if (isCancelRequest(chunk)) setTimeout(() => upstream.write(chunk), delayMs)
          else upstream.write(chunk)
        })
        upstream.pipe(client)
        upstream.on("close", () => client.destroy())
        client.on("close", () => setTimeout(() => upstream.destroy(), delayMs + 50))
      })
      server.listen(0, "127.0.0.1", () => {
        const address = server.address()
        resume(Effect.succeed({
          port: typeof address === "object" && address !== null ? address.port : 0,
          close: () => {
            server.close()
            for (const socket of sockets) socket.destroy()
          }
        }))
      })
    }),
    (proxy) => Effect.sync(proxy.close)
  )

/** SqlClient + pool over the database in context, through a proxy that delays cancel requests. */
const throughProxy = (pool: PoolLayer, delayMs: number, cancelTimeout: Duration.Input) =>
  Layer.unwrap(Effect.gen(function*() {
    const db = yield* PgDatabase.PgDatabase
    const url = new URL(Redacted.value(db.url))
    const proxy = yield* cancelDelayingProxy({ host: url.hostname, port: Number(url.port || 5432) }, delayMs)
    url.hostname = "127.0.0.1"
    url.port = String(proxy.port)
    return PgSql.layer().pipe(
      Layer.provideMerge(pool),
      Layer.provideMerge(PgDriver.layer({
        url: Redacted.make(url.toString()),
        ssl: false,
        applicationName: appName("cancel"),
        connectTimeout: "5 seconds",
        cancelTimeout
      }))
    )
  }))

const pid = Effect.flatMap(
  SqlClient.SqlClient,
  (sql) => Effect.map(sql<{ pid: number }>`select pg_backend_pid() as pid`, (rows) => rows[0]!.pid)
)

/**
 * A statement of `seconds` interrupted 5 ms in: still running when the driver sends its cancel
 * (10 ms after the interrupt), done before the held-back cancel arrives.
 */
const interrupted = (sql: SqlClient.SqlClient, seconds: number) =>
  Effect.exit(sql`select pg_sleep(${seconds})`.pipe(Effect.timeout("5 millis")))

/** Another fiber's statement of `seconds`, queued behind on the one session: its exit and backend. */
const queued = (sql: SqlClient.SqlClient, seconds: number) =>
  Effect.exit(Effect.map(
    sql<{ pid: number }>`select pg_backend_pid() as pid, pg_sleep(${seconds})`,
    (rows) => rows[0]!.pid
  ))

/** The reason a failed exit failed, for the assertion message. */
const why = (exit: Exit.Exit<unknown, unknown>): string => (Exit.isFailure(exit) ? Cause.pretty(exit.cause) : "success")

/**
 * `interrupters` fibers run `select pg_sleep(0.01)` under `Effect.timeout(1)` while `workers`
 * fibers run `select 1`, for `millis`: counts of each outcome.
 */
const load = (sql: SqlClient.SqlClient, millis: number) =>
  Effect.gen(function*() {
    const deadline = Date.now() + millis
    const counts = { ok: 0, failed: 0, timedOut: 0, interruptedOk: 0 }
    const failures = new Map<string, number>()
    const worker = Effect.gen(function*() {
      while (Date.now() < deadline) {
        const exit = yield* Effect.exit(sql`select 1 as one`)
        if (Exit.isSuccess(exit)) {
          counts.ok++
        } else {
          counts.failed++
          const message = Cause.squash(exit.cause) instanceof Error
            ? (Cause.squash(exit.cause) as Error).message
            : why(exit)
          failures.set(message, (failures.get(message) ?? 0) + 1)
        }
      }
    })
    const interrupter = Effect.gen(function*() {
      while (Date.now() < deadline) {
        const exit = yield* Effect.exit(sql`select pg_sleep(0.01)`.pipe(Effect.timeout(1)))
        if (Exit.isSuccess(exit)) counts.interruptedOk++
        else counts.timedOut++
      }
    })
    yield* Effect.all([worker, worker, worker, interrupter], { concurrency: "unbounded", discard: true })
    return { counts, failures: Object.fromEntries(failures) }
  })

const testTimeout = 30_000

layer(Database, { timeout: "60 seconds", excludeTestServices: true })(
  "interrupting a statement never fails another's",
  (it) => {
    describe("StaticPool: a late cancel request (held back by a proxy)", () => {
      // The interrupted statement ends at 200 ms, its cancel arrives at ~415 ms; sent at once, the
      // next statement would run from 200 ms to 600 ms and be cancelled in its place.
      it.layer(throughProxy(StaticPool.layer({}), 400, "2 seconds"))("confirmed within cancelTimeout", (it) => {
        it.effect(
          "the next fiber's statement waits for the cancel to arrive: it is not cancelled in its place",
          () =>
            Effect.gen(function*() {
              const sql = yield* SqlClient.SqlClient
              const first = yield* pid
              const x = yield* Effect.forkChild(interrupted(sql, 0.2), { startImmediately: true })
              const y = yield* Effect.forkChild(queued(sql, 0.4), { startImmediately: true })
              assert.isTrue(Exit.isFailure(yield* Fiber.join(x)), "the interrupted statement timed out")
              // A checkout after the interrupt, while the next statement still holds the session: the
              // session was retired (its cancel came after the statement ended), so a fresh one.
              const later = yield* pid
              const next = yield* Fiber.join(y)
              assert.isTrue(Exit.isSuccess(next), `the next fiber's statement failed: ${why(next)}`)
              assert.strictEqual(
                Exit.isSuccess(next) ? next.value : -1,
                first,
                "the next statement ran on the same session"
              )
              assert.notStrictEqual(later, first, "a retired session was handed to a new checkout")
            }),
          testTimeout
        )

        it.effect(
          "a reserve from inside a transaction whose session was retired fails fast, not a wait for itself",
          () =>
            Effect.gen(function*() {
              const sql = yield* SqlClient.SqlClient
              const exit = yield* Effect.exit(
                sql.withTransaction(Effect.gen(function*() {
                  assert.isTrue(Exit.isFailure(yield* interrupted(sql, 0.2)), "the interrupted statement timed out")
                  // The transaction's session is retired now; a fiber of the transaction asks for a reserve.
                  return yield* Fiber.join(yield* Effect.forkChild(Effect.scoped(sql.reserve)))
                })).pipe(Effect.timeout("3 seconds"))
              )
              assert.isTrue(Exit.isFailure(exit))
              const error = Exit.isFailure(exit) ? Cause.squash(exit.cause) : undefined
              assert.isTrue(PgSql.isSelfDeadlock(error), `expected the self-deadlock error, got ${String(error)}`)
            }),
          testTimeout
        )
      })

      // The interrupted statement ends at 100 ms; its cancel, held back 800 ms, is not confirmed
      // by the 300 ms bound: the session is closed. Sent at once, the next statement would run from
      // 100 ms to 1.1 s and be cancelled in its place at ~815 ms.
      it.layer(throughProxy(StaticPool.layer({}), 800, "300 millis"))("not confirmed within cancelTimeout", (it) => {
        it.effect(
          "the session is closed, and the statement queued behind (never sent) runs on a fresh one",
          () =>
            Effect.gen(function*() {
              const sql = yield* SqlClient.SqlClient
              const first = yield* pid
              const x = yield* Effect.forkChild(interrupted(sql, 0.1), { startImmediately: true })
              const y = yield* Effect.forkChild(queued(sql, 1), { startImmediately: true })
              assert.isTrue(Exit.isFailure(yield* Fiber.join(x)), "the interrupted statement timed out")
              const next = yield* Fiber.join(y)
              assert.isTrue(Exit.isSuccess(next), `the next fiber's statement failed: ${why(next)}`)
              assert.notStrictEqual(Exit.isSuccess(next) ? next.value : -1, first, "sent again on a fresh session")
            }),
          testTimeout
        )
      })
    })

    describe("under load: one fiber's statements time out (1 ms), three fibers' statements never fail", () => {
      const pools: ReadonlyArray<readonly [string, PoolLayer]> = [
        ["StaticPool", StaticPool.layer({})],
        ["QueuePool", QueuePool.layer({ poolSize: 4 })]
      ]
      for (const [name, pool] of pools) {
        it.layer(
          PgSql.layer().pipe(
            Layer.provideMerge(pool),
            Layer.provideMerge(Layer.unwrap(Effect.map(
              Effect.service(PgDatabase.PgDatabase),
              (db) => PgDriver.layer({ url: db.url, applicationName: appName(`cancel-load-${name}`) })
            )))
          )
        )(name, (it) => {
          it.effect("0 failures of statements that were never interrupted", () =>
            Effect.gen(function*() {
              const sql = yield* SqlClient.SqlClient
              const { counts, failures } = yield* load(sql, 3_000)
              assert.deepStrictEqual(failures, {}, JSON.stringify(counts))
              assert.strictEqual(counts.failed, 0)
              assert.isAbove(counts.ok, 0)
              assert.isAbove(counts.timedOut, 0)
              const status = yield* Effect.flatMap(Effect.service(ConnectionPool.ConnectionPool), (p) => p.status)
              assert.strictEqual(status.checkedOut, 0)
            }), testTimeout)
        })
      }
    })
  }
)
