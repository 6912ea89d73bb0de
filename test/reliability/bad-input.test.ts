/**
 * Bad input: every option of every strategy, given an invalid value (negative, NaN, wrong type,
 * inconsistent pairs), fails the layer build with a typed `PoolConfigError` naming the field,
 * never a defect and never a surprise at the first checkout. A malformed DATABASE_URL fails the
 * driver layer with a `PgConfigError` naming `url` (without showing it).
 *
 * A wrong password needs a server that enforces passwords: see test/chaos/server.test.ts
 * (embedded server, scram-sha-256).
 */
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Duration, Effect, Exit, Layer, Schedule } from "effect"
import { AssertionPool, FiberPool, NullPool, QueuePool, StaticPool } from "effect-db-pool"
import { PgDriver, PgReplicas } from "effect-db-pool/pg"
import { PgDatabase } from "effect-db-pool/pg/embedded"
import { MockDriver } from "effect-db-pool/testing"
import { everyStrategy } from "../helpers.ts"
import { classify } from "./harness.ts"

type Case = readonly [field: string, options: Record<string, unknown>]

const durationField = (field: string): ReadonlyArray<Case> => [
  [field, { [field]: -1 }],
  [field, { [field]: Number.NaN }],
  [field, { [field]: "-5 seconds" }],
  [field, { [field]: "soon" }],
  [field, { [field]: true }],
  [field, { [field]: {} }],
  [field, { [field]: { secs: 5 } }],
  [field, { [field]: [Number.NaN, 0] }],
  [field, { [field]: null }]
]
const booleanField = (field: string): ReadonlyArray<Case> => [
  [field, { [field]: "yes" }],
  [field, { [field]: 1 }],
  [field, { [field]: null }]
]
const integerField = (field: string, min: number): ReadonlyArray<Case> => [
  [field, { [field]: min - 1 }],
  [field, { [field]: 1.5 }],
  [field, { [field]: Number.NaN }],
  [field, { [field]: Number.POSITIVE_INFINITY }],
  [field, { [field]: "5" }],
  [field, { [field]: null }]
]

const common: ReadonlyArray<Case> = [
  ["name", { name: "" }],
  ["name", { name: 5 }],
  ...durationField("recycle"),
  ...booleanField("prePing"),
  ["resetOnReturn", { resetOnReturn: "ROLLBACK" }],
  ["resetOnReturn", { resetOnReturn: true }],
  ["resetOnReturn", { resetOnReturn: null }],
  ...durationField("resetTimeout"),
  ["checkoutRetry", { checkoutRetry: "recurs(2)" }],
  ["checkoutRetry", { checkoutRetry: { times: 2 } }],
  ["checkoutRetry", { checkoutRetry: null }],
  ["hooks", { hooks: 5 }],
  ["hooks", { hooks: null }],
  ["hooks.onCheckout", { hooks: { onCheckout: "log" } }],
  ...booleanField("reentrant"),
  ...booleanField("metrics"),
  ...booleanField("tracing"),
  ...booleanField("echo"),
  ...durationField("leakDetectionThreshold"),
  ...durationField("connectTimeout"),
  ["connectRetry", { connectRetry: 3 }],
  ["connectRetry", { connectRetry: null }],
  ...integerField("maxUses", 0),
  ...durationField("maxLifetime"),
  ...durationField("maxLifetimeJitter"),
  // inconsistent pairs / values
  ["maxLifetime", { maxLifetime: 0 }],
  ["maxLifetimeJitter", { maxLifetime: "1 minute", maxLifetimeJitter: "1 minute" }],
  ["maxLifetimeJitter", { maxLifetime: "1 minute", maxLifetimeJitter: "2 minutes" }]
]

const queueOnly: ReadonlyArray<Case> = [
  ...integerField("poolSize", 0),
  ...integerField("maxOverflow", -1),
  ...durationField("timeout"),
  ...booleanField("lifo"),
  ...integerField("minIdle", 0),
  ...durationField("idleTimeout"),
  ...durationField("keepalive"),
  ...durationField("housekeepingPeriod"),
  // inconsistent pairs / values
  ["minIdle", { poolSize: 3, minIdle: 4 }],
  ["minIdle", { minIdle: 6 }], // above the default poolSize (5)
  ["housekeepingPeriod", { housekeepingPeriod: 0 }],
  ["housekeepingPeriod", { housekeepingPeriod: "Infinity" }],
  // repeated background work below its bound: the timer itself becomes the load
  ["housekeepingPeriod", { housekeepingPeriod: "1 nanos" }],
  ["housekeepingPeriod", { housekeepingPeriod: 99 }],
  ["housekeepingPeriod", { housekeepingPeriod: { microseconds: 99_999 } }],
  ["keepalive", { keepalive: 0 }],
  ["keepalive", { keepalive: "1 nanos" }],
  ["keepalive", { keepalive: "999 millis" }]
]

const fiberOnly: ReadonlyArray<Case> = integerField("poolSize", 0)

/** Every strategy (a strategy without its row here does not compile). */
const strategies = everyStrategy<{
  readonly layer: (options: any) => Layer.Layer<any, unknown, any>
  readonly cases: ReadonlyArray<Case>
}>({
  QueuePool: { layer: QueuePool.layer, cases: [...common, ...queueOnly] },
  NullPool: { layer: NullPool.layer, cases: common },
  StaticPool: { layer: StaticPool.layer, cases: common },
  FiberPool: { layer: FiberPool.layer, cases: [...common, ...fiberOnly] },
  AssertionPool: { layer: AssertionPool.layer, cases: common }
}).map(([name, strategy]) => ({ name, ...strategy }))

const build = <E>(layer: Layer.Layer<any, E, any>) => Effect.exit(Effect.scoped(Layer.build(layer)))

describe("bad input", () => {
  for (const s of strategies) {
    it.effect(`${s.name}: every invalid option fails the layer with PoolConfigError naming the field`, () =>
      Effect.gen(function*() {
        const problems: Array<string> = []
        for (const [field, options] of s.cases) {
          const exit = yield* build(s.layer(options as any).pipe(Layer.provide(MockDriver.layer())))
          const shown = JSON.stringify(
            options,
            (_k, v) => (typeof v === "number" && !Number.isFinite(v) ? String(v) : v)
          )
          if (Exit.isSuccess(exit)) {
            problems.push(`${shown}: the layer built`)
            continue
          }
          const outcome = classify(exit)
          if (outcome !== "fail:PoolConfigError") {
            problems.push(`${shown}: ${outcome}`)
            continue
          }
          const error = (exit.cause.reasons[0] as { error: { field: string; message: string } }).error
          if (error.field !== field) problems.push(`${shown}: names "${error.field}", not "${field}"`)
          if (!error.message.includes(`"${field}"`)) {
            problems.push(`${shown}: message does not name the field: ${error.message}`)
          }
        }
        assert.deepStrictEqual(problems, [])
        console.log(`[bad input] ${s.name}: ${s.cases.length} invalid option values rejected`)
      }))
  }

  it.effect("valid edge values still build (0 timeouts, unlimited sizes, Infinity)", () =>
    Effect.gen(function*() {
      const ok = [
        QueuePool.layer({ poolSize: 0, maxOverflow: -1, timeout: 0, recycle: "Infinity", maxUses: 0 }),
        QueuePool.layer({
          poolSize: 2,
          minIdle: 2,
          timeout: "Infinity",
          maxLifetime: "1 minute",
          maxLifetimeJitter: 0
        }),
        QueuePool.layer({ checkoutRetry: Schedule.recurs(0), connectRetry: Schedule.recurs(1), timeout: 0.5 }),
        QueuePool.layer({
          timeout: { seconds: 2, milliseconds: 500 },
          recycle: [60, 0],
          resetTimeout: Duration.seconds(1)
        }),
        FiberPool.layer({ poolSize: 0 })
      ]
      for (const layer of ok) {
        const exit = yield* build(layer.pipe(Layer.provide(MockDriver.layer())))
        assert.isTrue(Exit.isSuccess(exit), classify(exit))
      }
    }))

  it.effect("a period below its bound fails at layer build naming the field and the bound; the bound itself builds", () =>
    Effect.gen(function*() {
      const cases = [
        [
          QueuePool.layer({ minIdle: 1, housekeepingPeriod: "1 nanos" }),
          "housekeepingPeriod",
          "at least 100 milliseconds"
        ],
        [QueuePool.layer({ keepalive: "10 millis" }), "keepalive", "at least 1 second"]
      ] as const
      for (const [layer, field, bound] of cases) {
        const exit = yield* build(layer.pipe(Layer.provide(MockDriver.layer())))
        assert.strictEqual(classify(exit), "fail:PoolConfigError")
        if (Exit.isFailure(exit)) {
          const error = (exit.cause.reasons[0] as { error: { field: string; message: string } }).error
          assert.strictEqual(error.field, field)
          assert.include(error.message, bound)
        }
      }
      const atBound = QueuePool.layer({ minIdle: 1, keepalive: "1 second", housekeepingPeriod: "100 millis" })
      assert.isTrue(Exit.isSuccess(yield* build(atBound.pipe(Layer.provide(MockDriver.layer())))))
    }))

  it.effect("PgReplicas: a health-check interval below 100 ms fails with PgReplicasConfigError naming it (no server needed)", () =>
    Effect.gen(function*() {
      // The driver layer connects nothing when it builds, and neither does a pool without minIdle.
      const pool = QueuePool.layer().pipe(Layer.provideMerge(PgDriver.layer({})))
      for (const healthCheckInterval of ["1 nanos", "99 millis", 0, "Infinity"] as const) {
        const exit = yield* build(PgReplicas.layer({ primary: pool, replicas: [pool] }, { healthCheckInterval }))
        assert.strictEqual(classify(exit), "fail:PgReplicasConfigError", String(healthCheckInterval))
        if (Exit.isFailure(exit)) {
          const error = (exit.cause.reasons[0] as { error: PgReplicas.PgReplicasConfigError }).error
          assert.strictEqual(error.field, "healthCheckInterval")
          assert.include(error.message, "at least 100 milliseconds")
        }
      }
      assert.isTrue(
        Exit.isSuccess(
          yield* build(PgReplicas.layer({ primary: pool, replicas: [pool] }, { healthCheckInterval: "100 millis" }))
        )
      )
    }))

  const malformedUrls = [
    "not a url",
    "http://127.0.0.1:5432/test",
    "postgres://postgres@127.0.0.1:notaport/test",
    "postgres://postgres@127.0.0.1:99999/test",
    "mysql://root@127.0.0.1/test"
  ]
  it.effect("a malformed DATABASE_URL fails the driver layer with PgConfigError naming url, without echoing it", () =>
    Effect.gen(function*() {
      for (const url of malformedUrls) {
        const driver = Layer.unwrap(
          Effect.map(Effect.service(PgDatabase.PgDatabase), (db) => PgDriver.layer({ url: db.url }))
        ).pipe(
          Layer.provide(PgDatabase.layer()),
          Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnv({ env: { DATABASE_URL: url } })))
        )
        const exit = yield* build(driver)
        assert.strictEqual(classify(exit), "fail:PgConfigError", url)
        if (Exit.isFailure(exit)) {
          const error = (exit.cause.reasons[0] as { error: PgDriver.PgConfigError }).error
          assert.strictEqual(error.field, "url")
          assert.include(error.message, "postgres://")
          assert.notInclude(error.message, url)
        }
      }
    }))
})
