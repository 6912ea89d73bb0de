/**
 * Where a checkout happened, for leak warnings and AssertionPool errors: the innermost
 * `Effect.fn` / span names of the checking-out fiber, and the first source line outside effect
 * and this library.
 *
 * @internal
 */
import { Context, Effect, References } from "effect"

/** This library's own source directory (`.../src/`), whatever the package is installed as. */
const librarySources = new URL("../", import.meta.url).pathname

const isInternal = (line: string): boolean =>
  line.includes(librarySources) || /node_modules[\\/]effect[\\/]|node:internal/.test(line)

const firstUserLine = (stack: string | undefined): string | undefined =>
  stack?.split("\n").map((l) => l.trim()).find((l) => l.startsWith("at ") && !isInternal(l))

/** Describe the current checkout site; cheap enough for opt-in diagnostics, not for the hot path. */
export const captureSite: Effect.Effect<string> = Effect.withFiber((fiber) => {
  const names: Array<string> = []
  let frame = Context.get(fiber.context, References.CurrentStackFrame)
  let line: string | undefined
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
