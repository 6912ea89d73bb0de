/**
 * `npm start`: the workbench's entry point. Parses the flags (bad ones: message on stderr,
 * exit code 2), then runs the workbench under `NodeRuntime.runMain`, whose SIGINT handling
 * interrupts it so every finalizer runs: pools closed, schema dropped, embedded server stopped
 * and its temporary directory removed, summary printed and report written (exit code 130).
 */
import { NodeRuntime } from "@effect/platform-node"
import { Effect } from "effect"
import { parse } from "./args.ts"
import { run } from "./run.ts"
import { streamOutput } from "./view.ts"

const parsed = parse(process.argv.slice(2))
if (parsed._tag === "Help") {
  process.stdout.write(parsed.text)
} else if (parsed._tag === "Invalid") {
  process.stderr.write(`workbench: ${parsed.message}\nRun \`npm start -- --help\` for the flags.\n`)
  process.exitCode = 2
} else {
  const output = streamOutput(process.stdout, parsed.options.plain)
  // Whatever happens, never leave the terminal with a hidden cursor.
  process.on("exit", () => {
    if (output.live) process.stdout.write("\x1b[?25h")
  })
  const program = Effect.scoped(run(parsed.options, output)).pipe(
    Effect.asVoid,
    Effect.catchCause((cause) =>
      Effect.andThen(
        Effect.sync(() => process.stderr.write(`\nworkbench failed: ${messageOf(cause)}\n`)),
        Effect.failCause(cause)
      )
    )
  )
  NodeRuntime.runMain(program, { disableErrorReporting: true })
}

function messageOf(cause: unknown): string {
  const squashed = (cause as { reasons?: unknown }).reasons !== undefined ? squash(cause) : cause
  return squashed instanceof Error ? squashed.message : String(squashed)
}

function squash(cause: unknown): unknown {
  const reasons = (cause as { reasons: ReadonlyArray<{ _tag: string; error?: unknown; defect?: unknown }> }).reasons
  const first = reasons.find((r) => r._tag === "Fail") ?? reasons.find((r) => r._tag === "Die") ?? reasons[0]
  return first === undefined
    ? "unknown"
    : first._tag === "Fail"
    ? first.error
    : first._tag === "Die"
    ? first.defect
    : "interrupted"
}
