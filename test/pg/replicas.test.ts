/**
 * `PgReplicas`: one SqlClient over a primary pool and replica pools, on a real primary + streaming
 * hot standby (embedded binaries, this file's own). Where work ran is read from the server:
 * `pg_is_in_recovery()` is true on the standby only.
 */
import { assert, layer } from "@effect/vitest"
import { Cause, Effect, Exit, Fiber, Layer, Metric, Stream } from "effect"
import { NullPool, PoolMetrics, QueuePool } from "effect-db-pool"
import { PgDriver, PgReplicas, PgSql } from "effect-db-pool/pg"
import { SqlClient } from "effect/sql"
import { isSqlError } from "effect/sql/SqlError"
import * as Fixture from "../../support/replication.ts"
import { eventually } from "./fixture.ts"

const recovery = Effect.flatMap(
  Effect.service(SqlClient.SqlClient),
  (sql) => Effect.map(sql<{ recovery: boolean }>`select pg_is_in_recovery() as recovery`, (rows) => rows[0]!.recovery)
)
const app = Effect.flatMap(
  Effect.service(SqlClient.SqlClient),
  (sql) => Effect.map(sql<{ app: string }>`select current_setting('application_name') as app`, (rows) => rows[0]!.app)
)

const insertRow = (id: number) =>
  Effect.flatMap(Effect.service(SqlClient.SqlClient), (sql) => sql`insert into ryw_t (id) values (${id})`)
const readRow = (id: number) =>
  Effect.flatMap(Effect.service(SqlClient.SqlClient), (sql) =>
    Effect.map(
      PgSql.readOnly(
        sql<
          { n: number; recovery: boolean }
        >`select count(*)::int as n, pg_is_in_recovery() as recovery from ryw_t where id = ${id}`
      ),
      (rows) => rows[0]!
    ))

/** Wait until the standby has replayed the creation of `table`. */
const replayed = (cluster: Fixture.Cluster, table: string) =>
  Effect.gen(function*() {
    for (let i = 0; i < 500; i++) {
      const rows = yield* cluster.query<{ ok: boolean }>(
        cluster.standby,
        `select to_regclass('${table}') is not null as ok`
      )
      if (rows[0]!.ok) return
      yield* Effect.sleep("10 millis")
    }
  })

const routerFor = (
  cluster: Fixture.Cluster,
  replicaApps: ReadonlyArray<string>,
  options: PgReplicas.Options = {},
  poolSize = 3
) =>
  PgReplicas.layer({
    primary: PgReplicas.pool(QueuePool.layer({ poolSize }), {
      url: cluster.primary.url,
      applicationName: "edp-primary"
    }),
    replicas: replicaApps.map((applicationName) =>
      PgReplicas.pool(QueuePool.layer({ poolSize }), {
        url: cluster.standby.url,
        applicationName,
        connectTimeout: "2 seconds"
      })
    )
  }, options)

// synchronous_commit on, as production primaries run: a standby hears of a commit as it returns
// (off, it waits for the WAL writer, up to 200 ms, and lags that much under writes).
const Cluster = Layer.effect(Fixture.Replication, Fixture.makeWith({ synchronousCommit: true }))

layer(Cluster, { timeout: "120 seconds", excludeTestServices: true })("read replicas", (it) => {
  it.effect("writes and transactions on the primary; work marked read-only on the standby", () =>
    Effect.gen(function*() {
      const cluster = yield* Fixture.Replication
      yield* Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* sql`create table if not exists replicas_t (id serial primary key, v text not null)`
        const [inserted] = yield* sql<
          { recovery: boolean }
        >`insert into replicas_t (v) values ('a') returning pg_is_in_recovery() as recovery`
        assert.isFalse(inserted!.recovery, "a write: the primary")
        assert.isFalse(yield* recovery, "an unmarked read: the primary")
        assert.isTrue(yield* PgSql.readOnly(recovery), "a read marked read-only: the standby")

        // A read-only transaction: one standby session for all of it.
        const inTransaction = Effect.flatMap(
          sql<{ pid: number; recovery: boolean }>`select pg_backend_pid() as pid, pg_is_in_recovery() as recovery`,
          (rows) => Effect.succeed(rows[0]!)
        )
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
          Stream.runCollect(
            sql<{ recovery: boolean }>`select pg_is_in_recovery() as recovery from generate_series(1, 3)`.stream
          )
        )
        assert.deepStrictEqual(Array.from(streamed, (r) => r.recovery), [true, true, true])
        // `reserve` too.
        const reserved = yield* PgSql.readOnly(
          Effect.scoped(
            Effect.flatMap(sql.reserve, (conn) => conn.executeRaw("select pg_is_in_recovery() as recovery", []))
          )
        )
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
        assert.strictEqual((error as { reason: { cause: { code?: string } } }).reason.cause.code, "25006")
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

  it.effect("PgSql.readOnly over one pool changes nothing; bad options are a PgReplicasConfigError", () =>
    Effect.gen(function*() {
      const cluster = yield* Fixture.Replication
      const single = PgSql.layer().pipe(
        Layer.provideMerge(NullPool.layer()),
        Layer.provideMerge(PgDriver.layer({ url: cluster.primary.url }))
      )
      assert.isFalse(yield* Effect.provide(PgSql.readOnly(recovery), single))
      const exit = yield* Effect.exit(
        Effect.scoped(Layer.build(routerFor(cluster, [], { balance: "fastest" as never })))
      )
      const error = Exit.isFailure(exit) ? exit.cause.reasons.find(Cause.isFailReason)?.error : undefined
      assert.strictEqual((error as { _tag?: string })._tag, "PgReplicasConfigError")
      assert.strictEqual((error as { field?: string }).field, "balance")
    }))

  // The standby applies commits 1 s late: on a loaded machine a round of 40 takes several hundred ms,
  // and with a 300 ms delay some eventual reads came late enough to see their write.
  it.effect("read-your-writes: with a 1 s apply delay, 40 of 40 reads right after their write see it (eventual: they miss it)", () =>
    Effect.gen(function*() {
      const cluster = yield* Fixture.Replication
      yield* cluster.query(cluster.primary, "create table if not exists ryw_t (id int primary key)")
      yield* replayed(cluster, "ryw_t")
      yield* cluster.setApplyDelay(1000)
      /** 40 fibers at once, each its own session: insert its row, then read it back marked read-only. */
      const round = (base: number, options: PgReplicas.Options) =>
        Effect.provide(
          Effect.gen(function*() {
            // Every session open first: the measured round does not wait for connects.
            yield* Effect.forEach(Array.from({ length: 40 }), () => Effect.all([recovery, PgSql.readOnly(recovery)]), {
              concurrency: 40
            }).pipe(
              PgReplicas.consistency("eventual")
            )
            const started = Date.now()
            const results = yield* Effect.forEach(
              Array.from({ length: 40 }, (_, i) => base + i),
              (id) => Effect.andThen(insertRow(id), readRow(id)),
              { concurrency: 40 }
            )
            const status = yield* Effect.flatMap(Effect.service(PgReplicas.PgReplicas), (r) => r.status)
            // The same counts as metrics (the router's default name).
            const counted = yield* Effect.forEach(
              PoolMetrics.readYourWritesOutcomes,
              (outcome) => Effect.map(Metric.value(PoolMetrics.readYourWrites("PgReplicas", outcome)), (v) => v.count)
            )
            assert.deepStrictEqual(counted, [
              status.readYourWrites.replica,
              status.readYourWrites.waited,
              status.readYourWrites.primary
            ])
            return {
              seen: results.filter((r) => r.n === 1).length,
              onStandby: results.filter((r) => r.recovery).length,
              ms: Date.now() - started,
              status
            }
          }),
          // A session each for 40 fibers at once: no read queues for long behind the others.
          routerFor(cluster, ["edp-r0"], options, 40)
        )
      const eventual = yield* round(1000, {})
      const primaryFallback = yield* round(2000, { consistency: "read-your-writes" })
      const waited = yield* round(3000, { consistency: "read-your-writes", maxReplayWait: "3 seconds" })
      for (
        const [name, r] of [["eventual", eventual], ["read-your-writes", primaryFallback], [
          "read-your-writes, maxReplayWait 3 s",
          waited
        ]] as const
      ) {
        console.log(
          `[replicas] apply delay 1 s, ${name}: ${r.seen} of 40 reads saw their write; ${r.onStandby} ran on the standby; ` +
            `${r.ms} ms; read-your-writes ${JSON.stringify(r.status.readYourWrites)}`
        )
      }
      // Eventual: every read on the standby, which has not applied the commit yet.
      assert.strictEqual(eventual.onStandby, 40)
      assert.isBelow(eventual.seen, 40, "the standby lags: reads right after a write miss it")
      // Read-your-writes, default 100 ms wait < the 1 s delay: every read sees its write, on the primary.
      assert.strictEqual(primaryFallback.seen, 40)
      assert.strictEqual(primaryFallback.onStandby + primaryFallback.status.readYourWrites.primary, 40)
      assert.strictEqual(primaryFallback.status.readYourWrites.primary, 40 - primaryFallback.onStandby)
      // With a wait longer than the delay: every read on the standby, once it replayed the write.
      assert.strictEqual(waited.seen, 40)
      assert.strictEqual(waited.onStandby, 40)
      assert.strictEqual(waited.status.readYourWrites.waited + waited.status.readYourWrites.replica, 40)
      // Reads needing the primary's position at once share its read.
      assert.isAtMost(waited.status.readYourWrites.positionReads, 40)
    }).pipe(Effect.ensuring(Effect.orDie(Effect.flatMap(Fixture.Replication, (c) => c.setApplyDelay(0))))))

  it.effect("read-your-writes per effect: a consistency scope's forks, a session key across effects; reads before a write cost nothing", () =>
    Effect.gen(function*() {
      const cluster = yield* Fixture.Replication
      yield* cluster.query(cluster.primary, "create table if not exists ryw_t (id int primary key)")
      yield* replayed(cluster, "ryw_t")
      yield* cluster.setApplyDelay(300)
      yield* Effect.gen(function*() {
        const replicas = yield* PgReplicas.PgReplicas
        // A session's reads before its first write: the standby, no position read.
        const before = yield* readRow(5000).pipe(PgReplicas.consistency("read-your-writes"))
        assert.isTrue(before.recovery)
        assert.strictEqual((yield* replicas.status).readYourWrites.positionReads, 0)

        // The layer is "eventual"; a consistency scope is one session, forks included.
        const forked = yield* Effect.andThen(
          insertRow(5001),
          Effect.all([readRow(5001), readRow(5001)], { concurrency: 2 })
        ).pipe(PgReplicas.consistency("read-your-writes"))
        assert.deepStrictEqual(forked.map((r) => r.n), [1, 1])

        // A key across effects and fibers: written in one, read in another.
        yield* Effect.flatMap(Effect.forkChild(insertRow(5002).pipe(PgReplicas.session("user-7"))), Fiber.join)
        const keyed = yield* readRow(5002).pipe(PgReplicas.session("user-7"))
        assert.strictEqual(keyed.n, 1)
        // Marked eventual inside: back to the standby with no wait.
        const counted = (yield* replicas.status).readYourWrites
        const eventual = yield* readRow(5002).pipe(PgReplicas.consistency("eventual"), PgReplicas.session("user-7"))
        assert.isTrue(eventual.recovery)
        assert.deepStrictEqual((yield* replicas.status).readYourWrites, counted, "an eventual read is not counted")
      }).pipe(Effect.provide(routerFor(cluster, ["edp-r0"], { maxReplayWait: "3 seconds" })))
    }).pipe(Effect.ensuring(Effect.orDie(Effect.flatMap(Fixture.Replication, (c) => c.setApplyDelay(0))))))

  it.effect("maxLag 100 ms: reads go to the primary while the standby lags, back to it once it catches up; an idle primary does not hold it out", () =>
    Effect.gen(function*() {
      const cluster = yield* Fixture.Replication
      yield* cluster.query(
        cluster.primary,
        "create table if not exists lag_t (id serial primary key, at timestamptz default now())"
      )
      yield* replayed(cluster, "lag_t")
      yield* Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const replicas = yield* PgReplicas.PgReplicas
        const lagGauge = PoolMetrics.forReplica("lag-test", "replica 0").lag
        const until = <R>(what: string, predicate: Effect.Effect<boolean, unknown, R>) =>
          Effect.gen(function*() {
            const started = Date.now()
            while (!(yield* predicate)) {
              if (Date.now() - started > 10_000) return yield* Effect.die(new Error(`not ${what} after 10 s`))
              yield* Effect.sleep("20 millis")
            }
            return Date.now() - started
          })
        const status = Effect.map(replicas.status, (s) => s.replicas[0]!)

        // Caught up (nothing delayed): the standby serves.
        yield* until("serving", Effect.map(status, (s) => s.serving))
        assert.isTrue(yield* PgSql.readOnly(recovery))

        // A write every 20 ms, applied 300 ms late: the standby lags ~300 ms.
        const writer = yield* Effect.forkChild(
          Effect.forever(Effect.andThen(sql`insert into lag_t default values`, Effect.sleep("20 millis")))
        )
        yield* cluster.setApplyDelay(300)
        yield* until("lagging", Effect.map(status, (s) => !s.serving))
        const lagging = yield* status
        assert.isAbove(lagging.lagMillis!, 100)
        const m = PoolMetrics.forReplica("lag-test", "replica 0")
        const [gaugeLag, servingGauge, routedCount, now] = yield* Effect.all([
          Metric.value(lagGauge),
          Metric.value(m.serving),
          Metric.value(m.routed),
          status
        ])
        if (!now.serving) assert.strictEqual(servingGauge.value, 0)
        assert.strictEqual(gaugeLag.value, now.lagMillis ?? -1)
        assert.strictEqual(routedCount.count, now.routed)
        const reads = yield* Effect.forEach(Array.from({ length: 20 }), () => PgSql.readOnly(recovery))
        assert.deepStrictEqual(reads, Array.from({ length: 20 }, () => false), "every read on the primary")

        // The delay lifted: back to the standby within a few checks.
        yield* cluster.setApplyDelay(0)
        const backMs = yield* until("back", PgSql.readOnly(recovery))
        const back = yield* status
        console.log(
          `[replicas] maxLag 100 ms, 300 ms apply delay under writes: lag ${
            lagging.lagMillis?.toFixed(0)
          } ms, reads on the primary; delay lifted: reads on the standby after ${backMs} ms (lag ${
            back.lagMillis?.toFixed(0)
          } ms)`
        )

        // The primary idle, the delay back: once the last commit is applied the standby lacks nothing, lag 0.
        yield* Fiber.interrupt(writer)
        yield* cluster.setApplyDelay(300)
        yield* sql`insert into lag_t default values`
        yield* until("lagging after the last write", Effect.map(status, (s) => !s.serving))
        const idleMs = yield* until("serving with an idle primary", PgSql.readOnly(recovery))
        assert.strictEqual(
          (yield* cluster.query<{ d: string }>(
            cluster.standby,
            "select current_setting('recovery_min_apply_delay') as d"
          ))[0]!.d,
          "300ms"
        )
        console.log(
          `[replicas] the primary idle, the 300 ms delay still on: reads on the standby again ${idleMs} ms after it lagged`
        )
      }).pipe(
        Effect.provide(
          routerFor(cluster, ["edp-r0"], { maxLag: "100 millis", healthCheckInterval: "100 millis", name: "lag-test" })
        )
      )
    }).pipe(Effect.ensuring(Effect.orDie(Effect.flatMap(Fixture.Replication, (c) => c.setApplyDelay(0))))))

  it.effect("a primary pool that is a standby: the check finds it in recovery, retires its sessions and says so", () =>
    Effect.gen(function*() {
      const cluster = yield* Fixture.Replication
      const pid = Effect.flatMap(
        Effect.service(SqlClient.SqlClient),
        (sql) => Effect.map(sql<{ pid: number }>`select pg_backend_pid() as pid`, (rows) => rows[0]!.pid)
      )
      const router = PgReplicas.layer({
        // Misconfigured: the "primary" is the standby.
        primary: PgReplicas.pool(QueuePool.layer({ poolSize: 1 }), {
          url: cluster.standby.url,
          applicationName: "edp-wrong-primary"
        }),
        replicas: [
          PgReplicas.pool(QueuePool.layer({ poolSize: 1 }), { url: cluster.standby.url, applicationName: "edp-r0" })
        ]
      }, { healthCheckInterval: "100 millis" })
      yield* Effect.gen(function*() {
        const replicas = yield* PgReplicas.PgReplicas
        const first = yield* pid
        const started = Date.now()
        while ((yield* replicas.status).primary.healthy && Date.now() - started < 5_000) {
          yield* Effect.sleep("20 millis")
        }
        const s = (yield* replicas.status).primary
        assert.isFalse(s.healthy)
        assert.strictEqual(s.role, "standby")
        const cause = s.lastError?.reason.cause as PgDriver.TargetSessionAttrsError | undefined
        assert.strictEqual(cause?._tag, "TargetSessionAttrsError")
        assert.strictEqual(cause?.session, "standby")
        assert.strictEqual(cause?.targetSessionAttrs, "primary")
        assert.notStrictEqual(yield* pid, first, "the session the check found in recovery was retired")
      }).pipe(Effect.provide(router))
    }))

  it.effect("sql: { pipeline }: each pool pipelines its own statements; status and events show both", () =>
    Effect.gen(function*() {
      const cluster = yield* Fixture.Replication
      yield* Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const replicas = yield* PgReplicas.PgReplicas
        yield* sql`create table if not exists replicas_pipe (id int primary key)`
        const events: Array<PgSql.PipelineEvent> = []
        const listening = yield* Effect.forkChild(
          Stream.runForEach(PgSql.pipelineEvents, (event) => Effect.sync(() => events.push(event)))
        )
        // The merged stream subscribes to each pool's events as it starts.
        yield* Effect.sleep("20 millis")
        const fibers = 64
        const rounds = 10
        const work = Effect.forEach(
          Array.from({ length: fibers }, (_, f) => f),
          (f) =>
            Effect.forEach(Array.from({ length: rounds }, (_, r) => f * rounds + r), (id) =>
              Effect.zip(
                PgSql.readOnly(
                  sql<{ recovery: boolean; v: number }>`select pg_is_in_recovery() as recovery, ${id}::int as v`
                ),
                sql`insert into replicas_pipe (id) values (${id})`,
                { concurrent: true }
              )),
          { concurrency: "unbounded" }
        )
        const running = yield* Effect.forkChild(work)
        let most = { primary: 0, replica: 0, both: false }
        const seen = { primary: new Set<number>(), replica: new Set<number>() }
        const inFlight = (lanes: ReadonlyArray<PgSql.PipelineConnectionStatus>) =>
          Math.max(0, ...lanes.map((l) => l.inFlight))
        while (running.pollUnsafe() === undefined) {
          const status = yield* replicas.status
          const all = (yield* PgSql.pipelineStatus) ?? []
          const primaryLanes = status.primary.pipeline ?? []
          const replicaLanes = status.replicas[0]!.pipeline ?? []
          for (const lane of primaryLanes) seen.primary.add(lane.processId)
          for (const lane of replicaLanes) seen.replica.add(lane.processId)
          // The router's status is its pools' lanes together.
          assert.strictEqual(all.length, primaryLanes.length + replicaLanes.length)
          most = {
            primary: Math.max(most.primary, inFlight(primaryLanes)),
            replica: Math.max(most.replica, inFlight(replicaLanes)),
            both: most.both || (primaryLanes.length > 0 && replicaLanes.length > 0)
          }
          yield* Effect.yieldNow
        }
        const results = (yield* Fiber.join(running)).flat()
        assert.strictEqual(results.length, fibers * rounds)
        results.forEach(([rows], i) => {
          assert.isTrue(rows[0]!.recovery, "a read marked read-only ran on the standby")
          assert.strictEqual(rows[0]!.v, i)
        })
        const [count] = yield* sql<{ n: number }>`select count(*)::int as n from replicas_pipe`
        assert.strictEqual(count!.n, fibers * rounds)
        // Statements shared connections on both pools, within maxInFlight.
        assert.isAbove(most.primary, 1, "no write shared a primary connection")
        assert.isAbove(most.replica, 1, "no read shared a standby connection")
        assert.isAtMost(Math.max(most.primary, most.replica), 32)
        assert.isTrue(most.both, "never both pools' shared connections in PgSql.pipelineStatus at once")
        // Each pool's shared connections went back after the load: every open closed, idle.
        const opened = () => events.filter((e) => e.type === "open").map((e) => e.processId)
        const closes = () => events.filter((e) => e.type === "close")
        yield* eventually(
          Effect.sync(() => opened().every((pid) => closes().some((e) => e.processId === pid))),
          "every shared connection opened was closed"
        )
        yield* Fiber.interrupt(listening)
        assert.isTrue(opened().some((pid) => seen.primary.has(pid)), "no open event of a primary connection")
        assert.isTrue(opened().some((pid) => seen.replica.has(pid)), "no open event of a standby connection")
        assert.isTrue(closes().every((e) => e.type === "close" && e.reason === "idle"))
      }).pipe(Effect.provide(routerFor(cluster, ["edp-rp"], { sql: { pipeline: { maxInFlight: 32 } } })))
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
