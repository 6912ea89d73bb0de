/**
 * The connection type flows from the driver to the user: checked by `tsc` (part of `npm test`),
 * through `expectTypeOf` and `@ts-expect-error` lines that stop compiling if a type widens to
 * `any`. The runtime test below only runs what the types describe, over MockDriver.
 */
import { describe, expect, expectTypeOf, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import type { Scope } from "effect"
import { ConnectionPool, Driver, PoolError, PoolEvent, PoolManager, QueuePool } from "effect-db-pool"
import { PgDriver } from "effect-db-pool/pg"
import { MockDriver } from "effect-db-pool/testing"

describe("typed pool", () => {
  it("the open tag gives unknown connections, never any", () => {
    const program = Effect.gen(function*() {
      const pool = yield* ConnectionPool.ConnectionPool
      expectTypeOf(pool).toEqualTypeOf<ConnectionPool.Service<unknown>>()
      return yield* pool.use((conn) => {
        expectTypeOf(conn.connection).toEqualTypeOf<unknown>()
        // @ts-expect-error a property of an unknown connection does not compile
        conn.connection.notAField.deeper()
        return Effect.void
      })
    })
    expectTypeOf(program).toEqualTypeOf<Effect.Effect<void, PoolError.CheckoutError, ConnectionPool.ConnectionPool>>()
    expectTypeOf(ConnectionPool.checkout).toEqualTypeOf<
      Effect.Effect<
        ConnectionPool.PooledConnection<unknown>,
        PoolError.CheckoutError,
        ConnectionPool.ConnectionPool | Scope.Scope
      >
    >()
  })

  it("a program over PgDriver gets PgDriver.Connection without casts", () => {
    const program = Effect.gen(function*() {
      const pool = yield* PgDriver.Pool
      return yield* Effect.scoped(Effect.gen(function*() {
        const conn = yield* pool.checkout
        expectTypeOf(conn.connection).toEqualTypeOf<PgDriver.Connection>()
        expectTypeOf(conn.connection.knownIdle).toEqualTypeOf<boolean>()
        // @ts-expect-error no such property on a PgDriver connection
        conn.connection.notAField.deeper()
        return conn.slot
      }))
    })
    // Same requirement as the open tag: any strategy layer over PgDriver provides it.
    expectTypeOf(program).toEqualTypeOf<Effect.Effect<number, PoolError.CheckoutError, ConnectionPool.ConnectionPool>>()
  })

  it("hooks, make and PoolManager are typed by the connection type given", () => {
    QueuePool.layer<MockDriver.MockConnection>({
      hooks: {
        onConnect: (event) => {
          expectTypeOf(event.connection).toEqualTypeOf<MockDriver.MockConnection | undefined>()
          // @ts-expect-error no such property on a mock connection
          void event.connection?.notAField
          return Effect.void
        }
      }
    })
    expectTypeOf(QueuePool.make<MockDriver.MockConnection>()).toEqualTypeOf<
      Effect.Effect<
        ConnectionPool.Service<MockDriver.MockConnection>,
        PoolError.PoolConfigError,
        Driver.Driver | Scope.Scope
      >
    >()
    const manager = PoolManager.make({
      pool: (_: { readonly tenant: string }) => QueuePool.make<MockDriver.MockConnection>({ poolSize: 1 })
    })
    expectTypeOf(manager).toEqualTypeOf<
      Effect.Effect<
        PoolManager.PoolManager<{ readonly tenant: string }, PoolError.PoolConfigError, MockDriver.MockConnection>,
        never,
        Driver.Driver | Scope.Scope
      >
    >()
    expectTypeOf<PoolEvent.PoolEvent<MockDriver.MockConnection>["connection"]>().toEqualTypeOf<
      MockDriver.MockConnection | undefined
    >()
  })

  it.effect("the typed tag reads the same service the strategy layer provides", () =>
    Effect.gen(function*() {
      const pool = yield* MockDriver.Pool
      const open = yield* ConnectionPool.ConnectionPool
      expect(open).toBe(pool)
      const id = yield* pool.use((conn) => Effect.succeed(conn.connection.id))
      expectTypeOf(id).toEqualTypeOf<number>()
      expect(id).toBe(1)
    }).pipe(Effect.provide(QueuePool.layer({ poolSize: 1 }).pipe(Layer.provideMerge(MockDriver.layer())))))
})
