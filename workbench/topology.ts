/**
 * `--topology`: where each strategy's pool connects, with the workbench's admin session and the
 * schema next to it.
 *
 * - `direct`: the database (DATABASE_URL, else an embedded server), straight.
 * - `pgbouncer`: the same database, with a PgBouncer in transaction mode in front of it
 *   (support/pgbouncer.ts: Debian's `pgbouncer` on a free loopback port); the pools go through
 *   it with `PgDriver.layer({ url, pooler: "transaction" })`. The admin session (schema, server
 *   version, chaos) stays direct.
 * - `failover`: per strategy, a fresh primary + streaming standby (support/replication.ts, the
 *   embedded binaries; never DATABASE_URL's server, since it is stopped); the pool's driver is
 *   given both hosts (`host: "127.0.0.1,127.0.0.1"`, `port: "p1,p2"`) with
 *   `targetSessionAttrs: "read-write"`. {@link failover} stops the primary halfway through the
 *   strategy's run (`pg_ctl stop -m immediate`: a crash) and promotes the standby at once.
 * - `replicas`: one primary + streaming standby for the whole run (embedded binaries); each
 *   strategy gets a pool on each behind `PgReplicas` ({@link routerOptions}): reads marked
 *   read-only go to the standby while its lag is within `maxLag`. {@link applyDelays} varies the
 *   standby's `recovery_min_apply_delay` over each strategy's run: none, 50 ms (within maxLag:
 *   stale reads), 400 ms (beyond: reads on the primary), none.
 */
import { Context, Duration, Effect, Layer, Redacted } from "effect"
import type { Scope } from "effect"
import type { Driver } from "effect-db-pool"
import { PgDriver } from "effect-db-pool/pg"
import type { PgReplicas } from "effect-db-pool/pg"
import { PgDatabase } from "effect-db-pool/pg/embedded"
import * as PgBouncer from "../support/pgbouncer.ts"
import * as Replication from "../support/replication.ts"
import * as Admin from "./admin.ts"
import type { Options } from "./args.ts"
import type { Recorder, StrategyRun } from "./recorder.ts"
import { Failover, Replicas } from "./recorder.ts"
import type { TerminalView } from "./view.ts"
import { ms } from "./view.ts"
import * as Workload from "./workload.ts"

/** Where one strategy's phase runs. */
export interface Target {
  readonly driver: Layer.Layer<Driver.Driver | PgDriver.PgDriver, PgDriver.PgConfigError>
  readonly admin: Admin.Admin
  readonly tables: Workload.Tables
  /** Driver settings shown with the pool's options. */
  readonly config: Readonly<Record<string, string>>
  /** Where the pool connects, in words (`undefined`: straight to the database). */
  readonly via: string | undefined
  /** `failover`: the pair whose primary {@link failover} stops. */
  readonly cluster: Replication.Cluster | undefined
  /** `replicas`: the standby's driver (a pool on it behind `PgReplicas`) and the pair ({@link applyDelays}). */
  readonly replica: { readonly driver: Target["driver"]; readonly cluster: Replication.Cluster } | undefined
}

/** The run's topology: a {@link Target} per strategy, built in the strategy's scope. */
export interface Topology {
  readonly target: (run: StrategyRun) => Effect.Effect<Target, unknown, Scope.Scope>
}

/** What building a topology needs. */
export interface Setup {
  readonly options: Options
  readonly recorder: Recorder
  readonly view: TerminalView
  readonly runId: string
  readonly applicationName: string
}

/** PgBouncer's `default_pool_size`: the server sessions it opens for the pools, at most. */
export const pgbouncerPoolSize = 20

const connectTimeout = "5 seconds"

/**
 * Build the topology in the run's scope: for `direct` and `pgbouncer` the database, the admin
 * session and the schema (and PgBouncer) now, shared by every strategy; for `failover` nothing
 * yet (each strategy starts its own pair).
 */
export const make = (s: Setup): Effect.Effect<Topology, unknown, Scope.Scope> =>
  s.options.topology === "failover"
    ? Effect.sync(() => failoverTopology(s))
    : s.options.topology === "replicas"
    ? replicasTopology(s)
    : sharedTopology(s)

const maxConnections = (options: Options) => Math.max(100, options.workers + 30)

const sharedTopology = (s: Setup): Effect.Effect<Topology, unknown, Scope.Scope> =>
  Effect.gen(function*() {
    const { applicationName, options, recorder, view } = s
    const fromEnv = (process.env.DATABASE_URL ?? "").trim().length > 0
    view.note(fromEnv ? "Using DATABASE_URL" : "Starting an embedded PostgreSQL server (temporary directory)...")
    const started = Date.now()
    const dbContext = yield* Layer.build(
      PgDatabase.layer({ postgresFlags: ["-c", `max_connections=${maxConnections(options)}`] })
    )
    const db = Context.get(dbContext, PgDatabase.PgDatabase)
    recorder.serverStartMs = Date.now() - started
    recorder.database = db.embedded === undefined ? "DATABASE_URL" : `embedded, port ${db.embedded.port}`

    const admin = yield* Admin.make(db.url, `${applicationName}-admin`)
    const versionRows = yield* admin.query("show server_version")
    recorder.serverVersion = String(versionRows[0]?.server_version ?? "")
    view.note(
      `PostgreSQL ${recorder.serverVersion} ready (${recorder.database}) in ${
        (recorder.serverStartMs / 1000).toFixed(1)
      } s`
    )

    const tables = Workload.tables(s.runId)
    yield* Effect.addFinalizer(() =>
      Effect.ignore(Effect.forEach(Workload.teardownStatements(tables), (q) => admin.query(q), { discard: true }))
    )
    yield* Effect.forEach(Workload.setupStatements(tables), (q) => admin.query(q), { discard: true })

    if (options.topology === "direct") {
      const driver = PgDriver.layer({ url: db.url, applicationName, connectTimeout })
      const target: Target = {
        driver,
        admin,
        tables,
        config: {},
        via: undefined,
        cluster: undefined,
        replica: undefined
      }
      return { target: () => Effect.succeed(target) }
    }

    if (PgBouncer.findBinary() === undefined) {
      return yield* Effect.fail(
        new Error(
          "--topology pgbouncer needs Debian's pgbouncer, which is not installed (apt-get install -y pgbouncer)"
        )
      )
    }
    view.note("Starting PgBouncer (transaction mode) in front of it...")
    const bouncer = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: () =>
          PgBouncer.start({ target: Redacted.value(db.url), poolMode: "transaction", poolSize: pgbouncerPoolSize }),
        catch: (cause) => (cause instanceof Error ? cause : new Error(String(cause)))
      }),
      (b) => Effect.promise(() => b.stop())
    )
    const name = `PgBouncer${bouncer.version === undefined ? "" : ` ${bouncer.version}`}`
    const via = `${name} (transaction mode) on 127.0.0.1:${bouncer.port}, default_pool_size ${pgbouncerPoolSize}`
    view.note(
      `${name} ready on 127.0.0.1:${bouncer.port}: the pools connect through it (transaction mode); ${
        options.chaos ? "schema set-up and chaos stay" : "the schema set-up stays"
      } direct`
    )
    recorder.topologyDetail.push(
      `The pools connect through ${name} on 127.0.0.1:${bouncer.port}, started in front of the database in transaction mode, with PgDriver <code>pooler: "transaction"</code> (unnamed statements, no DISCARD ALL). PgBouncer opens at most ${pgbouncerPoolSize} server sessions for them (<code>default_pool_size</code>), whatever the client connections.`,
      `The workbench's admin session (schema set-up, server version${
        options.chaos ? ", chaos: it terminates the server sessions behind PgBouncer" : ""
      }) connects directly.`
    )
    const driver = PgDriver.layer({
      url: Redacted.make(bouncer.url),
      pooler: "transaction",
      applicationName,
      connectTimeout
    })
    const target: Target = {
      driver,
      admin,
      tables,
      config: { pooler: "transaction" },
      via,
      cluster: undefined,
      replica: undefined
    }
    return { target: () => Effect.succeed(target) }
  })

const failoverTopology = (s: Setup): Topology => {
  const { applicationName, options, recorder, view } = s
  const fromEnv = (process.env.DATABASE_URL ?? "").trim().length > 0
  if (fromEnv) {
    view.note("DATABASE_URL is set but not used: --topology failover starts servers of its own (it stops them)")
  }
  recorder.database = "embedded primary + streaming standby, a fresh pair per strategy"
  const half = (options.durationSeconds / 2).toFixed(1)
  recorder.topologyDetail.push(
    `Each strategy gets a fresh primary + streaming hot standby (embedded binaries: <code>initdb</code>, a cold copy, <code>standby.signal</code>)${
      fromEnv ? "; DATABASE_URL is ignored" : ""
    }. Its pool's driver is given both hosts, <code>host: "127.0.0.1,127.0.0.1"</code>, <code>port: "p1,p2"</code>, with <code>targetSessionAttrs: "read-write"</code>.`,
    `${half} s into each strategy's run the primary is stopped (<code>pg_ctl stop -m immediate</code>: a crash, sessions cut) and, as soon as that returns, the standby is promoted (<code>pg_ctl promote -w</code>): no detection delay. A write is a transfer transaction; every success after the promotion was issued ran on the promoted standby. Replication is asynchronous: the last transactions before the crash may be lost.`
  )
  return {
    target: (run) =>
      Effect.gen(function*() {
        view.note(`Starting a primary + streaming standby for ${run.strategy} (embedded binaries)...`)
        const started = Date.now()
        const cluster = yield* Replication.makeWith({ maxConnections: maxConnections(options) })
        run.setupMs = Date.now() - started
        if (recorder.serverStartMs === 0) recorder.serverStartMs = run.setupMs
        const hosts = `127.0.0.1:${cluster.primary.port},127.0.0.1:${cluster.standby.port}`
        // The admin session follows the primary too (the URL form of the same settings).
        const admin = yield* Admin.make(
          Redacted.make(`postgres://postgres@${hosts}/postgres?target_session_attrs=read-write`),
          `${applicationName}-admin`
        )
        const versionRows = yield* admin.query("show server_version")
        recorder.serverVersion = String(versionRows[0]?.server_version ?? "")
        // No teardown: the servers and their data go with the strategy's scope.
        const tables = Workload.tables(s.runId)
        yield* Effect.forEach(Workload.setupStatements(tables), (q) => admin.query(q), { discard: true })
        const driver = PgDriver.layer({
          host: "127.0.0.1,127.0.0.1",
          port: cluster.ports,
          database: "postgres",
          username: "postgres",
          targetSessionAttrs: "read-write",
          applicationName,
          connectTimeout
        })
        const via = `primary :${cluster.primary.port} + standby :${cluster.standby.port}, targetSessionAttrs read-write`
        view.note(
          `PostgreSQL ${recorder.serverVersion} primary :${cluster.primary.port} streaming to standby :${cluster.standby.port}, ready in ${
            (run.setupMs / 1000).toFixed(1)
          } s; the primary stops ${half} s into the run`
        )
        run.failover = new Failover(run.plannedMs / 2)
        return {
          driver,
          admin,
          tables,
          config: { targetSessionAttrs: "read-write" },
          via,
          cluster,
          replica: undefined
        } satisfies Target
      })
  }
}

/**
 * Halfway through `run`: stop the primary (immediate) and promote the standby, noting each
 * step in `run.failover`. A step that fails is noted, not raised: the workload goes on.
 */
export const failover = (cluster: Replication.Cluster, run: StrategyRun): Effect.Effect<void> => {
  const f = run.failover
  if (f === undefined) return Effect.void
  return Effect.gen(function*() {
    yield* Effect.sleep(Duration.millis(Math.max(0, f.plannedAt - run.now())))
    f.stopRequestedAt = run.now()
    yield* cluster.primary.stop("immediate")
    f.stoppedAt = run.now()
    run.failoverNote(
      `primary stopped (pg_ctl stop -m immediate issued at ${(f.stopRequestedAt / 1000).toFixed(2)} s, returned after ${
        ms(f.stoppedAt - f.stopRequestedAt)
      })`
    )
    f.promoteRequestedAt = run.now()
    yield* cluster.standby.promote
    f.promotedAt = run.now()
    run.failoverNote(
      `standby promoted (pg_ctl promote -w issued at ${(f.promoteRequestedAt / 1000).toFixed(2)} s, returned after ${
        ms(f.promotedAt - f.promoteRequestedAt)
      })`
    )
  }).pipe(
    Effect.catch((error) =>
      Effect.sync(() => {
        f.failure = error.message
        run.failoverNote(`failover step failed: ${error.message}`)
      })
    )
  )
}

// ----------------------------------------------------------------------------------- replicas

/** The router's options under `--topology replicas`. */
export const routerOptions = {
  maxLag: "150 millis",
  healthCheckInterval: "100 millis",
  maxReplayWait: "100 millis"
} as const satisfies PgReplicas.Options

/** The standby's apply delay over a strategy's run: from this fraction of it on, this delay (ms). */
export const applyDelaySteps: ReadonlyArray<readonly [number, number]> = [[0.25, 50], [0.5, 400], [0.75, 0]]

const replicasTopology = (s: Setup): Effect.Effect<Topology, unknown, Scope.Scope> =>
  Effect.gen(function*() {
    const { applicationName, options, recorder, view } = s
    const fromEnv = (process.env.DATABASE_URL ?? "").trim().length > 0
    if (fromEnv) {
      view.note("DATABASE_URL is set but not used: --topology replicas starts a primary + standby of its own")
    }
    view.note("Starting a primary + streaming standby (embedded binaries)...")
    const started = Date.now()
    // synchronous_commit on, as production primaries run (off, the standby would lag by the WAL writer's 200 ms).
    const cluster = yield* Replication.makeWith({
      maxConnections: maxConnections(options) * 2,
      synchronousCommit: true
    })
    recorder.serverStartMs = Date.now() - started
    recorder.database = `embedded primary :${cluster.primary.port} + streaming standby :${cluster.standby.port}`
    const admin = yield* Admin.make(cluster.primary.url, `${applicationName}-admin`)
    const versionRows = yield* admin.query("show server_version")
    recorder.serverVersion = String(versionRows[0]?.server_version ?? "")
    const tables = Workload.tables(s.runId)
    yield* Effect.forEach(Workload.setupStatements(tables), (q) => admin.query(q), { discard: true })
    // The reads on the standby need the schema there.
    yield* Effect.gen(function*() {
      for (let i = 0; i < 1000; i++) {
        const rows = yield* cluster.query<{ ok: boolean }>(
          cluster.standby,
          `select to_regclass('${tables.ledger}') is not null as ok`
        )
        if (rows[0]?.ok === true) return
        yield* Effect.sleep("10 millis")
      }
    })
    view.note(
      `PostgreSQL ${recorder.serverVersion} primary :${cluster.primary.port} streaming to standby :${cluster.standby.port}, ready in ${
        (recorder.serverStartMs / 1000).toFixed(1)
      } s`
    )
    const steps = applyDelaySteps.map(([at, delay]) => `${delay} ms at ${Math.round(at * 100)} %`).join(", ")
    recorder.topologyDetail.push(
      `A primary and a streaming hot standby (embedded binaries: <code>initdb</code>, a cold copy, <code>standby.signal</code>)${
        fromEnv ? "; DATABASE_URL is ignored" : ""
      }, shared by the strategies. Each strategy gets a pool on each, behind <code>PgReplicas.layer</code> with <code>maxLag: "${routerOptions.maxLag}"</code>, <code>healthCheckInterval: "${routerOptions.healthCheckInterval}"</code>, <code>maxReplayWait: "${routerOptions.maxReplayWait}"</code>.`,
      `Point queries and reports are marked <code>PgSql.readOnly</code>: they go to the standby while its lag (measured by each health check) is within maxLag, else to the primary. Transfers run on the primary; each is read back at once (read-only): by half the workers under <code>PgReplicas.consistency("read-your-writes")</code> (the read waits up to maxReplayWait for the standby to replay the commit, else runs on the primary), by the other half eventual (a read-back that misses its row counts as stale).`,
      `The standby's <code>recovery_min_apply_delay</code> over each strategy's run: none, then ${steps} (ALTER SYSTEM + pg_reload_conf on the standby).`
    )
    const driver = PgDriver.layer({ url: cluster.primary.url, applicationName, connectTimeout })
    const replicaDriver = PgDriver.layer({
      url: cluster.standby.url,
      applicationName: `${applicationName}-r`,
      connectTimeout
    })
    const via =
      `PgReplicas: primary :${cluster.primary.port}, standby :${cluster.standby.port} (maxLag ${routerOptions.maxLag})`
    const target: Target = {
      driver,
      admin,
      tables,
      config: { maxLag: routerOptions.maxLag },
      via,
      cluster: undefined,
      replica: { driver: replicaDriver, cluster }
    }
    return {
      target: (run) =>
        Effect.sync(() => {
          run.replicas = new Replicas(Duration.toMillis(Duration.fromInputUnsafe(routerOptions.maxLag)))
          return target
        })
    }
  })

/**
 * Over `run`: the standby's apply delay at each of {@link applyDelaySteps}, noted in
 * `run.replicas`; back to none when the run ends (interrupted too). A step that fails is noted.
 */
export const applyDelays = (cluster: Replication.Cluster, run: StrategyRun): Effect.Effect<void> => {
  const r = run.replicas
  if (r === undefined) return Effect.void
  const set = (delay: number) =>
    Effect.gen(function*() {
      yield* cluster.setApplyDelay(delay)
      r.applyDelayMs = delay
      r.notes.push({
        t: run.now(),
        text: delay === 0 ? "standby apply delay lifted" : `standby apply delay ${delay} ms`
      })
    }).pipe(
      Effect.catch((error) =>
        Effect.sync(() => void r.notes.push({ t: run.now(), text: `apply delay step failed: ${error.message}` }))
      )
    )
  return Effect.forEach(
    applyDelaySteps,
    ([at, delay]) =>
      Effect.andThen(
        Effect.suspend(() => Effect.sleep(Duration.millis(Math.max(0, at * run.plannedMs - run.now())))),
        set(delay)
      ),
    { discard: true }
  ).pipe(
    Effect.ensuring(Effect.ignore(cluster.setApplyDelay(0)))
  )
}
