/**
 * Interruption and fault matrix (in the style of deadpool's tests), on every strategy.
 *
 * For each of connect, ping (pre-ping on), reset (rollback), close and the `onCheckout` hook,
 * each behaviour (ok / fail / disconnect / slow / hang), the other operations ok, plus rounds
 * where every operation picks a random behaviour per call: many fibers check out with tiny
 * random timeouts and interruptions (live clock, tight bounds). While it runs, the pool's counts
 * are sampled (from every hook and a sampler fiber); afterwards nothing is checked out, nobody
 * waits, every raw connection still open is one the pool holds idle, the pool still serves, and
 * dispose / shutdown leave no connection open. Every failure a user sees is typed. Some rounds
 * suspend and resume the pool at random while the users run.
 *
 * Replay a run with RELIABILITY_SEED=<seed printed below>.
 */
import { afterAll, assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, References, Scope } from "effect"
import type { ConnectionPool } from "effect-db-pool"
import { Driver, PoolError } from "effect-db-pool"
import type { PoolEvent } from "effect-db-pool"
import { MockDriver } from "effect-db-pool/testing"
import type { Outcome, Rng, StrategyUnderTest } from "./harness.ts"
import { classify, seeded, seedFromEnv, strategies } from "./harness.ts"

type Operation = "connect" | "ping" | "rollback" | "close" | "onCheckout"
type Behaviour = "ok" | "fail" | "disconnect" | "slow" | "hang"

const operations: ReadonlyArray<Operation> = ["connect", "ping", "rollback", "close", "onCheckout"]
const faults: ReadonlyArray<Behaviour> = ["fail", "disconnect", "slow", "hang"]
const USERS = 24
const MIX_ROUNDS = 4

/** Failures a user of this matrix may legitimately see. */
const expected = new Set<Outcome>([
  "success",
  "interrupted",
  "fail:TimeoutError", // the user's own Effect.timeout
  "fail:UserError",
  "fail:HookError", // a plain failure of the scripted onCheckout hook passes through
  "fail:PoolTimeoutError",
  "fail:ConnectError",
  "fail:ConnectTimeoutError",
  "fail:ConnectionInvalidatedError",
  "fail:DriverError",
  "fail:AssertionPoolError",
  "fail:PoolClosedError" // shutdown mid-flight
])

class UserError {
  readonly _tag = "UserError"
}
class HookError {
  readonly _tag = "HookError"
}

interface Combination {
  readonly label: string
  readonly behaviourOf: (operation: Operation) => Behaviour
  /** Close the pool's scope while the users run. */
  readonly shutdownMidFlight?: boolean
  /** Suspend and resume the pool at random while the users run (maintenance). */
  readonly maintenance?: boolean
}

const seed = seedFromEnv()
let combinations = 0
const outcomes = new Map<string, number>()

afterAll(() => {
  const summary = Array.from(outcomes.entries()).sort().map(([k, v]) => `${k}=${v}`).join(" ")
  console.log(`[reliability matrix] seed=${seed} combinations=${combinations} users=${combinations * USERS} ${summary}`)
})

const mockBehaviour = (rng: Rng, b: Behaviour): MockDriver.MockBehaviour => {
  switch (b) {
    case "slow":
      return { delay: `${rng.int(1, 3)} millis` }
    case "ok":
    case "fail":
    case "disconnect":
    case "hang":
      return b
  }
}

const hookEffect = (rng: Rng, b: Behaviour): Effect.Effect<void, PoolError.DisconnectionError> => {
  switch (b) {
    case "ok":
      return Effect.void
    case "fail":
      return Effect.fail(new HookError() as unknown as PoolError.DisconnectionError)
    case "disconnect":
      return Effect.fail(new PoolError.DisconnectionError({ cause: "scripted" }))
    case "slow":
      return Effect.sleep(`${rng.int(1, 3)} millis`)
    case "hang":
      return Effect.never
  }
}

/** One combination on a fresh pool and mock: run the users, then check every invariant. */
const runCombination = (s: StrategyUnderTest, combo: Combination, rng: Rng) =>
  Effect.gen(function*() {
    const mock = MockDriver.make()
    const violations: Array<string> = []
    const holder: { pool: ConnectionPool.Service<MockDriver.MockConnection> | undefined } = { pool: undefined }
    const { limits } = s
    let faulty = true
    const detached = new Set<MockDriver.MockConnection>()
    const behaviourOf = (op: Operation): Behaviour => (faulty ? combo.behaviourOf(op) : "ok")

    const check = (where: string) =>
      Effect.suspend(() => {
        const pool = holder.pool
        if (pool === undefined) return Effect.void
        return Effect.map(pool.status, (st) => {
          // A detached connection is the user's until its handle is returned: not the pool's to count.
          const open = mock.open().filter((c) => !detached.has(c)).length
          const bad = (what: string) => {
            if (violations.length < 20) violations.push(`${where}: ${what} ${JSON.stringify(st)} open=${open}`)
          }
          if (st.checkedOut < 0 || st.checkedIn < 0 || st.waiting < 0) bad("negative count")
          if (limits.maxOverflow !== undefined && st.overflow > limits.maxOverflow) bad("overflow above max")
          if (limits.maxCheckedOut !== undefined && st.checkedOut > limits.maxCheckedOut) bad("checkedOut above max")
          if (limits.maxCheckedIn !== undefined && st.checkedIn > limits.maxCheckedIn) bad("checkedIn above max")
          if (limits.maxOpen !== undefined && open > limits.maxOpen) bad("too many open raw connections")
        })
      })
    const sampling = (name: string) => () => check(name)

    const scope = yield* Scope.make()
    const pool = (yield* s.make({
      ...s.options,
      prePing: true,
      resetOnReturn: "rollback",
      resetTimeout: "8 millis",
      connectTimeout: "8 millis",
      hooks: {
        onConnect: sampling("connect"),
        onReset: sampling("reset"),
        onCheckin: sampling("checkin"),
        onInvalidate: sampling("invalidate"),
        onClose: sampling("close"),
        onDetach: (event: PoolEvent.PoolEvent<MockDriver.MockConnection>) =>
          Effect.andThen(
            Effect.sync(() => {
              if (event.connection !== undefined) detached.add(event.connection)
            }),
            check("detach")
          ),
        onCheckout: () =>
          Effect.andThen(check("checkout"), Effect.suspend(() => hookEffect(rng, behaviourOf("onCheckout"))))
      }
    }).pipe(
      Effect.provide(Driver.layer(mock.driver)),
      Scope.provide(scope),
      Effect.orDie
    )) as ConnectionPool.Service<MockDriver.MockConnection>
    holder.pool = pool
    for (const op of ["connect", "ping", "rollback", "close"] as const) {
      mock.set(op, () => mockBehaviour(rng, behaviourOf(op)))
    }

    const sampler = yield* Effect.forkChild(Effect.forever(Effect.andThen(check("sampler"), Effect.yieldNow)))

    const user = (i: number) =>
      Effect.gen(function*() {
        yield* Effect.sleep(`${rng.int(0, 2)} millis`)
        const hold = rng.int(0, 3)
        const action = rng.next()
        const body = (c: ConnectionPool.PooledConnection<MockDriver.MockConnection>): Effect.Effect<void, unknown> =>
          Effect.andThen(
            Effect.sleep(`${hold} millis`),
            action < 0.08
              ? c.invalidate("user")
              : action < 0.14
              ? c.softInvalidate("user")
              : action < 0.18
              ? c.detach
              : action < 0.26
              ? Effect.fail(new UserError())
              : Effect.asVoid(c.raw) as Effect.Effect<void, unknown>
          )
        const work = i % 2 === 0 ? Effect.scoped(Effect.flatMap(pool.checkout, body)) : pool.use(body)
        const mode = rng.next()
        if (mode < 0.45) return yield* Effect.exit(Effect.timeout(work, `${rng.int(1, 10)} millis`))
        if (mode < 0.9) {
          const fiber = yield* Effect.forkChild(work)
          const wait = rng.int(0, 6)
          if (wait === 0) {
            for (let k = rng.int(0, 3); k > 0; k--) yield* Effect.yieldNow
          } else {
            yield* Effect.sleep(`${wait} millis`)
          }
          yield* Fiber.interrupt(fiber)
          return yield* Fiber.await(fiber)
        }
        return yield* Effect.exit(Effect.timeout(work, "60 millis"))
      })

    const users = yield* Effect.forkChild(
      Effect.forEach(Array.from({ length: USERS }, (_, i) => i), user, { concurrency: "unbounded" })
    )
    if (combo.shutdownMidFlight) {
      yield* Effect.sleep(`${rng.int(1, 4)} millis`)
      yield* Scope.close(scope, Exit.void)
    }
    if (combo.maintenance) {
      for (let k = 0; k < 6; k++) {
        yield* pool.suspend
        yield* Effect.sleep(`${rng.int(0, 3)} millis`)
        yield* pool.resume
        yield* Effect.sleep(`${rng.int(0, 2)} millis`)
      }
    }
    const exits = yield* Fiber.join(users).pipe(
      Effect.timeoutOrElse({
        duration: "5 seconds",
        orElse: () => Effect.die(new Error(`${s.name} ${combo.label}: users did not finish within 5 s (hang)`))
      })
    )
    yield* check("after")
    yield* Fiber.interrupt(sampler)

    const label = `${s.name} ${combo.label} (seed ${seed})`
    for (const exit of exits) {
      const outcome = classify(exit)
      outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1)
      assert.isTrue(expected.has(outcome), `${label}: unexpected outcome ${outcome}`)
    }
    assert.deepStrictEqual(violations, [], `${label}: invariant violated while running`)
    const status = yield* pool.status
    if (combo.shutdownMidFlight) {
      // Closed while in use: whatever came back afterwards was closed, nobody waits, nothing is open.
      assert.strictEqual(status.waiting, 0, `${label}: waiters left behind`)
      assert.strictEqual(status.checkedOut, 0, `${label}: checkedOut after shutdown ${JSON.stringify(status)}`)
      assert.strictEqual(status.checkedIn, 0, `${label}: idle after shutdown ${JSON.stringify(status)}`)
      assert.strictEqual(mock.open().filter((c) => !detached.has(c)).length, 0, `${label}: open after shutdown`)
      const after = yield* Effect.exit(pool.use(() => Effect.void))
      assert.strictEqual(classify(after), "fail:PoolClosedError", `${label}: checkout after shutdown`)
      combinations++
      return
    }
    assert.strictEqual(status.checkedOut, 0, `${label}: checkedOut after the users ended ${JSON.stringify(status)}`)
    assert.strictEqual(status.waiting, 0, `${label}: waiters left behind`)
    assert.isAtMost(
      mock.open().length,
      status.checkedIn,
      `${label}: raw connections the pool does not hold ${JSON.stringify(status)}`
    )

    // The pool still serves once the faults are gone.
    faulty = false
    mock.reset()
    const served = yield* Effect.exit(Effect.timeout(pool.use((c) => c.raw), "1 second"))
    assert.isTrue(
      Exit.isSuccess(served),
      `${label}: the pool does not serve after the faults: ${String(classify(served))}`
    )
    yield* pool.dispose
    assert.strictEqual(mock.open().length, 0, `${label}: open after dispose`)
    const disposed = yield* pool.status
    assert.strictEqual(disposed.checkedIn, 0)
    assert.strictEqual(disposed.checkedOut, 0)
    yield* Scope.close(scope, Exit.void)
    assert.strictEqual(mock.open().length, 0, `${label}: open after shutdown`)
    combinations++
  })

const combinationsFor = (rng: Rng): ReadonlyArray<Combination> => {
  const list: Array<Combination> = [{ label: "all ok", behaviourOf: () => "ok" }]
  for (const op of operations) {
    for (const fault of faults) {
      list.push({ label: `${op}=${fault}`, behaviourOf: (o) => (o === op ? fault : "ok") })
    }
  }
  for (let round = 1; round <= MIX_ROUNDS; round++) {
    list.push({
      label: `random mix #${round}`,
      behaviourOf: () => (rng.next() < 0.6 ? "ok" : rng.pick(faults))
    })
  }
  list.push({ label: "suspend/resume mid-flight, all ok", behaviourOf: () => "ok", maintenance: true })
  list.push({
    label: "suspend/resume mid-flight, random mix",
    behaviourOf: () => (rng.next() < 0.6 ? "ok" : rng.pick(faults)),
    maintenance: true
  })
  list.push({ label: "shutdown mid-flight, all ok", behaviourOf: () => "ok", shutdownMidFlight: true })
  for (let round = 1; round <= 2; round++) {
    list.push({
      label: `shutdown mid-flight, random mix #${round}`,
      behaviourOf: () => (rng.next() < 0.6 ? "ok" : rng.pick(faults)),
      shutdownMidFlight: true
    })
  }
  return list
}

describe("fault and interruption matrix", () => {
  strategies.forEach((s, index) => {
    it.live(
      `${s.name}: every operation × ok/fail/disconnect/slow/hang, and random mixes, under random timeouts and interruptions`,
      () =>
        Effect.gen(function*() {
          const rng = seeded(seed + index)
          for (const combo of combinationsFor(rng)) yield* runCombination(s, combo, rng)
        }).pipe(Effect.provideService(References.MinimumLogLevel, "Error")),
      60_000
    )
  })
})
