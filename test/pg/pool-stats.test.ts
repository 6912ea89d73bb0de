/**
 * `PgClient.poolStats` (effect's `Pool.Stats`: idle, used, pending, min, max) over every strategy,
 * read while connections are really held on a server, and `ConnectionPool.stats`, where it
 * comes from. Under `PgReplicas` the client reports the sum of its pools.
 */
import { PgClient } from "@effect/sql-pg"
import { assert, describe, layer } from "@effect/vitest"
import { Deferred, Effect, Fiber, Layer } from "effect"
import type { Scope } from "effect"
import { AssertionPool, ConnectionPool, FiberPool, NullPool, QueuePool, StaticPool } from "effect-db-pool"
import { PgReplicas } from "effect-db-pool/pg"
import { PgDatabase } from "effect-db-pool/pg/embedded"
import { SqlClient } from "effect/sql"
import { appName, Database, sqlLayer } from "./fixture.ts"

/** `PgClient` declares `poolStats` since @effect/sql-pg 4.1; PgSql provides it with 4.0 too. */
type WithStats = PgClient.PgClient & { readonly poolStats: Effect.Effect<ConnectionPool.PoolStats> }
const stats = Effect.flatMap(Effect.service(PgClient.PgClient), (client) => (client as WithStats).poolStats)
const poolService = Effect.service(ConnectionPool.ConnectionPool)

/** Hold a connection (a `reserve`) in a fiber of its own until `release` completes; returns when it is held. */
const hold = (
  release: Deferred.Deferred<void>
): Effect.Effect<Fiber.Fiber<void, unknown>, never, SqlClient.SqlClient | Scope.Scope> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const held = yield* Deferred.make<void>()
    const fiber = yield* Effect.forkScoped(Effect.scoped(Effect.gen(function*() {
      yield* sql.reserve
      yield* Deferred.succeed(held, undefined)
      yield* Deferred.await(release)
    })))
    yield* Deferred.await(held)
    return fiber
  })

/** Yield until the pool reports `n` pending checkouts (a forked checkout has queued). */
const untilPending = (n: number) =>
  Effect.gen(function*() {
    for (let i = 0; i < 10_000; i++) {
      if ((yield* stats).pending === n) return
      yield* Effect.yieldNow
    }
    assert.fail(`pending never reached ${n}`)
  })

const one = Effect.flatMap(SqlClient.SqlClient, (sql) => sql`select 1`)

layer(Database, { timeout: "60 seconds", excludeTestServices: true })("poolStats", (it) => {
  it.layer(sqlLayer(QueuePool.layer({ poolSize: 2, maxOverflow: 1 }), appName("stats-queue")))(
    "QueuePool(poolSize 2, maxOverflow 1)",
    (it) => {
      it.effect("idle / used / pending follow the connections held; max is poolSize + maxOverflow", () =>
        Effect.gen(function*() {
          const pool = yield* poolService
          assert.deepStrictEqual(yield* stats, { idle: 0, used: 0, pending: 0, min: 0, max: 3 })
          yield* one
          assert.deepStrictEqual(yield* stats, { idle: 1, used: 0, pending: 0, min: 0, max: 3 })

          const release = yield* Deferred.make<void>()
          const holders = [yield* hold(release), yield* hold(release), yield* hold(release)]
          assert.deepStrictEqual(yield* stats, { idle: 0, used: 3, pending: 0, min: 0, max: 3 })
          // A fourth checkout waits for one of the three.
          const waiter = yield* Effect.forkScoped(one)
          yield* untilPending(1)
          assert.deepStrictEqual(yield* stats, { idle: 0, used: 3, pending: 1, min: 0, max: 3 })
          assert.deepStrictEqual(yield* pool.stats, yield* stats)

          yield* Deferred.succeed(release, undefined)
          yield* Fiber.join(waiter)
          for (const holder of holders) yield* Fiber.join(holder)
          // The overflow connection was closed on return: poolSize connections stay, idle.
          assert.deepStrictEqual(yield* stats, { idle: 2, used: 0, pending: 0, min: 0, max: 3 })

          // `max` follows a resize.
          yield* pool.resize({ poolSize: 1, maxOverflow: 0 })
          assert.deepStrictEqual(yield* stats, { idle: 1, used: 0, pending: 0, min: 0, max: 1 })
        }))

      it.effect("a checkout held at a suspended pool's gate is pending", () =>
        Effect.gen(function*() {
          const pool = yield* poolService
          yield* pool.suspend
          const waiter = yield* Effect.forkScoped(one)
          yield* untilPending(1)
          assert.strictEqual((yield* stats).pending, 1)
          yield* pool.resume
          yield* Fiber.join(waiter)
          assert.strictEqual((yield* stats).pending, 0)
        }))
    }
  )

  it.layer(sqlLayer(QueuePool.layer({ poolSize: 3, maxOverflow: 0, minIdle: 2 }), appName("stats-min")))(
    "QueuePool(poolSize 3, maxOverflow 0, minIdle 2)",
    (it) => {
      // The upkeep opens the minIdle connections in the background: only the bounds are fixed.
      it.effect("min is minIdle: the connections kept open without demand", () =>
        Effect.gen(function*() {
          const { min, max } = yield* stats
          assert.deepStrictEqual({ min, max }, { min: 2, max: 3 })
        }))
    }
  )

  it.layer(sqlLayer(QueuePool.layer({ poolSize: 1, maxOverflow: -1 }), appName("stats-unlimited")))(
    "QueuePool(maxOverflow -1)",
    (it) => {
      it.effect("an unlimited pool reports max Infinity and every connection held as used", () =>
        Effect.gen(function*() {
          const release = yield* Deferred.make<void>()
          const holders = [yield* hold(release), yield* hold(release), yield* hold(release)]
          assert.deepStrictEqual(yield* stats, { idle: 0, used: 3, pending: 0, min: 0, max: Infinity })
          yield* Deferred.succeed(release, undefined)
          for (const holder of holders) yield* Fiber.join(holder)
          assert.deepStrictEqual(yield* stats, { idle: 1, used: 0, pending: 0, min: 0, max: Infinity })
        }))
    }
  )

  it.layer(sqlLayer(NullPool.layer(), appName("stats-null")))("NullPool", (it) => {
    it.effect("nothing idle, ever; used = connections open now; max Infinity", () =>
      Effect.gen(function*() {
        yield* one
        assert.deepStrictEqual(yield* stats, { idle: 0, used: 0, pending: 0, min: 0, max: Infinity })
        const release = yield* Deferred.make<void>()
        const holders = [yield* hold(release), yield* hold(release)]
        assert.deepStrictEqual(yield* stats, { idle: 0, used: 2, pending: 0, min: 0, max: Infinity })
        yield* Deferred.succeed(release, undefined)
        for (const holder of holders) yield* Fiber.join(holder)
        assert.deepStrictEqual(yield* stats, { idle: 0, used: 0, pending: 0, min: 0, max: Infinity })
      }))
  })

  it.layer(sqlLayer(StaticPool.layer(), appName("stats-static")))("StaticPool", (it) => {
    it.effect("one connection: used 1 while held (however many share it), idle 1 after; max 1", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        assert.deepStrictEqual(yield* stats, { idle: 0, used: 0, pending: 0, min: 0, max: 1 })
        const inside = yield* sql.withTransaction(Effect.all([stats, Effect.andThen(one, stats)]))
        assert.deepStrictEqual(inside, [
          { idle: 0, used: 1, pending: 0, min: 0, max: 1 },
          { idle: 0, used: 1, pending: 0, min: 0, max: 1 }
        ])
        assert.deepStrictEqual(yield* stats, { idle: 1, used: 0, pending: 0, min: 0, max: 1 })
      }))
  })

  it.layer(sqlLayer(FiberPool.layer({ poolSize: 2 }), appName("stats-fiber")))("FiberPool(poolSize 2)", (it) => {
    it.effect("a fiber's kept connection is idle between its checkouts; max Infinity (poolSize bounds the idle ones)", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* one
        assert.deepStrictEqual(yield* stats, { idle: 1, used: 0, pending: 0, min: 0, max: Infinity })
        const inside = yield* sql.withTransaction(stats)
        assert.deepStrictEqual(inside, { idle: 0, used: 1, pending: 0, min: 0, max: Infinity })
        // Three other fibers hold one each: more than poolSize open at once (the idle one is evicted).
        const release = yield* Deferred.make<void>()
        const holders = [yield* hold(release), yield* hold(release), yield* hold(release)]
        assert.deepStrictEqual(yield* stats, { idle: 0, used: 3, pending: 0, min: 0, max: Infinity })
        yield* Deferred.succeed(release, undefined)
        for (const holder of holders) yield* Fiber.join(holder)
        assert.deepStrictEqual(yield* stats, { idle: 2, used: 0, pending: 0, min: 0, max: Infinity })
      }))
  })

  it.layer(sqlLayer(AssertionPool.layer(), appName("stats-assertion")))("AssertionPool", (it) => {
    it.effect("one connection, one checkout: used 1 while held, idle 1 after; max 1", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const inside = yield* sql.withTransaction(stats)
        assert.deepStrictEqual(inside, { idle: 0, used: 1, pending: 0, min: 0, max: 1 })
        assert.deepStrictEqual(yield* stats, { idle: 1, used: 0, pending: 0, min: 0, max: 1 })
      }))
  })

  describe("PgReplicas", () => {
    const router = Layer.unwrap(Effect.map(Effect.service(PgDatabase.PgDatabase), (db) =>
      PgReplicas.layer({
        primary: PgReplicas.pool(QueuePool.layer({ poolSize: 2, maxOverflow: 0 }), {
          url: db.url,
          applicationName: appName("stats-primary")
        }),
        replicas: [
          PgReplicas.pool(QueuePool.layer({ poolSize: 3, maxOverflow: 1 }), {
            url: db.url,
            applicationName: appName("stats-replica")
          })
        ]
      }, { healthCheckInterval: "1 hour" })))
    it.layer(router)("primary QueuePool(2, 0) + replica QueuePool(3, 1)", (it) => {
      it.effect("the client reports the sum of its pools; PgReplicas.status each pool's own", () =>
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          yield* one // the primary
          // The router's first health check borrows a session of each pool in the background:
          // counted once it is over (both roles known), with no other check for an hour.
          const router = yield* PgReplicas.PgReplicas
          for (let i = 0; i < 500; i++) {
            const s = yield* router.status
            if (s.primary.role !== undefined && s.replicas[0]?.role !== undefined && s.primary.stats.used === 0) break
            yield* Effect.sleep("10 millis")
          }
          // Each pool has a connection idle now (the check's, and `one`'s on the primary).
          const before = yield* stats
          assert.deepStrictEqual({ used: before.used, pending: before.pending, min: before.min, max: before.max }, {
            used: 0,
            pending: 0,
            min: 0,
            max: 6
          })
          const inReplica = yield* sql.withTransaction(stats).pipe(
            Effect.provideService(SqlClient.BeginTransaction, "BEGIN READ ONLY")
          )
          // The replica's idle connection is the transaction's: one less idle, one used, in the sum.
          assert.deepStrictEqual(inReplica, { idle: before.idle - 1, used: 1, pending: 0, min: 0, max: 6 })
          assert.deepStrictEqual(yield* stats, before)
          const status = yield* router.status
          const [primary, replica] = [status.primary.stats, status.replicas[0]!.stats]
          assert.deepStrictEqual([primary.max, replica.max], [2, 4])
          assert.deepStrictEqual(before, {
            idle: primary.idle + replica.idle,
            used: primary.used + replica.used,
            pending: primary.pending + replica.pending,
            min: primary.min + replica.min,
            max: primary.max + replica.max
          })
        }))
    })
  })
})
