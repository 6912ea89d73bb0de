/**
 * The metrics of one pool, kept as plain numbers on the hot path (times in milliseconds, from
 * the pool's clock; published in seconds, as OpenTelemetry's conventions have them) and
 * published as observable series: every metric is registered in the pool's `MetricRegistry` (the one of the context the
 * pool was built in, where effect's exporters read) with a `get` that reads these numbers when a
 * snapshot is taken. A checkout pays a few additions, never a registry lookup. The series are
 * removed when the pool closes.
 *
 * @internal
 */
import { Metric } from "effect"
import type { Context } from "effect"
import type { PoolStatus } from "../ConnectionPool.ts"
import * as PoolMetrics from "../PoolMetrics.ts"

/** A histogram's state, updated in place (the shape of effect's `HistogramState`). */
class Histogram {
  private readonly counts: Uint32Array
  count = 0
  sum = 0
  min = Number.MAX_VALUE
  max = -Number.MAX_VALUE

  constructor(private readonly boundaries: ReadonlyArray<number>) {
    this.counts = new Uint32Array(boundaries.length + 1)
  }

  update(value: number): void {
    const bounds = this.boundaries
    let i = 0
    while (i < bounds.length && value > bounds[i]!) i++
    this.counts[i]!++
    this.count++
    this.sum += value
    if (value < this.min) this.min = value
    if (value > this.max) this.max = value
  }

  state(): Metric.HistogramState {
    let cumulated = 0
    const buckets = this.boundaries.map((boundary, i): [number, number] => [boundary, cumulated += this.counts[i]!])
    return { buckets, count: this.count, min: this.min, max: this.max, sum: this.sum }
  }
}

/** @internal */
export class Instruments {
  private connects = 0
  private connectFailures = 0
  private checkouts = 0
  private timeouts = 0
  private recycles = 0
  private leaks = 0
  private readonly invalidations = new Map<PoolMetrics.InvalidationReason, number>(
    PoolMetrics.invalidationReasons.map((r) => [r, 0])
  )
  private readonly waitTime = new Histogram(PoolMetrics.timeBoundaries)
  private readonly createTime = new Histogram(PoolMetrics.timeBoundaries)
  private readonly useTime = new Histogram(PoolMetrics.timeBoundaries)

  /** The `max` series while the pool has a limit (see {@link refreshLimit}). */
  private maxSeries: { readonly remove: () => void } | undefined = undefined
  private limit: () => number | undefined = () => undefined
  private metrics: PoolMetrics.Metrics | undefined = undefined

  constructor(private readonly pool: string, private readonly context: Context.Context<never>) {}

  connected(ms: number): void {
    this.connects++
    this.createTime.update(ms / 1000)
  }
  connectFailed(): void {
    this.connectFailures++
  }
  checkedOut(waitMs: number): void {
    this.checkouts++
    this.waitTime.update(waitMs / 1000)
  }
  timedOut(): void {
    this.timeouts++
  }
  invalidated(reason: PoolMetrics.InvalidationReason): void {
    this.invalidations.set(reason, (this.invalidations.get(reason) ?? 0) + 1)
  }
  recycled(): void {
    this.recycles++
  }
  used(ms: number): void {
    this.useTime.update(ms / 1000)
  }
  leaked(): void {
    this.leaks++
  }

  private observe<S>(metric: Metric.Metric<any, S>, get: () => S) {
    return Metric.registerUnsafe(metric, this.context, { get, update: () => {}, modify: () => {} })
  }

  /**
   * Publish `db.client.connection.max` while the pool has a limit, and not while it has none
   * (a pool's limit changes with `resize`).
   */
  refreshLimit(): void {
    const m = this.metrics
    if (m === undefined) return
    const limited = this.limit() !== undefined
    if (limited && this.maxSeries === undefined) {
      this.maxSeries = this.observe(m.max, () => ({ value: this.limit() ?? 0 }))
    } else if (!limited && this.maxSeries !== undefined) {
      this.maxSeries.remove()
      this.maxSeries = undefined
    }
  }

  /**
   * Publish every series (gauges read live from `status`; `limit`: the most connections open at
   * once, `undefined` for none). Returns their removal.
   */
  register(status: () => PoolStatus, suspended: () => boolean, limit: () => number | undefined): () => void {
    const m = PoolMetrics.forPool(this.pool)
    this.metrics = m
    this.limit = limit
    this.refreshLimit()
    const observe = <S>(metric: Metric.Metric<any, S>, get: () => S) => this.observe(metric, get)
    const counter = (metric: Metric.Counter<number>, read: () => number) =>
      observe(metric, () => ({ count: read(), incremental: true }))
    const gauge = (metric: Metric.Gauge<number>, read: (s: PoolStatus) => number) =>
      observe(metric, () => ({ value: read(status()) }))
    const registrations = [
      gauge(m.idle, (s) => s.checkedIn),
      gauge(m.used, (s) => s.checkedOut),
      gauge(m.overflow, (s) => s.overflow),
      gauge(m.pending, (s) => s.waiting),
      observe(m.suspended, () => ({ value: suspended() ? 1 : 0 })),
      counter(m.connects, () => this.connects),
      counter(m.connectFailures, () => this.connectFailures),
      counter(m.checkouts, () => this.checkouts),
      counter(m.timeouts, () => this.timeouts),
      counter(m.recycles, () => this.recycles),
      counter(m.leaks, () => this.leaks),
      ...PoolMetrics.invalidationReasons.map((reason) =>
        counter(m.invalidations(reason), () => this.invalidations.get(reason) ?? 0)
      ),
      observe(m.waitTime, () => this.waitTime.state()),
      observe(m.createTime, () => this.createTime.state()),
      observe(m.useTime, () => this.useTime.state())
    ]
    return () => {
      for (const r of registrations) r.remove()
      this.maxSeries?.remove()
      this.maxSeries = undefined
      this.metrics = undefined
    }
  }
}
