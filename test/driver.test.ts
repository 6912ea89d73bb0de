/**
 * `DriverShape.isDead`: a connection the driver already knows is dead is replaced at checkout,
 * synchronously (no round trip), with no error for the user, on the hot path and the general one;
 * a driver without the hook is unaffected; the hot path pays one call per checkout.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { Driver, QueuePool } from "effect-db-pool"
import type { PoolEvent } from "effect-db-pool"

interface Conn {
  readonly id: number
  dead: boolean
  closed: boolean
}

const driver = (withHook: boolean) => {
  let next = 0
  const opened: Array<Conn> = []
  let deadChecks = 0
  let pings = 0
  const shape: Driver.DriverShape<Conn> = {
    name: "dead-test",
    connect: Effect.sync(() => {
      const conn = { id: ++next, dead: false, closed: false }
      opened.push(conn)
      return conn
    }),
    close: (conn) =>
      Effect.sync(() => {
        conn.closed = true
      }),
    rollback: () => Effect.void,
    commit: () => Effect.void,
    ping: (conn) =>
      Effect.suspend(() => {
        pings++
        return conn.dead ? Effect.fail(new Error("dead")) : Effect.void
      }),
    isDisconnect: () => true,
    needsReset: () => false,
    ...(withHook
      ? {
        isDead: (conn: Conn) => {
          deadChecks++
          return conn.dead
        }
      }
      : {})
  }
  return {
    shape,
    opened,
    get deadChecks() {
      return deadChecks
    },
    get pings() {
      return pings
    }
  }
}

const poolOver = (d: ReturnType<typeof driver>, options: QueuePool.Options<Conn> = {}) =>
  QueuePool.make<Conn>({ poolSize: 1, maxOverflow: 0, ...options }).pipe(
    Effect.provide(Driver.layer(d.shape)),
    Effect.orDie
  )

const idOf = (pool: Effect.Success<ReturnType<typeof poolOver>>) => pool.use((c) => Effect.succeed(c.connection.id))

describe("DriverShape.isDead", () => {
  it.effect("hot path (no hooks, no pre-ping): a dead idle connection is replaced, no error, no ping", () =>
    Effect.gen(function*() {
      const d = driver(true)
      const pool = yield* poolOver(d)
      assert.strictEqual(yield* idOf(pool), 1)
      const checksBefore = d.deadChecks
      assert.strictEqual(yield* idOf(pool), 1)
      assert.strictEqual(d.deadChecks - checksBefore, 1, "one isDead call per hot checkout")
      d.opened[0]!.dead = true
      assert.strictEqual(yield* idOf(pool), 2)
      assert.isTrue(d.opened[0]!.closed, "the dead one was closed")
      assert.strictEqual(d.pings, 0)
      assert.strictEqual((yield* pool.status).checkedOut, 0)
    }))

  it.effect("general path (hooks, pre-ping): invalidated with a DisconnectionError, no ping of the dead one", () =>
    Effect.gen(function*() {
      const d = driver(true)
      const causes: Array<unknown> = []
      const hooks: PoolEvent.PoolHooks<Conn> = {
        onInvalidate: (event) =>
          Effect.sync(() => {
            causes.push(event.cause)
          })
      }
      const pool = yield* poolOver(d, { prePing: true, hooks })
      assert.strictEqual(yield* idOf(pool), 1)
      d.opened[0]!.dead = true
      const pingsBefore = d.pings
      assert.strictEqual(yield* idOf(pool), 2)
      assert.strictEqual(d.pings, pingsBefore, "the new connection is fresh: no ping; the dead one was never pinged")
      assert.strictEqual(causes.length, 1)
      assert.strictEqual((causes[0] as { _tag?: string })._tag, "DisconnectionError")
    }))

  it.effect("without the hook: a dead connection is handed out (only pre-ping finds out)", () =>
    Effect.gen(function*() {
      const d = driver(false)
      const pool = yield* poolOver(d)
      assert.strictEqual(yield* idOf(pool), 1)
      d.opened[0]!.dead = true
      assert.strictEqual(yield* idOf(pool), 1)
    }))
})
