/**
 * Failover under load, on a real primary + streaming hot standby (embedded binaries, a fresh pair
 * per run: never the machine's server).
 *
 * N fibers write through PgSql over QueuePool (default settings; then with `prePing`), the driver
 * given both hosts and `targetSessionAttrs: "read-write"`, as libpq's
 * `host=a,b port=p1,p2 target_session_attrs=read-write`. Half the writers use transactions. A
 * failed write is retried after 10 ms (what an application's retry would do). Mid-run the
 * primary is stopped (`pg_ctl stop -m immediate`: a crash), and after an outage of
 * FAILOVER_OUTAGE_MS (300) the standby is promoted (`pg_ctl promote -w`).
 *
 * Every write's outcome is recorded with the server that accepted it (`inet_server_port()`,
 * `pg_is_in_recovery()`). Asserted:
 *
 * - no write ever lands on a read-only session: every success was on the primary (the old one
 *   before the crash, the promoted one after), none in recovery, and no write failed with
 *   25006 (read-only transaction);
 * - every failure is a typed error (a `SqlError` failure, never a defect);
 * - the first successful write after `pg_ctl promote` returned comes within 250 ms of it (default
 *   settings). Measured over FAILOVER_RUNS (3) runs per setting; figures printed.
 */
import { assert, describe, it } from "@effect/vitest"
import { Cause, Effect, Exit, Fiber, Layer, Redacted } from "effect"
import { QueuePool } from "effect-db-pool"
import type { QueuePool as QueuePoolTypes } from "effect-db-pool"
import { PgDriver, PgSql } from "effect-db-pool/pg"
import { SqlClient } from "effect/sql"
import { isSqlError } from "effect/sql/SqlError"
import * as Fixture from "../../support/replication.ts"

const RUNS = Number(process.env.FAILOVER_RUNS ?? 3)
const WRITERS = Number(process.env.FAILOVER_WRITERS ?? 8)
const OUTAGE_MS = Number(process.env.FAILOVER_OUTAGE_MS ?? 300)
const RETRY_MS = 10
const BOUND_MS = 250

interface Outcome {
  readonly writer: number
  readonly started: number
  readonly ended: number
  readonly ok: boolean
  readonly port?: number
  readonly recovery?: boolean
  readonly error?: unknown
  readonly defect?: boolean
}

interface Row {
  readonly recovery: boolean
  readonly port: number
}

/** What kind of failure: reason, cause class, SQLSTATE. */
const kindOf = (error: unknown): string => {
  if (!isSqlError(error)) return `not a SqlError: ${String(error)}`
  const cause = error.reason.cause as {
    readonly _tag?: unknown
    readonly code?: unknown
    readonly constructor?: { name?: string }
  } | undefined
  const causeName = typeof cause?._tag === "string" ? cause._tag : cause?.constructor?.name ?? "?"
  const code = typeof cause?.code === "string" ? ` ${cause.code}` : ""
  const unknownCommit = PgSql.isCommitOutcomeUnknown(error) ? " (COMMIT outcome unknown)" : ""
  return `${error.reason._tag}/${causeName}${code}${unknownCommit}`
}

const sqlStateOf = (error: unknown): string | undefined => {
  if (!isSqlError(error)) return undefined
  const code = (error.reason.cause as { code?: unknown } | undefined)?.code
  return typeof code === "string" ? code : undefined
}

const writer = (id: number, transactional: boolean, log: Array<Outcome>) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    for (let seq = 0;; seq++) {
      const insert = sql<Row>`insert into failover_t (writer, seq) values (${id}, ${seq})
        returning pg_is_in_recovery() as recovery, inet_server_port() as port`
      const write = transactional
        ? sql.withTransaction(
          Effect.tap(insert, () => sql`update failover_t set seq = seq where writer = ${id} and seq = ${seq}`)
        )
        : insert
      const started = performance.now()
      const exit = yield* Effect.exit(write)
      const ended = performance.now()
      if (Exit.isSuccess(exit)) {
        const row = exit.value[0]!
        log.push({ writer: id, started, ended, ok: true, port: row.port, recovery: row.recovery })
      } else {
        const failure = exit.cause.reasons.find(Cause.isFailReason)
        log.push({
          writer: id,
          started,
          ended,
          ok: false,
          error: failure?.error ?? Cause.pretty(exit.cause),
          defect: failure === undefined
        })
        yield* Effect.sleep(`${RETRY_MS} millis`)
      }
    }
  })

interface RunResult {
  readonly firstWriteAfterPromoteMs: number
  readonly promoteMs: number
  readonly failed: number
  readonly succeeded: number
  readonly kinds: ReadonlyMap<string, number>
}

const failoverRun = (run: number, pool: QueuePoolTypes.Options) =>
  Effect.scoped(Effect.gen(function*() {
    const cluster = yield* Fixture.make
    const { primary, standby } = cluster
    // The table, replayed on the standby before the crash.
    yield* cluster.query(
      primary,
      "create table failover_t (id bigserial primary key, writer int not null, seq int not null)"
    )
    for (let i = 0; i < 200; i++) {
      const rows = yield* cluster.query<{ ok: boolean }>(standby, "select to_regclass('failover_t') is not null as ok")
      if (rows[0]!.ok) break
      yield* Effect.sleep("10 millis")
    }

    const stack = PgSql.layer().pipe(
      Layer.provideMerge(QueuePool.layer(pool)),
      Layer.provideMerge(PgDriver.layer({
        url: Redacted.make(`postgres://postgres@127.0.0.1:${primary.port},127.0.0.1:${standby.port}/postgres`),
        targetSessionAttrs: "read-write",
        applicationName: "edp-failover"
      }))
    )
    const log: Array<Outcome> = []
    const result = yield* Effect.gen(function*() {
      const fibers = yield* Effect.forEach(
        Array.from({ length: WRITERS }, (_, i) => i),
        (i) => Effect.forkChild(writer(i, i % 2 === 1, log))
      )
      yield* Effect.sleep("1 second")
      const stopBegan = performance.now()
      yield* primary.stop("immediate")
      const stopEnded = performance.now()
      yield* Effect.sleep(`${OUTAGE_MS} millis`)
      const promoteBegan = performance.now()
      yield* standby.promote
      const promoted = performance.now()
      // Until a write succeeded after the promotion, then 1 s more of load.
      const waitStarted = performance.now()
      while (performance.now() - waitStarted < 10_000 && !log.some((o) => o.ok && o.ended > promoted)) {
        yield* Effect.sleep("5 millis")
      }
      yield* Effect.sleep("1 second")
      yield* Fiber.interruptAll(fibers)
      return { stopBegan, stopEnded, promoteBegan, promoted }
    }).pipe(Effect.provide(stack))

    const { stopBegan, stopEnded, promoteBegan, promoted } = result
    const successes = log.filter((o) => o.ok)
    const failures = log.filter((o) => !o.ok)

    // No write on a read-only session: every success on a primary, never in recovery; no 25006.
    for (const o of successes) {
      assert.isFalse(o.recovery, "a write succeeded on a server in recovery")
      if (o.started > stopEnded) assert.strictEqual(o.port, standby.port, "after the crash, only the promoted server")
      if (o.ended < stopBegan) assert.strictEqual(o.port, primary.port, "before the crash, the primary")
    }
    assert.isFalse(
      failures.some((o) => sqlStateOf(o.error) === "25006"),
      "a write was attempted on a read-only session"
    )
    // Every failure typed.
    for (const o of failures) {
      assert.isFalse(o.defect, `a defect: ${String(o.error)}`)
      assert.isTrue(isSqlError(o.error), `not a SqlError: ${String(o.error)}`)
    }
    const kinds = new Map<string, number>()
    for (const o of failures) kinds.set(kindOf(o.error), (kinds.get(kindOf(o.error)) ?? 0) + 1)

    const firstAfter = successes.filter((o) => o.ended > stopEnded).reduce((min, o) => Math.min(min, o.ended), Infinity)
    const firstWriteAfterPromoteMs = firstAfter - promoted
    const promoteMs = promoted - promoteBegan
    const during = failures.filter((o) => o.ended >= stopBegan)
    console.log(
      `[failover] run ${run} (${pool.prePing ? "prePing" : "default settings"}, ${WRITERS} writers): ` +
        `stop -m immediate ${(stopEnded - stopBegan).toFixed(0)} ms, outage ${OUTAGE_MS} ms, pg_ctl promote ${
          promoteMs.toFixed(0)
        } ms; ` +
        `first successful write ${firstWriteAfterPromoteMs.toFixed(1)} ms after promote returned ` +
        `(${(firstAfter - promoteBegan).toFixed(1)} ms after it began; pg_ctl notices the promotion by polling); ` +
        `${successes.length} writes ok, ${failures.length} failed (${during.length} during the failover): ` +
        [...kinds].map(([k, n]) => `${n} × ${k}`).join(", ")
    )
    return {
      firstWriteAfterPromoteMs,
      promoteMs,
      failed: failures.length,
      succeeded: successes.length,
      kinds
    } satisfies RunResult
  }))

describe("failover under load: primary crash, standby promoted", () => {
  for (
    const [label, pool] of [
      ["default settings", {}],
      ["prePing", { prePing: true }]
    ] as const
  ) {
    it.live(
      `${label}: no write on a read-only session, typed failures, first write ≤ ${BOUND_MS} ms after promotion`,
      () =>
        Effect.gen(function*() {
          const results: Array<RunResult> = []
          for (let run = 1; run <= RUNS; run++) results.push(yield* failoverRun(run, pool))
          const figures = results.map((r) => r.firstWriteAfterPromoteMs)
          console.log(
            `[failover] ${label}: first successful write after promotion, ms: ${
              figures.map((f) => f.toFixed(1)).join(", ")
            } ` +
              `(max ${Math.max(...figures).toFixed(1)})`
          )
          for (const f of figures) assert.isBelow(f, BOUND_MS)
        }),
      170_000
    )
  }
})
