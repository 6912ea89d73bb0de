// The checkout site under plain node, from the installed package: AssertionPool's second-checkout
// error names the line of this file where the first checkout was taken (same fiber and child
// fiber), never a frame of node_modules or node:.
import { Effect, Fiber, Layer, Scope } from "effect"
import { AssertionPool, ConnectionPool } from "effect-db-pool"
import { MockDriver } from "effect-db-pool/testing"

const lines = (await import("node:fs")).readFileSync(new URL(import.meta.url), "utf8").split("\n")
const lineOf = (marker) => lines.findIndex((l) => l.includes(marker) && !l.includes("lineOf(")) + 1

const secondCheckoutMessage = (pool) => Effect.map(Effect.flip(Effect.scoped(pool.checkout)), (e) => e.message)

const program = Effect.gen(function*() {
  const pool = yield* ConnectionPool.ConnectionPool
  const scope = yield* Scope.make()
  yield* pool.checkout.pipe(Scope.provide(scope)) // SITE-SAME-FIBER
  const same = yield* secondCheckoutMessage(pool)
  yield* Scope.close(scope, Effect.void)
  const childScope = yield* Scope.make()
  yield* Fiber.join(
    yield* Effect.forkChild(Effect.gen(function*() {
      yield* pool.checkout.pipe(Scope.provide(childScope)) // SITE-CHILD-FIBER
    }))
  )
  const child = yield* secondCheckoutMessage(pool)
  yield* Scope.close(childScope, Effect.void)
  const ok = (message, marker) =>
    message.includes(`site.mjs:${lineOf(marker)}:`) && !message.includes("node_modules") && !/\bnode:/.test(message)
  return { same: ok(same, "// SITE-SAME-FIBER"), child: ok(child, "// SITE-CHILD-FIBER"), message: same }
})

Effect.runPromise(program.pipe(Effect.provide(AssertionPool.layer().pipe(Layer.provideMerge(MockDriver.layer())))))
  .then(
    (result) => console.log(`SITE_RESULT ${JSON.stringify(result)}`),
    (error) => {
      console.error(error)
      process.exit(1)
    }
  )
