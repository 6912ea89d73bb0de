/**
 * PoolManager keys carry credentials, so they are security boundaries:
 *
 * - two different passwords never share a key (the former key, effect's 31-bit `Hash.hash` of
 *   the password, let a searched-for second password reach tenant A's pool), and no key, log
 *   line or error shows a secret;
 * - a pool whose connects fail authentication is not kept for its key;
 * - the number of pools is bounded: a finite default idle time-to-live, and `maxPools` closes
 *   the least recently used idle pool (never one in use).
 */
import { assert, describe, it } from "@effect/vitest"
import { Cause, Effect, Exit, Hash, Layer, Logger, Redacted, Scope } from "effect"
import { Driver, PoolError, PoolManager, QueuePool } from "effect-db-pool"
import { MockDriver } from "effect-db-pool/testing"
import { AuthenticationError, SqlError } from "effect/sql/SqlError"
import { TestClock } from "effect/testing"

/**
 * A real collision of effect's `Hash.string` (what `Hash.hash` does with a string): found by
 * trying "wrong-" + n.toString(36) for n = 0, 1, 2, ... until the hash matched tenant A's
 * (n = 1078712780, about a minute of one core in plain JavaScript). The test asserts the equality.
 */
const passwordA = "tenant-a-S3cret!"
const collidingPassword = "wrong-hu8k3w"

interface Login {
  readonly host: string
  readonly user: string
  readonly password: Redacted.Redacted<string>
}

const login = (user: string, password: string, host = "db"): Login => ({
  host,
  user,
  password: Redacted.make(password)
})

/** Postgres' answer to a wrong password, as its driver reports it (SQLSTATE 28P01). */
const authFailure = () =>
  Object.assign(new Error("password authentication failed for user"), { code: "28P01", severity: "FATAL" })

interface Built {
  readonly id: number
  readonly user: string
  readonly mock: MockDriver.MockDriverControl
}

/**
 * A manager over a fake server: `accounts` maps users to passwords; a pool for wrong
 * credentials gets a driver whose connects fail with 28P01. `alive` holds the ids of the pools
 * not yet closed.
 */
const fixture = (
  options: Partial<PoolManager.Options<Login, PoolError.PoolConfigError, never>> = {},
  accounts: Record<string, string> = { a: passwordA },
  poolOptions: { readonly echo?: boolean } = {}
) =>
  Effect.gen(function*() {
    const built: Array<Built> = []
    const alive = new Set<number>()
    const manager = yield* PoolManager.make<Login, PoolError.PoolConfigError>({
      pool: (args) => {
        const id = built.length + 1
        const mock = MockDriver.make()
        built.push({ id, user: args.user, mock })
        const driver: Driver.DriverShape<MockDriver.MockConnection> =
          accounts[args.user] === Redacted.value(args.password)
            ? mock.driver
            : { ...mock.driver, connect: Effect.suspend(() => Effect.fail(authFailure())) }
        const lifetime = Layer.effectDiscard(
          Effect.acquireRelease(Effect.sync(() => alive.add(id)), () => Effect.sync(() => alive.delete(id)))
        )
        return QueuePool.layer({ poolSize: 2, ...poolOptions }).pipe(
          Layer.provide(Driver.layer(driver)),
          Layer.merge(lifetime)
        )
      },
      ...options
    })
    return { manager, built, alive }
  })

const failureOf = (exit: Exit.Exit<unknown, unknown>): unknown =>
  Exit.isFailure(exit) ? exit.cause.reasons.find(Cause.isFailReason)?.error : undefined

describe("PoolManager keys", () => {
  it.effect("a colliding pair of passwords (same Hash.string) gets different keys and different pools", () =>
    Effect.gen(function*() {
      assert.notStrictEqual(passwordA, collidingPassword)
      assert.strictEqual(Hash.string(passwordA), Hash.string(collidingPassword))
      assert.strictEqual(Hash.hash(passwordA), Hash.hash(collidingPassword))
      // The former default key turned a Redacted into `<redacted ${Hash.hash(value)}>`: one key for both.
      const former = (password: string) => `{"password":"<redacted ${Hash.hash(password)}>","user":"a"}`
      assert.strictEqual(former(passwordA), former(collidingPassword))

      const keyA = PoolManager.defaultKey(login("a", passwordA))
      const keyB = PoolManager.defaultKey(login("a", collidingPassword))
      assert.notStrictEqual(keyA, keyB)

      const { manager, built } = yield* fixture()
      // Tenant A logs in and keeps a pool.
      const poolA = yield* manager.get(login("a", passwordA))
      yield* manager.use(login("a", passwordA), () => Effect.void)
      // The colliding wrong password gets a pool of its own, and its login fails.
      const poolB = yield* manager.get(login("a", collidingPassword))
      assert.notStrictEqual(poolA, poolB)
      const exit = yield* Effect.exit(manager.use(login("a", collidingPassword), () => Effect.void))
      assert.instanceOf(failureOf(exit), PoolError.ConnectError)
      // A is served by its own pool still: nothing rebuilt, nothing poisoned.
      yield* manager.use(login("a", passwordA), () => Effect.void)
      assert.strictEqual(yield* manager.get(login("a", passwordA)), poolA)
      assert.deepStrictEqual(built.map((b) => b.id), [1, 2])
      assert.strictEqual(built[0]!.mock.connectAttempts(), 1)
    }))

  it.effect("the colliding password asking first does not lock tenant A out", () =>
    Effect.gen(function*() {
      const { manager } = yield* fixture()
      const wrong = yield* Effect.exit(manager.use(login("a", collidingPassword), () => Effect.void))
      assert.isTrue(Exit.isFailure(wrong))
      const right = yield* Effect.exit(manager.use(login("a", passwordA), (c) => Effect.succeed(c.slot)))
      assert.isTrue(Exit.isSuccess(right))
    }))

  it.effect("keys, keyOf, errors and log lines never contain the secret", () =>
    Effect.gen(function*() {
      const lines: Array<string> = []
      const capture = Logger.layer([Logger.make((o) => void lines.push(String(o.message), Cause.pretty(o.cause)))])
      // echo: the pools log every event too.
      const { manager } = yield* fixture({}, { a: passwordA }, { echo: true })
      const program = Effect.gen(function*() {
        yield* manager.use(login("a", passwordA), () => Effect.log("used"))
        const exit = yield* Effect.exit(manager.use(login("a", collidingPassword), () => Effect.void))
        yield* Effect.logError(Cause.pretty(Exit.isFailure(exit) ? exit.cause : Cause.empty))
        return exit
      })
      const exit = yield* program.pipe(Effect.provide(capture))
      const keys = yield* manager.keys
      const text = [
        ...lines,
        ...keys,
        manager.keyOf(login("a", passwordA)),
        manager.keyOf(login("a", collidingPassword)),
        String(failureOf(exit)),
        JSON.stringify(failureOf(exit))
      ].join("\n")
      assert.isAbove(lines.length, 0)
      assert.notInclude(text, passwordA)
      assert.notInclude(text, collidingPassword)
      assert.match(keys[0]!, /"password":"<redacted:[0-9a-f]{32}>"/)
    }))

  it.effect("a plain string cannot pass for a Redacted fingerprint; a string and a number differ", () =>
    Effect.sync(() => {
      const redacted = PoolManager.defaultKey({ password: Redacted.make(passwordA) })
      const fingerprint = JSON.parse(redacted).password as string
      assert.match(fingerprint, /^<redacted:[0-9a-f]{32}>$/)
      assert.notStrictEqual(PoolManager.defaultKey({ password: fingerprint }), redacted)
      assert.notStrictEqual(
        PoolManager.defaultKey({ password: Redacted.make("1") }),
        PoolManager.defaultKey({ password: Redacted.make(1) })
      )
      // Stable within the process; object key order does not matter.
      assert.strictEqual(PoolManager.defaultKey({ password: Redacted.make(passwordA) }), redacted)
      assert.strictEqual(
        PoolManager.defaultKey({ b: 1, a: Redacted.make("x") }),
        PoolManager.defaultKey({ a: Redacted.make("x"), b: 1 })
      )
    }))

  it.effect("a custom key may return an object (Redacted fingerprinted); a string with \"<redacted>\" is refused", () =>
    Effect.gen(function*() {
      const { manager } = yield* fixture({ key: (args) => ({ user: args.user, password: args.password }) })
      const one = manager.keyOf(login("a", passwordA, "h1"))
      assert.strictEqual(one, manager.keyOf(login("a", passwordA, "h2")))
      assert.notStrictEqual(one, manager.keyOf(login("a", collidingPassword)))
      assert.notInclude(one, passwordA)

      const { manager: careless } = yield* fixture({ key: (args) => `${args.user}:${args.password}` })
      const exit = yield* Effect.exit(careless.use(login("a", passwordA), () => Effect.void))
      assert.isTrue(Exit.isFailure(exit) && Cause.hasDies(exit.cause))
      assert.match(Exit.isFailure(exit) ? Cause.pretty(exit.cause) : "", /<redacted>/)
    }))
})

describe("PoolManager: a pool whose connects fail authentication is not kept", () => {
  it.effect("use: the wrong password's pool is closed and not listed; the next attempt builds afresh; the right one works", () =>
    Effect.gen(function*() {
      const { manager, built, alive } = yield* fixture()
      const wrong = login("a", "nope")
      const first = yield* Effect.exit(manager.use(wrong, () => Effect.void))
      assert.instanceOf(failureOf(first), PoolError.ConnectError)
      assert.deepStrictEqual(yield* manager.keys, [])
      assert.strictEqual(alive.size, 0)
      // Not kept: the same wrong credentials build (and drop) a new pool.
      yield* Effect.exit(manager.use(wrong, () => Effect.void))
      assert.strictEqual(built.length, 2)
      assert.deepStrictEqual(yield* manager.keys, [])
      assert.strictEqual(alive.size, 0)
      // The right password: a fresh pool that works and is kept.
      yield* manager.use(login("a", passwordA), () => Effect.void)
      assert.strictEqual(built.length, 3)
      assert.deepStrictEqual(yield* manager.keys, [manager.keyOf(login("a", passwordA))])
      assert.deepStrictEqual([...alive], [3])
    }))

  it.effect("checkout, and the pool from get: dropped at the failure, closed when its holder releases it", () =>
    Effect.gen(function*() {
      const { manager, alive } = yield* fixture()
      const scope = yield* Scope.make()
      const exit = yield* Effect.exit(manager.checkout(login("a", "nope")).pipe(Scope.provide(scope)))
      assert.instanceOf(failureOf(exit), PoolError.ConnectError)
      assert.deepStrictEqual(yield* manager.keys, [])
      assert.deepStrictEqual([...alive], [1]) // still held by `scope`
      yield* Scope.close(scope, Exit.void)
      assert.strictEqual(alive.size, 0)

      // The pool handed out by get reports failures too, whoever checks out of it.
      const held = yield* Scope.make()
      const pool = yield* manager.get(login("a", "wrong again")).pipe(Scope.provide(held))
      assert.strictEqual((yield* manager.keys).length, 1)
      assert.isTrue(Exit.isFailure(yield* Effect.exit(pool.use(() => Effect.void))))
      assert.deepStrictEqual(yield* manager.keys, [])
      yield* Scope.close(held, Exit.void)
      assert.strictEqual(alive.size, 0)
    }))

  it.effect("a connect failure that is not about credentials keeps the pool", () =>
    Effect.gen(function*() {
      const { manager, built } = yield* fixture()
      const a = login("a", passwordA)
      yield* Effect.scoped(manager.get(a))
      built[0]!.mock.next("connect", "disconnect")
      const exit = yield* Effect.exit(manager.use(a, () => Effect.void))
      assert.instanceOf(failureOf(exit), PoolError.ConnectError)
      assert.deepStrictEqual(yield* manager.keys, [manager.keyOf(a)])
      yield* manager.use(a, () => Effect.void)
      assert.strictEqual(built.length, 1)
    }))

  it.effect("isAuthenticationError decides; the default looks for SQLSTATE class 28 or effect/sql's AuthenticationError", () =>
    Effect.gen(function*() {
      const { manager, built } = yield* fixture({
        isAuthenticationError: (cause) => cause instanceof MockDriver.MockDbError
      })
      const a = login("a", passwordA)
      yield* Effect.scoped(manager.get(a))
      built[0]!.mock.next("connect", "fail")
      yield* Effect.exit(manager.use(a, () => Effect.void))
      assert.deepStrictEqual(yield* manager.keys, [])

      const is = PoolManager.isAuthenticationError
      const sqlAuth = new SqlError({
        reason: new AuthenticationError({
          cause: authFailure(),
          message: "PgConnection: Failed to connect",
          operation: "connect"
        })
      })
      assert.isTrue(is(sqlAuth))
      assert.isTrue(is(new PoolError.ConnectError({ cause: sqlAuth })))
      assert.isTrue(is({ cause: { cause: Object.assign(new Error("no pg_hba.conf entry"), { code: "28000" }) } }))
      assert.isFalse(is(Object.assign(new Error("connection failure"), { code: "08006" })))
      assert.isFalse(is(Object.assign(new Error("refused"), { code: "ECONNREFUSED" })))
      assert.isFalse(is(new MockDriver.MockDbError({ operation: "connect", disconnect: true, message: "down" })))
      assert.isFalse(is(undefined))
    }))
})

describe("PoolManager: bounded", () => {
  it.effect("2,000 distinct keys with maxPools: at most maxPools pools alive, held pools never closed", () =>
    Effect.gen(function*() {
      const accounts: Record<string, string> = {}
      for (let i = 0; i < 2000; i++) accounts[`u${i}`] = "pw"
      const { manager, alive } = yield* fixture({ maxPools: 10 }, accounts)
      // Three tenants stay in use for the whole run.
      const holder = yield* Scope.make()
      const held = yield* Effect.forEach(
        [0, 1, 2],
        (i) => manager.get(login(`u${i}`, "pw")).pipe(Scope.provide(holder))
      )
      let most = 0
      for (let i = 3; i < 2000; i++) {
        yield* manager.use(login(`u${i}`, "pw"), () => Effect.void)
        most = Math.max(most, alive.size, (yield* manager.keys).length)
      }
      assert.strictEqual(most, 10)
      assert.strictEqual(alive.size, 10)
      for (const id of [1, 2, 3]) assert.isTrue(alive.has(id))
      const again = yield* Effect.forEach(
        [0, 1, 2],
        (i) => manager.get(login(`u${i}`, "pw")).pipe(Scope.provide(holder))
      )
      assert.deepStrictEqual(again, held)
      // The 7 others are the 7 most recently used.
      assert.deepStrictEqual([...alive].sort((x, y) => x - y).slice(3), [1994, 1995, 1996, 1997, 1998, 1999, 2000])
      yield* Scope.close(holder, Exit.void)
    }))

  it.effect("the least recently used idle pool is closed first", () =>
    Effect.gen(function*() {
      const accounts = { a: "pw", b: "pw", c: "pw", d: "pw", e: "pw" }
      const { manager, built, alive } = yield* fixture({ maxPools: 3 }, accounts)
      const use = (user: string) => manager.use(login(user, "pw"), () => Effect.void)
      const idOf = (user: string) => built.find((b) => b.user === user)!.id
      yield* use("a")
      yield* use("b")
      yield* use("c")
      yield* use("a") // a is now the most recently used: b is the least
      yield* use("d")
      assert.deepStrictEqual([...alive].sort(), [idOf("a"), idOf("c"), idOf("d")].sort())
      assert.isTrue(built.find((b) => b.user === "b")!.mock.connections.every((c) => c.closed))
      yield* use("e")
      assert.deepStrictEqual([...alive].sort(), [idOf("a"), idOf("d"), idOf("e")].sort())
    }))

  it.effect("every pool in use: a new key still gets its pool (over the bound), and the bound is restored on release", () =>
    Effect.gen(function*() {
      const { manager, alive } = yield* fixture({ maxPools: 2 }, { a: "pw", b: "pw", c: "pw" })
      const scopeA = yield* Scope.make()
      const scopeB = yield* Scope.make()
      yield* manager.checkout(login("a", "pw")).pipe(Scope.provide(scopeA))
      yield* manager.checkout(login("b", "pw")).pipe(Scope.provide(scopeB))
      yield* manager.use(login("c", "pw"), () => Effect.void)
      assert.strictEqual(alive.size, 3)
      // a is released: idle and least recently used, closed at once to get back within 2.
      yield* Scope.close(scopeA, Exit.void)
      assert.deepStrictEqual([...alive].sort(), [2, 3])
      yield* Scope.close(scopeB, Exit.void)
      assert.deepStrictEqual([...alive].sort(), [2, 3])
      assert.strictEqual((yield* manager.keys).length, 2)
    }))

  it.effect("default idleTimeToLive: an unused pool is closed after 5 minutes", () =>
    Effect.gen(function*() {
      const { manager, alive } = yield* fixture()
      yield* manager.use(login("a", passwordA), () => Effect.void)
      yield* TestClock.adjust("4 minutes")
      yield* TestClock.adjust("59 seconds")
      assert.strictEqual(alive.size, 1)
      yield* TestClock.adjust("1 second")
      assert.strictEqual(alive.size, 0)
      assert.deepStrictEqual(yield* manager.keys, [])
    }))

  it.effect("maxPools must be a positive integer or Infinity", () =>
    Effect.gen(function*() {
      for (const maxPools of [0, -1, 1.5, Number.NaN]) {
        const exit = yield* Effect.exit(fixture({ maxPools }))
        assert.isTrue(Exit.isFailure(exit) && Cause.hasDies(exit.cause), String(maxPools))
      }
      const { manager } = yield* fixture({ maxPools: Infinity })
      yield* manager.use(login("a", passwordA), () => Effect.void)
    }))
})
