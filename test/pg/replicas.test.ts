/**
 * `PgReplicas`: one SqlClient over a primary pool and replica pools, on a real primary + streaming
 * hot standby (embedded binaries, this file's own). Where work ran is read from the server:
 * `pg_is_in_recovery()` is true on the standby only.
 */
import { assert, layer } from "@effect/vitest"
import { Cause, Effect, Exit, Layer, Stream } from "effect"
import { SqlClient } from "effect/sql"
import { isSqlError } from "effect/sql/SqlError"
import { NullPool, QueuePool } from "effect-db-pool"
import { PgDriver, PgReplicas, PgSql } from "effect-db-pool/pg"
import * as Fixture from "../../support/replication.ts"

const recovery = Effect.flatMap(
  Effect.service(SqlClient.SqlClient),
  (sql) => Effect.map(sql<{ recovery: boolean }>`select pg_is_in_recovery() as recovery`, (rows) => rows[0]!.recovery)
)
const app = Effect.flatMap(
  Effect.service(SqlClient.SqlClient),
  (sql) => Effect.map(sql<{ app: string }>`select current_setting('application_name') as app`, (rows) => rows[0]!.app)
)

const routerFor = (cluster: Fixture.Cluster, replicaApps: ReadonlyArray<string>, options: PgReplicas.Options = {}) =>
  PgReplicas.layer({
    primary: PgReplicas.pool(QueuePool.layer({ poolSize: 3 }), { url: cluster.primary.url, applicationName: "edp-primary" }),
    replicas: replicaApps.map((applicationName) =>
      PgReplicas.pool(QueuePool.layer({ poolSize: 3 }), { url: cluster.standby.url, applicationName, connectTimeout: "2 seconds" })
    )
  }, options)

layer(Fixture.layer, { timeout: "120 seconds", excludeTestServices: true })("read replicas", (it) => {
  it.effect("writes and transactions on the primary; work marked read-only on the standby", () =>
    Effect.gen(function*() {
      const cluster = yield* Fixture.Replication
      yield* Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* sql`create table if not exists replicas_t (id serial primary key, v text not null)`
        const [inserted] = yield* sql<{ recovery: boolean }>`insert into replicas_t (v) values ('a') returning pg_is_in_recovery() as recovery`
        assert.isFalse(inserted!.recovery, "a write: the primary")
        assert.isFalse(yield* recovery, "an unmarked read: the primary")
        assert.isTrue(yield* PgSql.readOnly(recovery), "a read marked read-only: the standby")

        // A read-only transaction: one standby session for all of it.
        const inTransaction = Effect.flatMap(sql<{ pid: number; recovery: boolean }>`select pg_backend_pid() as pid, pg_is_in_recovery() as recovery`, (rows) => Effect.succeed(rows[0]!))
        const [a, b] = yield* PgSql.readOnly(sql.withTransaction(Effect.all([inTransaction, inTransaction])))
        assert.isTrue(a!.recovery && b!.recovery)
        assert.strictEqual(a!.pid, b!.pid)
        // Begun READ ONLY (SqlClient.BeginTransaction): a read-only transaction too.
        const begun = yield* sql.withTransaction(recovery).pipe(
          Effect.provideService(SqlClient.BeginTransaction, "BEGIN READ ONLY")
        )
        assert.isTrue(begun, "BEGIN READ ONLY: the standby")
        // Marked read-only inside a write transaction: stays on the transaction's connection.
        assert.isFalse(yield* sql.withTransaction(PgSql.readOnly(recovery)))
        // Streams follow the mark.
        const streamed = yield* PgSql.readOnly(
          Stream.runCollect(sql<{ recovery: boolean }>`select pg_is_in_recovery() as recovery from generate_series(1, 3)`.stream)
        )
        assert.deepStrictEqual(Array.from(streamed, (r) => r.recovery), [true, true, true])
        // `reserve` too.
        const reserved = yield* PgSql.readOnly(Effect.scoped(Effect.flatMap(sql.reserve, (conn) => conn.executeRaw("select pg_is_in_recovery() as recovery", []))))
        assert.isTrue(((reserved as { rows: Array<{ recovery: boolean }> }).rows[0]!).recovery)

        // The standby replays the primary's write: it is read there.
        let seen = 0
        for (let i = 0; i < 100 && seen === 0; i++) {
          // Until the standby has replayed the CREATE TABLE, the table is not there (42P01).
          const [row] = yield* PgSql.readOnly(sql<{ n: number }>`select count(*)::int as n from replicas_t`).pipe(
            Effect.orElseSucceed(() => [{ n: 0 }])
          )
          seen = row!.n
          if (seen === 0) yield* Effect.sleep("20 millis")
        }
        assert.isAtLeast(seen, 1)

        // A write marked read-only: the standby refuses it, a typed SqlError; the replica stays in rotation.
        const refused = yield* Effect.exit(PgSql.readOnly(sql`insert into replicas_t (v) values ('no')`))
        const error = Exit.isFailure(refused) ? refused.cause.reasons.find(Cause.isFailReason)?.error : undefined
        assert.isTrue(isSqlError(error))
        assert.strictEqual(((error as { reason: { cause: { code?: string } } }).reason.cause).code, "25006")
        const status = yield* Effect.flatMap(Effect.service(PgReplicas.PgReplicas), (r) => r.status)
        assert.isTrue(status.replicas[0]!.healthy)
        assert.isAbove(status.replicas[0]!.routed, 5)
        assert.isAbove(status.primary.routed, 3)
      }).pipe(Effect.provide(routerFor(cluster, ["edp-r0"])))
    }))

  it.effect("round robin and least busy over two replica pools", () =>
    Effect.gen(function*() {
      const cluster = yield* Fixture.Replication
      const roundRobin = yield* Effect.provide(
        Effect.forEach(Array.from({ length: 6 }), () => PgSql.readOnly(app)),
        routerFor(cluster, ["edp-r0", "edp-r1"])
      )
      assert.deepStrictEqual(roundRobin, ["edp-r0", "edp-r1", "edp-r0", "edp-r1", "edp-r0", "edp-r1"])

      const leastBusy = yield* Effect.provide(
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          // Hold one replica's connection: reads go to the other one.
          const held = yield* PgSql.readOnly(sql.reserve)
          const heldApp = ((yield* held.executeRaw("select current_setting('application_name') as app", [])) as {
            rows: Array<{ app: string }>
          }).rows[0]!.app
          const apps = yield* Effect.forEach(Array.from({ length: 4 }), () => PgSql.readOnly(app))
          return { heldApp, apps }
        }).pipe(Effect.scoped),
        routerFor(cluster, ["edp-r0", "edp-r1"], { balance: "least-busy" })
      )
      const other = leastBusy.heldApp === "edp-r0" ? "edp-r1" : "edp-r0"
      assert.deepStrictEqual(leastBusy.apps, [other, other, other, other])
    }))

  it.effect("PgSql.readOnly over one pool changes nothing; bad options are a PgConfigError", () =>
    Effect.gen(function*() {
      const cluster = yield* Fixture.Replication
      const single = PgSql.layer().pipe(Layer.provideMerge(NullPool.layer()), Layer.provideMerge(PgDriver.layer({ url: cluster.primary.url })))
      assert.isFalse(yield* Effect.provide(PgSql.readOnly(recovery), single))
      const exit = yield* Effect.exit(Effect.scoped(Layer.build(routerFor(cluster, [], { balance: "fastest" as never }))))
      const error = Exit.isFailure(exit) ? exit.cause.reasons.find(Cause.isFailReason)?.error : undefined
      assert.strictEqual((error as { _tag?: string })._tag, "PgConfigError")
      assert.strictEqual((error as { field?: string }).field, "balance")
    }))

  // Last: it stops the standby (and starts it again).
  it.effect("the standby down: reads go to the primary with no error; back to the standby once it answers", () =>
    Effect.gen(function*() {
      const cluster = yield* Fixture.Replication
      yield* Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const replicas = yield* PgReplicas.PgReplicas
        assert.isTrue(yield* PgSql.readOnly(recovery))
        yield* cluster.standby.stop("fast")
        // Every read succeeds, on the primary; the replica is marked down.
        for (let i = 0; i < 5; i++) assert.isFalse(yield* PgSql.readOnly(recovery), `read ${i}`)
        assert.isFalse(yield* PgSql.readOnly(sql.withTransaction(recovery)))
        const down = yield* replicas.status
        assert.isFalse(down.replicas[0]!.healthy)
        assert.isTrue(isSqlError(down.replicas[0]!.lastError))
        assert.isTrue(PgDriver.isDisconnect(down.replicas[0]!.lastError), "refused: a connect error")

        yield* cluster.standby.start
        yield* Fixture.waitUp(cluster.standby)
        const started = Date.now()
        let back = false
        while (!back && Date.now() - started < 10_000) {
          back = yield* PgSql.readOnly(recovery)
          if (!back) yield* Effect.sleep("50 millis")
        }
        console.log(`[replicas] the standby back in rotation ${Date.now() - started} ms after it answered`)
        assert.isTrue(back, "reads go to the standby again")
        assert.isTrue((yield* replicas.status).replicas[0]!.healthy)
      }).pipe(Effect.provide(routerFor(cluster, ["edp-r0"], { healthCheckInterval: "100 millis" })))
    }))
})
