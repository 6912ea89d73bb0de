/**
 * Chaos on a real server (DATABASE_URL, else an embedded one): 64 fibers run statements,
 * transactions and direct checkouts for CHAOS_SECONDS (default 10), while every 100 ms a random
 * backend of this test's own application_name is terminated.
 *
 * - Every failure a user sees is typed: a `SqlError` with a known reason, or one of the pool's
 *   tagged errors; never a defect.
 * - With pre-ping, no checkout hands out a connection already dead before it was handed out: one
 *   the driver already knows dead at hand-out (socket closed, fatal error), or whose backend had
 *   vanished from pg_stat_activity before the checkout began. (CHAOS_NO_PREPING=1 shows the
 *   check bites: without pre-ping such connections are handed out.)
 * - At the end pg_stat_activity shows no more of our sessions than the pool holds idle, and none
 *   once the pool is closed.
 */
import { assert, layer } from "@effect/vitest"
import { Cause, Context, Effect, Exit, Fiber, Layer, Schedule, Scope } from "effect"
import { ConnectionPool, QueuePool } from "effect-db-pool"
import type { PgDriver } from "effect-db-pool/pg"
import { SqlClient } from "effect/sql"
import { isSqlError } from "effect/sql/SqlError"
import { admin, appName, Database, sessions, sqlLayer } from "../pg/fixture.ts"

const SECONDS = Number(process.env.CHAOS_SECONDS ?? 10)
const FIBERS = 64
const KILL_EVERY_MS = 100

const sqlReasons = new Set([
  "ConnectionError",
  "AuthenticationError",
  "AuthorizationError",
  "SqlSyntaxError",
  "UniqueViolation",
  "ConstraintError",
  "DeadlockError",
  "SerializationError",
  "LockTimeoutError",
  "StatementTimeoutError",
  "UnknownError"
])
const poolErrors = new Set([
  "PoolTimeoutError",
  "ConnectError",
  "ConnectTimeoutError",
  "ConnectionInvalidatedError",
  "DriverError",
  "PoolClosedError"
])

/** "ok", "SqlError/<reason>", "<PoolErrorTag>", or "UNTYPED ..." / "DEFECT ...". */
const classify = (exit: Exit.Exit<unknown, unknown>): string => {
  if (Exit.isSuccess(exit)) return "ok"
  if (Cause.hasDies(exit.cause)) return `DEFECT ${Cause.pretty(exit.cause).split("\n")[0]}`
  const failure = exit.cause.reasons.find(Cause.isFailReason)
  if (failure === undefined) return "interrupted"
  const error = failure.error
  if (isSqlError(error)) {
    return sqlReasons.has(error.reason._tag) ? `SqlError/${error.reason._tag}` : `UNTYPED SqlError/${error.reason._tag}`
  }
  const tag = (error as { _tag?: unknown })._tag
  return typeof tag === "string" && poolErrors.has(tag) ? tag : `UNTYPED ${String(tag ?? error)}`
}

const eventually = <E, R>(check: Effect.Effect<boolean, E, R>) =>
  check.pipe(
    Effect.flatMap((ok) => (ok ? Effect.void : Effect.fail("not yet" as const))),
    Effect.retry(Schedule.spaced("50 millis").pipe(Schedule.upTo({ times: 100 }))),
    Effect.orDie
  )

layer(Database, { timeout: "120 seconds", excludeTestServices: true })("chaos on a real server", (it) => {
  it.effect(
    `${FIBERS} fibers for ${SECONDS} s, a backend of ours terminated every ${KILL_EVERY_MS} ms`,
    () =>
      Effect.gen(function*() {
        const name = appName("chaos")
        const observer = yield* admin
        const scope = yield* Scope.make()
        const context = yield* Layer.buildWithScope(
          sqlLayer(
            QueuePool.layer({
              poolSize: 10,
              maxOverflow: 10,
              timeout: "5 seconds",
              prePing: process.env.CHAOS_NO_PREPING !== "1"
            }),
            name
          ),
          scope
        )
        const sql = Layer.succeedContext(context)
        const pool = Context.get(context, ConnectionPool.ConnectionPool) as ConnectionPool.Service<PgDriver.Connection>

        /** pid → the time (performance.now) its backend was seen gone from pg_stat_activity. */
        const goneAt = new Map<number, number>()
        const outcomes = new Map<string, number>()
        let deadOnArrival = 0
        let checkouts = 0
        let kills = 0
        const latencies: Array<number> = []
        const count = (key: string) => outcomes.set(key, (outcomes.get(key) ?? 0) + 1)

        const killer = Effect.gen(function*() {
          while (true) {
            yield* Effect.sleep(`${KILL_EVERY_MS} millis`)
            const r = yield* observer.query(
              "select pid from pg_stat_activity where application_name = $1 order by random() limit 1",
              [name]
            )
            const pid = r.rows[0]?.pid as number | undefined
            if (pid === undefined) continue
            yield* observer.query("select pg_terminate_backend($1)", [pid])
            kills++
            // Record when it is gone for good, without holding up the next kill.
            yield* Effect.forkChild(
              eventually(
                Effect.map(observer.query("select 1 from pg_stat_activity where pid = $1", [pid]), (x) =>
                  x.rows.length === 0)
              )
                .pipe(Effect.andThen(Effect.sync(() =>
                  goneAt.set(pid, performance.now())
                )))
            )
          }
        })

        /** A direct checkout: its pid, and whether the driver already knew the session dead at hand-out. */
        const direct = pool.use((conn) =>
          Effect.sync(() => {
            checkouts++
            return { pid: conn.connection.processId, dead: conn.connection.deadError !== undefined }
          })
        )

        const oneOperation = (i: number) =>
          Effect.gen(function*() {
            const client = yield* SqlClient.SqlClient
            switch (i % 4) {
              case 0:
                return yield* Effect.asVoid(client`select pg_backend_pid() as pid`)
              case 1:
                return yield* Effect.asVoid(
                  client.withTransaction(Effect.andThen(client`select 1`, client`select pg_sleep(0.003)`))
                )
              case 2:
                return yield* Effect.asVoid(client`select pg_sleep(0.01)`)
              default: {
                // A direct checkout: was its backend already gone before the checkout began?
                const began = performance.now()
                const { dead, pid } = yield* direct
                const gone = goneAt.get(pid)
                if (dead || (gone !== undefined && gone < began)) deadOnArrival++
                return
              }
            }
          }).pipe(Effect.provide(sql))

        const deadline = performance.now() + SECONDS * 1000
        const worker = (w: number) =>
          Effect.gen(function*() {
            let i = w
            while (performance.now() < deadline) {
              const t0 = performance.now()
              const exit = yield* Effect.exit(oneOperation(i++))
              latencies.push(performance.now() - t0)
              count(classify(exit))
            }
          })

        const killing = yield* Effect.forkChild(killer)
        yield* Effect.forEach(Array.from({ length: FIBERS }, (_, w) => w), worker, {
          concurrency: "unbounded",
          discard: true
        })
        yield* Fiber.interrupt(killing)

        const total = Array.from(outcomes.values()).reduce((a, b) => a + b, 0)
        const summary = Array.from(outcomes.entries()).sort().map(([k, v]) => `${k}=${v}`).join(" ")
        const status = yield* pool.status
        latencies.sort((a, b) => a - b)
        const pct = (p: number) =>
          latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))]!.toFixed(1)
        console.log(
          `[chaos] ${SECONDS} s, ${FIBERS} fibers: ${total} operations (${(total / SECONDS).toFixed(0)}/s), ` +
            `latency p50 ${pct(0.5)} / p99 ${pct(0.99)} / max ${pct(1)} ms, ` +
            `${kills} backends terminated, ${checkouts} direct checkouts, dead on arrival ${deadOnArrival}; ${summary}; ` +
            `status ${JSON.stringify(status)}`
        )
        const untyped = Array.from(outcomes.keys()).filter((k) => k.startsWith("UNTYPED") || k.startsWith("DEFECT"))
        assert.deepStrictEqual(untyped, [], "every failure is typed")
        assert.strictEqual(deadOnArrival, 0, "pre-ping let a connection whose backend was gone through")
        assert.isAbove(kills, SECONDS * 3)
        assert.isAbove(outcomes.get("ok") ?? 0, total / 2)
        assert.strictEqual(status.checkedOut, 0)
        assert.strictEqual(status.waiting, 0)

        // Server side: no more of our sessions than the pool holds idle; none once it is closed.
        yield* eventually(
          Effect.flatMap(pool.status, (s) => Effect.map(sessions(observer, name), (n) => n <= s.checkedIn))
        )
        console.log(
          `[chaos] after: ${yield* sessions(observer, name)} sessions on the server, ${
            (yield* pool.status).checkedIn
          } idle in the pool`
        )
        yield* Scope.close(scope, Exit.void)
        yield* eventually(Effect.map(sessions(observer, name), (n) => n === 0))
      }),
    (SECONDS + 60) * 1000
  )
})
