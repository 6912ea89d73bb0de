/**
 * SQLAlchemy fidelity (issue: first_connect once, detach, hooks that see the record, unlimited
 * QueuePool status, the checkout site from plain code, resolved settings). MockDriver + TestClock.
 */
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Exit, Fiber, Layer, Option, Scope } from "effect"
import { AssertionPool, ConnectionPool, Driver, NullPool, PoolEvent, QueuePool } from "effect-db-pool"
import { MockDriver } from "effect-db-pool/testing"
import { TestClock } from "effect/testing"
import { readFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { captureLogs, queuePool } from "./helpers.ts"
import type { LogLine } from "./helpers.ts"

const thisFile = fileURLToPath(import.meta.url)
/** `test/fidelity.test.ts:<line>` of the line holding `marker` in this file. */
const siteOf = (marker: string): string => {
  const line = readFileSync(thisFile, "utf8").split("\n").findIndex((l) => l.includes(marker) && !l.includes("siteOf("))
  return `fidelity.test.ts:${line + 1}:`
}

describe("first_connect runs exactly once, before anything else", () => {
  it.effect("QueuePool of 3, a 1 s first_connect hook, 5 fibers checking out twice: first_connect, connect ×3", () =>
    Effect.gen(function*() {
      const log: Array<string> = []
      const { pool } = yield* queuePool({
        poolSize: 3,
        maxOverflow: 0,
        hooks: {
          onFirstConnect: () => Effect.andThen(Effect.sync(() => log.push("first_connect")), Effect.sleep("1 second")),
          onConnect: () => Effect.sync(() => log.push("connect")),
          onCheckout: (e) => Effect.sync(() => log.push(`checkout#${e.slot}`))
        }
      })
      const worker = Effect.scoped(pool.checkout).pipe(Effect.andThen(Effect.scoped(pool.checkout)))
      const fibers = yield* Effect.forkChild(
        Effect.all(Array.from({ length: 5 }, () => worker), { concurrency: "unbounded" })
      )
      yield* TestClock.adjust("500 millis")
      // Connections 2 and 3 exist, but nobody gets one while the first hook still runs.
      assert.deepStrictEqual(log, ["first_connect"])
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(fibers)
      assert.deepStrictEqual(log.filter((e) => !e.startsWith("checkout")), [
        "first_connect",
        "connect",
        "connect",
        "connect"
      ])
      assert.strictEqual(log.filter((e) => e.startsWith("checkout")).length, 10)
      assert.strictEqual(log.indexOf("connect"), 1)
    }))

  it.effect("a failing first_connect fails that connection; the next connection runs it again (exec_once_unless_exception)", () =>
    Effect.gen(function*() {
      let calls = 0
      const log: Array<string> = []
      const { pool, mock } = yield* queuePool({
        poolSize: 2,
        hooks: {
          onFirstConnect: () =>
            Effect.suspend(() => {
              log.push(`first_connect ${++calls}`)
              return calls === 1
                ? Effect.andThen(Effect.sleep("1 second"), Effect.fail("first hook broke"))
                : Effect.void
            }),
          onConnect: (e) => Effect.sync(() => log.push(`connect#${e.slot}`))
        }
      })
      // Two checkouts at once: the second waits for the first's hook, which fails; it then runs it itself.
      const both = yield* Effect.forkChild(
        Effect.all([Effect.exit(Effect.scoped(pool.checkout)), Effect.exit(Effect.scoped(pool.checkout))], {
          concurrency: "unbounded"
        })
      )
      yield* TestClock.adjust("1 second")
      const [a, b] = yield* Fiber.join(both)
      assert.isTrue(Exit.isFailure(a))
      assert.strictEqual(
        Exit.isFailure(a) && a.cause.reasons[0]?._tag === "Fail"
          ? (a.cause.reasons[0].error as { _tag: string })._tag
          : "",
        "ConnectError"
      )
      assert.isTrue(Exit.isSuccess(b))
      assert.deepStrictEqual(log, ["first_connect 1", "first_connect 2", "connect#2"])
      // The failed connection was closed; nothing runs first_connect any more.
      assert.isTrue(mock.connections[0]!.closed)
      yield* Effect.scoped(Effect.all([pool.checkout, pool.checkout]))
      assert.deepStrictEqual(log.filter((e) => e.startsWith("first_connect")), ["first_connect 1", "first_connect 2"])
    }))
})

describe("detach cuts the tie to the slot", () => {
  it.effect("a detached handle keeps its own info; recordInfo and slot say it is detached", () =>
    Effect.gen(function*() {
      const { pool } = yield* queuePool({ poolSize: 1, maxOverflow: 0 })
      const scope = yield* Scope.make()
      const conn = yield* pool.checkout.pipe(Scope.provide(scope))
      const slot = conn.slot
      const slotInfo = conn.recordInfo!
      slotInfo.set("slot-note", "kept by the slot")
      conn.info.set("tenant", "a")
      yield* conn.detach
      assert.strictEqual(conn.slot, -1)
      assert.isUndefined(conn.recordInfo)
      assert.strictEqual(conn.info.get("tenant"), "a")
      conn.info.set("detached-only", true)
      // The slot's next checkout sees the slot's own maps, untouched by the detached handle.
      const next = yield* Effect.scoped(Effect.map(pool.checkout, (c) => ({
        slot: c.slot,
        sameRecordInfo: c.recordInfo === slotInfo,
        detachedOnly: c.info.get("detached-only"),
        tenant: c.info.get("tenant")
      })))
      assert.deepStrictEqual(next, { slot, sameRecordInfo: true, detachedOnly: undefined, tenant: undefined })
      yield* Scope.close(scope, Exit.void)
    }))
})

describe("hooks get the connection record", () => {
  it.effect("onConnect stamps info and recordInfo; the checkout and the handle see them", () =>
    Effect.gen(function*() {
      let n = 0
      const seenAtCheckout: Array<unknown> = []
      const { pool } = yield* queuePool({
        poolSize: 1,
        maxOverflow: 0,
        hooks: {
          onConnect: (e) =>
            Effect.sync(() => {
              e.record!.info.set("connection-no", ++n)
              if (!e.record!.recordInfo.has("first-seen")) e.record!.recordInfo.set("first-seen", n)
            }),
          onCheckout: (e) =>
            Effect.sync(() => seenAtCheckout.push([e.record?.slot, e.record?.info.get("connection-no")]))
        }
      })
      const read = Effect.scoped(
        Effect.map(pool.checkout, (c) => [c.info.get("connection-no"), c.recordInfo?.get("first-seen")])
      )
      assert.deepStrictEqual(yield* read, [1, 1])
      yield* Effect.scoped(Effect.flatMap(pool.checkout, (c) => c.invalidate()))
      // A new connection on the same slot: info is the new connection's, recordInfo stays the slot's.
      assert.deepStrictEqual(yield* read, [2, 1])
      assert.deepStrictEqual(seenAtCheckout, [[1, 1], [1, 1], [1, 2]])
    }))

  it.effect("the record is typed by the connection type, and undefined for a detached connection's close", () =>
    Effect.gen(function*() {
      const records: Array<[PoolEvent.PoolEventType, number | undefined]> = []
      const note = (e: PoolEvent.PoolEvent<MockDriver.MockConnection>) =>
        Effect.sync(() => {
          records.push([e.type, e.record?.connection?.id])
        })
      const { pool } = yield* queuePool({
        poolSize: 1,
        hooks: { onCheckin: note, onDetach: note, onCloseDetached: note }
      })
      yield* Effect.scoped(pool.checkout)
      yield* Effect.scoped(Effect.flatMap(pool.checkout, (c) => c.detach))
      assert.deepStrictEqual(records, [["checkin", 1], ["detach", 1], ["close_detached", undefined]])
    }))
})

describe("unlimited QueuePool (poolSize 0)", () => {
  it.effect("overflow reads 0 (SQLAlchemy 2.0); checkedOut counts what is out", () =>
    Effect.gen(function*() {
      const { pool } = yield* queuePool({ poolSize: 0 })
      const scope = yield* Scope.make()
      yield* Effect.all([pool.checkout, pool.checkout]).pipe(Scope.provide(scope))
      assert.deepStrictEqual(yield* pool.status, { size: 0, checkedIn: 0, checkedOut: 2, overflow: 0, waiting: 0 })
      yield* Scope.close(scope, Exit.void)
      assert.deepStrictEqual(yield* pool.status, { size: 0, checkedIn: 2, checkedOut: 0, overflow: 0, waiting: 0 })
    }))
})

describe("the checkout site, from plain Effect.gen code", () => {
  const assertion = AssertionPool.layer().pipe(Layer.provideMerge(MockDriver.layer()))

  const assertSite = (message: string, marker: string) => {
    assert.include(message, siteOf(marker))
    assert.notInclude(message, "node_modules")
    assert.notMatch(message, /\bnode:/)
  }

  it.effect("AssertionPool names the first checkout's line, same fiber", () =>
    Effect.gen(function*() {
      const pool = yield* ConnectionPool.ConnectionPool
      const scope = yield* Scope.make()
      yield* pool.checkout.pipe(Scope.provide(scope)) // site:same-fiber
      const second = yield* Effect.flip(Effect.scoped(pool.checkout))
      assert.strictEqual(second._tag, "AssertionPoolError")
      assertSite(second.message, "// site:same-fiber")
      yield* Scope.close(scope, Exit.void)
    }).pipe(Effect.provide(assertion)))

  it.effect("AssertionPool names the first checkout's line, checkout in a child fiber", () =>
    Effect.gen(function*() {
      const pool = yield* ConnectionPool.ConnectionPool
      const scope = yield* Scope.make()
      yield* Fiber.join(
        yield* Effect.forkChild(Effect.gen(function*() {
          yield* pool.checkout.pipe(Scope.provide(scope)) // site:child-fiber
        }))
      )
      const second = yield* Effect.flip(pool.use(() => Effect.void))
      assertSite(second.message, "// site:child-fiber")
      yield* Scope.close(scope, Exit.void)
      // `use` is a checkout site too
      const held = yield* Effect.forkChild(pool.use(() => Effect.never)) // site:use
      yield* Effect.yieldNow
      assertSite((yield* Effect.flip(Effect.scoped(pool.checkout))).message, "// site:use")
      yield* Fiber.interrupt(held)
    }).pipe(Effect.provide(assertion)))

  it.effect("the leak warning names the checkout line of plain code", () =>
    Effect.gen(function*() {
      const lines: Array<LogLine> = []
      yield* Effect.gen(function*() {
        const { pool } = yield* queuePool({ leakDetectionThreshold: "1 second" })
        const held = yield* Scope.make()
        yield* pool.checkout.pipe(Scope.provide(held)) // site:leak
        yield* TestClock.adjust("2 seconds")
        const warning = lines.find((l) => l.message.includes("leak"))
        assert.isDefined(warning)
        assertSite(warning!.message, "// site:leak")
        yield* Scope.close(held, Exit.void)
      }).pipe(Effect.provide(captureLogs(lines)))
    }))

  it.effect("no site is captured when nothing reports one", () =>
    Effect.gen(function*() {
      const { pool } = yield* queuePool({ poolSize: 1 })
      // Without AssertionPool or leak detection `checkout` is one shared effect, not a new capture per read.
      assert.strictEqual(pool.checkout, pool.checkout)
      const { pool: leaky } = yield* queuePool({ leakDetectionThreshold: "1 minute" })
      assert.notStrictEqual(leaky.checkout, leaky.checkout)
    }))
})

describe("resolved settings and invalidationTime", () => {
  it.effect("settings.timeout (SQLAlchemy's timeout accessor) and the other resolved settings", () =>
    Effect.gen(function*() {
      const pool = yield* QueuePool.make({ poolSize: 3, maxOverflow: 2, timeout: "20 seconds", recycle: 3600_000 })
        .pipe(
          Effect.provide(Driver.layer(MockDriver.make().driver))
        )
      const s = pool.settings
      assert.isTrue(Duration.equals(s.timeout!, Duration.seconds(20)))
      assert.deepStrictEqual([s.strategy, s.name, s.poolSize, s.maxOverflow, s.lifo, s.prePing, s.resetOnReturn], [
        "QueuePool",
        "QueuePool",
        3,
        2,
        false,
        false,
        "rollback"
      ])
      assert.isTrue(Duration.equals(s.recycle, Duration.hours(1)))
      assert.isTrue(Duration.equals(s.resetTimeout, Duration.seconds(10)))
      const nullPool = yield* NullPool.make().pipe(Effect.provide(Driver.layer(MockDriver.make().driver)))
      assert.deepStrictEqual([nullPool.settings.timeout, nullPool.settings.poolSize], [undefined, undefined])
    }))

  it.effect("invalidationTime tells \"never invalidated\" from \"invalidated at clock time 0\"", () =>
    Effect.gen(function*() {
      const { pool } = yield* queuePool()
      assert.deepStrictEqual(yield* pool.invalidationTime, Option.none())
      yield* pool.invalidateAll // TestClock still at 0
      assert.deepStrictEqual(yield* pool.invalidationTime, Option.some(0))
    }))
})
