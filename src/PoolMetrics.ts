/**
 * The metrics every pool records, with effect's `Metric`, attributed by pool name
 * (`db.client.connection.pool.name`, OpenTelemetry's database-client conventions).
 *
 * They live in effect's `MetricRegistry`, so effect's own exporters (`effect/observability`
 * `OtlpMetrics`, `PrometheusMetrics`) export them with no glue. The pool keeps the numbers itself
 * and publishes them as observable series read when a snapshot is taken: a checkout pays a few
 * additions, never a registry lookup. The series are removed when the pool closes.
 *
 * @since 0.1.0
 */
import { Metric } from "effect"

/** Attribute naming the pool on every series. @since 0.1.0 */
export const poolAttribute = "db.client.connection.pool.name"

/** Millisecond buckets shared by the time histograms. @since 0.1.0 */
export const timeBoundaries: ReadonlyArray<number> = [0.1, 0.5, 1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000]

/**
 * Metric names.
 *
 * | name | kind | meaning |
 * |---|---|---|
 * | `db.client.connection.count` | gauge, attr `state` = `idle` / `used` | slots idle / checked out |
 * | `db.client.connection.max` | gauge | configured size |
 * | `db.client.connection.overflow` | gauge | slots beyond size |
 * | `db.client.connection.pending_requests` | gauge | fibers waiting for a slot |
 * | `db.client.connection.pool.suspended` | gauge | 1 while the pool is suspended (`suspend` / `resume`), else 0 |
 * | `db.client.connection.connects` | counter | connections opened |
 * | `db.client.connection.connect_failures` | counter | failed connects (incl. connect timeouts) |
 * | `db.client.connection.checkouts` | counter | successful checkouts |
 * | `db.client.connection.timeouts` | counter | checkouts that timed out waiting for a slot |
 * | `db.client.connection.invalidations` | counter, attr `reason` | connections invalidated |
 * | `db.client.connection.recycles` | counter | connections replaced for age / lifetime / pool invalidation / maxUses |
 * | `db.client.connection.leaks` | counter | checkouts held past `leakDetectionThreshold` |
 * | `db.client.connection.wait_time` | histogram (ms) | time to obtain a connection |
 * | `db.client.connection.create_time` | histogram (ms) | time to open a connection |
 * | `db.client.connection.use_time` | histogram (ms) | time between checkout and return |
 *
 * @category names
 * @since 0.1.0
 */
export const names = {
  /** Gauge: connections by `state` (`idle` / `used`). */
  count: "db.client.connection.count",
  /** Gauge: the configured size (QueuePool: `poolSize + maxOverflow`). */
  max: "db.client.connection.max",
  /** Gauge: slots beyond the pool size. */
  overflow: "db.client.connection.overflow",
  /** Gauge: fibers waiting for a connection. */
  pending: "db.client.connection.pending_requests",
  /** Gauge: 1 while the pool is suspended, else 0. */
  suspended: "db.client.connection.pool.suspended",
  /** Counter: connections opened. */
  connects: "db.client.connection.connects",
  /** Counter: connects that failed (connect timeouts included). */
  connectFailures: "db.client.connection.connect_failures",
  /** Counter: successful checkouts. */
  checkouts: "db.client.connection.checkouts",
  /** Counter: checkouts that timed out waiting for a slot. */
  timeouts: "db.client.connection.timeouts",
  /** Counter, attribute `reason` ({@link InvalidationReason}): connections invalidated. */
  invalidations: "db.client.connection.invalidations",
  /** Counter: connections replaced for age, lifetime, pool-wide invalidation or `maxUses`. */
  recycles: "db.client.connection.recycles",
  /** Counter: checkouts held past `leakDetectionThreshold`. */
  leaks: "db.client.connection.leaks",
  /** Histogram (ms): time to obtain a connection. */
  waitTime: "db.client.connection.wait_time",
  /** Histogram (ms): time to open a connection. */
  createTime: "db.client.connection.create_time",
  /** Histogram (ms): time between checkout and return. */
  useTime: "db.client.connection.use_time"
} as const

/**
 * Every reason a connection is invalidated (the values of the `reason` attribute):
 *
 * - `user`: `PooledConnection.invalidate`
 * - `disconnect`: failed pre-ping or `DisconnectionError` from the checkout hook
 * - `reset`: reset on return failed or timed out
 * - `checkout`: a checkout failed or was interrupted half-way
 * - `keepalive`: background keepalive ping failed
 * - `statement`: a statement failed with a disconnect (SQL binding)
 *
 * @category models
 * @since 0.1.0
 */
export const invalidationReasons = ["user", "disconnect", "reset", "checkout", "keepalive", "statement"] as const

/**
 * Why a connection was invalidated (the `reason` attribute): one of {@link invalidationReasons}.
 *
 * @category models
 * @since 0.1.0
 */
export type InvalidationReason = typeof invalidationReasons[number]

/**
 * The metrics of one pool.
 *
 * @category models
 * @since 0.1.0
 */
export interface Metrics {
  /** Idle connections (`db.client.connection.count`, `state` = `idle`). */
  readonly idle: Metric.Gauge<number>
  /** Checked-out connections (`db.client.connection.count`, `state` = `used`). */
  readonly used: Metric.Gauge<number>
  /** Configured size (`db.client.connection.max`). */
  readonly max: Metric.Gauge<number>
  /** Slots beyond the pool size (`db.client.connection.overflow`). */
  readonly overflow: Metric.Gauge<number>
  /** Fibers waiting for a connection (`db.client.connection.pending_requests`). */
  readonly pending: Metric.Gauge<number>
  /** 1 while the pool is suspended, else 0. */
  readonly suspended: Metric.Gauge<number>
  /** Connections opened (`db.client.connection.connects`). */
  readonly connects: Metric.Counter<number>
  /** Failed connects, timeouts included (`db.client.connection.connect_failures`). */
  readonly connectFailures: Metric.Counter<number>
  /** Successful checkouts (`db.client.connection.checkouts`). */
  readonly checkouts: Metric.Counter<number>
  /** Checkouts that timed out waiting for a slot (`db.client.connection.timeouts`). */
  readonly timeouts: Metric.Counter<number>
  /** The invalidation counter of one reason (`"disconnect"`, `"statement"`, ...). */
  readonly invalidations: (reason: InvalidationReason) => Metric.Counter<number>
  /** Connections replaced for age, lifetime, pool invalidation or uses (`db.client.connection.recycles`). */
  readonly recycles: Metric.Counter<number>
  /** Checkouts held past `leakDetectionThreshold` (`db.client.connection.leaks`). */
  readonly leaks: Metric.Counter<number>
  /** Time to obtain a connection, ms (`db.client.connection.wait_time`). */
  readonly waitTime: Metric.Histogram<number>
  /** Time to open a connection, ms (`db.client.connection.create_time`). */
  readonly createTime: Metric.Histogram<number>
  /** Time between checkout and return, ms (`db.client.connection.use_time`). */
  readonly useTime: Metric.Histogram<number>
}

/**
 * The metrics of one pool, as effect `Metric`s with the pool attribute bound; read them with
 * `Metric.value`.
 *
 * @category constructors
 * @since 0.1.0
 */
export const forPool = (pool: string): Metrics => {
  const attributes = { [poolAttribute]: pool }
  const counter = (name: string, description: string) =>
    Metric.counter(name, { description, attributes, incremental: true })
  const histogram = (name: string, description: string) =>
    Metric.histogram(name, { description, attributes, boundaries: timeBoundaries })
  return {
    idle: Metric.gauge(names.count, { description: "Idle connections", attributes: { ...attributes, state: "idle" } }),
    used: Metric.gauge(names.count, { description: "Checked-out connections", attributes: { ...attributes, state: "used" } }),
    max: Metric.gauge(names.max, { description: "Configured pool size", attributes }),
    overflow: Metric.gauge(names.overflow, { description: "Slots beyond the pool size", attributes }),
    pending: Metric.gauge(names.pending, { description: "Fibers waiting for a connection", attributes }),
    suspended: Metric.gauge(names.suspended, { description: "1 while the pool is suspended", attributes }),
    connects: counter(names.connects, "Connections opened"),
    connectFailures: counter(names.connectFailures, "Connection attempts that failed"),
    checkouts: counter(names.checkouts, "Successful checkouts"),
    timeouts: counter(names.timeouts, "Checkouts that timed out waiting for a connection"),
    invalidations: (reason: InvalidationReason) =>
      Metric.counter(names.invalidations, {
        description: "Connections invalidated",
        attributes: { ...attributes, reason },
        incremental: true
      }),
    recycles: counter(names.recycles, "Connections replaced for age, lifetime, pool invalidation or uses"),
    leaks: counter(names.leaks, "Checkouts held longer than leakDetectionThreshold"),
    waitTime: histogram(names.waitTime, "Time to obtain a connection (ms)"),
    createTime: histogram(names.createTime, "Time to open a connection (ms)"),
    useTime: histogram(names.useTime, "Time a connection was checked out (ms)")
  }
}
