/**
 * A quick start with no database: `npm run example`. A QueuePool over the in-memory
 * MockDriver (swap in PgDriver for a real database: the README's quick start).
 */
import { Effect, Layer, Schedule } from "effect"
import { PoolError, QueuePool } from "effect-db-pool"
import { MockDriver } from "effect-db-pool/testing"

const Pool = QueuePool.layer({
  poolSize: 5,
  maxOverflow: 10,
  timeout: "30 seconds", // SQLAlchemy's defaults; a bare number is milliseconds (30 = 30 ms)
  recycle: "30 minutes",
  prePing: true,
  resetOnReturn: "rollback",
  checkoutRetry: Schedule.recurs(2), // default: 3 connection attempts
  hooks: {
    onConnect: (e) => Effect.log(`connected slot ${e.slot}`)
  }
})

const program = Effect.gen(function*() {
  const pool = yield* MockDriver.Pool // the ConnectionPool service, its connection typed by the driver

  // A scoped checkout: reset (rollback) and checked in when the scope closes, whatever ends it.
  yield* Effect.scoped(Effect.gen(function*() {
    const conn = yield* pool.checkout
    conn.info.set("tenant", "a") // survives checkin, cleared on reconnect
    // also: conn.invalidate(), conn.softInvalidate(), conn.detach
    yield* Effect.log(`using raw connection ${conn.connection.id} from slot ${conn.slot}`)
  }))

  // A one-effect lease, no scope needed.
  const id = yield* pool.use((conn) => Effect.succeed(conn.connection.id))

  // Typed errors: a database that is down gives the real connect error, not a timeout.
  const mock = yield* MockDriver.MockDriver
  mock.down()
  yield* pool.invalidateAll
  const failure = yield* pool.use(() => Effect.void).pipe(
    Effect.catchTag("ConnectError", (e: PoolError.ConnectError) => Effect.succeed(e.message))
  )
  mock.up()

  const status = yield* pool.status
  yield* Effect.log(`borrowed ${id}; while down: "${failure}"; status`, status)
  return status
})

Effect.runPromise(program.pipe(Effect.provide(Pool.pipe(Layer.provideMerge(MockDriver.layer()))))).then(
  (status) => console.log(JSON.stringify(status)),
  (error) => {
    console.error(error)
    process.exit(1)
  }
)
