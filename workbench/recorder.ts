/**
 * What a workbench run records: per strategy, a timeline of pool occupancy sampled every
 * 100 ms, every acquire wait (from the pool's checkout spans, `tracing: true`), errors by
 * type, pool events, chaos kills, and the pool's metric counters; in pipelined mode, the shared
 * connections and their statements in flight (`PgSql.pipelineStatus`), the pipelined and
 * abandoned statements (`PoolMetrics.forPipeline`) and the shared connections opened and closed
 * by reason (`PgSql.pipelineEvents`). The terminal view, the summary table and the HTML report
 * only read it.
 */
import { Effect, Metric, Tracer } from "effect"
import type { Exit } from "effect"
import { PoolMetrics } from "effect-db-pool"
import type { ConnectionPool, PoolEvent } from "effect-db-pool"
import type { PgSql } from "effect-db-pool/pg"
import type { Options, PhaseMode, StrategyName } from "./args.ts"

/** Sampling period of the occupancy timeline. */
export const sampleEveryMs = 100

/** One point of the occupancy timeline. */
export interface Sample {
  /** Milliseconds since the strategy's phase started. */
  readonly t: number
  readonly checkedOut: number
  readonly idle: number
  /** Slots beyond `size` (negative while the pool is not yet full). */
  readonly overflow: number
  readonly waiting: number
  /** Statements completed so far. */
  readonly statements: number
  /** Operations that failed so far. */
  readonly errors: number
}

/** Pool metric counters, as deltas over one phase. */
export interface Counters {
  readonly connects: number
  readonly connectFailures: number
  readonly checkouts: number
  readonly timeouts: number
  readonly recycles: number
  readonly invalidations: Readonly<Record<PoolMetrics.InvalidationReason, number>>
}

const reasons = PoolMetrics.invalidationReasons

/** The kinds of operation the workload runs. */
export type OpKind = "query" | "transaction" | "report" | "slow"

/** One line of a failover's story, for the view (times in ms since the phase started). */
export interface FailoverNote {
  readonly t: number
  readonly text: string
}

/**
 * `--topology failover`: what happened to one strategy's pair of servers, in ms since the phase
 * started. A write is a transfer transaction; any success after `promoteRequestedAt` ran on the
 * promoted standby (the old primary was already down).
 */
export class Failover {
  /** When the primary is due to stop. */
  plannedAt: number
  /** `pg_ctl stop -m immediate` issued / returned. */
  stopRequestedAt: number | undefined = undefined
  stoppedAt: number | undefined = undefined
  /** `pg_ctl promote -w` issued / returned. */
  promoteRequestedAt: number | undefined = undefined
  promotedAt: number | undefined = undefined
  /** The last successful write before the stop, and the first after the promotion was issued. */
  lastWriteBeforeAt: number | undefined = undefined
  firstWriteAt: number | undefined = undefined
  /** The first successful operation of any kind after the promotion was issued. */
  firstOpAt: number | undefined = undefined
  /** Successful operations / writes after the promotion was issued. */
  opsAfter = 0
  writesAfter = 0
  /** Operations that failed from the stop on, by type. */
  errorCount = 0
  readonly errors = new Map<string, number>()
  /** Why the stop or the promotion failed, if it did. */
  failure: string | undefined = undefined
  /** The story so far (the plain view prints each line once). */
  readonly notes: Array<FailoverNote> = []

  constructor(plannedAt: number) {
    this.plannedAt = plannedAt
  }

  /** First successful write after the promotion was issued, in ms after it. */
  get firstWriteAfterPromoteMs(): number | undefined {
    return this.firstWriteAt === undefined || this.promoteRequestedAt === undefined
      ? undefined
      : this.firstWriteAt - this.promoteRequestedAt
  }

  /** No successful write from the last one before the stop to the first after the promotion (ms). */
  get writeOutageMs(): number | undefined {
    return this.firstWriteAt === undefined || this.lastWriteBeforeAt === undefined
      ? undefined
      : this.firstWriteAt - this.lastWriteBeforeAt
  }
}

/** `--topology replicas`: how a read after a write is held (half the workers each). */
export type ReadMode = "eventual" | "read-your-writes"

/** One point of the replicas timeline (`--topology replicas`). */
export interface ReplicaSample {
  /** Milliseconds since the strategy's phase started. */
  readonly t: number
  /** Work routed to each so far (statements, transactions, streams). */
  readonly primaryRouted: number
  readonly replicaRouted: number
  /** The replica's lag at its last health check (ms), when known. */
  readonly lagMs: number | undefined
  /** The replica gets reads (healthy, lag within maxLag). */
  readonly serving: boolean
  /** The standby's `recovery_min_apply_delay` then (ms). */
  readonly applyDelayMs: number
}

/** Read-backs of one mode: a transfer's ledger row read right after its commit, marked read-only. */
export interface ReadBacks {
  checks: number
  /** The row was not there: the read ran on a replica that had not replayed the commit. */
  misses: number
}

/**
 * `--topology replicas`: the router's view of one strategy's phase: where work went, the
 * replica's lag, the standby's apply delay (changed during the run), and the read-backs of each
 * mode, with read-your-writes' outcomes.
 */
export class Replicas {
  readonly samples: Array<ReplicaSample> = []
  /** The standby's apply delay now (ms). */
  applyDelayMs = 0
  readonly readBacks: Record<ReadMode, ReadBacks> = {
    "eventual": { checks: 0, misses: 0 },
    "read-your-writes": { checks: 0, misses: 0 }
  }
  /** Read-your-writes reads after a write, by where they ran (the router's status). */
  readYourWrites = { replica: 0, waited: 0, primary: 0 }
  /** The apply-delay changes (the plain view prints each line once). */
  readonly notes: Array<FailoverNote> = []

  constructor(
    /** The router's maxLag (ms). */
    readonly maxLagMs: number
  ) {}

  recordReadBack(mode: ReadMode, seen: boolean): void {
    const r = this.readBacks[mode]
    r.checks++
    if (!seen) r.misses++
  }

  /** Work routed to the replica / in all, so far. */
  get replicaShare(): number {
    const last = this.samples[this.samples.length - 1]
    if (last === undefined) return 0
    const all = last.primaryRouted + last.replicaRouted
    return all === 0 ? 0 : last.replicaRouted / all
  }

  /** The highest lag seen (ms). */
  get maxLag(): number | undefined {
    let max: number | undefined
    for (const s of this.samples) if (s.lagMs !== undefined && (max === undefined || s.lagMs > max)) max = s.lagMs
    return max
  }

  /** Work per second to the primary and the replica over the last `windowMs` of the timeline. */
  rates(windowMs = 1000): { readonly primary: number; readonly replica: number } {
    const n = this.samples.length
    if (n < 2) return { primary: 0, replica: 0 }
    const last = this.samples[n - 1]!
    let i = n - 1
    while (i > 0 && last.t - this.samples[i - 1]!.t <= windowMs) i--
    const first = this.samples[i]!
    const dt = last.t - first.t
    if (dt <= 0) return { primary: 0, replica: 0 }
    return {
      primary: ((last.primaryRouted - first.primaryRouted) * 1000) / dt,
      replica: ((last.replicaRouted - first.replicaRouted) * 1000) / dt
    }
  }
}

/** Why a shared connection stopped serving pipelined statements (`PgSql.PipelineEvent` `close`). */
export type LaneCloseReason = Extract<PgSql.PipelineEvent, { readonly type: "close" }>["reason"]

/** Every {@link LaneCloseReason}, in the order shown. */
export const laneCloseReasons: ReadonlyArray<LaneCloseReason> = ["idle", "exclusive", "broken", "client closed"]

/** One point of the pipeline timeline (pipelined mode). */
export interface PipelineSample {
  /** Milliseconds since the strategy's phase started. */
  readonly t: number
  /** Shared connections then. */
  readonly connections: number
  /** Statements in flight then, over every shared connection. */
  readonly inFlight: number
}

/**
 * Pipelined mode (`PgSql.layer({ pipeline })`): the shared connections now (status), sampled
 * over time; statements pipelined and abandoned so far (metrics); shared connections opened and
 * closed by reason (events).
 */
export class Pipeline {
  readonly samples: Array<PipelineSample> = []
  /** The shared connections at the last sample, each with its statements in flight. */
  lanes: ReadonlyArray<PgSql.PipelineConnectionStatus> = []
  /** `db.client.connection.pipeline.statements` / `.abandoned` at the last sample. */
  statements = 0
  abandoned = 0
  /** `open` events by pool name. */
  private readonly openedIn = new Map<string, number>()
  /** `close` events by reason. */
  readonly closed: Record<LaneCloseReason, number> = { "idle": 0, "exclusive": 0, "broken": 0, "client closed": 0 }
  /** Statements still in flight on the connections that closed (a broken one fails them). */
  closedInFlight = 0
  /** Shared connections open now, by `pool:processId` (from the events: every change, not sampled). */
  private readonly openNow = new Set<string>()
  /** Highest shared connections open at once (events and samples) / statements in flight sampled. */
  peakConnections = 0
  peakInFlight = 0

  constructor(
    /** `maxInFlight` per shared connection. */
    readonly maxInFlight: number,
    /** `maxConnections`: shared connections at most (per pool). */
    readonly maxConnections: number,
    /**
     * The pools that pipeline (their `name`s; metrics summed): the run's pool, and behind
     * `PgReplicas` the standby's after it.
     */
    readonly pools: ReadonlyArray<string>
  ) {}

  /** Shared connections at most, over every pool. */
  get maxShared(): number {
    return this.maxConnections * this.pools.length
  }

  /** `maxConnections`, and over how many pools when more than one. */
  get maxLabel(): string {
    return this.pools.length === 1
      ? `maxConnections ${this.maxConnections}`
      : `maxConnections ${this.maxConnections} × ${this.pools.length} pools`
  }

  /** Shared connections opened by pool `pool`. */
  openedBy(pool: string): number {
    return this.openedIn.get(pool) ?? 0
  }

  /** `open` events, every pool's. */
  get opened(): number {
    let n = 0
    for (const count of this.openedIn.values()) n += count
    return n
  }

  /** A `PgSql.pipelineEvents` event. */
  recordEvent(event: PgSql.PipelineEvent): void {
    const key = `${event.pool}:${event.processId}`
    if (event.type === "open") {
      this.openedIn.set(event.pool, this.openedBy(event.pool) + 1)
      this.openNow.add(key)
      this.peakConnections = Math.max(this.peakConnections, this.openNow.size)
      return
    }
    this.openNow.delete(key)
    this.closed[event.reason]++
    this.closedInFlight += event.inFlight
  }

  /** Close events of every reason. */
  get closes(): number {
    return laneCloseReasons.reduce((n, r) => n + this.closed[r], 0)
  }

  /** Statements in flight now, over every shared connection. */
  get inFlight(): number {
    return this.lanes.reduce((n, lane) => n + lane.inFlight, 0)
  }

  /** Record the status and the metric counters at `t`. */
  sample(t: number, lanes: ReadonlyArray<PgSql.PipelineConnectionStatus>, statements: number, abandoned: number): void {
    this.lanes = lanes
    this.statements = statements
    this.abandoned = abandoned
    const inFlight = this.inFlight
    this.peakConnections = Math.max(this.peakConnections, lanes.length)
    this.peakInFlight = Math.max(this.peakInFlight, inFlight)
    this.samples.push({ t, connections: lanes.length, inFlight })
  }
}

/** Everything recorded about one strategy's phase. */
export class StrategyRun {
  /** Epoch ms of the phase start (set by {@link StrategyRun.begin}). */
  startedAt = 0
  /** Elapsed ms when the phase ended (or so far). */
  elapsedMs = 0
  /** Ran its full duration (false: interrupted or failed). */
  completed = false
  /** Why the phase stopped early, if it did. */
  failure: string | undefined = undefined
  readonly samples: Array<Sample> = []
  /** Successful acquire waits (ms) and when they ended (ms since start). */
  readonly waits: Array<number> = []
  readonly waitsAt: Array<number> = []
  /** Checkouts that failed (their wait is not in {@link waits}). */
  failedCheckouts = 0
  statements = 0
  readonly ops: Record<OpKind, number> = { query: 0, transaction: 0, report: 0, slow: 0 }
  errorCount = 0
  readonly errors = new Map<string, number>()
  readonly events = new Map<PoolEvent.PoolEventType, number>()
  /** Times (ms since start) a backend was terminated by chaos. */
  readonly kills: Array<number> = []
  /** Operations that failed with a disconnect and succeeded when retried. */
  recovered = 0
  /** `--topology failover`: the stop and promotion of this strategy's primary. */
  failover: Failover | undefined = undefined
  /** `--topology replicas`: routing, lag and read-backs. */
  replicas: Replicas | undefined = undefined
  /** Pipelined mode: shared connections, statements in flight, pipelined / abandoned, opens and closes. */
  pipeline: Pipeline | undefined = undefined
  /** How long this strategy's own servers took to start (`--topology failover`), ms. */
  setupMs: number | undefined = undefined
  /** Where its pool connects, when not straight to the database ("PgBouncer ... on :port", ...). */
  via: string | undefined = undefined
  counters: Counters | undefined = undefined
  private countersBefore: Counters | undefined = undefined

  constructor(
    readonly strategy: StrategyName,
    readonly poolName: string,
    readonly workers: number,
    readonly plannedMs: number,
    /** The pool (and driver) options used, for display. */
    public config: Readonly<Record<string, string | number | boolean>>,
    /** How the workload was adapted to this strategy. */
    readonly notes: ReadonlyArray<string>,
    /** How its SQL client runs statements. */
    readonly mode: PhaseMode = "exclusive"
  ) {}

  /** The strategy, and the mode when pipelined: `QueuePool pipelined`. */
  get label(): string {
    return this.mode === "pipelined" ? `${this.strategy} pipelined` : this.strategy
  }

  /** Milliseconds since the phase started. */
  now(): number {
    return this.startedAt === 0 ? 0 : Date.now() - this.startedAt
  }

  /** Mark the start and read the metric counters' baseline. */
  begin(): Effect.Effect<void> {
    return Effect.map(readCounters(this.poolName), (c) => {
      this.countersBefore = c
      this.startedAt = Date.now()
    })
  }

  /** Mark the end and compute the metric counters' deltas. */
  end(completed: boolean): Effect.Effect<void> {
    return Effect.map(readCounters(this.poolName), (after) => {
      this.elapsedMs = this.now()
      this.completed = completed
      const before = this.countersBefore
      this.counters = before === undefined ? after : diff(after, before)
    })
  }

  recordWait(ms: number, ok: boolean): void {
    if (!ok) {
      this.failedCheckouts++
      return
    }
    this.waits.push(ms)
    this.waitsAt.push(this.now())
  }

  recordError(type: string): void {
    this.errorCount++
    this.errors.set(type, (this.errors.get(type) ?? 0) + 1)
    const f = this.failover
    if (f !== undefined && f.stopRequestedAt !== undefined) {
      f.errorCount++
      f.errors.set(type, (f.errors.get(type) ?? 0) + 1)
    }
  }

  /** A successful operation of `kind` that ran `statements` statements. */
  recordOp(kind: OpKind, statements: number): void {
    this.ops[kind]++
    this.statements += statements
    const f = this.failover
    if (f === undefined) return
    const write = kind === "transaction"
    if (f.stopRequestedAt === undefined) {
      if (write) f.lastWriteBeforeAt = this.now()
    } else if (f.promoteRequestedAt !== undefined) {
      const t = this.now()
      f.opsAfter++
      if (f.firstOpAt === undefined) f.firstOpAt = t
      if (write) {
        f.writesAfter++
        if (f.firstWriteAt === undefined) {
          f.firstWriteAt = t
          f.notes.push({
            t,
            text: `first write after promotion: +${
              Math.round(t - f.promoteRequestedAt)
            } ms (from pg_ctl promote issued)`
          })
        }
      }
    }
  }

  /** Note a step of the failover (shown by the view). */
  failoverNote(text: string): void {
    this.failover?.notes.push({ t: this.now(), text })
  }

  recordEvent(type: PoolEvent.PoolEventType): void {
    this.events.set(type, (this.events.get(type) ?? 0) + 1)
  }

  /** Sample the pool's status into the timeline. */
  sample(pool: ConnectionPool.Service): Effect.Effect<void> {
    return Effect.map(pool.status, (s) => {
      this.samples.push({
        t: this.now(),
        checkedOut: s.checkedOut,
        idle: s.checkedIn,
        overflow: s.overflow,
        waiting: s.waiting,
        statements: this.statements,
        errors: this.errorCount
      })
    })
  }

  /**
   * Pipelined mode: sample the client's shared connections (`PgSql.pipelineStatus`, given as
   * `status`) and the pool's pipeline metric counters (`PoolMetrics.forPipeline`).
   */
  samplePipeline(
    status: Effect.Effect<ReadonlyArray<PgSql.PipelineConnectionStatus> | undefined>
  ): Effect.Effect<void> {
    const p = this.pipeline
    if (p === undefined) return Effect.void
    const metrics = p.pools.map((pool) => PoolMetrics.forPipeline(pool))
    const sum = (counter: (m: (typeof metrics)[number]) => Metric.Counter<number>) =>
      Effect.map(
        Effect.forEach(metrics, (m) => Metric.value(counter(m))),
        (values) => values.reduce((n, v) => n + v.count, 0)
      )
    const now = () => this.now()
    return Effect.gen(function*() {
      const lanes = (yield* status) ?? []
      const statements = yield* sum((m) => m.statements)
      const abandoned = yield* sum((m) => m.abandoned)
      p.sample(now(), lanes, statements, abandoned)
    })
  }

  /**
   * The run's pool's checkouts that were not a shared connection: transactions, slow statements,
   * ... (pipelined mode).
   */
  get exclusiveCheckouts(): number | undefined {
    return this.pipeline === undefined
      ? undefined
      : (this.events.get("checkout") ?? 0) - this.pipeline.openedBy(this.poolName)
  }

  /** Statements per second over the last `windowMs` of the timeline. */
  rate(windowMs = 1000): number {
    const n = this.samples.length
    if (n < 2) return 0
    const last = this.samples[n - 1]!
    let i = n - 1
    while (i > 0 && last.t - this.samples[i - 1]!.t <= windowMs) i--
    const first = this.samples[i]!
    const dt = last.t - first.t
    return dt > 0 ? ((last.statements - first.statements) * 1000) / dt : 0
  }

  /** Acquire-wait percentiles, over the whole phase or the waits that ended in the last `windowMs`. */
  waitPercentiles(windowMs?: number): WaitStats {
    let values: Array<number> = this.waits
    if (windowMs !== undefined) {
      const from = this.now() - windowMs
      let i = this.waitsAt.length
      while (i > 0 && this.waitsAt[i - 1]! >= from) i--
      values = this.waits.slice(i)
    }
    return waitStats(values)
  }

  /** Mean statements per second over the phase. */
  get throughput(): number {
    return this.elapsedMs > 0 ? (this.statements * 1000) / this.elapsedMs : 0
  }

  get totalOps(): number {
    return this.ops.query + this.ops.transaction + this.ops.report + this.ops.slow
  }
}

/** Summary of a set of waits (ms). */
export interface WaitStats {
  readonly count: number
  readonly p50: number
  readonly p90: number
  readonly p99: number
  readonly max: number
  readonly mean: number
}

/** Nearest-rank percentiles of `values` (ms). */
export const waitStats = (values: ReadonlyArray<number>): WaitStats => {
  if (values.length === 0) return { count: 0, p50: 0, p90: 0, p99: 0, max: 0, mean: 0 }
  const sorted = Float64Array.from(values).sort()
  const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]!
  let sum = 0
  for (const v of sorted) sum += v
  return {
    count: sorted.length,
    p50: at(0.5),
    p90: at(0.9),
    p99: at(0.99),
    max: sorted[sorted.length - 1]!,
    mean: sum / sorted.length
  }
}

/** A whole workbench run: the settings, the database, and one {@link StrategyRun} per phase. */
export class Recorder {
  readonly runs: Array<StrategyRun> = []
  /** The phase the tracer attributes checkouts to. */
  current: StrategyRun | undefined = undefined
  readonly startedAt = Date.now()
  finishedAt = 0
  database = "starting"
  serverVersion = ""
  serverStartMs = 0
  /** Why the run stopped early: "interrupted" (Ctrl-C) or an error message. */
  stopped: string | undefined = undefined
  /** More about where the pools connect (`--topology`): paragraphs of HTML for the report. */
  topologyDetail: Array<string> = []

  constructor(readonly options: Options) {}

  /**
   * A tracer that records the duration of every `effect-db-pool.checkout` span (the pool's
   * acquire wait, with `tracing: true`) into the current phase. Other spans are kept as usual.
   */
  readonly tracer: Tracer.Tracer = Tracer.make({
    span: (options) => options.name === checkoutSpan ? new CheckoutSpan(options, this) : new Tracer.NativeSpan(options)
  })
}

const checkoutSpan = "effect-db-pool.checkout"

/** A checkout span that reports its duration (the acquire wait) to the recorder's current phase. */
class CheckoutSpan extends Tracer.NativeSpan {
  constructor(options: ConstructorParameters<typeof Tracer.NativeSpan>[0], readonly recorder: Recorder) {
    super(options)
  }
  override end(endTime: bigint, exit: Exit.Exit<unknown, unknown>): void {
    const first = this.status._tag !== "Ended"
    super.end(endTime, exit)
    if (first) this.recorder.current?.recordWait(Number(endTime - this.startTime) / 1e6, exit._tag === "Success")
  }
}

const readCounters = (poolName: string): Effect.Effect<Counters> =>
  Effect.gen(function*() {
    const m = PoolMetrics.forPool(poolName)
    const count = (metric: Metric.Counter<number>) => Effect.map(Metric.value(metric), (s) => s.count)
    const invalidations = {} as Record<PoolMetrics.InvalidationReason, number>
    for (const reason of reasons) invalidations[reason] = yield* count(m.invalidations(reason))
    return {
      connects: yield* count(m.connects),
      connectFailures: yield* count(m.connectFailures),
      checkouts: yield* count(m.checkouts),
      timeouts: yield* count(m.timeouts),
      recycles: yield* count(m.recycles),
      invalidations
    }
  })

const diff = (a: Counters, b: Counters): Counters => {
  const invalidations = {} as Record<PoolMetrics.InvalidationReason, number>
  for (const reason of reasons) invalidations[reason] = a.invalidations[reason] - b.invalidations[reason]
  return {
    connects: a.connects - b.connects,
    connectFailures: a.connectFailures - b.connectFailures,
    checkouts: a.checkouts - b.checkouts,
    timeouts: a.timeouts - b.timeouts,
    recycles: a.recycles - b.recycles,
    invalidations
  }
}

/** Total invalidations of a phase. */
export const totalInvalidations = (c: Counters | undefined): number =>
  c === undefined ? 0 : reasons.reduce((n, r) => n + c.invalidations[r], 0)
