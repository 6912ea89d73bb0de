/**
 * The one set of field rules every options object is validated with: the pool's options (common,
 * idle, each strategy's own), `PgDriver` settings and `PgSql.layer` options.
 *
 * An options object is described once, as a table of rules with exactly its keys:
 * `rulesFor<Options>()({ poolSize: integer({ min: 0, fallback: 5 }), ... })` does not compile
 * when an option of `Options` has no rule or a rule names no option. {@link decode} checks every
 * field against its rule and applies defaults; {@link unknownKey} rejects names that are no option
 * (with a "did you mean" when one is close). Each caller turns an {@link Invalid} into its own
 * error type (`PoolConfigError`, `PgConfigError`), so the rules know nothing of error classes.
 *
 * @internal
 */
import { Duration, Effect, Result, Schedule } from "effect"

/** What was wrong with one field. */
export interface Invalid {
  readonly field: string
  readonly value: unknown
  readonly reason: string
}

/** A rejection: the reason, and the sub-field when the fault is inside the value (`hooks.onCheckout`). */
export interface Rejection {
  readonly reason: string
  readonly path?: string | undefined
  readonly value?: unknown
}

/** The rule of one field. */
export interface Rule<A> {
  /** Decode a given value (never called with `undefined`). */
  readonly decode: (value: unknown) => Result.Result<A, string | Rejection>
  /** The value when the option is not given (or given as `undefined`). */
  readonly fallback: A
}

/** The value a rule decodes to. */
export type RuleType<R> = R extends Rule<infer A> ? A : never

/** One rule per option of `T`. */
export type Rules<T> = { readonly [K in keyof Required<T>]: Rule<any> }

/** The options after decoding. */
export type Decoded<R> = { readonly [K in keyof R]: RuleType<R[K]> }

/**
 * A rule table for every option of `T`, no more and no fewer: an option of `T` without a rule,
 * or a rule for no option of `T`, is a compile error.
 */
export const rulesFor =
  <T>() => <const R extends Rules<T>>(rules: R & { readonly [K in Exclude<keyof R, keyof T>]: never }): R => rules

/**
 * Every key of `T`, as a value: `keysOf<T>()({ a: true, b: true })`. Missing or extra keys are
 * a compile error.
 */
export const keysOf = <T>() => (keys: { readonly [K in keyof Required<T>]: true }): ReadonlyArray<keyof T & string> =>
  Object.keys(keys) as Array<keyof T & string>

/** The option names of a rule table. */
export const keysOfRules = <R extends object>(rules: R): ReadonlyArray<keyof R & string> =>
  Object.keys(rules) as Array<keyof R & string>

/**
 * A rejected value as an error message shows it: strings quoted, objects and arrays as JSON
 * (`{"secs":5}`, `[NaN,0]`), never a throw.
 */
export const showValue = (value: unknown): string => {
  try {
    if (typeof value === "string") return JSON.stringify(value)
    if (typeof value === "bigint") return `${value}n`
    if (typeof value === "function") return "a function"
    if (typeof value === "object" && value !== null && !Duration.isDuration(value) && !Schedule.isSchedule(value)) {
      const json = JSON.stringify(
        value,
        (_key, v: unknown) =>
          typeof v === "number" && !Number.isFinite(v)
            ? `~${v}~`
            : typeof v === "bigint"
            ? `~${v}n~`
            : typeof v === "function"
            ? "~function~"
            : v
      )
      if (json !== undefined) return json.replace(/"~(.*?)~"/g, "$1")
    }
    return String(value)
  } catch {
    return typeof value
  }
}

const ok = Result.succeed
const no = (reason: string): Result.Result<never, string> => Result.fail(reason)

// ------------------------------------------------------------------------------ durations

const durationObjectKeys = new Set([
  "weeks",
  "days",
  "hours",
  "minutes",
  "seconds",
  "milliseconds",
  "microseconds",
  "nanoseconds"
])
const isNumberPart = (v: unknown): boolean => typeof v === "number" && !Number.isNaN(v)

/** `[seconds, nanos]` of two numbers, or a `DurationObject` with at least one known field, all numbers. */
const isDurationParts = (value: object): boolean => {
  if (Array.isArray(value)) return value.length === 2 && value.every(isNumberPart)
  const entries = Object.entries(value).filter(([, v]) => v !== undefined)
  return entries.length > 0 && entries.every(([k, v]) => durationObjectKeys.has(k) && isNumberPart(v))
}

const unitNanos: Readonly<Record<string, number>> = {
  weeks: 604_800e9,
  days: 86_400e9,
  hours: 3_600e9,
  minutes: 60e9,
  seconds: 1e9,
  milliseconds: 1e6,
  microseconds: 1e3,
  nanoseconds: 1
}

/**
 * The input is below zero, even when effect would round it to zero (`-5e-324` milliseconds,
 * `"-0.0000001 millis"`, `{ nanoseconds: -0.4 }`): a negative input is a mistake, not a zero.
 */
const isNegativeInput = (value: unknown): boolean => {
  if (typeof value === "number" || typeof value === "bigint") return value < 0
  if (typeof value === "string") return value.trimStart().startsWith("-")
  if (Array.isArray(value)) return (value[0] as number) * 1e9 + (value[1] as number) < 0
  if (typeof value === "object" && value !== null && !Duration.isDuration(value)) {
    return Object.entries(value).reduce(
      (sum, [k, v]) => sum + (typeof v === "number" ? v * (unitNanos[k] ?? 0) : 0),
      0
    ) < 0
  }
  return false
}

const durationShape = "must be a duration such as \"30 seconds\", a number of milliseconds or \"Infinity\""

/**
 * A `Duration.Input`, strictly: effect decodes `{}`, `{ secs: 5 }` and `[NaN, 0]` as a zero
 * duration, and NaN as NaN; here each is an error (a typo must not become 0). Never negative.
 */
export const parseDuration = (value: unknown): Result.Result<Duration.Duration, string> => {
  if (typeof value === "number" && Number.isNaN(value)) return no("must be a duration, got NaN")
  if (typeof value === "object" && value !== null && !Duration.isDuration(value) && !isDurationParts(value)) {
    return no(durationShape)
  }
  let decoded: Duration.Duration | undefined
  try {
    decoded = Duration.fromInputUnsafe(value as Duration.Input)
  } catch {
    decoded = undefined
  }
  if (decoded === undefined) return no(durationShape)
  if (Duration.isNegative(decoded) || isNegativeInput(value)) return no("must not be negative")
  return ok(decoded)
}

/** Bounds of a duration rule. */
export interface DurationBounds {
  /** Zero is rejected. */
  readonly positive?: boolean | undefined
  /** `"Infinity"` is rejected. */
  readonly finite?: boolean | undefined
  /** Inclusive lower bound, with the reason shown when below. */
  readonly min?: readonly [Duration.Duration, string] | undefined
  /** Inclusive upper bound, with the reason shown when above. */
  readonly max?: readonly [Duration.Duration, string] | undefined
}

/** A duration option (see {@link parseDuration}); without a fallback, absent stays `undefined`. */
export function duration(fallback: Duration.Duration, bounds?: DurationBounds): Rule<Duration.Duration>
export function duration(fallback?: undefined, bounds?: DurationBounds): Rule<Duration.Duration | undefined>
export function duration(
  fallback?: Duration.Duration,
  bounds: DurationBounds = {}
): Rule<Duration.Duration | undefined> {
  const bounded = bounds.positive && bounds.finite
    ? "must be a positive, finite duration"
    : bounds.positive
    ? "must be positive"
    : "must be finite"
  return {
    fallback,
    decode: (value) => {
      const parsed = parseDuration(value)
      if (Result.isFailure(parsed)) return parsed
      const d = parsed.success
      if ((bounds.positive && Duration.isZero(d)) || (bounds.finite && !Duration.isFinite(d))) return no(bounded)
      if (bounds.min !== undefined && Duration.isLessThan(d, bounds.min[0])) return no(bounds.min[1])
      if (bounds.max !== undefined && Duration.isGreaterThan(d, bounds.max[0])) return no(bounds.max[1])
      return ok(d)
    }
  }
}

/**
 * The shortest period of work the library schedules again and again (the pool's housekeeping,
 * the replicas' health checks): below it the timer itself becomes the load, even on an idle pool.
 */
export const minPeriod = Duration.millis(100)

/**
 * The period of repeated background work: a finite duration of at least {@link minPeriod}.
 */
export const period = (fallback: Duration.Duration): Rule<Duration.Duration> => {
  const reason = "must be a finite duration of at least 100 milliseconds (shorter, the timer itself becomes the load)"
  return {
    fallback,
    decode: (value) => {
      const parsed = parseDuration(value)
      if (Result.isFailure(parsed)) return parsed
      const d = parsed.success
      return Duration.isFinite(d) && Duration.isGreaterThanOrEqualTo(d, minPeriod) ? ok(d) : no(reason)
    }
  }
}

// ------------------------------------------------------------------------------- scalars

/** An integer option in `[min, max]`. */
export function integer(
  options: { readonly min: number; readonly max?: number | undefined; readonly fallback: number }
): Rule<number>
export function integer(options: { readonly min: number; readonly max?: number | undefined }): Rule<number | undefined>
export function integer(options: {
  readonly min: number
  readonly max?: number | undefined
  readonly fallback?: number | undefined
}): Rule<number | undefined> {
  const { max, min } = options
  const reason = max === undefined ? `must be an integer >= ${min}` : `must be an integer between ${min} and ${max}`
  return {
    fallback: options.fallback,
    decode: (value) =>
      Number.isSafeInteger(value) && (value as number) >= min && (max === undefined || (value as number) <= max)
        ? ok(value as number)
        : no(reason)
  }
}

/** A boolean option. */
export function boolean(fallback: boolean): Rule<boolean>
export function boolean(): Rule<boolean | undefined>
export function boolean(fallback?: boolean): Rule<boolean | undefined> {
  return {
    fallback,
    decode: (value) => typeof value === "boolean" ? ok(value) : no("must be true or false")
  }
}

/** One of a set of string literals. */
export const literal = <const L extends string>(literals: ReadonlyArray<L>, fallback: L): Rule<L> => ({
  fallback,
  decode: (value) =>
    literals.includes(value as L) ? ok(value as L) : no(`must be one of ${literals.map((l) => `"${l}"`).join(", ")}`)
})

/** A string option; `nonEmpty` rejects `""`, `noNul` rejects a NUL character (PostgreSQL rejects it at connect). */
export const string = (
  options: { readonly nonEmpty?: boolean; readonly noNul?: boolean } = {}
): Rule<string | undefined> => ({
  fallback: undefined,
  decode: (value) => {
    if (typeof value !== "string") return no(options.nonEmpty ? "must be a non-empty string" : "must be a string")
    if (options.nonEmpty && value.length === 0) return no("must be a non-empty string")
    if (options.noNul && value.includes("\0")) return no("must not contain a NUL character")
    return ok(value)
  }
})

/** A `Schedule` (`S` is the schedule type the option declares). */
export function schedule<S extends Schedule.Schedule<any, any, any, any>>(fallback: S): Rule<S>
export function schedule<S extends Schedule.Schedule<any, any, any, any>>(): Rule<S | undefined>
export function schedule<S extends Schedule.Schedule<any, any, any, any>>(fallback?: S): Rule<S | undefined> {
  return {
    fallback,
    decode: (value) => Schedule.isSchedule(value) ? ok(value as S) : no("must be a Schedule")
  }
}

/** A function (`F` is the function type the option declares). */
export const func = <F extends (...args: Array<any>) => unknown>(
  reason = "must be a function"
): Rule<F | undefined> => ({
  fallback: undefined,
  decode: (value) => typeof value === "function" ? ok(value as F) : no(reason)
})

const isPlainRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value)

/**
 * An object of functions (event hooks) named in `names`: a non-function hook, or a name that is
 * no hook (`onChekout`), is named as `hooks.<name>`.
 */
export const hooks = <H extends object>(fallback: H, names: ReadonlyArray<string>): Rule<H> => ({
  fallback,
  decode: (value) => {
    if (!isPlainRecord(value)) return no("must be an object of hook functions")
    for (const [key, hook] of Object.entries(value)) {
      if (hook === undefined) continue
      if (!names.includes(key)) {
        const near = nearest(key, names)
        return Result.fail({
          path: key,
          value: hook,
          reason: `is not a hook${near === undefined ? "" : ` (did you mean "${near}"?)`}`
        })
      }
      if (typeof hook !== "function") return Result.fail({ path: key, value: hook, reason: "must be a function" })
    }
    return ok(value as H)
  }
})

/** A record; `each` checks every value (a reason, or `undefined` when fine). */
export const record = <A extends object>(
  reason: string,
  each?: (key: string, value: unknown) => string | undefined
): Rule<A | undefined> => ({
  fallback: undefined,
  decode: (value) => {
    if (!isPlainRecord(value)) return no(reason)
    if (each !== undefined) {
      for (const [key, v] of Object.entries(value)) {
        const bad = each(key, v)
        if (bad !== undefined) return no(bad)
      }
    }
    return ok(value as A)
  }
})

/** A rule written by hand (`decode` returns a reason to reject, or the value). */
export const custom = <A>(decode: (value: unknown) => Result.Result<A, string | Rejection>, fallback: A): Rule<A> => ({
  fallback,
  decode
})

// -------------------------------------------------------------------------------- objects

/**
 * Decode every field of `options` with its rule (absent: the rule's fallback). The first bad
 * field is returned as an {@link Invalid}.
 */
export const decodeFields = <R extends Record<string, Rule<unknown>>>(
  rules: R,
  options: object
): Result.Result<Decoded<R>, Invalid> => {
  const out: Record<string, unknown> = {}
  const given = options as Record<string, unknown>
  for (const [field, rule] of Object.entries(rules)) {
    const value = given[field]
    if (value === undefined) {
      out[field] = rule.fallback
      continue
    }
    const decoded = rule.decode(value)
    if (Result.isSuccess(decoded)) {
      out[field] = decoded.success
      continue
    }
    const rejection = decoded.failure
    return Result.fail(
      typeof rejection === "string"
        ? { field, value, reason: rejection }
        : {
          field: rejection.path === undefined ? field : `${field}.${rejection.path}`,
          value: rejection.path === undefined ? value : rejection.value,
          reason: rejection.reason
        }
    )
  }
  return Result.succeed(out as Decoded<R>)
}

const normal = (key: string) => key.toLowerCase().replace(/[_-]/g, "")

/** Edit distance (insertions, deletions, substitutions, adjacent swaps), capped. */
const distance = (a: string, b: string): number => {
  const d: Array<Array<number>> = Array.from(
    { length: a.length + 1 },
    (_, i) => Array.from({ length: b.length + 1 }, (_, j) => i === 0 ? j : j === 0 ? i : 0)
  )
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost)
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d[i]![j] = Math.min(d[i]![j]!, d[i - 2]![j - 2]! + 1)
      }
    }
  }
  return d[a.length]![b.length]!
}

/** The known key closest to `key` (same up to case and `_`/`-`, an alias, or one or two typos away). */
export const nearest = (
  key: string,
  known: ReadonlyArray<string>,
  aliases: Readonly<Record<string, string>> = {}
): string | undefined => {
  const k = normal(key)
  const same = known.find((candidate) => normal(candidate) === k)
  if (same !== undefined) return same
  const alias = Object.entries(aliases).find(([from]) => normal(from) === k)?.[1]
  if (alias !== undefined) return alias
  let best: string | undefined
  let bestDistance = Math.min(2, Math.floor(k.length / 3))
  for (const candidate of known) {
    const d = distance(k, normal(candidate))
    if (d <= bestDistance && (best === undefined || d < bestDistance)) {
      best = candidate
      bestDistance = d
    }
  }
  return best
}

/**
 * The first key of `options` that is no option (`known`), as an {@link Invalid} "is not an option
 * of `owner` (did you mean ...?)". A key whose value is `undefined` is ignored.
 */
export const unknownKey = (
  options: object,
  known: ReadonlyArray<string>,
  owner: string,
  aliases?: Readonly<Record<string, string>>
): Invalid | undefined => {
  for (const [key, value] of Object.entries(options)) {
    if (value === undefined || known.includes(key)) continue
    const near = nearest(key, known, aliases)
    return {
      field: key,
      value,
      reason: `is not an option of ${owner}${near === undefined ? "" : ` (did you mean "${near}"?)`}`
    }
  }
  return undefined
}

/** Options must be an object. */
export const notAnObject = (options: unknown, field = "options"): Invalid | undefined =>
  typeof options === "object" && options !== null && !Array.isArray(options)
    ? undefined
    : { field, value: options, reason: "must be an object" }

/**
 * Validation for one error type: `fail` and `decode` as effects failing with `error(invalid)`.
 */
export const validator = <E>(error: (invalid: Invalid) => E) => {
  const fail = (field: string, value: unknown, reason: string): Effect.Effect<never, E> =>
    Effect.fail(error({ field, value, reason }))
  return {
    fail,
    /** Fail with the first `Invalid`, if any. */
    check: (invalid: Invalid | undefined): Effect.Effect<void, E> =>
      invalid === undefined ? Effect.void : Effect.fail(error(invalid)),
    /** Decode every field of `options` with its rule. */
    decode: <R extends Record<string, Rule<unknown>>>(rules: R, options: object): Effect.Effect<Decoded<R>, E> =>
      Effect.suspend(() => {
        const result = decodeFields(rules, options)
        return Result.isSuccess(result) ? Effect.succeed(result.success) : Effect.fail(error(result.failure))
      })
  }
}
