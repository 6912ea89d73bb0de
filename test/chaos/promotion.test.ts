/**
 * A standby promoted under read load, on a real primary + streaming hot standby (embedded
 * binaries, a fresh pair per test: never the machine's server).
 *
 * Readers loop over a read marked read-only, recording where each one ran
 * (`pg_is_in_recovery()`, `inet_server_port()`) and when it started; a writer keeps writing on
 * the primary. Mid-run the standby is promoted (`pg_ctl promote -w`): from then on it no longer
 * follows the primary, so a read there misses the primary's writes. A read "on the promoted node"
 * is one that ran on the standby's port out of recovery.
 *
 * - `PgReplicas`, plain replica URL: the health check (`pg_is_in_recovery()`) takes the replica
 *   out of rotation within one `healthCheckInterval` of the promotion: no read that started
 *   later than that (plus the check's round trip) ran on the promoted node.
 * - `PgReplicas`, replica driver with `targetSessionAttrs: "standby"`: no read succeeds on the
 *   promoted node at all (each session sees `in_hot_standby = off` in its next reply).
 * - Issue 19.7: one pool over `PgDriver` with `targetSessionAttrs: "standby"`, no router: no read
 *   succeeds on the promoted node (41 of 58 did before: the sessions kept serving).
 */
import { assert, describe, it } from "@effect/vitest"
import { Cause, Effect, Exit, Fiber, Layer } from "effect"
import type { Scope } from "effect"
import { QueuePool } from "effect-db-pool"
import { PgDriver, PgReplicas, PgSql } from "effect-db-pool/pg"
import { SqlClient } from "effect/sql"
import { isSqlError } from "effect/sql/SqlError"
import * as Fixture from "../../support/replication.ts"

const READERS = 4
const CHECK_MS = 200

interface Read {
  /** ms since the promotion returned (negative: before). */
  readonly startedAt: number
  readonly ok: boolean
  readonly recovery?: boolean
  readonly port?: number
  readonly error?: unknown
}

interface Where {
  readonly recovery: boolean
  readonly port: number
}

/** Run `read` in `READERS` loops and a writer on the primary; promote the standby after 1 s, go on 2 s. */
const promoteUnderLoad = <R>(
  cluster: Fixture.Cluster,
  read: Effect.Effect<Where, unknown, R>,
  write: Effect.Effect<unknown, unknown, R>
): Effect.Effect<
  { readonly reads: ReadonlyArray<Read>; readonly promoteMs: number },
  Fixture.FixtureError,
  R | Scope.Scope
> =>
  Effect.gen(function*() {
    // `startedAt` holds performance.now() until the end, then ms since the promotion returned.
    const reads: Array<Read> = []
    const reader = Effect.forever(Effect.gen(function*() {
      const startedAt = performance.now()
      const exit = yield* Effect.exit(read)
      if (Exit.isSuccess(exit)) {
        reads.push({ startedAt, ok: true, recovery: exit.value.recovery, port: exit.value.port })
      } else {reads.push({
          startedAt,
          ok: false,
          error: exit.cause.reasons.find(Cause.isFailReason)?.error ?? Cause.pretty(exit.cause)
        })}
      yield* Effect.sleep("5 millis")
    }))
    const writer = Effect.forever(Effect.andThen(Effect.ignore(write), Effect.sleep("10 millis")))
    const fibers = yield* Effect.forEach(Array.from({ length: READERS }), () => Effect.forkChild(reader))
    const writerFiber = yield* Effect.forkChild(writer)
    yield* Effect.sleep("1 second")
    const began = performance.now()
    yield* cluster.standby.promote
    const promotedAt = performance.now()
    yield* Effect.sleep("2 seconds")
    yield* Fiber.interruptAll([...fibers, writerFiber])
    return { reads: reads.map((r) => ({ ...r, startedAt: r.startedAt - promotedAt })), promoteMs: promotedAt - began }
  })

const onPromoted = (cluster: Fixture.Cluster) => (r: Read) =>
  r.ok && r.recovery === false && r.port === cluster.standby.port

const summary = (label: string, cluster: Fixture.Cluster, reads: ReadonlyArray<Read>, promoteMs: number) => {
  const after = reads.filter((r) => r.startedAt >= 0)
  const promoted = reads.filter(onPromoted(cluster))
  const last = promoted.reduce((max, r) => Math.max(max, r.startedAt), -Infinity)
  const failed = reads.filter((r) => !r.ok)
  console.log(
    `[promotion] ${label}: pg_ctl promote ${
      promoteMs.toFixed(0)
    } ms; ${reads.length} reads (${after.length} started after it returned); ` +
      `${promoted.length} ran on the promoted node${
        promoted.length > 0 ? ` (the last one started ${last.toFixed(0)} ms after promote returned)` : ""
      }; ` +
      `${failed.length} failed`
  )
}

const whereSql = Effect.flatMap(
  Effect.service(SqlClient.SqlClient),
  (sql) =>
    Effect.map(sql<Where>`select pg_is_in_recovery() as recovery, inet_server_port() as port`, (rows) => rows[0]!)
)
const writeSql = Effect.flatMap(
  Effect.service(SqlClient.SqlClient),
  (sql) => sql`insert into promotion_t default values`
)

const freshCluster = Effect.gen(function*() {
  const cluster = yield* Fixture.make
  yield* cluster.query(cluster.primary, "create table promotion_t (id bigserial primary key)")
  return cluster
})

const router = (cluster: Fixture.Cluster, replica: Partial<PgDriver.Config>) =>
  PgReplicas.layer({
    primary: PgReplicas.pool(QueuePool.layer({ poolSize: 4 }), {
      url: cluster.primary.url,
      applicationName: "edp-primary"
    }),
    replicas: [
      PgReplicas.pool(QueuePool.layer({ poolSize: 4 }), {
        url: cluster.standby.url,
        applicationName: "edp-r0",
        connectTimeout: "2 seconds",
        ...replica
      })
    ]
  }, { healthCheckInterval: `${CHECK_MS} millis` })

describe("a standby promoted under read load", () => {
  it.live(
    `PgReplicas: the promoted replica leaves rotation within one health-check interval (${CHECK_MS} ms)`,
    () =>
      Effect.scoped(Effect.gen(function*() {
        const cluster = yield* freshCluster
        const { reads, promoteMs, status } = yield* Effect.gen(function*() {
          const run = yield* promoteUnderLoad(cluster, PgSql.readOnly(whereSql), writeSql)
          const status = yield* Effect.flatMap(Effect.service(PgReplicas.PgReplicas), (r) => r.status)
          return { ...run, status }
        }).pipe(Effect.provide(router(cluster, {})))
        summary("PgReplicas, plain replica URL", cluster, reads, promoteMs)
        // Every read succeeded (on the standby, then the primary).
        assert.deepStrictEqual(reads.filter((r) => !r.ok), [])
        // The bound: one interval, plus the check's round trips (generous on a loaded machine).
        const late = reads.filter(onPromoted(cluster)).filter((r) => r.startedAt > CHECK_MS + 300)
        assert.deepStrictEqual(late, [], "a read on the promoted node after the health check had time to see it")
        assert.isAbove(reads.filter((r) => r.startedAt > CHECK_MS + 300).length, 20)
        const replica = status.replicas[0]!
        assert.strictEqual(replica.role, "primary")
        assert.isFalse(replica.healthy)
        assert.isFalse(replica.serving)
        const cause = replica.lastError?.reason.cause as PgDriver.TargetSessionAttrsError | undefined
        assert.strictEqual(cause?._tag, "TargetSessionAttrsError")
        assert.strictEqual(cause?.session, "primary")
      })),
    120_000
  )

  it.live(
    "PgReplicas, replica driver targetSessionAttrs \"standby\": no read succeeds on the promoted node",
    () =>
      Effect.scoped(Effect.gen(function*() {
        const cluster = yield* freshCluster
        const { reads, promoteMs } = yield* promoteUnderLoad(cluster, PgSql.readOnly(whereSql), writeSql).pipe(
          Effect.provide(router(cluster, { targetSessionAttrs: "standby" }))
        )
        summary("PgReplicas, replica targetSessionAttrs standby", cluster, reads, promoteMs)
        assert.deepStrictEqual(reads.filter(onPromoted(cluster)), [])
        for (const r of reads.filter((r) => !r.ok)) {
          assert.isTrue(isSqlError(r.error), `a typed failure: ${String(r.error)}`)
        }
        // After the promotion reads go on, on the primary.
        assert.isAbove(
          reads.filter((r) => r.ok && r.startedAt > 1000 && r.port === cluster.primary.port).length,
          20
        )
      })),
    120_000
  )

  it.live(
    "issue 19.7: a pool with targetSessionAttrs \"standby\" retires its sessions on the promoted node",
    () =>
      Effect.scoped(Effect.gen(function*() {
        const cluster = yield* freshCluster
        // No router: one pool over the standby, as in the report.
        const layer = QueuePool.layer({ poolSize: 4 }).pipe(
          Layer.provideMerge(
            PgDriver.layer({ url: cluster.standby.url, targetSessionAttrs: "standby", connectTimeout: "2 seconds" })
          )
        )
        const read = Effect.flatMap(
          Effect.service(PgDriver.Pool),
          (pool) =>
            pool.use((pooled) =>
              Effect.map(
                pooled.connection.query("select pg_is_in_recovery() as recovery, inet_server_port() as port"),
                (result) => result.rows[0] as unknown as Where
              )
            )
        )
        const { reads, promoteMs } = yield* promoteUnderLoad(cluster, read, Effect.void).pipe(Effect.provide(layer))
        summary("one pool, targetSessionAttrs standby", cluster, reads, promoteMs)
        assert.isAbove(reads.filter((r) => r.ok && r.recovery === true).length, 20, "reads on the standby before")
        assert.deepStrictEqual(reads.filter(onPromoted(cluster)), [], "a read succeeded on the promoted node")
        // Afterwards no host is a standby: every read fails, typed (no acceptable host).
        const after = reads.filter((r) => r.startedAt > 500)
        assert.isAbove(after.length, 10)
        for (const r of after) {
          assert.isFalse(r.ok)
          assert.isTrue(
            isSqlError(r.error) || (r.error as { _tag?: string })._tag === "ConnectError",
            `typed: ${String(r.error)}`
          )
        }
      })),
    120_000
  )
})
