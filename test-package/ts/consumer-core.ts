// The root and testing entries, type-checked without @types/node (`types: []`, strict,
// skipLibCheck false): a consumer that never imports `effect-db-pool/pg` needs no Node types.
import { Effect, Layer } from "effect"
import { ConnectionPool, QueuePool } from "effect-db-pool"
import type { Driver, PoolError } from "effect-db-pool"
import { MockDriver } from "effect-db-pool/testing"

export const Pool: Layer.Layer<
  ConnectionPool.ConnectionPool | MockDriver.MockDriver | Driver.Driver,
  PoolError.PoolConfigError
> = QueuePool.layer({ poolSize: 2 }).pipe(Layer.provideMerge(MockDriver.layer()))

export const program: Effect.Effect<ConnectionPool.PoolStats, PoolError.CheckoutError, ConnectionPool.ConnectionPool> =
  Effect.gen(
    function*() {
      const pool = yield* ConnectionPool.ConnectionPool
      yield* pool.use(() => Effect.void)
      return yield* pool.stats
    }
  )
