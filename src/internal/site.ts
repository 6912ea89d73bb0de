/**
 * Where a checkout happened, for leak warnings and AssertionPool errors: the innermost
 * `Effect.fn` / span names of the checking-out fiber, and the first source line that is the
 * user's — not effect's, not this library's, not Node's (`node:`), nothing under `node_modules`.
 *
 * A generator's line is on the JavaScript stack only while it runs, not when the fiber later
 * runs the effect it yielded. So when a site will be needed, the service captures the stack
 * where `pool.checkout` is read or `pool.use(f)` is called ({@link withCallSite}), in the
 * user's own frame; {@link captureSite} formats it only when it is used.
 *
 * @internal
 */
import { Context, Effect, References } from "effect"

/** This library's own directory (`.../src/` or `.../dist/`), whatever the package is installed as. */
const librarySources = new URL("../", import.meta.url).pathname

const isForeign = (line: string): boolean =>
  line.includes(librarySources) || /node_modules[\\/]|\bnode:|\(native\)|<anonymous>/.test(line)

const firstUserLine = (stack: string | undefined): string | undefined =>
  stack?.split("\n").map((l) => l.trim()).find((l) => l.startsWith("at ") && !isForeign(l))

/** The stack captured where the user asked for the checkout, when sites are wanted. */
const CallSite = Context.Reference<Error | undefined>("effect-db-pool/internal/CallSite", {
  defaultValue: () => undefined
})

/** Remember the caller's stack (take this call in the user's frame) for the checkout `effect`. */
export const withCallSite = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.provideService(effect, CallSite, new Error("checkout site"))

/** Describe the current checkout site; cheap enough for opt-in diagnostics, not for the hot path. */
export const captureSite: Effect.Effect<string> = Effect.withFiber((fiber) => {
  const names: Array<string> = []
  let frame = Context.get(fiber.context, References.CurrentStackFrame)
  let line = firstUserLine(Context.get(fiber.context, CallSite)?.stack)
  while (frame !== undefined && names.length < 4) {
    names.push(frame.name)
    line ??= firstUserLine(frame.stack())
    frame = frame.parent
  }
  const spanName = Effect.currentSpan.pipe(Effect.map((span) => span.name), Effect.orElseSucceed(() => undefined))
  return Effect.map(spanName, (span) => {
    const parts = [`fiber #${fiber.id}`]
    if (names.length > 0) parts.push(`in ${names.join(" < ")}`)
    else if (span !== undefined) parts.push(`in span ${span}`)
    line ??= firstUserLine(new Error().stack)
    if (line !== undefined) parts.push(line)
    return parts.join(" ")
  })
})
