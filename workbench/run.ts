/**
 * One workbench run: start the database (DATABASE_URL or embedded), create the schema, then
 * for each strategy build its pool + `SqlClient`, drive the workload, sample and draw, and
 * finally print the summary and write the HTML report. The report is written by a finalizer,
 * so an interrupted run (Ctrl-C) still reports what ran.
 */
import { Cause, Context, Duration, Effect, Exit, Layer, References, Stream, Tracer } from "effect"
import type { Scope } from "effect"
import { SqlClient } from "effect/sql/SqlClient"
import { ConnectionPool } from "effect-db-pool"
import { PgDriver, PgSql } from "effect-db-pool/pg"
import { PgDatabase } from "effect-db-pool/pg/embedded"
import * as Admin from "./admin.ts"
import type { Options, StrategyName } from "./args.ts"
import * as Chaos from "./chaos.ts"
import * as Random from "./random.ts"
import { Recorder, sampleEveryMs, StrategyRun } from "./recorder.ts"
import * as Report from "./report.ts"
import { setup } from "./strategies.ts"
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

    const fromEnv = (process.env.DATABASE_URL ?? "").trim().length > 0
    view.note(fromEnv ? "Using DATABASE_URL" : "Starting an embedded PostgreSQL server (temporary directory)...")
    const started = Date.now()
    const dbContext = yield* Layer.build(
      PgDatabase.layer({ postgresFlags: ["-c", `max_connections=${Math.max(100, options.workers + 30)}`] })
    )
    const db = Context.get(dbContext, PgDatabase.PgDatabase)
    recorder.serverStartMs = Date.now() - started
    recorder.database = db.embedded === undefined ? "DATABASE_URL" : `embedded, port ${db.embedded.port}`

    const runId = `${process.pid}_${Math.random().toString(36).slice(2, 8)}`
    const applicationName = `effect-db-pool-workbench-${runId}`
    const admin = yield* Admin.make(db.url, `${applicationName}-admin`)
    const versionRows = yield* admin.query("show server_version")
    recorder.serverVersion = String(versionRows[0]?.server_version ?? "")
    view.note(`PostgreSQL ${recorder.serverVersion} ready (${recorder.database}) in ${(recorder.serverStartMs / 1000).toFixed(1)} s`)

    const tables = Workload.tables(runId)
    yield* Effect.addFinalizer(() =>
      Effect.ignore(Effect.forEach(Workload.teardownStatements(tables), (s) => admin.query(s), { discard: true }))
    )
    yield* Effect.forEach(Workload.setupStatements(tables), (s) => admin.query(s), { discard: true })

    const driver = PgDriver.layer({ url: db.url, applicationName, connectTimeout: "5 seconds" })
    let index = 0
    for (const strategy of options.strategies) {
      yield* phase({ strategy, index: index++, options, recorder, view, driver, admin, tables, applicationName })
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
  readonly driver: ReturnType<typeof PgDriver.layer>
  readonly admin: Admin.Admin
  readonly tables: Workload.Tables
  readonly applicationName: string
}

/** One strategy: its pool and client, the workload, the sampler, and chaos when asked. */
const phase = (p: PhaseContext): Effect.Effect<void, unknown> => {
  const { options, recorder, view } = p
  const poolName = `workbench-${p.strategy}`
  const s = setup(p.strategy, options, poolName)
  const run = new StrategyRun(p.strategy, poolName, s.workers, Math.round(options.durationSeconds * 1000), s.config, s.notes)
  recorder.runs.push(run)
  recorder.current = run
  const layer = PgSql.layer.pipe(Layer.provideMerge(s.layer), Layer.provideMerge(p.driver))
  return Effect.scoped(
    Effect.gen(function*() {
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
        yield* Effect.forkScoped(Chaos.monkey(p.admin, p.applicationName, run, Random.make(options.seed, 100_000 + p.index)))
      }
      const ctx: Workload.WorkerContext = {
        sql,
        run,
        tables: p.tables,
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
  ).pipe(
    Effect.provideService(Tracer.Tracer, recorder.tracer),
    Effect.onExit((exit) =>
      Effect.sync(() => {
        if (Exit.isFailure(exit) && !Cause.hasInterruptsOnly(exit.cause)) run.failure = String(Cause.squash(exit.cause))
        recorder.current = undefined
        view.phaseEnd(run)
      })
    )
  )
}
