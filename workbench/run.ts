/**
 * One workbench run: set up the topology (topology.ts: the database, DATABASE_URL or embedded,
 * and the schema; PgBouncer in front; or a fresh primary + standby per strategy), then for each
 * strategy build its pool + `SqlClient`, drive the workload, sample and draw (and, with
 * `--topology failover`, stop the primary and promote the standby halfway), and finally print
 * the summary and write the HTML report. The report is written by a finalizer, so an
 * interrupted run (Ctrl-C) still reports what ran.
 */
import { Cause, Context, Duration, Effect, Exit, Layer, References, Stream, Tracer } from "effect"
import type { Scope } from "effect"
import { SqlClient } from "effect/sql/SqlClient"
import { ConnectionPool } from "effect-db-pool"
import { PgSql } from "effect-db-pool/pg"
import type { Options, StrategyName } from "./args.ts"
import * as Chaos from "./chaos.ts"
import * as Random from "../support/random.ts"
import { Recorder, sampleEveryMs, StrategyRun } from "./recorder.ts"
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
    for (const strategy of options.strategies) {
      yield* phase({ strategy, index: index++, options, recorder, view, topology, applicationName })
    }
    return out
  }).pipe(
    // Pool warnings (a close failing after chaos killed its session, ...) would tear the live view.
    Effect.provideService(References.MinimumLogLevel, "Error")
  )

interface PhaseContext {
  readonly strategy: StrategyName
  readonly index: number
  readonly options: Options
  readonly recorder: Recorder
  readonly view: TerminalView
  readonly topology: Topology.Topology
  readonly applicationName: string
}

/**
 * One strategy: its target (topology), pool and client, the workload, the sampler, and chaos or
 * the failover when asked.
 */
const phase = (p: PhaseContext): Effect.Effect<void, unknown> => {
  const { options, recorder, view } = p
  const poolName = `workbench-${p.strategy}`
  const s = setup(p.strategy, options, poolName)
  const plannedMs = Math.round(options.durationSeconds * 1000)
  return Effect.scoped(
    Effect.gen(function*() {
      // Known before the target: a failover pair is started for (and noted on) this run.
      const run = new StrategyRun(p.strategy, poolName, s.workers, plannedMs, s.config, s.notes)
      recorder.runs.push(run)
      recorder.current = run
      yield* Effect.addFinalizer((exit) =>
        Effect.sync(() => {
          if (Exit.isFailure(exit) && !Cause.hasInterruptsOnly(exit.cause)) run.failure = String(Cause.squash(exit.cause))
          recorder.current = undefined
          if (run.startedAt > 0) view.phaseEnd(run)
        })
      )
      const target = yield* p.topology.target(run)
      run.config = { ...s.config, ...target.config }
      run.via = target.via
      const layer = PgSql.layer().pipe(Layer.provideMerge(s.layer), Layer.provideMerge(target.driver))
      const context = yield* Layer.build(layer)
      const pool = Context.get(context, ConnectionPool.ConnectionPool)
      const sql = Context.get(context, SqlClient)
      yield* Effect.forkScoped(Stream.runForEach(pool.events, (event) => Effect.sync(() => run.recordEvent(event.type))))
      yield* Effect.sleep(Duration.millis(20)) // let the event subscription start
      yield* run.begin()
      // Read the closing counters while the pool is still open (its metric series close with it).
      yield* Effect.addFinalizer((exit) => run.end(Exit.isSuccess(exit)))
      view.phaseStart(run)
      yield* Effect.forkScoped(Effect.forever(Effect.gen(function*() {
        yield* Effect.sleep(Duration.millis(sampleEveryMs))
        yield* run.sample(pool)
        if (run.samples.length % Math.max(1, Math.round(redrawEveryMs / sampleEveryMs)) === 0) view.tick(run)
      })))
      if (options.chaos) {
        yield* Effect.forkScoped(Chaos.monkey(target.admin, p.applicationName, run, Random.make(options.seed, 100_000 + p.index)))
      }
      if (target.cluster !== undefined) yield* Effect.forkScoped(Topology.failover(target.cluster, run))
      const ctx: Workload.WorkerContext = {
        sql,
        run,
        tables: target.tables,
        deadline: Date.now() + run.plannedMs,
        singleStatementTransactions: s.singleStatementTransactions
      }
      yield* run.sample(pool)
      yield* Effect.forEach(
        Array.from({ length: s.workers }, (_, i) => i),
        (i) => Workload.worker(ctx, Random.make(options.seed, p.index * 1000 + i)),
        { concurrency: "unbounded", discard: true }
      )
      yield* run.sample(pool)
    })
  ).pipe(Effect.provideService(Tracer.Tracer, recorder.tracer))
}
