/**
 * One workbench run: set up the topology (topology.ts: the database, DATABASE_URL or embedded,
 * and the schema; PgBouncer in front; or a fresh primary + standby per strategy), then for each
 * strategy build its pool + `SqlClient`, drive the workload, sample and draw (and, with
 * `--topology failover`, stop the primary and promote the standby halfway; with `--topology
 * replicas`, a second pool on the standby behind `PgReplicas`, its apply delay varied; in
 * pipelined mode, the client's shared connections, metrics and events), and finally print the
 * summary and write the HTML report. The report is written by a finalizer, so an
 * interrupted run (Ctrl-C) still reports what ran.
 */
import { Cause, Context, Duration, Effect, Exit, Layer, References, Stream, Tracer } from "effect"
import type { Scope } from "effect"
import { ConnectionPool } from "effect-db-pool"
import { PgReplicas, PgSql } from "effect-db-pool/pg"
import * as Reactivity from "effect/reactivity/Reactivity"
import { SqlClient } from "effect/sql/SqlClient"
import * as Random from "../support/random.ts"
import type { Options, PhaseMode, StrategyName } from "./args.ts"
import { phases } from "./args.ts"
import * as Chaos from "./chaos.ts"
import { Pipeline, Recorder, sampleEveryMs, StrategyRun } from "./recorder.ts"
import * as Report from "./report.ts"
import { setup } from "./strategies.ts"
import * as Topology from "./topology.ts"
import type { Output } from "./view.ts"
import { TerminalView } from "./view.ts"
import * as Workload from "./workload.ts"

/** What a finished (or interrupted) run leaves. */
export interface Result {
  readonly recorder: Recorder
  /** Absolute path of the HTML report, once written. */
  reportPath: string | undefined
}

const redrawEveryMs = 200

/**
 * Run the workbench with `options`, drawing on `output`. The database and everything else live
 * in the surrounding scope; the summary and the report are produced when it closes (also on
 * interruption), after which `result.reportPath` is set.
 */
export const run = (options: Options, output: Output): Effect.Effect<Result, unknown, Scope.Scope> =>
  Effect.gen(function*() {
    const recorder = new Recorder(options)
    const view = new TerminalView(output, recorder)
    const out: Result = { recorder, reportPath: undefined }
    // Added first, so it runs last: after the pools, the schema and the server are gone.
    yield* Effect.addFinalizer((exit) =>
      Effect.sync(() => {
        recorder.current = undefined
        recorder.finishedAt = Date.now()
        if (Exit.isFailure(exit)) {
          recorder.stopped = Cause.hasInterruptsOnly(exit.cause) ? "interrupted" : String(Cause.squash(exit.cause))
        }
        view.restore()
        if (recorder.runs.length === 0) return
        view.summary()
        out.reportPath = Report.write(recorder, options.reportPath)
        view.note("")
        output.write(`Report: ${out.reportPath}\n`)
      })
    )
    view.header()

    const runId = `${process.pid}_${Math.random().toString(36).slice(2, 8)}`
    const applicationName = `effect-db-pool-workbench-${runId}`
    const topology = yield* Topology.make({ options, recorder, view, runId, applicationName })
    let index = 0
    for (const { mode, strategy } of phases(options)) {
      yield* phase({ strategy, mode, index: index++, options, recorder, view, topology, applicationName })
    }
    return out
  }).pipe(
    // Pool warnings (a close failing after chaos killed its session, ...) would tear the live view.
    Effect.provideService(References.MinimumLogLevel, "Error")
  )

interface PhaseContext {
  readonly strategy: StrategyName
  readonly mode: PhaseMode
  readonly index: number
  readonly options: Options
  readonly recorder: Recorder
  readonly view: TerminalView
  readonly topology: Topology.Topology
  readonly applicationName: string
}

/** The standby's pool behind `PgReplicas` (`--topology replicas`): its own name, its own metric series. */
const standbyPoolName = (poolName: string): string => `${poolName}-standby`

/**
 * One strategy in one mode: its target (topology), pool and client, the workload, the sampler,
 * and chaos or the failover when asked.
 */
const phase = (p: PhaseContext): Effect.Effect<void, unknown> => {
  const { options, recorder, view } = p
  const poolName = `workbench-${p.strategy}${p.mode === "pipelined" ? "-pipelined" : ""}`
  const s = setup(p.strategy, options, poolName, p.mode)
  const plannedMs = Math.round(options.durationSeconds * 1000)
  return Effect.scoped(
    Effect.gen(function*() {
      // Known before the target: a failover pair is started for (and noted on) this run.
      const run = new StrategyRun(p.strategy, poolName, s.workers, plannedMs, s.config, s.notes, p.mode)
      if (s.pipeline !== undefined) {
        // Behind PgReplicas both pools pipeline (the primary's and the standby's).
        const pools = options.topology === "replicas" ? [poolName, standbyPoolName(poolName)] : [poolName]
        run.pipeline = new Pipeline(s.pipeline.maxInFlight, s.pipeline.maxConnections, pools)
      }
      recorder.runs.push(run)
      recorder.current = run
      yield* Effect.addFinalizer((exit) =>
        Effect.sync(() => {
          if (Exit.isFailure(exit) && !Cause.hasInterruptsOnly(exit.cause)) {
            run.failure = String(Cause.squash(exit.cause))
          }
          recorder.current = undefined
          if (run.startedAt > 0) view.phaseEnd(run)
        })
      )
      const target = yield* p.topology.target(run)
      run.config = { ...s.config, ...target.config }
      run.via = target.via
      const { pool, sql, router } = yield* clientFor(target, s, p.strategy, options, poolName)
      yield* Effect.forkScoped(
        Stream.runForEach(pool.events, (event) => Effect.sync(() => run.recordEvent(event.type)))
      )
      // Pipelined mode: the shared connections opening and closing (an empty stream otherwise).
      const pipeline = run.pipeline
      if (pipeline !== undefined) {
        yield* Effect.forkScoped(
          Stream.runForEach(
            Stream.provideService(PgSql.pipelineEvents, SqlClient, sql),
            (event) => Effect.sync(() => pipeline.recordEvent(event))
          )
        )
      }
      const pipelineStatus = Effect.provideService(PgSql.pipelineStatus, SqlClient, sql)
      const sampleAll = Effect.andThen(run.sample(pool), run.samplePipeline(pipelineStatus))
      yield* Effect.sleep(Duration.millis(20)) // let the event subscriptions start
      yield* run.begin()
      // Read the closing counters while the pool is still open (its metric series close with it).
      yield* Effect.addFinalizer((exit) => run.end(Exit.isSuccess(exit)))
      view.phaseStart(run)
      yield* Effect.forkScoped(Effect.forever(Effect.gen(function*() {
        yield* Effect.sleep(Duration.millis(sampleEveryMs))
        yield* sampleAll
        if (router !== undefined) yield* sampleReplicas(run, router)
        if (run.samples.length % Math.max(1, Math.round(redrawEveryMs / sampleEveryMs)) === 0) view.tick(run)
      })))
      if (options.chaos) {
        yield* Effect.forkScoped(
          Chaos.monkey(target.admin, p.applicationName, run, Random.make(options.seed, 100_000 + p.index))
        )
      }
      if (target.cluster !== undefined) yield* Effect.forkScoped(Topology.failover(target.cluster, run))
      if (target.replica !== undefined) yield* Effect.forkScoped(Topology.applyDelays(target.replica.cluster, run))
      const ctx: Workload.WorkerContext = {
        sql,
        run,
        tables: target.tables,
        deadline: Date.now() + run.plannedMs,
        singleStatementTransactions: s.singleStatementTransactions,
        pipelined: s.pipeline !== undefined
      }
      yield* sampleAll
      yield* Effect.forEach(
        Array.from({ length: s.workers }, (_, i) => i),
        // Behind replicas: every other worker reads its writes back read-your-writes.
        (i) =>
          Workload.worker(
            ctx,
            Random.make(options.seed, p.index * 1000 + i),
            i % 2 === 0 ? "read-your-writes" : "eventual"
          ),
        { concurrency: "unbounded", discard: true }
      )
      yield* sampleAll
      if (router !== undefined) yield* sampleReplicas(run, router)
    })
  ).pipe(Effect.provideService(Tracer.Tracer, recorder.tracer))
}

/**
 * The phase's pool and client: the strategy over the target's driver with `PgSql`; with a
 * replica (`--topology replicas`), the strategy twice (primary, standby) behind `PgReplicas`,
 * whose service is returned too. The pool sampled is the primary's.
 */
const clientFor = (
  target: Topology.Target,
  s: ReturnType<typeof setup>,
  strategy: StrategyName,
  options: Options,
  poolName: string
): Effect.Effect<
  {
    readonly pool: ConnectionPool.Service
    readonly sql: SqlClient
    readonly router: PgReplicas.PgReplicas["Service"] | undefined
  },
  unknown,
  Scope.Scope
> =>
  Effect.gen(function*() {
    if (target.replica === undefined) {
      const context = yield* Layer.build(
        PgSql.layer(s.pipeline === undefined ? {} : { pipeline: s.pipeline }).pipe(
          Layer.provideMerge(s.layer),
          Layer.provideMerge(target.driver)
        )
      )
      return {
        pool: Context.get(context, ConnectionPool.ConnectionPool),
        sql: Context.get(context, SqlClient),
        router: undefined
      }
    }
    const primary = yield* Layer.build(s.layer.pipe(Layer.provideMerge(target.driver)))
    // The standby's pool: the same strategy, its own name (its metric series are its own).
    const replica = yield* Layer.build(
      setup(strategy, options, standbyPoolName(poolName)).layer.pipe(Layer.provideMerge(target.replica.driver))
    )
    // Pipelined: each pool pipelines the statements routed to it.
    const routerOptions = s.pipeline === undefined
      ? Topology.routerOptions
      : { ...Topology.routerOptions, sql: { pipeline: s.pipeline } }
    const built = yield* PgReplicas.make({ primary, replicas: [replica] }, routerOptions).pipe(
      Effect.provide(Reactivity.layer)
    )
    return { pool: Context.get(primary, ConnectionPool.ConnectionPool), sql: built.client, router: built.service }
  })

/** Sample the router into the replicas timeline. */
const sampleReplicas = (run: StrategyRun, router: PgReplicas.PgReplicas["Service"]): Effect.Effect<void> =>
  Effect.map(router.status, (status) => {
    const r = run.replicas
    const replica = status.replicas[0]
    if (r === undefined || replica === undefined) return
    r.samples.push({
      t: run.now(),
      primaryRouted: status.primary.routed,
      replicaRouted: replica.routed,
      lagMs: replica.lagMillis,
      serving: replica.serving,
      applyDelayMs: r.applyDelayMs
    })
    r.readYourWrites = {
      replica: status.readYourWrites.replica,
      waited: status.readYourWrites.waited,
      primary: status.readYourWrites.primary
    }
  })
