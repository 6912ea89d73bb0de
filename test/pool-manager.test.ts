import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Layer, Redacted, Scope } from "effect"
import type { PoolError } from "effect-db-pool"
import { ConnectionPool, Driver, PoolManager, QueuePool } from "effect-db-pool"
import { MockDriver } from "effect-db-pool/testing"
import { TestClock } from "effect/testing"

interface Tenant {
  readonly host: string
  readonly db?: string
  readonly tenant?: string
}

/** A manager whose pools each get their own MockDriver (by `host`), with a log of pool builds. */
const fixture = (options: Partial<PoolManager.Options<Tenant, PoolError.PoolConfigError, never>> = {}) =>
  Effect.gen(function*() {
    const mocks = new Map<string, MockDriver.MockDriverControl>()
    const builds: Array<string> = []
    const mockFor = (host: string) => {
      let mock = mocks.get(host)
      if (mock === undefined) {
        mock = MockDriver.make()
        mocks.set(host, mock)
      }
      return mock
    }
    const manager = yield* PoolManager.make<Tenant, PoolError.PoolConfigError>({
      pool: (args) => {
        builds.push(args.host)
        return QueuePool.layer({ poolSize: 2 }).pipe(Layer.provide(Driver.layer(mockFor(args.host).driver)))
      },
      ...options
    })
    const open = () => Array.from(mocks.values()).reduce((n, m) => n + m.open().length, 0)
    return { manager, mockFor, builds, open }
  })

describe("PoolManager", () => {
  it.effect("one pool per distinct arguments, built on first use; object key order does not matter", () =>
    Effect.gen(function*() {
      const { manager, builds, mockFor } = yield* fixture()
      const a1 = yield* manager.get({ host: "a", db: "x" })
      const a2 = yield* manager.get({ db: "x", host: "a" })
      const b = yield* manager.get({ host: "b", db: "x" })
      assert.strictEqual(a1, a2)
      assert.notStrictEqual(a1, b)
      assert.deepStrictEqual(builds, ["a", "b"])
      assert.strictEqual(mockFor("a").connectAttempts(), 0)
      yield* manager.use({ host: "a", db: "x" }, () => Effect.void)
      yield* manager.use({ host: "a", db: "x" }, () => Effect.void)
      yield* manager.use({ host: "b", db: "x" }, () => Effect.void)
      assert.strictEqual(mockFor("a").connectAttempts(), 1)
      assert.strictEqual(mockFor("b").connectAttempts(), 1)
      assert.deepStrictEqual((yield* manager.keys).length, 2)
    }))

  it.effect("the key override decides which arguments share a pool", () =>
    Effect.gen(function*() {
      const { manager, builds } = yield* fixture({ key: (args) => args.tenant ?? args.host })
      const one = yield* manager.get({ host: "a", tenant: "acme" })
      const two = yield* manager.get({ host: "a", db: "other", tenant: "acme" })
      const three = yield* manager.get({ host: "a" })
      assert.strictEqual(one, two)
      assert.notStrictEqual(one, three)
      assert.deepStrictEqual(builds, ["a", "a"])
      assert.deepStrictEqual([...(yield* manager.keys)].sort(), ["a", "acme"])
      assert.strictEqual(manager.keyOf({ host: "z", tenant: "t" }), "t")
    }))

  it.effect("default key: Redacted values are told apart without appearing in the key", () =>
    Effect.sync(() => {
      const k1 = PoolManager.defaultKey({ host: "a", password: Redacted.make("s3cret") })
      const k2 = PoolManager.defaultKey({ password: Redacted.make("s3cret"), host: "a" })
      const k3 = PoolManager.defaultKey({ host: "a", password: Redacted.make("other") })
      assert.strictEqual(k1, k2)
      assert.notStrictEqual(k1, k3)
      assert.notInclude(k1, "s3cret")
    }))

  it.effect("checkouts through the manager come from the keyed pool", () =>
    Effect.gen(function*() {
      const { manager, mockFor } = yield* fixture()
      const scope = yield* Scope.make()
      const conn = yield* manager.checkout({ host: "a" }).pipe(Scope.provide(scope))
      assert.strictEqual(conn.connection, mockFor("a").connections[0])
      const pool = yield* manager.get({ host: "a" })
      assert.strictEqual((yield* pool.status).checkedOut, 1)
      yield* Scope.close(scope, Exit.void)
      assert.strictEqual((yield* pool.status).checkedIn, 1)
    }))

  it.effect("provide runs ConnectionPool code against the tenant's pool", () =>
    Effect.gen(function*() {
      const { manager, mockFor } = yield* fixture()
      const program = ConnectionPool.use((c) => Effect.succeed(c.connection))
      const a = yield* program.pipe(manager.provide({ host: "a" }))
      const b = yield* program.pipe(manager.provide({ host: "b" }))
      assert.strictEqual(a, mockFor("a").connections[0])
      assert.strictEqual(b, mockFor("b").connections[0])
    }))

  it.effect("an unused pool is closed after idleTimeToLive; a used one never expires", () =>
    Effect.gen(function*() {
      const { manager, builds, mockFor } = yield* fixture({ idleTimeToLive: "1 minute" })
      // "b" stays in use for the whole test
      const holder = yield* Scope.make()
      yield* manager.checkout({ host: "b" }).pipe(Scope.provide(holder))
      yield* manager.use({ host: "a" }, () => Effect.void)
      assert.strictEqual(mockFor("a").open().length, 1)
      yield* TestClock.adjust("59 seconds")
      assert.strictEqual(mockFor("a").open().length, 1)
      assert.deepStrictEqual([...(yield* manager.keys)].length, 2)
      yield* TestClock.adjust("1 second")
      assert.strictEqual(mockFor("a").open().length, 0)
      assert.deepStrictEqual([...(yield* manager.keys)], [PoolManager.defaultKey({ host: "b" })])
      yield* TestClock.adjust("10 minutes")
      assert.strictEqual(mockFor("b").open().length, 1)
      // the next use of "a" builds a new pool
      yield* manager.use({ host: "a" }, () => Effect.void)
      assert.deepStrictEqual(builds, ["b", "a", "a"])
      yield* Scope.close(holder, Exit.void)
    }))

  it.effect("using a pool again within the idle time keeps it alive", () =>
    Effect.gen(function*() {
      const { manager, builds } = yield* fixture({ idleTimeToLive: "1 minute" })
      for (let i = 0; i < 5; i++) {
        yield* manager.use({ host: "a" }, () => Effect.void)
        yield* TestClock.adjust("50 seconds")
      }
      assert.deepStrictEqual(builds, ["a"])
    }))

  it.effect("dispose: an unused pool closes now; a held one keeps working and closes when released", () =>
    Effect.gen(function*() {
      const { manager, builds, mockFor } = yield* fixture()
      yield* manager.use({ host: "a" }, () => Effect.void)
      yield* manager.dispose({ host: "a" })
      assert.strictEqual(mockFor("a").open().length, 0)
      assert.deepStrictEqual([...(yield* manager.keys)], [])

      const scope = yield* Scope.make()
      const conn = yield* manager.checkout({ host: "a" }).pipe(Scope.provide(scope))
      yield* manager.dispose({ host: "a" })
      assert.isTrue(conn.isValid)
      assert.strictEqual(mockFor("a").open().length, 1)
      // a new get builds a fresh pool while the old one is still held
      yield* manager.use({ host: "a" }, () => Effect.void)
      assert.deepStrictEqual(builds, ["a", "a", "a"])
      yield* Scope.close(scope, Exit.void)
      assert.deepStrictEqual(mockFor("a").open().map((c) => c.id), [3])
      yield* manager.dispose({ host: "nobody" })
    }))

  it.effect("closing the manager's scope closes every pool", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const { manager, open, mockFor } = yield* fixture().pipe(Scope.provide(scope))
      yield* manager.use({ host: "a" }, () => Effect.void)
      yield* manager.use({ host: "b" }, () => Effect.void)
      yield* manager.use({ host: "c" }, () => Effect.void)
      assert.strictEqual(open(), 3)
      yield* Scope.close(scope, Exit.void)
      assert.strictEqual(open(), 0)
      assert.isTrue(mockFor("a").connections[0]!.closed)
      assert.deepStrictEqual([...(yield* manager.keys)], [])
      const after = yield* Effect.exit(manager.use({ host: "a" }, () => Effect.void))
      assert.isTrue(Exit.isFailure(after))
    }))

  it.effect("a pool that fails to build is not cached: the next get tries again", () =>
    Effect.gen(function*() {
      let attempts = 0
      const manager = yield* PoolManager.make({
        pool: (_: { readonly host: string }) => {
          attempts++
          return QueuePool.layer({ poolSize: attempts === 1 ? -1 : 1 }).pipe(
            Layer.provide(MockDriver.layer())
          )
        }
      })
      const first = yield* Effect.exit(Effect.scoped(manager.get({ host: "a" })))
      assert.isTrue(Exit.isFailure(first))
      const second = yield* Effect.exit(Effect.scoped(manager.get({ host: "a" })))
      assert.isTrue(Exit.isSuccess(second))
      assert.strictEqual(attempts, 2)
    }))
})
