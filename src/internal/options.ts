/**
 * Validation of pool options and their defaults: every option is checked when the layer
 * builds, and a bad value is a `PoolConfigError` naming the field.
 *
 * Each options object is one rule table (see `validate.ts`) typed against its interface, so an
 * option added to `CommonOptions` or `IdleOptions` without a rule here does not compile. A
 * strategy keeps the rule table of its own options in its own module and registers their names
 * in {@link ownOptionNames} (keyed by the strategy names, so a new name without its entry does
 * not compile; {@link resolveOwn} refuses a table whose keys differ from the registered names).
 * The registry is what lets every strategy accept, and ignore, the options of the others.
 *
 * @internal
 */
import { Duration, Effect, Result, Schedule } from "effect"
import { PoolConfigError } from "../PoolError.ts"
import type { ConnectError, ConnectTimeoutError, DisconnectionError } from "../PoolError.ts"
import type { PoolHooks } from "../PoolEvent.ts"
import { strategyNames } from "../PoolOptions.ts"
import type { CommonOptions, IdleOptions, ResetOnReturn, StrategyName } from "../PoolOptions.ts"
import { hookNames } from "./hooks.ts"
import type { Decoded, Rule } from "./validate.ts"
import * as V from "./validate.ts"

export { strategyNames } from "../PoolOptions.ts"
export type { StrategyName } from "../PoolOptions.ts"

/**
 * Idle options after validation and defaults.
 *
 * @internal
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
 * @internal
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

const pool = V.validator((invalid) => new PoolConfigError(invalid))

/** The rules of `CommonOptions`. */
const commonRules = V.rulesFor<CommonOptions<unknown>>()({
  name: V.string({ nonEmpty: true }),
  recycle: V.duration(Duration.infinity),
  prePing: V.boolean(false),
  resetOnReturn: V.literal<ResetOnReturn>(["rollback", "commit", "none"], "rollback"),
  resetTimeout: V.duration(Duration.seconds(10)),
  checkoutRetry: V.schedule<Schedule.Schedule<unknown, DisconnectionError>>(Schedule.recurs(2)),
  hooks: V.hooks<PoolHooks<unknown>>({}, hookNames),
  reentrant: V.boolean(false),
  metrics: V.boolean(true),
  tracing: V.boolean(false),
  echo: V.boolean(false),
  leakDetectionThreshold: V.duration(Duration.infinity),
  connectTimeout: V.duration(Duration.seconds(30)),
  connectRetry: V.schedule<Schedule.Schedule<unknown, ConnectError | ConnectTimeoutError>>(),
  maxUses: V.integer({ min: 0, fallback: 0 }),
  maxLifetime: V.duration(Duration.infinity, { positive: true }),
  // default: 2.5% of maxLifetime (see resolveCommon)
  maxLifetimeJitter: V.duration()
})

/** The rules of `IdleOptions` (QueuePool's background upkeep). */
export const idleRules = V.rulesFor<IdleOptions>()({
  minIdle: V.integer({ min: 0, fallback: 0 }),
  idleTimeout: V.duration(Duration.infinity),
  // A ping per idle connection per housekeeping round at most; below 1 s idle connections are busy.
  keepalive: V.duration(Duration.infinity, {
    min: [Duration.seconds(1), "must be at least 1 second (\"Infinity\": no keepalive)"]
  }),
  housekeepingPeriod: V.period(Duration.seconds(5))
})

/** The sizes of a bounded pool, as options. */
export interface SizeOptions {
  readonly poolSize?: number | undefined
  readonly maxOverflow?: number | undefined
}

/**
 * The sizes of a bounded pool (QueuePool): one rule each, for the layer's options and for
 * `resize` at run time. `poolSize` 0 means no limit (SQLAlchemy's `pool_size=0`); `maxOverflow`
 * -1 means no limit on the overflow.
 */
export const sizeRules = V.rulesFor<SizeOptions>()({
  poolSize: V.integer({ min: 0, fallback: 5 }),
  maxOverflow: V.integer({ min: -1, fallback: 10 })
})

/**
 * Decode one size given to `resize` with the rule the layer option has.
 *
 * @internal
 */
export const decodeSize = (field: keyof typeof sizeRules, value: unknown): Result.Result<number, string> =>
  Result.mapError(
    sizeRules[field].decode(value),
    (rejection) => typeof rejection === "string" ? rejection : rejection.reason
  )

/**
 * The registration of each strategy's own options (beside the common ones), by strategy name.
 * An option of some strategy is accepted (and ignored) by the others, so that swapping the layer
 * needs no other change. The rules live with the strategy; {@link resolveOwn} checks that its
 * table has exactly these names.
 */
export const ownOptionNames = {
  QueuePool: [
    "minIdle",
    "idleTimeout",
    "keepalive",
    "housekeepingPeriod",
    "poolSize",
    "maxOverflow",
    "timeout",
    "lifo"
  ],
  NullPool: [],
  StaticPool: [],
  FiberPool: ["poolSize"],
  AssertionPool: []
} as const satisfies { readonly [S in StrategyName]: ReadonlyArray<string> }

/** The own option names a strategy registered. */
export type OwnOptionName<S extends StrategyName> = (typeof ownOptionNames)[S][number]

/** Every name any strategy accepts. */
const knownKeys: ReadonlyArray<string> = [
  ...new Set([...V.keysOfRules(commonRules), ...strategyNames.flatMap((s) => ownOptionNames[s])])
]

/**
 * Validate the options every strategy shares, and reject names that are no option of any
 * strategy (a misspelled `poolsize` is an error, not a silently ignored default; `poolSize`
 * given to NullPool is accepted, so that swapping the strategy layer needs no other change).
 *
 * @internal
 */
export const resolveCommon = <C>(
  options: CommonOptions<C>,
  strategy: StrategyName
): Effect.Effect<ResolvedCommon<C>, PoolConfigError> =>
  Effect.gen(function*() {
    yield* pool.check(V.notAnObject(options))
    yield* pool.check(V.unknownKey(options, knownKeys, strategy))
    const o = yield* pool.decode(commonRules, options)
    const maxLifetimeJitter = o.maxLifetimeJitter ??
      (Duration.isFinite(o.maxLifetime) ? Duration.times(o.maxLifetime, 0.025) : Duration.zero)
    if (Duration.isFinite(o.maxLifetime) && Duration.isGreaterThanOrEqualTo(maxLifetimeJitter, o.maxLifetime)) {
      return yield* pool.fail("maxLifetimeJitter", options.maxLifetimeJitter, "must be smaller than maxLifetime")
    }
    return { ...o, name: o.name ?? strategy, hooks: o.hooks as PoolHooks<C>, maxLifetimeJitter }
  })

/**
 * Validate a strategy's own options (see {@link resolveCommon} for the common ones) with the rule
 * table of its module, whose keys must be the names it registered in {@link ownOptionNames}.
 *
 * @internal
 */
export const resolveOwn = <S extends StrategyName, R extends { readonly [K in OwnOptionName<S>]: Rule<any> }>(
  _strategy: S,
  rules: R & { readonly [K in Exclude<keyof R, OwnOptionName<S>>]: never },
  options: object
): Effect.Effect<Decoded<R>, PoolConfigError> =>
  pool.decode(rules as unknown as Readonly<Record<string, Rule<unknown>>>, options) as Effect.Effect<
    Decoded<R>,
    PoolConfigError
  >

/**
 * Check the decoded idle-upkeep options against the pool size they serve.
 *
 * @internal
 */
export const resolveIdle = (idle: ResolvedIdle, poolSize: number): Effect.Effect<ResolvedIdle, PoolConfigError> =>
  poolSize > 0 && idle.minIdle > poolSize
    ? pool.fail("minIdle", idle.minIdle, `must not exceed poolSize (${poolSize})`)
    : Effect.succeed({
      minIdle: idle.minIdle,
      idleTimeout: idle.idleTimeout,
      keepalive: idle.keepalive,
      housekeepingPeriod: idle.housekeepingPeriod
    })
