// QueuePool over the in-memory MockDriver, as a consumer writes it (plain ESM, no build step).
import { Effect, Layer } from "effect"
import { ConnectionPool, QueuePool } from "effect-db-pool"
import { MockDriver } from "effect-db-pool/testing"

const Pool = QueuePool.layer({ poolSize: 2, maxOverflow: 1, timeout: "5 seconds", prePing: true })

const program = Effect.gen(function*() {
  const pool = yield* ConnectionPool.ConnectionPool
  const mock = yield* MockDriver.MockDriver
  const results = yield* Effect.all(
    [1, 2, 3].map((n) => pool.use(() => Effect.succeed(n * 2))),
    { concurrency: "unbounded" }
  )
  // A database that is down gives the typed connect error.
  mock.down()
  yield* pool.invalidateAll
  const failure = yield* pool.use(() => Effect.succeed("no error")).pipe(
    Effect.catchTag("ConnectError", (e) => Effect.succeed(e._tag))
  )
  mock.up()
  const after = yield* pool.use(() => Effect.succeed("up"))
  return { strategy: pool.strategy, results, failure, after, status: yield* pool.status }
})

Effect.runPromise(program.pipe(Effect.provide(Pool.pipe(Layer.provideMerge(MockDriver.layer()))))).then(
  (result) => console.log(`MOCK_RESULT ${JSON.stringify(result)}`),
  (error) => {
    console.error(error)
    process.exit(1)
  }
)
