/**
 * What a failed connect says, for real: the server's reason (or the socket's, or the bound's),
 * where and as whom, on one line, never the password, with the typed reason kind a retry decides
 * on. Through the SQL layer (`PgSql`, what users see) over an EMBEDDED server of this file's own
 * that checks passwords; a closed loopback port; a `.invalid` host name (DNS); a loopback
 * listener that accepts and never answers (the connect timeouts).
 */
import { assert, layer } from "@effect/vitest"
import { Cause, Effect, Exit, Layer, Redacted } from "effect"
import type { Scope } from "effect"
import { PoolError, QueuePool } from "effect-db-pool"
import { PgDriver, PgSql } from "effect-db-pool/pg"
import { EmbeddedPostgres } from "effect-db-pool/pg/embedded"
import { SqlClient } from "effect/sql"
import { isSqlError } from "effect/sql/SqlError"
import type { SqlError } from "effect/sql/SqlError"
import * as net from "node:net"
import { freePort } from "../../support/net.ts"

const password = "app-S3cret-pw"
const wrongPassword = "not-the-app-password"

const failureOf = (exit: Exit.Exit<unknown, unknown>): unknown =>
  Exit.isFailure(exit) ? exit.cause.reasons.find(Cause.isFailReason)?.error : undefined

/** `select 1` through PgSql over a QueuePool over `config`: the error users see. */
const firstStatement = (config: PgDriver.Config, pool: QueuePool.Options = {}) =>
  Effect.gen(function*() {
    const exit = yield* Effect.exit(
      Effect.flatMap(Effect.service(SqlClient.SqlClient), (sql) => sql`select 1`).pipe(
        Effect.provide(
          PgSql.layer().pipe(
            Layer.provideMerge(QueuePool.layer({ poolSize: 1, ...pool })),
            Layer.provideMerge(PgDriver.layer({ applicationName: "edp-connect-errors", ...config }))
          )
        )
      )
    )
    const error = failureOf(exit)
    assert.isTrue(isSqlError(error), `a SqlError: ${String(error)}`)
    const e = error as SqlError
    // One line, the message in it, and never the password.
    assert.notMatch(e.message, /[\r\n]/)
    assert.notMatch(String(e), /[\r\n]/)
    assert.include(String(e), e.message)
    for (const secret of [password, wrongPassword]) {
      assert.notInclude(String(e), secret)
      assert.notInclude(JSON.stringify(e.reason.cause ?? null), secret)
    }
    return e
  })

/** A loopback listener that accepts connections and never answers (a frozen server, for the timeouts). */
const silentListener: Effect.Effect<number, never, Scope.Scope> = Effect.acquireRelease(
  Effect.callback<{ server: net.Server; sockets: Set<net.Socket>; port: number }>((resume) => {
    const sockets = new Set<net.Socket>()
    const server = net.createServer((socket) => {
      sockets.add(socket)
      socket.on("close", () => sockets.delete(socket))
      socket.on("error", () => {})
    })
    server.listen(0, "127.0.0.1", () => {
      const address = server.address() as net.AddressInfo
      resume(Effect.succeed({ server, sockets, port: address.port }))
    })
  }),
  ({ server, sockets }) =>
    Effect.callback<void>((resume) => {
      for (const socket of sockets) socket.destroy()
      server.close(() => resume(Effect.void))
    })
).pipe(Effect.map(({ port }) => port))

layer(EmbeddedPostgres.layer(), { timeout: "120 seconds", excludeTestServices: true })(
  "connect errors name the reason, the place and the user",
  (it) => {
    const app = (server: EmbeddedPostgres.Service, config: Partial<PgDriver.Config> = {}): PgDriver.Config => ({
      host: server.host,
      port: server.port,
      username: "app",
      database: "postgres",
      password: Redacted.make(password),
      connectTimeout: "5 seconds",
      ...config
    })

    it.effect("setup: a role that logs in with a password", () =>
      Effect.gen(function*() {
        const server = yield* EmbeddedPostgres.EmbeddedPostgres
        const rows = yield* Effect.scoped(Effect.gen(function*() {
          const { PgConnection } = yield* Effect.promise(() => import("@effect/sql-pg"))
          const admin = yield* PgConnection.make({ url: server.url })
          yield* admin.query(`create role app login password '${password}'`, [])
          return (yield* admin.query("select 1 as ok", [])).rows
        }))
        assert.deepStrictEqual(rows, [{ ok: 1 }])
      }))

    it.effect("wrong password: the server's words, host:port, database and user; AuthenticationError, not retryable", () =>
      Effect.gen(function*() {
        const server = yield* EmbeddedPostgres.EmbeddedPostgres
        const e = yield* firstStatement(app(server, { password: Redacted.make(wrongPassword) }))
        assert.strictEqual(
          e.message,
          `PgDriver: cannot connect to 127.0.0.1:${server.port} (database "postgres", user "app"): ` +
            `password authentication failed for user "app" (28P01)`
        )
        assert.strictEqual(String(e), `effect/sql/SqlError: ${e.message}`)
        assert.strictEqual(e.reason._tag, "AuthenticationError")
        assert.isFalse(e.isRetryable)
        assert.strictEqual((e.reason.cause as { code?: string }).code, "28P01")
        assert.isFalse(PgDriver.isDisconnect(e))
      }))

    it.effect("no password configured: said so; AuthenticationError", () =>
      Effect.gen(function*() {
        const server = yield* EmbeddedPostgres.EmbeddedPostgres
        const { password: _, ...withoutPassword } = app(server)
        const e = yield* firstStatement(withoutPassword)
        assert.strictEqual(
          e.message,
          `PgDriver: cannot connect to 127.0.0.1:${server.port} (database "postgres", user "app"): ` +
            `No password configured: The server requested password authentication`
        )
        assert.strictEqual(e.reason._tag, "AuthenticationError")
        assert.isFalse(e.isRetryable)
      }))

    it.effect("a database that does not exist: the server's words; UnknownError, not retryable", () =>
      Effect.gen(function*() {
        const server = yield* EmbeddedPostgres.EmbeddedPostgres
        const e = yield* firstStatement(app(server, { database: "x" }))
        assert.strictEqual(
          e.message,
          `PgDriver: cannot connect to 127.0.0.1:${server.port} (database "x", user "app"): database "x" does not exist (3D000)`
        )
        assert.strictEqual(e.reason._tag, "UnknownError")
        assert.isFalse(e.isRetryable)
      }))

    it.effect("the database and user from the URL (the password in it never shown)", () =>
      Effect.gen(function*() {
        const server = yield* EmbeddedPostgres.EmbeddedPostgres
        const e = yield* firstStatement({
          url: Redacted.make(`postgres://app:${wrongPassword}@127.0.0.1:${server.port}/postgres`),
          connectTimeout: "5 seconds"
        })
        assert.strictEqual(
          e.message,
          `PgDriver: cannot connect to 127.0.0.1:${server.port} (database "postgres", user "app"): ` +
            `password authentication failed for user "app" (28P01)`
        )
      }))

    it.effect("a closed port: ECONNREFUSED with the address; ConnectionError, retryable, a disconnect", () =>
      Effect.gen(function*() {
        const server = yield* EmbeddedPostgres.EmbeddedPostgres
        const closed = yield* Effect.promise(freePort)
        const e = yield* firstStatement(app(server, { port: closed }))
        assert.strictEqual(
          e.message,
          `PgDriver: cannot connect to 127.0.0.1:${closed} (database "postgres", user "app"): connect ECONNREFUSED 127.0.0.1:${closed}`
        )
        assert.strictEqual(e.reason._tag, "ConnectionError")
        assert.isTrue(e.isRetryable)
        assert.isTrue(PgDriver.isDisconnect(e))
      }))

    it.effect("a host name that does not resolve: ENOTFOUND with the name; ConnectionError", () =>
      Effect.gen(function*() {
        const server = yield* EmbeddedPostgres.EmbeddedPostgres
        const e = yield* firstStatement(app(server, { host: "edp-no-such-host.invalid", port: 5432 }))
        assert.strictEqual(
          e.message,
          `PgDriver: cannot connect to edp-no-such-host.invalid:5432 (database "postgres", user "app"): ` +
            `getaddrinfo ENOTFOUND edp-no-such-host.invalid`
        )
        assert.strictEqual(e.reason._tag, "ConnectionError")
        assert.isTrue(e.isRetryable)
      }))

    it.effect("a server that never answers, the driver's connectTimeout: timed out after its bound in ms", () =>
      Effect.scoped(Effect.gen(function*() {
        const port = yield* silentListener
        const e = yield* firstStatement({
          host: "127.0.0.1",
          port,
          username: "app",
          database: "postgres",
          password: Redacted.make(password),
          connectTimeout: "300 millis"
        })
        assert.strictEqual(
          e.message,
          `PgDriver: cannot connect to 127.0.0.1:${port} (database "postgres", user "app"): timed out after 300 ms (PgDriver connectTimeout)`
        )
        assert.strictEqual(e.reason._tag, "ConnectionError")
        assert.isTrue(e.isRetryable)
      })))

    it.effect("a server that never answers, the pool's connectTimeout: ConnectTimeoutError naming the target and its bound", () =>
      Effect.scoped(Effect.gen(function*() {
        const port = yield* silentListener
        const config: PgDriver.Config = {
          host: "127.0.0.1",
          port,
          username: "app",
          database: "postgres",
          password: Redacted.make(password),
          connectTimeout: "5 seconds"
        }
        const e = yield* firstStatement(config, { connectTimeout: "300 millis" })
        assert.strictEqual(
          e.message,
          `Connecting to 127.0.0.1:${port} (database "postgres", user "app") timed out after 300 ms (connectTimeout)`
        )
        assert.instanceOf(e.reason.cause, PoolError.ConnectTimeoutError)
        assert.strictEqual(e.reason._tag, "ConnectionError")
        assert.isTrue(e.isRetryable)
      })))

    it.effect("several hosts: each host's reason, with the database and user", () =>
      Effect.gen(function*() {
        const server = yield* EmbeddedPostgres.EmbeddedPostgres
        const closed = yield* Effect.promise(freePort)
        const e = yield* firstStatement(app(server, {
          host: "127.0.0.1,127.0.0.1",
          port: `${closed},${server.port}`,
          password: Redacted.make(wrongPassword)
        }))
        assert.strictEqual(
          e.message,
          `PgDriver: cannot connect to 127.0.0.1:${closed}, 127.0.0.1:${server.port} (database "postgres", user "app"): ` +
            `no host gave a session (127.0.0.1:${closed}: connect ECONNREFUSED 127.0.0.1:${closed}; ` +
            `127.0.0.1:${server.port}: password authentication failed for user "app" (28P01))`
        )
        // Some host was unreachable: retryable (a failover may be under way).
        assert.strictEqual(e.reason._tag, "ConnectionError")
      }))
  }
)
