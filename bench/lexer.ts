/**
 * The statement classifier (src/pg/internal/session.ts over src/pg/internal/lexer.ts): what
 * reading a statement's text costs per statement (`npm run bench -- --only=lexer`).
 *
 * - `SELECT 1` and a 140-character select: a cache hit (the text built anew each time, as a
 *   statement compiler does, then read a second time as the same string: PgSql and the
 *   connection both ask; string building included), a full scan (cache miss), and the regular
 *   expressions this replaced (the per-statement tests the old code ran, same string building),
 *   for comparison.
 * - Pathological texts of 100 KB and 1 MB (comments, strings, identifiers, dollar quotes,
 *   parentheses, statements): a scan each, never cached (over 4 KiB); the 1 MB / 100 KB ratio is
 *   ~10 for linear time. The old regular expressions did not finish the first one.
 *
 * The classifier is bundled from src/ (an internal module, not a package entry point).
 */
import { classify, clearCache, scan } from "../src/pg/internal/session.ts"
import { fmt, median, table } from "./stats.ts"

export interface LexerRow {
  readonly name: string
  /** CPU µs per statement (median of rounds). */
  readonly us: number
}

export interface LexerSizeRow {
  readonly name: string
  /** CPU µs per scan at 100 KB and at 1 MB (median of rounds). */
  readonly us100k: number
  readonly us1m: number
}

export interface LexerOutcome {
  readonly statements: ReadonlyArray<LexerRow>
  readonly sizes: ReadonlyArray<LexerSizeRow>
}

// The regular expressions before the lexer (src/pg/internal/session.ts and PgSql.ts at a64c265),
// as the old code ran them per statement: autocommitSafe, the mayTouchSession pre-filter, and
// PgSql's transaction-control test. Kept here only to compare the common case.
const oldAutocommitSafe = /^\s*(?:select|insert|update|delete|with|values|table|show)\b[^;]*;?\s*$/i
const oldMayTouchSession = /set|listen|prepare|discard|dealloc|temp|advisory|hold|characteristics/i
const oldTransactionControl = /^\s*(?:begin|start\s+transaction|commit|end|rollback|abort|savepoint|release)\b/i

const select140 =
  "select o.id, o.customer_id, o.total_cents, o.created_at from orders o where o.tenant_id = $1 and o.status = $2 order by o.created_at desc limit 50"

/** Split so that joining builds a new string each time (a compiled statement is a new string). */
const parts = (text: string): ReadonlyArray<string> => [text.slice(0, 6), text.slice(6)]

const MB = 1 << 20
/** Whole units, about `size` characters. */
const fill = (unit: string, size: number) => unit.repeat(Math.ceil(size / unit.length))

const shapes: ReadonlyArray<readonly [string, (size: number) => string]> = [
  ["/**/ blocks + a trigger word (froze the old scanner)", (n) => fill("/**/", n) + " select 'set'"],
  ["comment blocks, then SET", (n) => fill("/* c */", n) + "SET ROLE x"],
  ["nested comment opens", (n) => "select 1 /*" + fill("/*", n)],
  ["-- comments ended by \\r", (n) => fill("-- set role x\r", n) + "select 1"],
  ["one '' string", (n) => "select '" + fill("set role x'' ", n) + "'"],
  ["'' with backslashes (read twice)", (n) => "select '" + fill("\\ set role x ", n) + "'"],
  ["one quoted identifier", (n) => "select \"" + fill("set\"\" ", n) + "\""],
  ["one U& identifier", (n) => "select U&\"" + fill("\\0073", n) + "\""],
  ["dollar quote, near-miss tags", (n) => "select $aaaa$" + fill("$aaa$aaaaa$", n) + "$aaaa$"],
  ["open parentheses in set_config", (n) => "select set_config('k', 'v', " + fill("(", n) + "true"],
  ["many statements", (n) => fill("select 1;", n) + "set role x"]
]

/**
 * CPU µs per call of `run` (called `count` times a round), median of `rounds`: this process's
 * CPU time (`process.cpuUsage`), steadier than wall time on a shared machine.
 */
const time = (rounds: number, count: number, run: (i: number) => unknown): number => {
  const samples: Array<number> = []
  let sink = 0
  // One round untimed first: the compiler's background threads count as this process's CPU too.
  for (let r = -1; r < rounds; r++) {
    const before = process.cpuUsage()
    for (let i = 0; i < count; i++) if (run(i)) sink++
    const used = process.cpuUsage(before)
    if (r >= 0) samples.push((used.user + used.system) / count)
  }
  if (sink < 0) console.log(sink)
  return median(samples)
}

export const runLexer = (options: { readonly quick: boolean; readonly log: (line: string) => void }): LexerOutcome => {
  const rounds = options.quick ? 5 : 15
  const count = options.quick ? 300_000 : 1_000_000
  const statements: Array<LexerRow> = []
  const cases = [
    ["SELECT 1", "SELECT 1", "SELECT 2"],
    ["140-char select", select140, select140.replace("limit 50", "limit 51")]
  ] as const
  for (const [label, text, other] of cases) {
    options.log(`lexer: ${label}`)
    // Two statements in turn, each built anew: the first read of each is a cache lookup (the
    // last text was the other one), the second the same string again (the connection after PgSql).
    const [a, b] = parts(text)
    const [c, d] = parts(other)
    const build = (i: number) => (i & 1) === 0 ? a! + b! : c! + d!
    clearCache()
    statements.push({
      name: `${label}: cache hit (built anew, read twice)`,
      us: time(rounds, count, (i) => {
        const sql = build(i)
        return classify(sql).autocommitSafe && classify(sql).sessionChange === undefined
      })
    })
    statements.push({
      name: `${label}: full scan (cache miss)`,
      us: time(rounds, count / 10, (i) => scan(build(i)).autocommitSafe)
    })
    statements.push({
      name: `${label}: the regular expressions before (for comparison)`,
      us: time(rounds, count, (i) => {
        const sql = build(i)
        return oldAutocommitSafe.test(sql) && !oldMayTouchSession.test(sql) && !oldTransactionControl.test(sql)
      })
    })
  }
  const sizes: Array<LexerSizeRow> = []
  for (const [name, make] of shapes) {
    options.log(`lexer: ${name}`)
    const small = make(MB / 10)
    const big = make(MB)
    const scans = options.quick ? 3 : 7
    sizes.push({
      name,
      us100k: time(scans, 10, () => scan(small).autocommitSafe),
      us1m: time(scans, 1, () => scan(big).autocommitSafe)
    })
  }
  return { statements, sizes }
}

export const lexerReport = (outcome: LexerOutcome): string =>
  [
    "CPU µs per statement (this process's CPU time, median of rounds)\n",
    table(["statement", "µs"], outcome.statements.map((r) => [r.name, fmt(r.us, 3)])),
    "\nPathological texts: CPU µs per scan (never cached); 1 MB / 100 KB ≈ 10 for linear time\n",
    table(
      ["text", "100 KB µs", "1 MB µs", "1 MB / 100 KB", "ns/byte (1 MB)"],
      outcome.sizes.map((
        r
      ) => [r.name, fmt(r.us100k, 0), fmt(r.us1m, 0), fmt(r.us1m / r.us100k, 1), fmt((r.us1m * 1000) / MB, 1)])
    )
  ].join("\n")
