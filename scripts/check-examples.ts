/**
 * Type-check every `@example` in the doc comments of `src/` (npm run docs:examples).
 *
 * Each fenced ```ts block inside an `@example` tag of a JSDoc comment in `src/**\/*.ts` (not
 * `src/workbench`) is written to `node_modules/.cache/examples/<file>_<n>.ts` (inside the repo, so
 * `node_modules` and the tsconfig `paths` for `effect-db-pool`, `effect-db-pool/testing`,
 * `effect-db-pool/pg` and `effect-db-pool/pg/embedded` resolve) and all of them are type-checked
 * in one TypeScript program with the repo's tsconfig.json options (strict, ...), except that
 * unused locals and parameters are allowed. Errors are reported at the example's line in the
 * source file; the exit code is 1 on any error.
 *
 * Also an error: an `@example` without a fenced code block, a block in another language than
 * ts/typescript (it would go unchecked), a block with no language, an unclosed block.
 *
 * Every example is a module of its own (`export {}` is appended), so examples may repeat names.
 * To re-run the check by hand after a run: `npx tsc -p node_modules/.cache/examples`.
 *
 * Usage: tsx scripts/check-examples.ts [--root <dir>]   (root defaults to the repo of this script)
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import ts from "typescript"
import { typecheckSnippets } from "./typecheck-snippets.ts"

const CHECKED_LANGUAGES = new Set(["ts", "typescript"])

const rootArg = process.argv.indexOf("--root")
const root = path.resolve(
  rootArg >= 0 && process.argv[rootArg + 1] !== undefined
    ? process.argv[rootArg + 1]!
    : path.join(path.dirname(fileURLToPath(import.meta.url)), "..")
)
const srcDir = path.join(root, "src")
const excluded = [path.join(srcDir, "workbench")]
const outDir = path.join(root, "node_modules", ".cache", "examples")

interface Example {
  /** repo-relative source file */
  readonly file: string
  /** 1-based line in the source file of the example's first code line */
  readonly line: number
  /** per code line, the column (0-based) in the source where the code starts */
  readonly columns: ReadonlyArray<number>
  readonly code: string
  readonly out: string
}

interface Problem {
  readonly file: string
  readonly line: number
  readonly column: number
  readonly message: string
}

const rel = (file: string) => path.relative(root, file).split(path.sep).join("/")

const listSources = (dir: string): Array<string> => {
  const files: Array<string> = []
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name)
    if (excluded.includes(full)) continue
    if (entry.isDirectory()) files.push(...listSources(full))
    else if (entry.isFile() && entry.name.endsWith(".ts") && !entry.name.endsWith(".d.ts")) files.push(full)
  }
  return files.sort()
}

/** Every `/** ... *\/` comment of a file, found through the parser (so strings and regexes don't confuse it). */
const docComments = (sourceFile: ts.SourceFile): Array<ts.CommentRange> => {
  const text = sourceFile.text
  const seen = new Map<number, ts.CommentRange>()
  const visit = (node: ts.Node) => {
    for (const range of ts.getLeadingCommentRanges(text, node.pos) ?? []) {
      if (
        range.kind === ts.SyntaxKind.MultiLineCommentTrivia && text.startsWith("/**", range.pos) &&
        !text.startsWith("/**/", range.pos)
      ) {
        seen.set(range.pos, range)
      }
    }
    for (const child of node.getChildren(sourceFile)) visit(child)
  }
  visit(sourceFile)
  return [...seen.values()].sort((a, b) => a.pos - b.pos)
}

interface CommentLine {
  readonly text: string // content with the leading `*` (and one space) removed
  readonly line: number // 1-based source line
  readonly column: number // 0-based source column where `text` starts
}

const commentLines = (sourceFile: ts.SourceFile, range: ts.CommentRange): Array<CommentLine> => {
  const raw = sourceFile.text.slice(range.pos, range.end)
  const first = sourceFile.getLineAndCharacterOfPosition(range.pos)
  return raw.split(/\r?\n/).map((lineText, i) => {
    let start = 0
    let body = lineText
    if (i === 0) {
      start = 3 // after "/**"
      body = lineText.slice(3)
    }
    const lastLine = i === raw.split(/\r?\n/).length - 1
    if (lastLine) body = body.replace(/\*\/\s*$/, "")
    const prefix = i === 0 ? /^\s?/.exec(body)! : /^\s*\*?\s?/.exec(body)!
    const column = (i === 0 ? first.character : 0) + start + prefix[0].length
    return { text: body.slice(prefix[0].length), line: first.line + 1 + i, column }
  })
}

const fenceOpen = /^\s*(`{3,}|~{3,})\s*([^\s`]*)(.*)$/

const extract = (file: string, problems: Array<Problem>): Array<Example> => {
  const text = fs.readFileSync(file, "utf8")
  const sourceFile = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS)
  const examples: Array<Example> = []
  const base = rel(file).replace(/\.ts$/, "").replace(/[/\\]/g, "_")
  for (const range of docComments(sourceFile)) {
    const lines = commentLines(sourceFile, range)
    let inExample: CommentLine | undefined // the @example line, while inside its tag
    let blocksInTag = 0
    let fence: {
      readonly marker: string
      readonly lang: string
      readonly at: CommentLine
      readonly body: Array<CommentLine>
    } | undefined
    const endTag = () => {
      if (inExample !== undefined && blocksInTag === 0) {
        problems.push({
          file: rel(file),
          line: inExample.line,
          column: inExample.column,
          message: "@example without a fenced ```ts code block"
        })
      }
      inExample = undefined
      blocksInTag = 0
    }
    for (const line of lines) {
      if (fence !== undefined) {
        const trimmed = line.text.trim()
        if (trimmed.startsWith(fence.marker) && /^(`+|~+)$/.test(trimmed) && trimmed[0] === fence.marker[0]) {
          if (inExample !== undefined) {
            blocksInTag++
            const lang = fence.lang.toLowerCase()
            if (lang === "") {
              problems.push({
                file: rel(file),
                line: fence.at.line,
                column: fence.at.column,
                message: "code block in @example has no language (write ```ts so it is type-checked)"
              })
            } else if (!CHECKED_LANGUAGES.has(lang)) {
              problems.push({
                file: rel(file),
                line: fence.at.line,
                column: fence.at.column,
                message: `code block in @example has unchecked language "${fence.lang}" (only ${
                  [...CHECKED_LANGUAGES].join("/")
                } are type-checked)`
              })
            } else if (fence.body.length > 0) {
              const n = examples.length + 1
              examples.push({
                file: rel(file),
                line: fence.body[0]!.line,
                columns: fence.body.map((l) => l.column),
                code: fence.body.map((l) => l.text).join("\n"),
                out: path.join(outDir, `${base}_${n}.ts`)
              })
            } else {
              problems.push({
                file: rel(file),
                line: fence.at.line,
                column: fence.at.column,
                message: "empty code block in @example"
              })
            }
          }
          fence = undefined
        } else {
          fence.body.push(line)
        }
        continue
      }
      const open = fenceOpen.exec(line.text)
      if (open !== null) {
        fence = { marker: open[1]!, lang: open[2]!, at: line, body: [] }
        continue
      }
      const tag = /^\s*@(\w+)/.exec(line.text)
      if (tag !== null) {
        endTag()
        if (tag[1] === "example") inExample = line
      }
    }
    if (fence !== undefined) {
      problems.push({
        file: rel(file),
        line: fence.at.line,
        column: fence.at.column,
        message: "unclosed code block in doc comment"
      })
      if (inExample !== undefined) blocksInTag++ // already reported
    }
    endTag()
  }
  return examples
}

const main = () => {
  const started = Date.now()
  const problems: Array<Problem> = []
  const sources = listSources(srcDir)
  const examples = sources.flatMap((file) => extract(file, problems))

  fs.rmSync(outDir, { recursive: true, force: true })
  fs.mkdirSync(outDir, { recursive: true })
  // Without this the files would be CommonJS to NodeNext (package scopes stop at node_modules/).
  fs.writeFileSync(path.join(outDir, "package.json"), JSON.stringify({ type: "module", private: true }) + "\n")
  for (const example of examples) {
    fs.writeFileSync(example.out, `${example.code}\nexport {}\n`)
  }
  const byOut = new Map(examples.map((e) => [path.resolve(e.out), e]))
  const diagnostics: Array<string> = []
  if (examples.length > 0) {
    const all = typecheckSnippets(root, outDir, examples.map((e) => e.out))
    for (const d of all) {
      const message = ts.flattenDiagnosticMessageText(d.messageText, "\n    ")
      const category = ts.DiagnosticCategory[d.category].toLowerCase()
      if (d.file === undefined || d.start === undefined) {
        diagnostics.push(`${category} TS${d.code}: ${message}`)
        continue
      }
      const pos = d.file.getLineAndCharacterOfPosition(d.start)
      const example = byOut.get(path.resolve(d.file.fileName))
      if (example !== undefined) {
        const line = example.line + pos.line
        const column = (example.columns[pos.line] ?? 0) + pos.character + 1
        diagnostics.push(
          `${example.file}:${line}:${column} - ${category} TS${d.code}: ${message}\n    (example ${rel(example.out)}:${
            pos.line + 1
          }:${pos.character + 1})`
        )
      } else {
        diagnostics.push(
          `${rel(d.file.fileName)}:${pos.line + 1}:${pos.character + 1} - ${category} TS${d.code}: ${message}`
        )
      }
    }
  }

  for (const p of problems) console.error(`${p.file}:${p.line}:${p.column + 1} - error: ${p.message}`)
  for (const d of diagnostics) console.error(d)
  const files = new Set(examples.map((e) => e.file)).size
  const errors = problems.length + diagnostics.length
  const seconds = ((Date.now() - started) / 1000).toFixed(1)
  const summary =
    `docs:examples: ${examples.length} examples in ${files} files of ${sources.length} checked, ${errors} error${
      errors === 1 ? "" : "s"
    } (${seconds}s)`
  if (errors > 0) {
    console.error(summary)
    process.exit(1)
  }
  console.log(summary)
}

main()
