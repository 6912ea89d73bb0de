/**
 * The metrics every pool records, with effect's `Metric`, attributed by pool name
 * (`db.client.connection.pool.name`, OpenTelemetry's database-client conventions).
 *
 * They live in effect's `MetricRegistry`, so effect's own exporters (`effect/observability`
 * `OtlpMetrics`, `PrometheusMetrics`) export them with no glue. The pool keeps the numbers itself
 * and publishes them as observable series read when a snapshot is taken: a checkout pays a few
 * additions, never a registry lookup. The series are removed when the pool closes.
 *
 * A read-replica router (`PgReplicas`) publishes its own series the same way, attributed by
 * router and member: {@link replicaNames}.
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
  count: "db.client.connection.count",
  max: "db.client.connection.max",
  overflow: "db.client.connection.overflow",
  pending: "db.client.connection.pending_requests",
  suspended: "db.client.connection.pool.suspended",
  connects: "db.client.connection.connects",
  connectFailures: "db.client.connection.connect_failures",
  checkouts: "db.client.connection.checkouts",
  timeouts: "db.client.connection.timeouts",
  invalidations: "db.client.connection.invalidations",
  recycles: "db.client.connection.recycles",
  leaks: "db.client.connection.leaks",
  waitTime: "db.client.connection.wait_time",
  createTime: "db.client.connection.create_time",
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
  readonly idle: Metric.Gauge<number>
  readonly used: Metric.Gauge<number>
  readonly max: Metric.Gauge<number>
  readonly overflow: Metric.Gauge<number>
  readonly pending: Metric.Gauge<number>
  /** 1 while the pool is suspended, else 0. */
  readonly suspended: Metric.Gauge<number>
  readonly connects: Metric.Counter<number>
  readonly connectFailures: Metric.Counter<number>
  readonly checkouts: Metric.Counter<number>
  readonly timeouts: Metric.Counter<number>
  /** The invalidation counter of one reason (`"disconnect"`, `"statement"`, ...). */
  readonly invalidations: (reason: InvalidationReason) => Metric.Counter<number>
  readonly recycles: Metric.Counter<number>
  readonly leaks: Metric.Counter<number>
  readonly waitTime: Metric.Histogram<number>
  readonly createTime: Metric.Histogram<number>
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

// ------------------------------------------------------------------------- read replicas

/** Attribute naming the router (`PgReplicas` option `name`) on the replica series. @since 0.1.0 */
export const routerAttribute = "db.client.replicas.name"

/** Attribute naming the member of a router: `"primary"`, `"replica 0"`, ... @since 0.1.0 */
export const memberAttribute = "db.client.replicas.member"

/**
 * Metric names of a read-replica router (`effect-db-pool/pg` `PgReplicas`), attributed by router
 * ({@link routerAttribute}) and member ({@link memberAttribute}).
 *
 * | name | kind | meaning |
 * |---|---|---|
 * | `db.client.replica.lag` | gauge (ms), per replica | staleness at the last health check (an upper bound; 0: caught up); -1 while not known (no check yet, check failed, primary not sampled) |
 * | `db.client.replica.serving` | gauge, per member | 1 while it gets reads (healthy, right role, lag within `maxLag`), else 0; the primary: 1 while it is a primary |
 * | `db.client.replica.routed` | counter, per member | statements, streams, transactions and `reserve`s routed to it |
 * | `db.client.replica.read_your_writes` | counter, attr `outcome` | read-your-writes reads after a write of their session: `replica` (a replica had replayed it), `waited` (after waiting for one), `primary` (none in time: the primary) |
 *
 * @category names
 * @since 0.1.0
 */
export const replicaNames = {
  lag: "db.client.replica.lag",
  serving: "db.client.replica.serving",
  routed: "db.client.replica.routed",
  readYourWrites: "db.client.replica.read_your_writes"
} as const

/**
 * Where a read-your-writes read ran (the `outcome` attribute of `db.client.replica.read_your_writes`).
 *
 * @category models
 * @since 0.1.0
 */
export const readYourWritesOutcomes = ["replica", "waited", "primary"] as const

/**
 * One of {@link readYourWritesOutcomes}.
 *
 * @category models
 * @since 0.1.0
 */
export type ReadYourWritesOutcome = typeof readYourWritesOutcomes[number]

/**
 * The metrics of one member of a read-replica router.
 *
 * @category models
 * @since 0.1.0
 */
export interface ReplicaMetrics {
  readonly lag: Metric.Gauge<number>
  readonly serving: Metric.Gauge<number>
  readonly routed: Metric.Counter<number>
}

/**
 * The metrics of member `member` (`"primary"`, `"replica 0"`, ...) of router `router`; read them
 * with `Metric.value`.
 *
 * @category constructors
 * @since 0.1.0
 */
export const forReplica = (router: string, member: string): ReplicaMetrics => {
  const attributes = { [routerAttribute]: router, [memberAttribute]: member }
  return {
    lag: Metric.gauge(replicaNames.lag, { description: "Replica staleness at the last health check (ms; -1: not known)", attributes }),
    serving: Metric.gauge(replicaNames.serving, { description: "1 while the member gets reads", attributes }),
    routed: Metric.counter(replicaNames.routed, { description: "Work routed to the member", attributes, incremental: true })
  }
}

/**
 * The read-your-writes counter of one outcome of router `router`.
 *
 * @category constructors
 * @since 0.1.0
 */
export const readYourWrites = (router: string, outcome: ReadYourWritesOutcome): Metric.Counter<number> =>
  Metric.counter(replicaNames.readYourWrites, {
    description: "Read-your-writes reads after a write of their session, by where they ran",
    attributes: { [routerAttribute]: router, outcome },
    incremental: true
  })
