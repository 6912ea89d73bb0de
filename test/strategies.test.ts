import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Latch, Layer, Scope } from "effect"
import { AssertionPool, ConnectionPool, Driver, FiberPool, NullPool, QueuePool, StaticPool } from "effect-db-pool"
import { MockDriver } from "effect-db-pool/testing"
import { TestClock } from "effect/testing"
import type { MakePool } from "./helpers.ts"
import { checkoutIn, everyStrategy, strategyPool } from "./helpers.ts"

/** The failure's tag, or the value. */
const tagOf = <A>(exit: Exit.Exit<A, unknown>): A | string =>
  Exit.isSuccess(exit) ? exit.value : String((exit.cause.reasons[0] as any)?.error?._tag ?? "defect")

const errorOf = (exit: Exit.Exit<unknown, unknown>): any =>
  Exit.isFailure(exit) ? (exit.cause.reasons[0] as any).error : undefined

describe("NullPool", () => {
  it.effect("connects per checkout and resets then closes on return", () =>
    Effect.gen(function*() {
      const { pool, mock, events } = yield* strategyPool(NullPool.make)
      const ids: Array<number> = []
      for (let i = 0; i < 2; i++) {
        ids.push(yield* Effect.scoped(Effect.map(pool.checkout, (c) => c.connection.id)))
      }
      assert.deepStrictEqual(ids, [1, 2])
      assert.deepStrictEqual(mock.connections.map((c) => c.calls), [["rollback", "close"], ["rollback", "close"]])
      assert.deepStrictEqual(events.slice(0, 6), ["first_connect", "connect", "checkout", "reset", "checkin", "close"])
      assert.strictEqual(mock.open().length, 0)
    }))

  it.effect("status: size, checkedIn, overflow and waiting are 0; checkedOut counts live checkouts", () =>
    Effect.gen(function*() {
      const { pool, mock } = yield* strategyPool(NullPool.make)
      const a = yield* Scope.make()
      const b = yield* Scope.make()
      const ca = yield* checkoutIn(pool, a)
      const cb = yield* checkoutIn(pool, b)
      assert.notStrictEqual(ca.connection.id, cb.connection.id)
      assert.deepStrictEqual(yield* pool.status, { size: 0, checkedIn: 0, checkedOut: 2, overflow: 0, waiting: 0 })
      yield* Scope.close(a, Exit.void)
      assert.deepStrictEqual(yield* pool.status, { size: 0, checkedIn: 0, checkedOut: 1, overflow: 0, waiting: 0 })
      assert.deepStrictEqual(mock.open().map((c) => c.id), [cb.connection.id])
      yield* Scope.close(b, Exit.void)
      assert.strictEqual((yield* pool.status).checkedOut, 0)
      assert.strictEqual(mock.open().length, 0)
    }))

  it.effect("invalidate closes the connection; the next checkout connects anew", () =>
    Effect.gen(function*() {
      const { pool, mock } = yield* strategyPool(NullPool.make)
      const scope = yield* Scope.make()
      const conn = yield* checkoutIn(pool, scope)
      yield* conn.invalidate()
      assert.isTrue(mock.connections[0]!.closed)
      assert.isFalse(conn.isValid)
      assert.strictEqual((yield* pool.status).checkedOut, 0)
      const next = yield* Effect.scoped(Effect.map(pool.checkout, (c) => c.connection.id))
      assert.strictEqual(next, 2)
      assert.strictEqual(mock.connectAttempts(), 2)
      yield* Scope.close(scope, Exit.void)
      assert.strictEqual(mock.open().length, 0)
    }))

  it.effect("a failed connect leaves nothing counted", () =>
    Effect.gen(function*() {
      const { pool, mock } = yield* strategyPool(NullPool.make)
      mock.next("connect", "fail")
      assert.strictEqual(tagOf(yield* Effect.exit(Effect.scoped(pool.checkout))), "ConnectError")
      assert.strictEqual((yield* pool.status).checkedOut, 0)
    }))
})

describe("StaticPool", () => {
  it.effect("every checkout, concurrent ones included, shares one raw connection", () =>
    Effect.gen(function*() {
      const { pool, mock } = yield* strategyPool(StaticPool.make)
      const a = yield* Scope.make()
      const b = yield* Scope.make()
      const ca = yield* checkoutIn(pool, a)
      const cb = yield* Effect.forkChild(checkoutIn(pool, b)).pipe(Effect.flatMap(Fiber.join))
      assert.strictEqual(ca.connection, cb.connection)
      assert.strictEqual(ca.connection.id, 1)
      assert.strictEqual(mock.connectAttempts(), 1)
      assert.deepStrictEqual(yield* pool.status, { size: 1, checkedIn: 0, checkedOut: 1, overflow: 0, waiting: 0 })
      yield* Scope.close(a, Exit.void)
      yield* Scope.close(b, Exit.void)
      assert.deepStrictEqual(yield* pool.status, { size: 1, checkedIn: 1, checkedOut: 0, overflow: 0, waiting: 0 })
    }))

  it.effect("concurrent first checkouts wait for one connect", () =>
    Effect.gen(function*() {
      const { pool, mock } = yield* strategyPool(StaticPool.make)
      mock.next("connect", MockDriver.delay("10 millis"))
      const fibers = yield* Effect.forEach([1, 2, 3], () =>
        Effect.forkChild(Effect.scoped(Effect.map(pool.checkout, (c) => c.connection.id))))
      yield* Effect.yieldNow
      yield* TestClock.adjust("10 millis")
      assert.deepStrictEqual(yield* Fiber.joinAll(fibers), [1, 1, 1])
      assert.strictEqual(mock.connectAttempts(), 1)
      assert.strictEqual(mock.open().length, 1)
    }))

  it.effect("reset runs once, when the last holder returns (hooks fire once per shared use)", () =>
    Effect.gen(function*() {
      const { pool, mock, events } = yield* strategyPool(StaticPool.make)
      const a = yield* Scope.make()
      const b = yield* Scope.make()
      yield* checkoutIn(pool, a)
      yield* checkoutIn(pool, b)
      yield* Scope.close(a, Exit.void)
      assert.deepStrictEqual(mock.connections[0]!.calls, [])
      yield* Scope.close(b, Exit.void)
      assert.deepStrictEqual(mock.connections[0]!.calls, ["rollback"])
      assert.deepStrictEqual(events, ["first_connect", "connect", "checkout", "reset", "checkin"])
    }))

  it.effect("the connection is kept between checkouts; dispose closes it; the next checkout reconnects", () =>
    Effect.gen(function*() {
      const { pool, mock } = yield* strategyPool(StaticPool.make)
      for (let i = 0; i < 3; i++) yield* Effect.scoped(pool.checkout)
      assert.strictEqual(mock.connectAttempts(), 1)
      yield* pool.dispose
      assert.strictEqual(mock.open().length, 0)
      assert.deepStrictEqual(yield* pool.status, { size: 1, checkedIn: 0, checkedOut: 0, overflow: 0, waiting: 0 })
      const id = yield* Effect.scoped(Effect.map(pool.checkout, (c) => c.connection.id))
      assert.strictEqual(id, 2)
    }))

  it.effect("a checkout arriving while the last holder's reset runs waits for it, then gets the same connection", () =>
    Effect.gen(function*() {
      const { pool, mock } = yield* strategyPool(StaticPool.make)
      const scope = yield* Scope.make()
      yield* checkoutIn(pool, scope)
      mock.next("rollback", MockDriver.delay("10 millis"))
      const releasing = yield* Effect.forkChild(Scope.close(scope, Exit.void))
      yield* Effect.yieldNow
      const next = yield* Effect.forkChild(Effect.scoped(Effect.map(pool.checkout, (c) => c.connection.id)))
      yield* Effect.yieldNow
      assert.deepStrictEqual(yield* pool.status, { size: 1, checkedIn: 0, checkedOut: 1, overflow: 0, waiting: 1 })
      yield* TestClock.adjust("10 millis")
      yield* Fiber.join(releasing)
      assert.strictEqual(yield* Fiber.join(next), 1)
      assert.strictEqual(mock.connectAttempts(), 1)
      assert.deepStrictEqual(mock.connections[0]!.calls, ["rollback", "rollback"])
      assert.strictEqual((yield* pool.status).waiting, 0)
    }))

  it.effect("dispose leaves a held connection open", () =>
    Effect.gen(function*() {
      const { pool, mock } = yield* strategyPool(StaticPool.make)
      const scope = yield* Scope.make()
      const conn = yield* checkoutIn(pool, scope)
      yield* pool.dispose
      assert.isTrue(conn.isValid)
      assert.strictEqual(mock.open().length, 1)
      yield* Scope.close(scope, Exit.void)
      assert.strictEqual(mock.open().length, 1)
    }))

  it.effect("a connection the driver knows dead is never handed to a new holder; a holder's nested checkout still gets it", () =>
    Effect.gen(function*() {
      const mock = MockDriver.make()
      const pool = yield* StaticPool.make<MockDriver.MockConnection>().pipe(
        Effect.provide(Driver.layer({ ...mock.driver, isDead: (connection) => connection.dead })),
        Effect.orDie
      )
      const held = yield* Scope.make()
      const holder = yield* checkoutIn(pool, held)
      mock.kill(holder.connection.id) // e.g. a PostgreSQL session retired after an unconfirmed cancel
      // The holder's own nested checkout (same fiber): the same connection, at once.
      assert.strictEqual(yield* Effect.scoped(Effect.map(pool.checkout, (c) => c.connection.id)), 1)
      // Another fiber's checkout waits for the holder to return it, then gets a new connection.
      const other = yield* Effect.forkChild(Effect.scoped(Effect.map(pool.checkout, (c) => c.connection.id)))
      for (let i = 0; i < 5; i++) yield* Effect.yieldNow
      assert.isUndefined(other.pollUnsafe(), "a new holder joined the dead connection")
      assert.strictEqual((yield* pool.status).waiting, 1)
      yield* Scope.close(held, Exit.void)
      assert.strictEqual(yield* Fiber.join(other), 2)
      assert.deepStrictEqual(mock.open().map((c) => c.id), [2])
    }))

  it.effect("hard invalidation by one holder closes the shared connection; others see it invalid; next checkout reconnects", () =>
    Effect.gen(function*() {
      const { pool, mock } = yield* strategyPool(StaticPool.make)
      const a = yield* Scope.make()
      const b = yield* Scope.make()
      const ca = yield* checkoutIn(pool, a)
      const cb = yield* checkoutIn(pool, b)
      yield* ca.invalidate()
      assert.isTrue(mock.connections[0]!.closed)
      assert.isFalse(cb.isValid)
      assert.throws(() => cb.connection)
      assert.strictEqual(tagOf(yield* Effect.exit(cb.raw)), "ConnectionInvalidatedError")
      const c = yield* Scope.make()
      const cc = yield* checkoutIn(pool, c)
      assert.strictEqual(cc.connection.id, 2)
      // the old holders' release touches nothing of the new connection
      yield* Scope.close(a, Exit.void)
      yield* Scope.close(b, Exit.void)
      assert.isTrue(cc.isValid)
      assert.deepStrictEqual(mock.connections[1]!.calls, [])
      yield* Scope.close(c, Exit.void)
      assert.deepStrictEqual(mock.open().map((x) => x.id), [2])
    }))
})

describe("FiberPool", () => {
  it.effect("a fiber gets its own connection back on every checkout", () =>
    Effect.gen(function*() {
      const { pool, mock } = yield* strategyPool(FiberPool.make)
      const ids: Array<number> = []
      for (let i = 0; i < 3; i++) ids.push(yield* Effect.scoped(Effect.map(pool.checkout, (c) => c.connection.id)))
      assert.deepStrictEqual(ids, [1, 1, 1])
      assert.deepStrictEqual(mock.connections[0]!.calls, ["rollback", "rollback", "rollback"])
      assert.deepStrictEqual(yield* pool.status, { size: 5, checkedIn: 1, checkedOut: 0, overflow: -4, waiting: 0 })
    }))

  it.effect("a nested checkout in the same fiber returns the same connection; only the outermost release resets", () =>
    Effect.gen(function*() {
      const { pool, mock, events } = yield* strategyPool(FiberPool.make)
      const outer = yield* Scope.make()
      const conn = yield* checkoutIn(pool, outer)
      const inner = yield* Effect.scoped(pool.checkout)
      assert.strictEqual(inner, conn)
      assert.deepStrictEqual(mock.connections[0]!.calls, [])
      assert.strictEqual((yield* pool.status).checkedOut, 1)
      yield* Scope.close(outer, Exit.void)
      assert.deepStrictEqual(mock.connections[0]!.calls, ["rollback"])
      assert.deepStrictEqual(events, ["first_connect", "connect", "checkout", "reset", "checkin"])
    }))

  it.effect("child fibers get their own connection", () =>
    Effect.gen(function*() {
      const { pool } = yield* strategyPool(FiberPool.make)
      const scope = yield* Scope.make()
      const mine = yield* checkoutIn(pool, scope)
      const child = yield* Effect.forkChild(Effect.scoped(Effect.map(pool.checkout, (c) => c.connection.id)))
      assert.strictEqual(yield* Fiber.join(child), 2)
      assert.strictEqual(mine.connection.id, 1)
      yield* Scope.close(scope, Exit.void)
      assert.deepStrictEqual(yield* pool.status, { size: 5, checkedIn: 2, checkedOut: 0, overflow: -3, waiting: 0 })
    }))

  it.effect("beyond poolSize fibers the least recently used idle connections are closed, never one in use", () =>
    Effect.gen(function*() {
      const { pool, mock } = yield* strategyPool(FiberPool.make, { poolSize: 2 })
      const once = Effect.scoped(Effect.map(pool.checkout, (c) => c.connection.id))
      const inFiber = <A, E>(effect: Effect.Effect<A, E>) => Effect.flatMap(Effect.forkChild(effect), Fiber.join)
      assert.deepStrictEqual([yield* inFiber(once), yield* inFiber(once), yield* inFiber(once)], [1, 2, 3])
      assert.deepStrictEqual(mock.open().map((c) => c.id), [2, 3])
      // three fibers hold a connection at once: a fourth, fifth and sixth are opened, none closed
      const latch = yield* Latch.make()
      let held = 0
      const hold = Effect.scoped(Effect.gen(function*() {
        yield* pool.checkout
        held++
        yield* latch.await
      }))
      const holders = yield* Effect.forEach([1, 2, 3], () => Effect.forkChild(hold))
      while (held < 3) yield* Effect.yieldNow
      // the idle connections 2 and 3 made room for the holders' connections 4, 5, 6
      assert.deepStrictEqual(mock.open().map((c) => c.id), [4, 5, 6])
      assert.deepStrictEqual(yield* pool.status, { size: 2, checkedIn: 0, checkedOut: 3, overflow: 1, waiting: 0 })
      yield* latch.open
      yield* Fiber.joinAll(holders)
      assert.strictEqual(mock.open().length, 2)
      assert.deepStrictEqual(yield* pool.status, { size: 2, checkedIn: 2, checkedOut: 0, overflow: 0, waiting: 0 })
    }))

  it.effect("dispose closes the idle connections; a held one comes back and is kept", () =>
    Effect.gen(function*() {
      const { pool, mock } = yield* strategyPool(FiberPool.make)
      yield* Effect.flatMap(Effect.forkChild(Effect.scoped(pool.checkout)), Fiber.join)
      const scope = yield* Scope.make()
      const conn = yield* checkoutIn(pool, scope)
      yield* pool.dispose
      assert.deepStrictEqual(mock.open().map((c) => c.id), [conn.connection.id])
      yield* Scope.close(scope, Exit.void)
      assert.deepStrictEqual(yield* pool.status, { size: 5, checkedIn: 1, checkedOut: 0, overflow: -4, waiting: 0 })
    }))
})

describe("AssertionPool", () => {
  it.effect("a second concurrent checkout fails with AssertionPoolError naming where the first was checked out", () =>
    Effect.gen(function*() {
      const { pool } = yield* strategyPool(AssertionPool.make)
      const firstCheckout = Effect.fn("firstCheckout")(function*(scope: Scope.Scope) {
        return yield* checkoutIn(pool, scope)
      })
      const scope = yield* Scope.make()
      yield* firstCheckout(scope)
      const second = yield* Effect.exit(Effect.scoped(pool.checkout))
      const error = errorOf(second)
      assert.strictEqual(error?._tag, "AssertionPoolError")
      assert.match(error.message, /^AssertionPool: connection is already checked out at:/)
      assert.include(error.message, "firstCheckout")
      assert.match(error.message, /fiber #\d+/)
      assert.deepStrictEqual(yield* pool.status, { size: 1, checkedIn: 0, checkedOut: 1, overflow: 0, waiting: 0 })
      // also from another fiber
      const other = yield* Effect.flatMap(Effect.forkChild(Effect.exit(Effect.scoped(pool.checkout))), Fiber.join)
      assert.strictEqual(tagOf(other), "AssertionPoolError")
      yield* Scope.close(scope, Exit.void)
    }))

  it.effect("return, then checkout again works, on the same kept connection", () =>
    Effect.gen(function*() {
      const { pool, mock } = yield* strategyPool(AssertionPool.make)
      const scope = yield* Scope.make()
      yield* checkoutIn(pool, scope)
      assert.strictEqual(tagOf(yield* Effect.exit(Effect.scoped(pool.checkout))), "AssertionPoolError")
      yield* Scope.close(scope, Exit.void)
      const id = yield* Effect.scoped(Effect.map(pool.checkout, (c) => c.connection.id))
      assert.strictEqual(id, 1)
      assert.strictEqual(mock.connectAttempts(), 1)
      assert.deepStrictEqual(yield* pool.status, { size: 1, checkedIn: 1, checkedOut: 0, overflow: 0, waiting: 0 })
    }))

  it.effect("the failed second checkout leaves the first one untouched", () =>
    Effect.gen(function*() {
      const { pool, mock, events } = yield* strategyPool(AssertionPool.make)
      const scope = yield* Scope.make()
      const conn = yield* checkoutIn(pool, scope)
      events.length = 0
      yield* Effect.exit(Effect.scoped(pool.checkout))
      assert.deepStrictEqual(events, [])
      assert.isTrue(conn.isValid)
      assert.deepStrictEqual(mock.connections[0]!.calls, [])
      yield* Scope.close(scope, Exit.void)
    }))

  it.effect("with reentrant: true a nested checkout in the same fiber shares the connection", () =>
    Effect.gen(function*() {
      const { pool } = yield* strategyPool(AssertionPool.make, { reentrant: true })
      const ids = yield* Effect.scoped(Effect.gen(function*() {
        const outer = yield* pool.checkout
        const inner = yield* Effect.scoped(Effect.map(pool.checkout, (c) => c.connection.id))
        return [outer.connection.id, inner]
      }))
      assert.deepStrictEqual(ids, [1, 1])
    }))
})

// ---------------------------------------------------------------------------------------------

const strategies = everyStrategy<MakePool>({
  QueuePool: QueuePool.make,
  NullPool: NullPool.make,
  StaticPool: StaticPool.make,
  FiberPool: FiberPool.make,
  AssertionPool: AssertionPool.make
})

describe("every strategy: dispose and recreate", () => {
  for (const [name, make] of strategies) {
    it.effect(`${name}: dispose and recreate never connect; recreate keeps every setting and hook`, () =>
      Effect.gen(function*() {
        const options = { name: `custom-${name}`, resetOnReturn: "commit", poolSize: 3 }
        const { pool, mock, events } = yield* strategyPool(make, options)
        const initial = yield* pool.status
        yield* Effect.scoped(pool.checkout)
        yield* pool.dispose
        assert.strictEqual(mock.open().length, 0)
        const fresh = yield* pool.recreate
        assert.strictEqual(mock.connectAttempts(), 1)
        assert.strictEqual(fresh.name, `custom-${name}`)
        assert.strictEqual(fresh.strategy, name)
        assert.deepStrictEqual(yield* fresh.status, initial)
        events.length = 0
        const id = yield* Effect.scoped(Effect.map(fresh.checkout, (c) => c.connection.id))
        // same hooks (and first_connect again for the new pool), same resetOnReturn
        assert.deepStrictEqual(events.slice(0, 5), ["first_connect", "connect", "checkout", "reset", "checkin"])
        assert.strictEqual(mock.connections[id - 1]!.calls[0], "commit")
        // the old pool still works on its own
        yield* Effect.scoped(pool.checkout)
        assert.strictEqual(mock.connectAttempts(), 3)
      }))
  }
})

describe("every strategy: the pool's scope closes", () => {
  for (const [name, make] of strategies) {
    it.effect(`${name}: a held connection closes on return; later checkouts fail with PoolClosedError`, () =>
      Effect.gen(function*() {
        const poolScope = yield* Scope.make()
        const { pool, mock } = yield* strategyPool(make).pipe(Scope.provide(poolScope))
        const held = yield* Scope.make()
        yield* checkoutIn(pool, held)
        yield* Scope.close(poolScope, Exit.void)
        assert.strictEqual(mock.open().length, 1)
        yield* Scope.close(held, Exit.void)
        assert.strictEqual(mock.open().length, 0)
        assert.strictEqual(tagOf(yield* Effect.exit(Effect.scoped(pool.checkout))), "PoolClosedError")
      }))
  }
})

// ---------------------------------------------------------------------------------------------

/** One program, unchanged for every strategy: sequential, nested and concurrent checkouts. */
const program = Effect.gen(function*() {
  const pool = yield* ConnectionPool.ConnectionPool
  const mock = yield* MockDriver.MockDriver
  const once = Effect.scoped(Effect.map(ConnectionPool.checkout, (c) => (c.connection as MockDriver.MockConnection).id))
  const first = yield* once
  const second = yield* once
  const nested = yield* Effect.scoped(Effect.gen(function*() {
    const outer = yield* ConnectionPool.checkout
    const inner = yield* Effect.exit(once)
    return [(outer.connection as MockDriver.MockConnection).id, tagOf(inner)]
  }))
  const latch = yield* Latch.make()
  let arrived = 0
  const concurrent = yield* Effect.all(
    [1, 2].map(() =>
      Effect.scoped(Effect.gen(function*() {
        const got = yield* Effect.exit(
          Effect.map(ConnectionPool.checkout, (c) => (c.connection as MockDriver.MockConnection).id)
        )
        if (++arrived === 2) yield* latch.open
        yield* latch.await
        return tagOf(got)
      }))
    ),
    { concurrency: 2 }
  )
  return {
    first,
    second,
    nested,
    concurrent,
    connects: mock.connectAttempts(),
    open: mock.open().length,
    status: yield* pool.status
  }
})

const layers = everyStrategy<
  readonly [Layer.Layer<ConnectionPool.ConnectionPool, unknown, MockDriver.MockDriver | any>, unknown]
>({
  QueuePool: [QueuePool.layer({ poolSize: 5 }), {
    first: 1,
    second: 1,
    nested: [1, 2],
    concurrent: [2, 1], // FIFO: the nested (inner) connection came back first
    connects: 2,
    open: 2,
    status: { size: 5, checkedIn: 2, checkedOut: 0, overflow: -3, waiting: 0 }
  }],
  NullPool: [NullPool.layer(), {
    first: 1,
    second: 2,
    nested: [3, 4],
    concurrent: [5, 6],
    connects: 6,
    open: 0,
    status: { size: 0, checkedIn: 0, checkedOut: 0, overflow: 0, waiting: 0 }
  }],
  StaticPool: [StaticPool.layer(), {
    first: 1,
    second: 1,
    nested: [1, 1],
    concurrent: [1, 1],
    connects: 1,
    open: 1,
    status: { size: 1, checkedIn: 1, checkedOut: 0, overflow: 0, waiting: 0 }
  }],
  FiberPool: [FiberPool.layer({ poolSize: 5 }), {
    first: 1,
    second: 1,
    nested: [1, 1],
    concurrent: [2, 3],
    connects: 3,
    open: 3,
    status: { size: 5, checkedIn: 3, checkedOut: 0, overflow: -2, waiting: 0 }
  }],
  AssertionPool: [AssertionPool.layer(), {
    first: 1,
    second: 1,
    nested: [1, "AssertionPoolError"],
    concurrent: [1, "AssertionPoolError"],
    connects: 1,
    open: 1,
    status: { size: 1, checkedIn: 1, checkedOut: 0, overflow: 0, waiting: 0 }
  }]
})

describe("one program on all five layers", () => {
  for (const [name, [layer, expected]] of layers) {
    it.effect(`${name}: the strategy-specific outcome`, () =>
      Effect.gen(function*() {
        const result = yield* program
        assert.deepStrictEqual(result, expected as any)
      }).pipe(Effect.provide(layer.pipe(Layer.provideMerge(MockDriver.layer())))))
  }
})
