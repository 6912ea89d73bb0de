// Fallback database for scripts/test-package.sh when no PostgreSQL answers: an embedded server
// from the repo's own build (dist/) and devDependencies. Writes its URL to argv[2], runs until
// SIGTERM/SIGINT, then stops the server and removes its data.
import { Effect, Fiber, Redacted } from "effect"
import { writeFileSync } from "node:fs"
import { EmbeddedPostgres } from "../dist/pg/embedded.js"

const out = process.argv[2]
const fiber = Effect.runFork(
  Effect.gen(function*() {
    const server = yield* EmbeddedPostgres.EmbeddedPostgres
    writeFileSync(out, Redacted.value(server.url))
    return yield* Effect.never
  }).pipe(Effect.provide(EmbeddedPostgres.layer()))
)
const stop = () => Effect.runPromise(Fiber.interrupt(fiber)).then(() => process.exit(0))
process.once("SIGTERM", stop)
process.once("SIGINT", stop)
fiber.addObserver((exit) => {
  if (exit._tag === "Failure") {
    console.error("embedded server failed:", exit.cause)
    process.exit(1)
  }
})
