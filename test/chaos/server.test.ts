/**
 * The server goes away, comes back, or refuses us, on an EMBEDDED server of this file's own
 * (always, whatever DATABASE_URL says: these tests stop and start it, and need password auth,
 * which the machine's server may not enforce).
 *
 * - Start while down: every layer (pool, driver, SqlClient) of every strategy builds while the
 *   server is down (no build-time probe), statements fail with the real connect error, and the
 *   stack serves as soon as the server is up.
 * - Restart under load: while stopped, checkouts fail fast with the real connect error, never a
 *   pool timeout; once started, the pool serves again within 1 s (recovery time reported).
 * - Wrong password: the authentication error (SQLSTATE 28P01), fast, not a timeout.
 */
import { PgConnection } from "@effect/sql-pg"
import { assert, layer } from "@effect/vitest"
import { Cause, Effect, Exit, Fiber, Layer, Redacted, References, Scope } from "effect"
import { AssertionPool, ConnectionPool, FiberPool, NullPool, PoolError, QueuePool, StaticPool } from "effect-db-pool"
import type { Driver } from "effect-db-pool"
import { PgDriver, PgSql } from "effect-db-pool/pg"
import { EmbeddedPostgres } from "effect-db-pool/pg/embedded"
import { SqlClient } from "effect/sql"
import { isSqlError } from "effect/sql/SqlError"
import type { SqlError } from "effect/sql/SqlError"

const appName = (tag: string) => `edp-${tag}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`

type PoolLayer = Layer.Layer<ConnectionPool.ConnectionPool, PoolError.PoolConfigError, Driver.Driver>

const stack = (server: EmbeddedPostgres.Service, pool: PoolLayer, applicationName: string) =>
  PgSql.layer().pipe(
    Layer.provideMerge(pool),
    Layer.provideMerge(PgDriver.layer({ url: server.url, applicationName, connectTimeout: "2 seconds" }))
  )

const select1 = Effect.flatMap(Effect.service(SqlClient.SqlClient), (sql) => sql`select 1 as ok`)

/** The first error of a failed exit. */
const failureOf = (exit: Exit.Exit<unknown, unknown>): unknown =>
  Exit.isFailure(exit) ? exit.cause.reasons.find(Cause.isFailReason)?.error : undefined

/** A connect failure as the user sees it: a SqlError that is not the pool's timeout. */
const isRealConnectError = (error: unknown): boolean =>
  isSqlError(error) && !(error.reason.cause instanceof PoolError.PoolTimeoutError) &&
  !/timed out/i.test(error.message)

/** Retry `effect` every 10 ms until it succeeds; the ms it took. */
const timeToSuccess = <A, E, R>(effect: Effect.Effect<A, E, R>, limitMs: number) =>
  Effect.gen(function*() {
    const started = performance.now()
    while (performance.now() - started < limitMs) {
      const exit = yield* Effect.exit(effect)
      if (Exit.isSuccess(exit)) return performance.now() - started
      yield* Effect.sleep("10 millis")
    }
    return Number.POSITIVE_INFINITY
  })

layer(EmbeddedPostgres.layer(), { timeout: "120 seconds", excludeTestServices: true })(
  "embedded server: down, restarted, refusing",
  (it) => {
    it.effect("start while down: every layer builds with no probe, then serves as soon as the server is up", () =>
      Effect.gen(function*() {
        const server = yield* EmbeddedPostgres.EmbeddedPostgres
        yield* server.stop
        const pools: ReadonlyArray<readonly [string, PoolLayer]> = [
          ["QueuePool", QueuePool.layer({ poolSize: 2, prePing: true })],
          ["QueuePool+minIdle", QueuePool.layer({ poolSize: 2, minIdle: 2, housekeepingPeriod: "100 millis" })],
          ["NullPool", NullPool.layer()],
          ["StaticPool", StaticPool.layer()],
          ["FiberPool", FiberPool.layer()],
          ["AssertionPool", AssertionPool.layer()]
        ]
        const built: Array<readonly [string, Layer.Layer<SqlClient.SqlClient>]> = []
        const scope = yield* Scope.make()
        for (const [name, pool] of pools) {
          const started = performance.now()
          const context = yield* Layer.buildWithScope(stack(server, pool, appName("down")), scope)
          const took = performance.now() - started
          assert.isBelow(took, 1000, `${name}: building took ${took} ms`)
          built.push([name, Layer.succeedContext(context)])
          // Down: a statement fails with the real connect error.
          const exit = yield* Effect.exit(Effect.provide(select1, Layer.succeedContext(context)))
          const error = failureOf(exit)
          assert.isTrue(isRealConnectError(error), `${name}: ${String(error)}`)
          assert.strictEqual((error as SqlError).reason._tag, "ConnectionError")
          assert.include(String(((error as SqlError).reason.cause as Error).message), "ECONNREFUSED")
        }
        yield* server.start
        const times: Array<string> = []
        for (const [name, context] of built) {
          const ms = yield* timeToSuccess(Effect.provide(select1, context), 5000)
          times.push(`${name} ${ms.toFixed(0)} ms`)
          assert.isBelow(ms, 1000, `${name} did not serve within 1 s of the server being up`)
        }
        console.log(`[start while down] built all layers while down; first statement after start: ${times.join(", ")}`)
        yield* Scope.close(scope, Exit.void)
      }).pipe(Effect.provideService(References.MinimumLogLevel, "Error")))

    it.effect("restart under load: fast real connect errors while down (never a pool timeout), served again within 1 s", () =>
      Effect.gen(function*() {
        const server = yield* EmbeddedPostgres.EmbeddedPostgres
        yield* server.start
        const name = appName("restart")
        const context = yield* Layer.build(
          stack(server, QueuePool.layer({ poolSize: 5, maxOverflow: 5, prePing: true, timeout: "10 seconds" }), name)
        )
        const sql = Layer.succeedContext(context)

        interface Sample {
          readonly at: number
          readonly took: number
          readonly error: unknown
        }
        const samples: Array<Sample> = []
        let stopping = false
        const loader = Effect.gen(function*() {
          while (!stopping) {
            const at = performance.now()
            const exit = yield* Effect.exit(Effect.provide(
              Effect.flatMap(Effect.service(SqlClient.SqlClient), (c) => c`select pg_sleep(0.002)`),
              sql
            ))
            samples.push({ at, took: performance.now() - at, error: failureOf(exit) })
            if (Exit.isFailure(exit)) yield* Effect.sleep("10 millis")
            if (Exit.isFailure(exit) && Cause.hasDies(exit.cause)) samples.push({ at, took: 0, error: "DEFECT" })
          }
        })
        const loaders = yield* Effect.forkChild(Effect.forEach(Array.from({ length: 16 }), () => loader, {
          concurrency: "unbounded",
          discard: true
        }))
        yield* Effect.sleep("500 millis")
        const stopAt = performance.now()
        yield* server.stop
        const stoppedAt = performance.now()
        yield* Effect.sleep("1500 millis")
        const startAt = performance.now()
        yield* server.start
        const startedAt = performance.now()
        yield* Effect.sleep("1000 millis")
        stopping = true
        yield* Fiber.join(loaders)

        const down = samples.filter((s) => s.at >= stoppedAt && s.at < startAt)
        const downFailures = down.filter((s) => s.error !== undefined)
        const firstOkAfterStart = samples.find((s) => s.at >= startedAt && s.error === undefined)
        // Recovery: from the server accepting connections again to the first statement that succeeded.
        const recovery = firstOkAfterStart === undefined
          ? Number.POSITIVE_INFINITY
          : firstOkAfterStart.at + firstOkAfterStart.took - startedAt
        const worstDown = Math.max(0, ...downFailures.map((s) => s.took))
        const kinds = new Map<string, number>()
        for (const s of samples.filter((s) => s.error !== undefined)) {
          const e = s.error
          const code = isSqlError(e) ? (e.reason.cause as { code?: unknown } | undefined)?.code : undefined
          const key = isSqlError(e)
            ? `SqlError/${e.reason._tag}${
              typeof code === "string" && e.reason._tag !== "ConnectionError" ? `(${code})` : ""
            }`
            : String((e as { _tag?: unknown })?._tag ?? e)
          kinds.set(key, (kinds.get(key) ?? 0) + 1)
        }
        console.log(
          `[restart] stop took ${(stoppedAt - stopAt).toFixed(0)} ms, start took ${
            (startedAt - startAt).toFixed(0)
          } ms; ` +
            `${down.length} statements while down, all failed: ${downFailures.length === down.length}, ` +
            `worst failure latency while down ${worstDown.toFixed(1)} ms; recovery after start ${
              recovery.toFixed(0)
            } ms; ` +
            `failures: ${Array.from(kinds.entries()).map(([k, v]) => `${k}=${v}`).join(" ")}; total ${samples.length}`
        )
        assert.isAbove(down.length, 16)
        assert.strictEqual(downFailures.length, down.length)
        for (const s of samples.filter((s) => s.error !== undefined)) {
          assert.isTrue(isRealConnectError(s.error), `not the real connect error: ${String(s.error)}`)
        }
        assert.isBelow(worstDown, 1000, "checkouts while down fail fast")
        assert.isBelow(recovery, 1000, "served again within 1 s of the server being up")
        const status = yield* Effect.provideContext(
          Effect.flatMap(Effect.service(ConnectionPool.ConnectionPool), (p) => p.status),
          context
        )
        assert.strictEqual(status.checkedOut, 0)
      }))

    it.effect("a wrong password gives the authentication error (28P01), fast, not a timeout", () =>
      Effect.gen(function*() {
        const server = yield* EmbeddedPostgres.EmbeddedPostgres
        yield* server.start
        const su = yield* PgConnection.make({ url: server.url, applicationName: "edp-admin" })
        const encryption = (yield* su.query("show password_encryption")).rows[0]!.password_encryption
        const hba = (yield* su.query(
          "select auth_method from pg_hba_file_rules where type = 'host' and '127.0.0.1' = any(string_to_array(coalesce(address, '127.0.0.1'), ','))"
        )).rows.map((r) => r.auth_method as string)
        console.log(
          `[wrong password] embedded server: password_encryption=${encryption}, host auth for 127.0.0.1: ${
            hba.join(",")
          }`
        )
        yield* su.query("drop role if exists edp_pw")
        yield* su.query("create role edp_pw login password 'right-password'")

        const as = (password: string) =>
          PgSql.layer().pipe(
            Layer.provideMerge(QueuePool.layer({ poolSize: 1, timeout: "30 seconds" })),
            Layer.provideMerge(PgDriver.layer({
              host: server.host,
              port: server.port,
              database: server.database,
              username: "edp_pw",
              password: Redacted.make(password),
              connectTimeout: "5 seconds"
            }))
          )
        const started = performance.now()
        const exit = yield* Effect.exit(Effect.provide(select1, as("wrong-password")))
        const took = performance.now() - started
        const error = failureOf(exit)
        assert.isTrue(isSqlError(error), String(error))
        const e = error as SqlError
        assert.strictEqual(e.reason._tag, "AuthenticationError")
        assert.strictEqual((e.reason.cause as { code?: string }).code, "28P01")
        assert.isBelow(took, 2000)
        console.log(
          `[wrong password] ${e.reason._tag} (${(e.reason.cause as Error).message}) after ${took.toFixed(0)} ms`
        )

        // Through the pool directly: a ConnectError carrying the driver's authentication error.
        const direct = yield* Effect.exit(Effect.provide(
          Effect.flatMap(Effect.service(ConnectionPool.ConnectionPool), (p) => p.use(() => Effect.void)),
          as("wrong-password")
        ))
        const pe = failureOf(direct)
        assert.instanceOf(pe, PoolError.ConnectError)
        assert.strictEqual(((pe as PoolError.ConnectError).cause as SqlError).reason._tag, "AuthenticationError")

        assert.deepStrictEqual(yield* Effect.provide(select1, as("right-password")), [{ ok: 1 }])
      }))
  }
)
