/**
 * One validator, one list: every duration, integer and boolean option of every layer — each pool
 * strategy, `PgDriver.layer`, `PgSql.layer`, `PgReplicas.layer` — rejects the same catalogue of
 * bad values, and random bad values of its kind, with its typed error (`PoolConfigError` /
 * `PgConfigError` / `PgSqlConfigError` / `PgReplicasConfigError`) naming the option; good values
 * of each kind still build.
 *
 * The options iterated here are the catalogues below, each typed against the layer's options
 * interface (`satisfies Catalogue<QueuePool.Options>`): an option added to an interface without
 * a line here does not compile, so no new option escapes the test.
 *
 * No server is needed: `PgDriver.layer` validates when it builds and connects nothing; the pool
 * under `PgSql.layer` connects nothing either (no `minIdle`), nor does a `PgReplicas` router with
 * no replica (no health check).
 */
import { assert, describe, it } from "@effect/vitest"
import { Arbitrary, Cause, Duration, Effect, Exit, Layer, Schema } from "effect"
import type { Driver, PoolOptions } from "effect-db-pool"
import { AssertionPool, FiberPool, NullPool, QueuePool, StaticPool } from "effect-db-pool"
import { PgDriver, PgReplicas, PgSql } from "effect-db-pool/pg"
import { MockDriver } from "effect-db-pool/testing"
import { strategyNames } from "../src/internal/options.ts"
import type { StrategyName } from "../src/internal/options.ts"
import * as V from "../src/internal/validate.ts"

// ---------------------------------------------------------------------------- catalogues

type Kind =
  /** `min`: the least value accepted, in milliseconds; `finite`: "Infinity" is refused. */
  | { readonly kind: "duration"; readonly min?: number; readonly finite?: boolean }
  | { readonly kind: "integer"; readonly min: number; readonly max?: number }
  | { readonly kind: "boolean" }
  /** Strings, literals, schedules, functions, records, secrets: covered by test/options.test.ts and bad-input. */
  | { readonly kind: "other" }

/** One entry per option of `T`, no more, no fewer. */
type Catalogue<T> = { readonly [K in keyof Required<T>]: Kind }

const duration = { kind: "duration" } as const
/** A duration with a lower bound (ms), e.g. the period of repeated background work. */
const durationAtLeast = (min: number, finite = false): Kind => ({ kind: "duration", min, finite })
const boolean = { kind: "boolean" } as const
const other = { kind: "other" } as const
const integer = (min: number, max?: number): Kind =>
  max === undefined ? { kind: "integer", min } : { kind: "integer", min, max }

const common = {
  name: other,
  recycle: duration,
  prePing: boolean,
  resetOnReturn: other,
  resetTimeout: duration,
  checkoutRetry: other,
  hooks: other,
  reentrant: boolean,
  metrics: boolean,
  tracing: boolean,
  echo: boolean,
  leakDetectionThreshold: duration,
  connectTimeout: duration,
  connectRetry: other,
  maxUses: integer(0),
  maxLifetime: duration,
  maxLifetimeJitter: duration
} as const satisfies Catalogue<PoolOptions.CommonOptions>

const idle = {
  minIdle: integer(0),
  idleTimeout: duration,
  keepalive: durationAtLeast(1000),
  housekeepingPeriod: durationAtLeast(100, true)
} as const satisfies Catalogue<PoolOptions.IdleOptions>

const queuePool = {
  ...common,
  ...idle,
  poolSize: integer(0),
  maxOverflow: integer(-1),
  timeout: duration,
  lifo: boolean
} as const satisfies Catalogue<QueuePool.Options>

const fiberPool = { ...common, poolSize: integer(0) } as const satisfies Catalogue<FiberPool.Options>

const pgDriver = {
  url: other,
  host: other,
  // A number or a comma-separated list ("5432,5433"): test/pg/hosts.test.ts.
  port: other,
  path: other,
  ssl: other,
  database: other,
  username: other,
  password: other,
  connectTimeout: duration,
  keepAlive: durationAtLeast(1000),
  applicationName: other,
  startupParameters: other,
  startupOptions: other,
  stream: other,
  types: other,
  prepare: boolean,
  preparedStatementCacheSize: integer(0),
  maxMessageSize: integer(1),
  alwaysReset: boolean,
  sessionReset: other,
  cancelTimeout: durationAtLeast(20),
  pooler: other,
  listenUrl: other,
  targetSessionAttrs: other,
  loadBalanceHosts: other
} as const satisfies Catalogue<PgDriver.Config>

const pgSql = {
  transformResultNames: other,
  transformQueryNames: other,
  transformJson: boolean,
  spanAttributes: other,
  transactionControlTimeout: duration,
  onAcquire: other,
  pipeline: other
} as const satisfies Catalogue<PgSql.Options>

const pgReplicas = {
  balance: other,
  healthCheckInterval: durationAtLeast(100, true),
  // positive and finite: 0 and "Infinity" are refused too (test/pg/replicas.test.ts)
  healthCheckTimeout: { kind: "duration", finite: true },
  consistency: other,
  maxReplayWait: { kind: "duration", finite: true },
  maxLag: { kind: "duration", finite: true },
  name: other,
  sql: other
} as const satisfies Catalogue<PgReplicas.Options>

type Options = Record<string, unknown>

interface Subject {
  readonly name: string
  readonly error: "PoolConfigError" | "PgConfigError" | "PgSqlConfigError" | "PgReplicasConfigError"
  readonly catalogue: Readonly<Record<string, Kind>>
  readonly layer: (options: Options) => Layer.Layer<any, unknown>
}

const mock = <A, E>(layer: Layer.Layer<A, E, Driver.Driver>) => layer.pipe(Layer.provide(MockDriver.layer()))

/** Every strategy (keyed by the one list of strategy names: a new strategy without a line here does not compile). */
const pools = {
  QueuePool: { catalogue: queuePool, layer: (o: Options) => mock(QueuePool.layer(o as QueuePool.Options)) },
  NullPool: {
    catalogue: common satisfies Catalogue<NullPool.Options>,
    layer: (o: Options) => mock(NullPool.layer(o as NullPool.Options))
  },
  StaticPool: {
    catalogue: common satisfies Catalogue<StaticPool.Options>,
    layer: (o: Options) => mock(StaticPool.layer(o as StaticPool.Options))
  },
  FiberPool: { catalogue: fiberPool, layer: (o: Options) => mock(FiberPool.layer(o as FiberPool.Options)) },
  AssertionPool: {
    catalogue: common satisfies Catalogue<AssertionPool.Options>,
    layer: (o: Options) => mock(AssertionPool.layer(o as AssertionPool.Options))
  }
} satisfies { readonly [S in StrategyName]: Omit<Subject, "name" | "error"> }

const subjects: ReadonlyArray<Subject> = [
  ...strategyNames.map((name): Subject => ({ name: `${name}.layer`, error: "PoolConfigError", ...pools[name] })),
  {
    name: "PgDriver.layer",
    error: "PgConfigError",
    catalogue: pgDriver,
    layer: (o) => PgDriver.layer(o as PgDriver.Config)
  },
  {
    name: "PgSql.layer",
    error: "PgSqlConfigError",
    catalogue: pgSql,
    layer: (o) =>
      PgSql.layer(o as PgSql.Options).pipe(Layer.provide(QueuePool.layer()), Layer.provide(PgDriver.layer({})))
  },
  {
    name: "PgReplicas.layer",
    error: "PgReplicasConfigError",
    catalogue: pgReplicas,
    layer: (o) =>
      PgReplicas.layer(
        { primary: QueuePool.layer().pipe(Layer.provideMerge(PgDriver.layer({}))), replicas: [] },
        o as PgReplicas.Options
      )
  }
]

/** The bad values every option of a kind must reject. */
const badValues = (kind: Kind): ReadonlyArray<unknown> => {
  switch (kind.kind) {
    case "duration":
      return [
        { secs: 5 },
        {},
        { seconds: undefined },
        { seconds: Number.NaN },
        { seconds: "5" },
        { seconds: 5, sec: 1 },
        Number.NaN,
        -1,
        -0.5,
        Number.NEGATIVE_INFINITY,
        -1n,
        "soon",
        "5",
        "5 secs",
        "-5 seconds",
        "-Infinity",
        "",
        "Infinity seconds",
        [Number.NaN, 0],
        [0, Number.NaN],
        [1],
        [1, 2, 3],
        ["1", 0],
        [-1, 0],
        true,
        false,
        null,
        // below the bound: "1 nanos" as a housekeeping period kept an idle pool's core busy
        ...(kind.min === undefined
          ? []
          : ["1 nanos", { nanoseconds: 1 }, 0, kind.min - 1, `${kind.min - 0.001} millis`, [0, kind.min * 1e6 - 1]]),
        ...(kind.finite ? ["Infinity", Number.POSITIVE_INFINITY] : [])
      ]
    case "integer":
      return [
        1.5,
        kind.min - 0.5,
        kind.min - 1,
        kind.min - 2,
        ...(kind.max === undefined ? [] : [kind.max + 1]),
        "3",
        String(kind.min),
        Number.NaN,
        Number.POSITIVE_INFINITY,
        Number.NEGATIVE_INFINITY,
        2 ** 53,
        3n,
        null,
        true,
        {},
        [3]
      ]
    case "boolean":
      return ["true", "false", "", 1, 0, Number.NaN, null, {}, [], [true]]
    case "other":
      return []
  }
}

/** Values every option of a kind must accept. */
const goodValues = (kind: Kind): ReadonlyArray<unknown> => {
  switch (kind.kind) {
    case "duration":
      // positive and finite: valid for every duration option (housekeepingPeriod must be both, keepAlive >= 1 s)
      return ["5 seconds", "1 minute", 2500, { seconds: 1, milliseconds: 500 }, [3, 0], Duration.seconds(2)]
    case "integer":
      return [kind.min, kind.min + 1, Math.min(kind.min + 3, kind.max ?? Number.MAX_SAFE_INTEGER)]
    case "boolean":
      return [true, false]
    case "other":
      return []
  }
}

// ------------------------------------------------------------------------ random bad values

const pick = <A>(arbitraries: ReadonlyArray<Arbitrary.Arbitrary<A>>): Arbitrary.Arbitrary<A> =>
  Arbitrary.flatMap(
    Arbitrary.schema(Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: arbitraries.length - 1 }))),
    (i) => arbitraries[i]!
  )
const constants = (values: ReadonlyArray<unknown>): Arbitrary.Arbitrary<unknown> =>
  pick(values.map((v) => Arbitrary.Constant(v)))

const anyString = Arbitrary.schema(Schema.String)
const finite = Arbitrary.schema(Schema.Finite)
const negative = Arbitrary.schema(Schema.Finite.check(Schema.isLessThan(0)))
const naturalInt = Arbitrary.schema(Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 1_000_000 })))
const unit = Arbitrary.schema(Schema.Literals(["millis", "seconds", "minutes", "hours", "days", "weeks"]))
const durationUnits = [
  "weeks",
  "days",
  "hours",
  "minutes",
  "seconds",
  "milliseconds",
  "microseconds",
  "nanoseconds"
] as const
const junk = constants([null, true, false, Symbol("x"), () => 1])

/** Random values that are no duration, or a negative one. */
const badDuration: Arbitrary.Arbitrary<unknown> = pick<unknown>([
  negative,
  Arbitrary.map(naturalInt, (n) => BigInt(-n - 1)),
  Arbitrary.map(Arbitrary.all([naturalInt, unit]), ([n, u]) => `-${n + 1} ${u}`),
  // never a number followed by a unit, never "Infinity"
  Arbitrary.map(anyString, (s) => `x${s}`),
  Arbitrary.map(Arbitrary.all([naturalInt, anyString]), ([n, s]) => `${n} x${s}`),
  // an object with a field that is no duration unit (the `{ secs: 5 }` typo), or none at all
  Arbitrary.map(Arbitrary.all([anyString, finite]), ([k, v]) => ({ [`_${k}`]: v })),
  Arbitrary.map(Arbitrary.all([anyString, finite]), ([k, v]) => ({ seconds: 1, [`${k}_`]: v })),
  // a duration unit holding something else than a number
  Arbitrary.map(
    Arbitrary.all([pick(durationUnits.map((u) => Arbitrary.Constant(u))), anyString]),
    ([u, s]) => ({ [u]: s })
  ),
  // [seconds, nanos] with a NaN, or of the wrong length
  Arbitrary.map(finite, (n) => [Number.NaN, n]),
  Arbitrary.map(finite, (n) => [n, Number.NaN]),
  Arbitrary.map(Arbitrary.array(finite, { maxLength: 5 }), (ns) => ns.length === 2 ? [...ns, 0] : ns),
  junk
])

/** Random values that are no integer in `[min, max]`. */
const badInteger = (min: number, max: number | undefined): Arbitrary.Arbitrary<unknown> =>
  pick<unknown>([
    Arbitrary.map(naturalInt, (n) => min - 1 - n),
    ...(max === undefined ? [] : [Arbitrary.map(naturalInt, (n) => max + 1 + n)]),
    Arbitrary.map(
      Arbitrary.all([
        naturalInt,
        Arbitrary.schema(Schema.Finite.check(Schema.isBetween({ minimum: 0.001, maximum: 0.999 })))
      ]),
      ([n, f]) => min + n + f
    ),
    Arbitrary.map(naturalInt, (n) => String(min + n)),
    Arbitrary.map(naturalInt, (n) => BigInt(min + n)),
    Arbitrary.map(finite, (n) => [n]),
    anyString,
    constants([Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 2 ** 53, {}, null, true])
  ])

/** Random values that are not a boolean. */
const badBoolean: Arbitrary.Arbitrary<unknown> = pick<unknown>([
  anyString,
  finite,
  Arbitrary.map(anyString, (s) => ({ [s]: true })),
  constants([null, [], [true], Number.NaN, 0n, 1n])
])

/**
 * Random durations at least a nanosecond below `min` milliseconds, in every input form (a
 * duration has whole nanoseconds: an input within half a nanosecond of the bound is the bound).
 */
const belowDuration = (min: number): Arbitrary.Arbitrary<unknown> => {
  const below = Arbitrary.schema(Schema.Finite.check(Schema.isBetween({ minimum: 0, maximum: min - 1e-6 })))
  return pick<unknown>([
    below,
    Arbitrary.map(below, (ms) => `${ms} millis`),
    Arbitrary.map(below, (ms) => ({ milliseconds: ms })),
    Arbitrary.map(below, (ms) => Duration.millis(ms))
  ])
}

const badArbitrary = (kind: Kind): Arbitrary.Arbitrary<unknown> | undefined =>
  kind.kind === "duration"
    ? kind.min === undefined ? badDuration : pick([badDuration, belowDuration(kind.min)])
    : kind.kind === "integer"
    ? badInteger(kind.min, kind.max)
    : kind.kind === "boolean"
    ? badBoolean
    : undefined

// ---------------------------------------------------------------------------------- checks

const show = (value: unknown): string => {
  try {
    return typeof value === "bigint" ? `${value}n` : typeof value === "symbol" || typeof value === "function"
      ? String(value)
      : JSON.stringify(
        value,
        (_k, v: unknown) =>
          typeof v === "number" && !Number.isFinite(v) ? String(v) : typeof v === "bigint" ? `${v}n` : v
      ) ?? String(value)
  } catch {
    return String(value)
  }
}

/** Why building `subject` with `{ [field]: value }` is not a typed rejection naming `field`; `undefined` when it is. */
const rejectionProblem = (subject: Subject, field: string, value: unknown): Effect.Effect<string | undefined> =>
  Effect.map(Effect.exit(Effect.scoped(Layer.build(subject.layer({ [field]: value })))), (exit) => {
    const label = `${subject.name}({ ${field}: ${show(value)} })`
    if (Exit.isSuccess(exit)) return `${label}: accepted`
    const failure = exit.cause.reasons.find(Cause.isFailReason)
    if (failure === undefined) return `${label}: not a typed failure: ${Cause.pretty(exit.cause)}`
    const error = failure.error as { readonly _tag?: string; readonly field?: string; readonly message?: string }
    if (error._tag !== subject.error) return `${label}: ${String(error._tag)}, not ${subject.error}`
    if (error.field !== field) return `${label}: names "${error.field}", not "${field}"`
    if (!error.message?.includes(`"${field}"`)) return `${label}: message does not name the field: ${error.message}`
    return undefined
  })

const acceptanceProblem = (subject: Subject, field: string, value: unknown): Effect.Effect<string | undefined> =>
  Effect.map(
    Effect.exit(Effect.scoped(Layer.build(subject.layer({ [field]: value })))),
    (exit) =>
      Exit.isSuccess(exit)
        ? undefined
        : `${subject.name}({ ${field}: ${show(value)} }): rejected: ${Cause.pretty(exit.cause).split("\n")[0]}`
  )

const checked = (subject: Subject) =>
  Object.entries(subject.catalogue).filter((entry): entry is [string, Exclude<Kind, { kind: "other" }>] =>
    entry[1].kind !== "other"
  )

describe("every duration / integer / boolean option of every layer", () => {
  it("the catalogues list options of each kind (the property is not vacuous)", () => {
    const counts = subjects.map((s) => [s.name, checked(s).length] as const)
    for (const [name, n] of counts) assert.isAbove(n, 0, name)
    console.log(`[options property] checked options per layer: ${counts.map(([n, c]) => `${n} ${c}`).join(", ")}`)
  })

  for (const subject of subjects) {
    it.effect(`${subject.name}: the bad-value catalogue is rejected with ${subject.error} naming the option`, () =>
      Effect.gen(function*() {
        const problems: Array<string> = []
        let cases = 0
        for (const [field, kind] of checked(subject)) {
          for (const value of badValues(kind)) {
            cases++
            const problem = yield* rejectionProblem(subject, field, value)
            if (problem !== undefined) problems.push(problem)
          }
        }
        assert.deepStrictEqual(problems, [])
        console.log(`[options property] ${subject.name}: ${cases} catalogue values rejected`)
      }))

    it.effect(`${subject.name}: random bad values of each kind are rejected naming the option (seeded)`, () =>
      Effect.gen(function*() {
        const failures: Array<string> = []
        let runs = 0
        for (const [field, kind] of checked(subject)) {
          const arbitrary = badArbitrary(kind)!
          const result = yield* Arbitrary.checkEffect(
            arbitrary,
            (value) => Effect.map(rejectionProblem(subject, field, value), (problem) => problem === undefined),
            { runs: 100, seed: `${subject.name}.${field}` }
          )
          if (result._tag === "Passed") runs += result.runs
          else {
            const shrunk = result._tag === "Falsified"
              ? yield* rejectionProblem(subject, field, result.shrunkInput)
              : undefined
            failures.push(`${field}: ${shrunk ?? Arbitrary.formatCheckFailure(result)}`)
          }
        }
        assert.deepStrictEqual(failures, [])
        console.log(`[options property] ${subject.name}: ${runs} random bad values rejected`)
      }))

    it.effect(`${subject.name}: good values of each kind build`, () =>
      Effect.gen(function*() {
        const problems: Array<string> = []
        for (const [field, kind] of checked(subject)) {
          for (const value of goodValues(kind)) {
            const problem = yield* acceptanceProblem(subject, field, value)
            if (problem !== undefined) problems.push(problem)
          }
        }
        assert.deepStrictEqual(problems, [])
      }))
  }
})

describe("rule tables and key lists are exact (compile-time)", () => {
  interface Two {
    readonly a?: number | undefined
    readonly b?: boolean | undefined
  }
  it("a missing or extra option does not compile", () => {
    const rules = V.rulesFor<Two>()({ a: V.integer({ min: 0 }), b: V.boolean() })
    // @ts-expect-error an option without a rule
    V.rulesFor<Two>()({ a: V.integer({ min: 0 }) })
    // @ts-expect-error a rule for no option
    V.rulesFor<Two>()({ a: V.integer({ min: 0 }), b: V.boolean(), c: V.boolean() })
    const keys = V.keysOf<Two>()({ a: true, b: true })
    // @ts-expect-error a key missing
    V.keysOf<Two>()({ a: true })
    // @ts-expect-error a key too many
    V.keysOf<Two>()({ a: true, b: true, c: true })
    assert.deepStrictEqual(V.keysOfRules(rules), ["a", "b"])
    assert.deepStrictEqual(keys, ["a", "b"])
  })
})
