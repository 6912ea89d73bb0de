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
import type { DisconnectionError } from "./PoolError.ts"
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

/**
 * Validate the options every strategy shares.
 *
 * @category validation
 * @since 0.1.0
 */
export const resolveCommon = <C>(
  options: CommonOptions<C>,
  defaultName: string
): Effect.Effect<ResolvedCommon<C>, PoolConfigError> =>
  Effect.gen(function*() {
    if (options.name !== undefined && (typeof options.name !== "string" || options.name.length === 0)) {
      return yield* fail("name", options.name, "must be a non-empty string")
    }
    if (options.checkoutRetry !== undefined && !Schedule.isSchedule(options.checkoutRetry)) {
      return yield* fail("checkoutRetry", options.checkoutRetry, "must be a Schedule")
    }
    if (options.hooks !== undefined && (typeof options.hooks !== "object" || options.hooks === null)) {
      return yield* fail("hooks", options.hooks, "must be an object of hook functions")
    }
    for (const [key, hook] of Object.entries(options.hooks ?? {})) {
      if (hook !== undefined && typeof hook !== "function") return yield* fail(`hooks.${key}`, hook, "must be a function")
    }
    return {
      name: options.name ?? defaultName,
      recycle: yield* duration("recycle", options.recycle, Duration.infinity),
      prePing: yield* boolean("prePing", options.prePing, false),
      resetOnReturn: yield* literal("resetOnReturn", options.resetOnReturn, ["rollback", "commit", "none"], "rollback"),
      resetTimeout: yield* duration("resetTimeout", options.resetTimeout, Duration.seconds(10)),
      checkoutRetry: options.checkoutRetry ?? Schedule.recurs(2),
      hooks: options.hooks ?? {}
    }
  })
