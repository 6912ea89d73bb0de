/**
 * The metrics every pool records, with effect's `Metric`, under the names, units and attributes
 * of OpenTelemetry's database-client connection-pool conventions (`db.client.connection.*`,
 * attribute `db.client.connection.pool.name`; times in seconds), plus a few of the pool's own
 * beside them.
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

/** Attribute of `db.client.connection.count`: `idle` or `used`. @since 0.1.0 */
export const stateAttribute = "db.client.connection.state"

/**
 * Attribute carrying a series' unit (UCUM: `s`, `{connection}`), effect's convention: effect's
 * OTLP exporter and `@effect/opentelemetry` read it as the instrument's unit; the Prometheus
 * exporter leaves it out.
 *
 * @since 0.1.0
 */
export const unitAttribute = "unit"

/** Bucket boundaries, in seconds, shared by the time histograms (0.1 ms to 30 s). @since 0.1.0 */
export const timeBoundaries: ReadonlyArray<number> = [
  0.0001,
  0.0005,
  0.001,
  0.002,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
  30
]

/**
 * Metric names.
 *
 * The first seven are OpenTelemetry's (semantic conventions, database client metrics); the
 * others are the pool's own.
 *
 * | name | kind (unit) | meaning |
 * |---|---|---|
 * | `db.client.connection.count` | gauge (`{connection}`), attr `db.client.connection.state` = `idle` / `used` | slots idle / checked out |
 * | `db.client.connection.max` | gauge (`{connection}`) | the most connections open at once (`poolSize + maxOverflow`; StaticPool, AssertionPool: 1); absent while the pool has no limit |
 * | `db.client.connection.pending_requests` | gauge (`{request}`) | fibers waiting for a slot |
 * | `db.client.connection.timeouts` | counter (`{timeout}`) | checkouts that timed out waiting for a slot |
 * | `db.client.connection.create_time` | histogram (`s`) | time to open a connection |
 * | `db.client.connection.wait_time` | histogram (`s`) | time to obtain a connection |
 * | `db.client.connection.use_time` | histogram (`s`) | time between checkout and return |
 * | `db.client.connection.overflow` | gauge | slots beyond size |
 * | `db.client.connection.pool.suspended` | gauge | 1 while the pool is suspended (`suspend` / `resume`), else 0 |
 * | `db.client.connection.connects` | counter | connections opened |
 * | `db.client.connection.connect_failures` | counter | failed connects (incl. connect timeouts) |
 * | `db.client.connection.checkouts` | counter | successful checkouts |
 * | `db.client.connection.invalidations` | counter, attr `reason` | connections invalidated |
 * | `db.client.connection.recycles` | counter | connections replaced for age / lifetime / pool invalidation / maxUses |
 * | `db.client.connection.leaks` | counter | checkouts held past `leakDetectionThreshold` |
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
  /** Idle connections (`db.client.connection.count`, `db.client.connection.state` = `idle`). */
  readonly idle: Metric.Gauge<number>
  /** Checked-out connections (`db.client.connection.count`, `db.client.connection.state` = `used`). */
  readonly used: Metric.Gauge<number>
  /** The most connections open at once (`db.client.connection.max`); not published while the pool has no limit. */
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
  /** Time to obtain a connection, seconds (`db.client.connection.wait_time`). */
  readonly waitTime: Metric.Histogram<number>
  /** Time to open a connection, seconds (`db.client.connection.create_time`). */
  readonly createTime: Metric.Histogram<number>
  /** Time between checkout and return, seconds (`db.client.connection.use_time`). */
  readonly useTime: Metric.Histogram<number>
}

const countDescription =
  "The number of connections that are currently in the state of the db.client.connection.state attribute"

/**
 * The metrics of one pool, as effect `Metric`s with the pool attribute bound; read them with
 * `Metric.value`.
 *
 * @category constructors
 * @since 0.1.0
 */
export const forPool = (pool: string): Metrics => {
  const attributes = { [poolAttribute]: pool }
  const connections = { ...attributes, [unitAttribute]: "{connection}" }
  const counter = (name: string, description: string) =>
    Metric.counter(name, { description, attributes, incremental: true })
  const histogram = (name: string, description: string) =>
    Metric.histogram(name, {
      description,
      attributes: { ...attributes, [unitAttribute]: "s" },
      boundaries: timeBoundaries
    })
  return {
    idle: Metric.gauge(names.count, {
      description: countDescription,
      attributes: { ...connections, [stateAttribute]: "idle" }
    }),
    used: Metric.gauge(names.count, {
      description: countDescription,
      attributes: { ...connections, [stateAttribute]: "used" }
    }),
    max: Metric.gauge(names.max, {
      description: "The maximum number of open connections allowed",
      attributes: connections
    }),
    overflow: Metric.gauge(names.overflow, { description: "Slots beyond the pool size", attributes }),
    pending: Metric.gauge(names.pending, {
      description: "Fibers waiting for a connection",
      attributes: { ...attributes, [unitAttribute]: "{request}" }
    }),
    suspended: Metric.gauge(names.suspended, { description: "1 while the pool is suspended", attributes }),
    connects: counter(names.connects, "Connections opened"),
    connectFailures: counter(names.connectFailures, "Connection attempts that failed"),
    checkouts: counter(names.checkouts, "Successful checkouts"),
    timeouts: Metric.counter(names.timeouts, {
      description: "Checkouts that timed out waiting for a connection",
      attributes: { ...attributes, [unitAttribute]: "{timeout}" },
      incremental: true
    }),
    invalidations: (reason: InvalidationReason) =>
      Metric.counter(names.invalidations, {
        description: "Connections invalidated",
        attributes: { ...attributes, reason },
        incremental: true
      }),
    recycles: counter(names.recycles, "Connections replaced for age, lifetime, pool invalidation or uses"),
    leaks: counter(names.leaks, "Checkouts held longer than leakDetectionThreshold"),
    waitTime: histogram(names.waitTime, "The time it took to obtain an open connection from the pool"),
    createTime: histogram(names.createTime, "The time it took to create a new connection"),
    useTime: histogram(names.useTime, "The time between borrowing a connection and returning it to the pool")
  }
}

// ---------------------------------------------------------------------- pipelined statements

/**
 * Metric names of the pipelined mode of `effect-db-pool/pg` (`PgSql.layer({ pipeline })`),
 * attributed by pool ({@link poolAttribute}). Each shared connection is also one checkout of the
 * pool (`db.client.connection.count`, state `used`).
 *
 * | name | kind | meaning |
 * |---|---|---|
 * | `db.client.connection.pipeline.connections` | gauge (`{connection}`) | connections now serving pipelined statements |
 * | `db.client.connection.pipeline.in_flight` | gauge (`{statement}`) | pipelined statements queued or on the wire whose callers wait, over all of them |
 * | `db.client.connection.pipeline.statements` | counter (`{statement}`) | statements sent pipelined |
 * | `db.client.connection.pipeline.abandoned` | counter (`{statement}`) | pipelined statements whose caller was interrupted (the server still ran them) |
 *
 * @category names
 * @since 0.2.0
 */
export const pipelineNames = {
  /** Gauge: connections now serving pipelined statements. */
  connections: "db.client.connection.pipeline.connections",
  /** Gauge: pipelined statements in flight, over every shared connection. */
  inFlight: "db.client.connection.pipeline.in_flight",
  /** Counter: statements sent pipelined. */
  statements: "db.client.connection.pipeline.statements",
  /** Counter: pipelined statements whose caller was interrupted. */
  abandoned: "db.client.connection.pipeline.abandoned"
} as const

/**
 * The pipelined-mode metrics of one pool.
 *
 * @category models
 * @since 0.2.0
 */
export interface PipelineMetrics {
  /** `db.client.connection.pipeline.connections`. */
  readonly connections: Metric.Gauge<number>
  /** `db.client.connection.pipeline.in_flight`. */
  readonly inFlight: Metric.Gauge<number>
  /** `db.client.connection.pipeline.statements`. */
  readonly statements: Metric.Counter<number>
  /** `db.client.connection.pipeline.abandoned`. */
  readonly abandoned: Metric.Counter<number>
}

/**
 * The pipelined-mode metrics of pool `pool`; read them with `Metric.value`.
 *
 * @category constructors
 * @since 0.2.0
 */
export const forPipeline = (pool: string): PipelineMetrics => {
  const attributes = { [poolAttribute]: pool }
  const statements = { ...attributes, [unitAttribute]: "{statement}" }
  return {
    connections: Metric.gauge(pipelineNames.connections, {
      description: "Connections now serving pipelined statements",
      attributes: { ...attributes, [unitAttribute]: "{connection}" }
    }),
    inFlight: Metric.gauge(pipelineNames.inFlight, {
      description: "Pipelined statements queued or on the wire whose callers wait",
      attributes: statements
    }),
    statements: Metric.counter(pipelineNames.statements, {
      description: "Statements sent pipelined",
      attributes: statements,
      incremental: true
    }),
    abandoned: Metric.counter(pipelineNames.abandoned, {
      description: "Pipelined statements whose caller was interrupted (the server still ran them)",
      attributes: statements,
      incremental: true
    })
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
  /** Replay lag at the last health check, seconds (gauge). */
  lag: "db.client.replica.lag",
  /** 1 while the member gets reads, else 0 (gauge). */
  serving: "db.client.replica.serving",
  /** Work routed to the member (counter). */
  routed: "db.client.replica.routed",
  /** Read-your-writes reads, by `outcome` (counter). */
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
  /** `db.client.replica.lag`: replay lag at the last health check. */
  readonly lag: Metric.Gauge<number>
  /** `db.client.replica.serving`: 1 while the member gets reads. */
  readonly serving: Metric.Gauge<number>
  /** `db.client.replica.routed`: work routed to the member. */
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
    lag: Metric.gauge(replicaNames.lag, {
      description: "Replica staleness at the last health check (ms; -1: not known)",
      attributes
    }),
    serving: Metric.gauge(replicaNames.serving, { description: "1 while the member gets reads", attributes }),
    routed: Metric.counter(replicaNames.routed, {
      description: "Work routed to the member",
      attributes,
      incremental: true
    })
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
