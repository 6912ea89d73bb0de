/**
 * Options shared by every pool strategy, their defaults, and their validation.
 *
 * Every option is checked when the layer builds: a bad value fails the layer with a
 * `PoolConfigError` naming the field, never a surprise at the first checkout.
 *
 * @since 0.1.0
 */
import { Duration, Effect, Exit, Schedule, Schema } from "effect"
import { PoolConfigError } from "./PoolError.ts"
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
  /** Ping connections that were not made by this checkout before handing them out. Default: false. */
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
  /** Warn once (and count) when a checkout is held longer than this, naming the checkout site. Default: off. */
  readonly leakDetectionThreshold?: Duration.Input | undefined
  /** Bound on opening one connection; past it the attempt fails with `ConnectTimeoutError`. Default: 30 s. */
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
  /** Ping connections idle this long, in the background; a failed ping closes the connection. Default: off. */
  readonly keepalive?: Duration.Input | undefined
  /** How often the background upkeep runs. Default: 5 s. */
  readonly housekeepingPeriod?: Duration.Input | undefined
}

/**
 * Idle options after validation and defaults.
 *
 * @category models
 * @since 0.1.0
 */
export interface ResolvedIdle {
  readonly minIdle: number
  readonly idleTimeout: Duration.Duration
  readonly keepalive: Duration.Duration
  readonly housekeepingPeriod: Duration.Duration
}

/**
 * Common options after validation and defaults.
 *
 * @category models
 * @since 0.1.0
 */
export interface ResolvedCommon<C = unknown> {
  readonly name: string
  readonly recycle: Duration.Duration
  readonly prePing: boolean
  readonly resetOnReturn: ResetOnReturn
  readonly resetTimeout: Duration.Duration
  readonly checkoutRetry: Schedule.Schedule<unknown, DisconnectionError>
  readonly hooks: PoolHooks<C>
  readonly reentrant: boolean
  readonly metrics: boolean
  readonly tracing: boolean
  readonly echo: boolean
  readonly leakDetectionThreshold: Duration.Duration
  readonly connectTimeout: Duration.Duration
  readonly connectRetry: Schedule.Schedule<unknown, ConnectError | ConnectTimeoutError> | undefined
  readonly maxUses: number
  readonly maxLifetime: Duration.Duration
  readonly maxLifetimeJitter: Duration.Duration
}

const fail = (field: string, value: unknown, reason: string) => Effect.fail(new PoolConfigError({ field, value, reason }))

const check = <A>(field: string, value: unknown, schema: Schema.Codec<A, unknown>, reason: string) => {
  const exit = Schema.decodeUnknownExit(schema)(value)
  return Exit.isSuccess(exit) ? Effect.succeed(exit.value) : fail(field, value, reason)
}

/**
 * Validate an integer option (`undefined` gives the default).
 *
 * @category validation
 * @since 0.1.0
 */
export const integer = (field: string, value: unknown, fallback: number, min: number): Effect.Effect<number, PoolConfigError> =>
  value === undefined
    ? Effect.succeed(fallback)
    : check(field, value, Schema.Int.check(Schema.isGreaterThanOrEqualTo(min)), `must be an integer >= ${min}`)

/**
 * Validate a boolean option.
 *
 * @category validation
 * @since 0.1.0
 */
export const boolean = (field: string, value: unknown, fallback: boolean): Effect.Effect<boolean, PoolConfigError> =>
  value === undefined ? Effect.succeed(fallback) : check(field, value, Schema.Boolean, "must be true or false")

/**
 * Validate one of a set of string literals.
 *
 * @category validation
 * @since 0.1.0
 */
export const literal = <const L extends string>(
  field: string,
  value: unknown,
  literals: ReadonlyArray<L>,
  fallback: L
): Effect.Effect<L, PoolConfigError> =>
  value === undefined
    ? Effect.succeed(fallback)
    : check(field, value, Schema.Literals(literals) as unknown as Schema.Codec<L, unknown>, `must be one of ${literals.map((l) => `"${l}"`).join(", ")}`)

const durationObjectKeys = new Set(["weeks", "days", "hours", "minutes", "seconds", "milliseconds", "microseconds", "nanoseconds"])
const isNumberPart = (v: unknown): boolean => (typeof v === "number" && !Number.isNaN(v)) || typeof v === "bigint"

/** `[seconds, nanos]` of two numbers, or a `DurationObject` with at least one known field, all numbers. */
const isDurationParts = (value: object): boolean => {
  if (Array.isArray(value)) return value.length === 2 && value.every(isNumberPart)
  const entries = Object.entries(value).filter(([, v]) => v !== undefined)
  return entries.length > 0 && entries.every(([k, v]) => durationObjectKeys.has(k) && isNumberPart(v))
}

/**
 * Validate a duration option: a `Duration.Input` (`"30 seconds"`, milliseconds as a number,
 * `"Infinity"`) that is not negative and not NaN.
 *
 * @category validation
 * @since 0.1.0
 */
export const duration = (field: string, value: unknown, fallback: Duration.Duration): Effect.Effect<Duration.Duration, PoolConfigError> => {
  if (value === undefined) return Effect.succeed(fallback)
  if (typeof value === "number" && Number.isNaN(value)) return fail(field, value, "must be a duration, got NaN")
  // effect decodes `{}`, `{ secs: 5 }` and `[NaN, 0]` as a zero duration: a typo must not become 0.
  if (typeof value === "object" && value !== null && !Duration.isDuration(value) && !isDurationParts(value)) {
    return fail(field, value, "must be a duration such as \"30 seconds\", a number of milliseconds or \"Infinity\"")
  }
  let decoded: Duration.Duration | undefined
  try {
    decoded = Duration.fromInputUnsafe(value as Duration.Input)
  } catch {
    decoded = undefined
  }
  if (decoded === undefined) return fail(field, value, "must be a duration such as \"30 seconds\", a number of milliseconds or \"Infinity\"")
  if (Duration.isNegative(decoded)) return fail(field, value, "must not be negative")
  return Effect.succeed(decoded)
}

/** Every option name of `CommonOptions`. */
export const commonKeys: ReadonlyArray<string> = [
  "name", "recycle", "prePing", "resetOnReturn", "resetTimeout", "checkoutRetry", "hooks", "reentrant", "metrics",
  "tracing", "echo", "leakDetectionThreshold", "connectTimeout", "connectRetry", "maxUses", "maxLifetime",
  "maxLifetimeJitter"
]

/** Every option name of `IdleOptions`. */
export const idleKeys: ReadonlyArray<string> = ["minIdle", "idleTimeout", "keepalive", "housekeepingPeriod"]

/** Option names of some strategy: accepted (and ignored) by the others, so swapping the layer needs no change. */
const strategyOptionKeys: ReadonlyArray<string> = ["poolSize", "maxOverflow", "timeout", "lifo", ...idleKeys]

/**
 * A misspelled option (`poolsize`, `max_overflow`) is an error, not a silently ignored default.
 * Options of another strategy (`poolSize` given to NullPool) are accepted, so that swapping the
 * strategy layer needs no other change.
 */
const knownKeys = (options: object, strategy: string, strategyKeys: ReadonlyArray<string>) => {
  const known = [...commonKeys, ...strategyKeys, ...strategyOptionKeys]
  const normal = (key: string) => key.toLowerCase().replace(/[_-]/g, "")
  for (const key of Object.keys(options)) {
    if (known.includes(key) || (options as Record<string, unknown>)[key] === undefined) continue
    const near = known.find((k) => normal(k) === normal(key))
    return fail(key, (options as Record<string, unknown>)[key], `is not an option of ${strategy}${near === undefined ? "" : ` (did you mean "${near}"?)`}`)
  }
  return Effect.void
}

/**
 * Validate the options every strategy shares (and reject names that are no option of the
 * strategy: pass its own option names as `strategyKeys`).
 *
 * @category validation
 * @since 0.1.0
 */
export const resolveCommon = <C>(
  options: CommonOptions<C>,
  defaultName: string,
  strategyKeys: ReadonlyArray<string> = []
): Effect.Effect<ResolvedCommon<C>, PoolConfigError> =>
  Effect.gen(function*() {
    if (typeof options !== "object" || options === null) {
      return yield* fail("options", options, "must be an object")
    }
    yield* knownKeys(options, defaultName, strategyKeys)
    if (options.name !== undefined && (typeof options.name !== "string" || options.name.length === 0)) {
      return yield* fail("name", options.name, "must be a non-empty string")
    }
    if (options.checkoutRetry !== undefined && !Schedule.isSchedule(options.checkoutRetry)) {
      return yield* fail("checkoutRetry", options.checkoutRetry, "must be a Schedule")
    }
    if (options.connectRetry !== undefined && !Schedule.isSchedule(options.connectRetry)) {
      return yield* fail("connectRetry", options.connectRetry, "must be a Schedule")
    }
    if (options.hooks !== undefined && (typeof options.hooks !== "object" || options.hooks === null)) {
      return yield* fail("hooks", options.hooks, "must be an object of hook functions")
    }
    for (const [key, hook] of Object.entries(options.hooks ?? {})) {
      if (hook !== undefined && typeof hook !== "function") return yield* fail(`hooks.${key}`, hook, "must be a function")
    }
    const maxLifetime = yield* duration("maxLifetime", options.maxLifetime, Duration.infinity)
    if (Duration.isZero(maxLifetime)) return yield* fail("maxLifetime", options.maxLifetime, "must be positive")
    const maxLifetimeJitter = yield* duration(
      "maxLifetimeJitter",
      options.maxLifetimeJitter,
      Duration.isFinite(maxLifetime) ? Duration.times(maxLifetime, 0.025) : Duration.zero
    )
    if (Duration.isFinite(maxLifetime) && Duration.isGreaterThanOrEqualTo(maxLifetimeJitter, maxLifetime)) {
      return yield* fail("maxLifetimeJitter", options.maxLifetimeJitter, "must be smaller than maxLifetime")
    }
    return {
      name: options.name ?? defaultName,
      recycle: yield* duration("recycle", options.recycle, Duration.infinity),
      prePing: yield* boolean("prePing", options.prePing, false),
      resetOnReturn: yield* literal("resetOnReturn", options.resetOnReturn, ["rollback", "commit", "none"], "rollback"),
      resetTimeout: yield* duration("resetTimeout", options.resetTimeout, Duration.seconds(10)),
      checkoutRetry: options.checkoutRetry ?? Schedule.recurs(2),
      hooks: options.hooks ?? {},
      reentrant: yield* boolean("reentrant", options.reentrant, false),
      metrics: yield* boolean("metrics", options.metrics, true),
      tracing: yield* boolean("tracing", options.tracing, false),
      echo: yield* boolean("echo", options.echo, false),
      leakDetectionThreshold: yield* duration("leakDetectionThreshold", options.leakDetectionThreshold, Duration.infinity),
      connectTimeout: yield* duration("connectTimeout", options.connectTimeout, Duration.seconds(30)),
      connectRetry: options.connectRetry,
      maxUses: yield* integer("maxUses", options.maxUses, 0, 0),
      maxLifetime,
      maxLifetimeJitter
    }
  })

/**
 * Validate the idle-upkeep options against the pool size they serve.
 *
 * @category validation
 * @since 0.1.0
 */
export const resolveIdle = (options: IdleOptions, poolSize: number): Effect.Effect<ResolvedIdle, PoolConfigError> =>
  Effect.gen(function*() {
    const minIdle = yield* integer("minIdle", options.minIdle, 0, 0)
    if (poolSize > 0 && minIdle > poolSize) {
      return yield* fail("minIdle", minIdle, `must not exceed poolSize (${poolSize})`)
    }
    const housekeepingPeriod = yield* duration("housekeepingPeriod", options.housekeepingPeriod, Duration.seconds(5))
    if (Duration.isZero(housekeepingPeriod) || !Duration.isFinite(housekeepingPeriod)) {
      return yield* fail("housekeepingPeriod", options.housekeepingPeriod, "must be a positive, finite duration")
    }
    return {
      minIdle,
      idleTimeout: yield* duration("idleTimeout", options.idleTimeout, Duration.infinity),
      keepalive: yield* duration("keepalive", options.keepalive, Duration.infinity),
      housekeepingPeriod
    }
  })
