/**
 * Synchronous metric updates for one pool, against the context the pool was built in (so they
 * land in that context's `MetricRegistry`, where effect's exporters read them).
 *
 * @internal
 */
import { Metric } from "effect"
import type { Context } from "effect"
import type { PoolStatus } from "../ConnectionPool.ts"
import * as PoolMetrics from "../PoolMetrics.ts"

/** @internal */
export class Instruments {
  private readonly m: PoolMetrics.Metrics
  private readonly invalidations = new Map<PoolMetrics.InvalidationReason, Metric.Counter<number>>()

  constructor(pool: string, private readonly context: Context.Context<never>) {
    this.m = PoolMetrics.forPool(pool)
  }

  connected(ms: number): void {
    this.m.connects.updateUnsafe(1, this.context)
    this.m.createTime.updateUnsafe(ms, this.context)
  }
  connectFailed(): void {
    this.m.connectFailures.updateUnsafe(1, this.context)
  }
  checkedOut(waitMs: number): void {
    this.m.checkouts.updateUnsafe(1, this.context)
    this.m.waitTime.updateUnsafe(waitMs, this.context)
  }
  timedOut(): void {
    this.m.timeouts.updateUnsafe(1, this.context)
  }
  invalidated(reason: PoolMetrics.InvalidationReason): void {
    let counter = this.invalidations.get(reason)
    if (counter === undefined) {
      counter = this.m.invalidations(reason)
      this.invalidations.set(reason, counter)
    }
    counter.updateUnsafe(1, this.context)
  }
  recycled(): void {
    this.m.recycles.updateUnsafe(1, this.context)
  }
  used(ms: number): void {
    this.m.useTime.updateUnsafe(ms, this.context)
  }
  leaked(): void {
    this.m.leaks.updateUnsafe(1, this.context)
  }

  /** Register the gauges, read live from `status`. Returns their removal. */
  register(status: () => PoolStatus): () => void {
    const gauge = (metric: Metric.Gauge<number>, read: (s: PoolStatus) => number) =>
      Metric.registerUnsafe(metric, this.context, {
        get: () => ({ value: read(status()) }),
        update: () => {},
        modify: () => {}
      })
    const registrations = [
      gauge(this.m.idle, (s) => s.checkedIn),
      gauge(this.m.used, (s) => s.checkedOut),
      gauge(this.m.max, (s) => s.size),
      gauge(this.m.overflow, (s) => s.overflow),
      gauge(this.m.pending, (s) => s.waiting)
    ]
    return () => {
      for (const r of registrations) r.remove()
    }
  }
}
