/**
 * Check every TypeScript code block of the user documentation (npm run docs:check): README.md,
 * CONTRIBUTING.md, CHANGELOG.md, bench/README.md and docs/*.md.
 *
 * 1. Every ```ts / ```typescript block is written to `tmp/docs-check/<file>_<line>.ts` and all of
 *    them are type-checked in one TypeScript program with the repo's tsconfig.json (strict, ...;
 *    unused locals allowed): `effect-db-pool`, `effect-db-pool/pg`, ... resolve to `src/` through
 *    the tsconfig `paths`, as in the tests. A block is a module of its own: it must import what it
 *    uses.
 * 2. Each block is then run with tsx (a process of its own, `cwd` the repo, so the same `paths`
 *    apply) with `DATABASE_URL` set: the environment's, or else an embedded server started here for
 *    the whole run (PgDatabase's rule). A run must exit with code 0 within `--timeout` (default
 *    60 s); its output is shown when it fails.
 *
 * A block whose preceding non-blank line is `<!-- check: typecheck-only (needs ...) -->` is
 * type-checked and not run: for what no local server can stand in for. The reason is required.
 *
 * Also errors: a fenced block with no language (write ```text for output, ```sh for commands),
 * an unclosed block, a `<!-- check: ... -->` marker that is not followed by a ts block or that
 * says something else.
 *
 * Usage: tsx scripts/check-docs.ts [--no-run] [--timeout <seconds>] [--jobs <n>] [file.md ...]
 */
import { Effect, Redacted } from "effect"
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import ts from "typescript"
import { PgDatabase } from "../src/pg/embedded.ts"
import { typecheckSnippets } from "./typecheck-snippets.ts"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")
const outDir = path.join(root, "tmp", "docs-check")
const CHECKED_LANGUAGES = new Set(["ts", "typescript"])
const MARKER = /^<!--\s*check:\s*(.*?)\s*-->$/
const TYPECHECK_ONLY = /^typecheck-only\s*\((.+)\)$/

// ----------------------------------------------------------------------------------- arguments

const args = process.argv.slice(2)
const flag = (name: string) => {
  const i = args.indexOf(name)
  if (i < 0) return undefined
  const value = args[i + 1]
  args.splice(i, 2)
  return value
}
const noRun = args.includes("--no-run")
if (noRun) args.splice(args.indexOf("--no-run"), 1)
const timeoutSeconds = Number(flag("--timeout") ?? 60)
const jobs = Math.max(1, Number(flag("--jobs") ?? 2))

const defaultFiles = (): Array<string> => {
  const files = ["README.md", "CONTRIBUTING.md", "CHANGELOG.md", "bench/README.md"]
  const docs = path.join(root, "docs")
  if (fs.existsSync(docs)) {
    for (const name of fs.readdirSync(docs).sort()) if (name.endsWith(".md")) files.push(`docs/${name}`)
  }
  return files.filter((file) => fs.existsSync(path.join(root, file)))
}
const files = args.length > 0
  ? args.map((file) => path.relative(root, path.resolve(file)).split(path.sep).join("/"))
  : defaultFiles()

// ------------------------------------------------------------------------------------ extract

interface Block {
  /** repo-relative markdown file */
  readonly file: string
  /** 1-based line of the block's first code line */
  readonly line: number
  /** the fence's indentation, removed from every code line */
  readonly indent: number
  readonly code: string
  readonly out: string
  /** why the block is only type-checked, when it is */
  readonly typecheckOnly: string | undefined
}

interface Problem {
  readonly file: string
  readonly line: number
  readonly message: string
}

const fenceOpen = /^( {0,3})(`{3,}|~{3,})\s*([^\s`]*)(.*)$/

const extract = (file: string, problems: Array<Problem>): Array<Block> => {
  const lines = fs.readFileSync(path.join(root, file), "utf8").split(/\r?\n/)
  const blocks: Array<Block> = []
  const base = file.replace(/\.md$/, "").replace(/[^A-Za-z0-9]+/g, "_")
  let marker: { readonly text: string; readonly line: number } | undefined
  for (let i = 0; i < lines.length; i++) {
    const text = lines[i]!
    const open = fenceOpen.exec(text)
    if (open === null) {
      const trimmed = text.trim()
      const isMarker = MARKER.exec(trimmed)
      if (isMarker !== null) {
        if (marker !== undefined) {
          problems.push({ file, line: marker.line, message: "check marker not followed by a code block" })
        }
        marker = { text: isMarker[1]!, line: i + 1 }
      } else if (trimmed !== "" && marker !== undefined) {
        problems.push({ file, line: marker.line, message: "check marker not followed by a code block" })
        marker = undefined
      }
      continue
    }
    const indent = open[1]!.length
    const fence = open[2]!
    const lang = open[3]!.toLowerCase()
    const start = i
    const body: Array<string> = []
    let closed = false
    for (i = i + 1; i < lines.length; i++) {
      const line = lines[i]!
      const trimmed = line.trim()
      if (
        trimmed.startsWith(fence) && /^(`+|~+)$/.test(trimmed) && trimmed[0] === fence[0] &&
        line.search(/\S/) <= 3 + indent
      ) {
        closed = true
        break
      }
      body.push(line.slice(Math.min(indent, line.search(/\S|$/))))
    }
    if (!closed) {
      problems.push({ file, line: start + 1, message: "unclosed code block" })
      break
    }
    if (lang === "") {
      problems.push({
        file,
        line: start + 1,
        message: "code block with no language (```ts is checked; ```text / ```sh for the rest)"
      })
    }
    let typecheckOnly: string | undefined
    if (marker !== undefined) {
      const only = TYPECHECK_ONLY.exec(marker.text)
      if (only === null) {
        problems.push({
          file,
          line: marker.line,
          message: `unknown check marker "${marker.text}" (write <!-- check: typecheck-only (needs ...) -->)`
        })
      } else if (!CHECKED_LANGUAGES.has(lang)) {
        problems.push({ file, line: marker.line, message: "check marker above a block that is not ```ts" })
      } else {
        typecheckOnly = only[1]!.trim()
      }
      marker = undefined
    }
    if (!CHECKED_LANGUAGES.has(lang)) continue
    if (body.every((line) => line.trim() === "")) {
      problems.push({ file, line: start + 1, message: "empty ts code block" })
      continue
    }
    blocks.push({
      file,
      line: start + 2,
      indent,
      code: body.join("\n"),
      out: path.join(outDir, `${base}_${start + 2}.ts`),
      typecheckOnly
    })
  }
  if (marker !== undefined) {
    problems.push({ file, line: marker.line, message: "check marker not followed by a code block" })
  }
  return blocks
}

// ---------------------------------------------------------------------------------- type-check

const typecheck = (blocks: ReadonlyArray<Block>): Array<string> => {
  const byOut = new Map(blocks.map((b) => [path.resolve(b.out), b]))
  return typecheckSnippets(root, outDir, blocks.map((b) => b.out)).map((d) => {
    const message = ts.flattenDiagnosticMessageText(d.messageText, "\n    ")
    const category = ts.DiagnosticCategory[d.category].toLowerCase()
    if (d.file === undefined || d.start === undefined) return `${category} TS${d.code}: ${message}`
    const pos = d.file.getLineAndCharacterOfPosition(d.start)
    const block = byOut.get(path.resolve(d.file.fileName))
    if (block === undefined) {
      return `${path.relative(root, d.file.fileName)}:${pos.line + 1}:${
        pos.character + 1
      } - ${category} TS${d.code}: ${message}`
    }
    return `${block.file}:${block.line + pos.line}:${
      block.indent + pos.character + 1
    } - ${category} TS${d.code}: ${message}`
  })
}

// ----------------------------------------------------------------------------------------- run

interface RunResult {
  readonly block: Block
  readonly ok: boolean
  readonly seconds: number
  readonly detail: string
}

const tsxBin = path.join(root, "node_modules", ".bin", "tsx")

const runBlock = (block: Block, databaseUrl: string): Promise<RunResult> =>
  new Promise((resolve) => {
    const started = Date.now()
    const child = spawn(tsxBin, [block.out], {
      cwd: root,
      env: { ...process.env, DATABASE_URL: databaseUrl },
      stdio: ["ignore", "pipe", "pipe"],
      detached: true // its own process group, so a timeout ends tsx and the node it starts
    })
    let output = ""
    child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()))
    child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()))
    let timedOut = false
    const timer = setTimeout(() => {
      timedOut = true
      try {
        process.kill(-child.pid!, "SIGKILL")
      } catch {
        child.kill("SIGKILL")
      }
    }, timeoutSeconds * 1000)
    child.on("close", (code, signal) => {
      clearTimeout(timer)
      const seconds = (Date.now() - started) / 1000
      const ok = !timedOut && code === 0
      const why = timedOut ? `did not exit within ${timeoutSeconds} s` : `exited with ${code ?? signal}`
      resolve({ block, ok, seconds, detail: ok ? "" : `${why}\n${output.trimEnd().replace(/^/gm, "    ")}` })
    })
  })

const runAll = async (blocks: ReadonlyArray<Block>, databaseUrl: string): Promise<Array<RunResult>> => {
  const results: Array<RunResult> = new Array(blocks.length)
  let next = 0
  const worker = async () => {
    while (next < blocks.length) {
      const i = next++
      const result = await runBlock(blocks[i]!, databaseUrl)
      results[i] = result
      const where = `${result.block.file}:${result.block.line - 1}`
      console.log(
        `${result.ok ? "ok  " : "FAIL"} ${where} (${result.seconds.toFixed(1)} s)${
          result.ok ? "" : `\n${result.detail}`
        }`
      )
    }
  }
  await Promise.all(Array.from({ length: Math.min(jobs, blocks.length) }, worker))
  return results
}

/** `DATABASE_URL`, or an embedded server for as long as `f` runs. */
const withDatabase = <A>(f: (url: string) => Promise<A>): Promise<A> =>
  Effect.runPromise(
    Effect.gen(function*() {
      const db = yield* PgDatabase.PgDatabase
      if (db.embedded !== undefined) {
        console.log(`docs:check: DATABASE_URL not set, running on an embedded server (port ${db.embedded.port})`)
      }
      return yield* Effect.promise(() => f(Redacted.value(db.url)))
    }).pipe(Effect.provide(PgDatabase.layer()))
  )

// ---------------------------------------------------------------------------------------- main

const main = async () => {
  const started = Date.now()
  const problems: Array<Problem> = []
  const blocks = files.flatMap((file) => extract(file, problems))
  fs.rmSync(outDir, { recursive: true, force: true })
  fs.mkdirSync(outDir, { recursive: true })
  for (const block of blocks) fs.writeFileSync(block.out, `${block.code}\n`)

  const diagnostics = blocks.length > 0 ? typecheck(blocks) : []
  for (const p of problems) console.error(`${p.file}:${p.line} - error: ${p.message}`)
  for (const d of diagnostics) console.error(d)

  const runnable = blocks.filter((b) => b.typecheckOnly === undefined)
  let failedRuns = 0
  if (!noRun && problems.length === 0 && diagnostics.length === 0 && runnable.length > 0) {
    const results = await withDatabase((url) => runAll(runnable, url))
    failedRuns = results.filter((r) => !r.ok).length
  }
  for (const b of blocks) {
    if (b.typecheckOnly !== undefined) {
      console.log(`tc  ${b.file}:${b.line - 1} (type-checked only: ${b.typecheckOnly})`)
    }
  }

  const errors = problems.length + diagnostics.length + failedRuns
  const ran = noRun || problems.length + diagnostics.length > 0 ? 0 : runnable.length
  const summary = `docs:check: ${blocks.length} ts blocks in ${files.length} files; ${blocks.length} type-checked, ` +
    `${ran} run, ${blocks.length - runnable.length} type-check only; ${errors} error${errors === 1 ? "" : "s"} ` +
    `(${((Date.now() - started) / 1000).toFixed(1)} s)`
  if (errors > 0) {
    console.error(summary)
    process.exit(1)
  }
  console.log(summary)
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
