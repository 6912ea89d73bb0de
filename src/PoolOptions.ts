/**
 * Options shared by every pool strategy, with their defaults.
 *
 * Every option is checked when the layer builds: a bad value fails the layer with a
 * `PoolConfigError` naming the field, never a surprise at the first checkout.
 * Durations take any `Duration.Input`: `"30 seconds"`, or a bare number of **milliseconds**
 * (effect's convention; SQLAlchemy's `timeout=30` is `timeout: "30 seconds"` here).
 *
 * @since 0.1.0
 */
import type { Duration, Schedule } from "effect"
import type { ConnectError, ConnectTimeoutError, DisconnectionError } from "./PoolError.ts"
import type { PoolHooks } from "./PoolEvent.ts"

/**
 * What a return does before the connection goes back (SQLAlchemy's `reset_on_return`).
 *
 * @category models
 * @since 0.1.0
 */
export type ResetOnReturn = "rollback" | "commit" | "none"

/**
 * Options every strategy accepts.
 *
 * @category models
 * @since 0.1.0
 */
export interface CommonOptions<C = unknown> {
  /** Name used in logs, events, errors and metrics. Default: the strategy's name. */
  readonly name?: string | undefined
  /** Max age of a connection, checked at checkout (SQLAlchemy `pool_recycle`). Default: never. */
  readonly recycle?: Duration.Input | undefined
  /**
   * Ping connections that were not made by this checkout before handing them out. The ping and
   * any reconnect after it share one `connectTimeout`: the ping waits at most half of it (a
   * silent connection is then dead and replaced in the other half), and a checkout that pings
   * succeeds or fails within `connectTimeout`. Default: false.
   */
  readonly prePing?: boolean | undefined
  /** Reset on return. Default: `"rollback"`. */
  readonly resetOnReturn?: ResetOnReturn | undefined
  /** Bound on the reset (rollback/commit) and close of a release; past it the connection is invalidated. Default: 10 s. */
  readonly resetTimeout?: Duration.Input | undefined
  /**
   * How checkout retries after a `DisconnectionError` (failed pre-ping, `onCheckout` hook). Each
   * retry invalidates the slot and reconnects. Default: `Schedule.recurs(2)` (3 connection attempts).
   */
  readonly checkoutRetry?: Schedule.Schedule<unknown, DisconnectionError> | undefined
  /** Event hooks, run in the pipeline. */
  readonly hooks?: PoolHooks<C> | undefined
  /**
   * Reentrant checkout (SQLAlchemy's `use_threadlocal`): a checkout made while the same fiber
   * already holds one returns that same connection, and only the outermost release resets and
   * checks it in. Child fibers are other fibers: they get their own. Default: false
   * (FiberPool: always true).
   */
  readonly reentrant?: boolean | undefined
  /** Record metrics (see `PoolMetrics`). Default: true. */
  readonly metrics?: boolean | undefined
  /** A span per checkout (`effect-db-pool.checkout`, with its wait time). Connect spans are always made. Default: false. */
  readonly tracing?: boolean | undefined
  /** Log every pool event at info level, annotated with the pool name (SQLAlchemy's `echo`). Default: false. */
  readonly echo?: boolean | undefined
  /**
   * Warn once (and count) when a checkout is held longer than this, naming the checkout site
   * (under `PgSql.layer({ pipeline })`: each pipelined statement, not the shared connection). Default: off.
   */
  readonly leakDetectionThreshold?: Duration.Input | undefined
  /**
   * Bound on opening one connection; past it the attempt fails with `ConnectTimeoutError`. With
   * `prePing`, it bounds the ping (half of it at most) and the reconnects after it together,
   * from the start of the ping. Default: 30 s.
   */
  readonly connectTimeout?: Duration.Input | undefined
  /** Retries of a failed connect (e.g. `Schedule.exponential("100 millis")` with a cap). Default: none. */
  readonly connectRetry?: Schedule.Schedule<unknown, ConnectError | ConnectTimeoutError> | undefined
  /** Replace a connection after this many checkouts. Default: 0 = unlimited. */
  readonly maxUses?: number | undefined
  /** Max lifetime of a connection, minus a random jitter so connections do not all expire together. Default: never. */
  readonly maxLifetime?: Duration.Input | undefined
  /** Largest jitter subtracted from `maxLifetime`. Default: 2.5% of `maxLifetime`. */
  readonly maxLifetimeJitter?: Duration.Input | undefined
}

/**
 * Background upkeep of idle connections (QueuePool). All off by default.
 *
 * @category models
 * @since 0.1.0
 */
export interface IdleOptions {
  /** Keep at least this many idle connections, warmed up in the background (never beyond `poolSize`). Default 0. */
  readonly minIdle?: number | undefined
  /** Close idle connections above `minIdle` once idle this long. Default: never. */
  readonly idleTimeout?: Duration.Input | undefined
  /**
   * Ping connections idle this long, in the background (checked every `housekeepingPeriod`); a
   * failed ping closes the connection. At least 1 second. Default: off.
   */
  readonly keepalive?: Duration.Input | undefined
  /** How often the background upkeep runs: a finite duration of at least 100 ms. Default: 5 s. */
  readonly housekeepingPeriod?: Duration.Input | undefined
}

/**
 * Every strategy, by name: the `strategy` of a service, its settings and its errors.
 *
 * @category models
 * @since 0.1.0
 */
export const strategyNames = ["QueuePool", "NullPool", "StaticPool", "FiberPool", "AssertionPool"] as const

/**
 * The name of a strategy.
 *
 * @category models
 * @since 0.1.0
 */
export type StrategyName = typeof strategyNames[number]
