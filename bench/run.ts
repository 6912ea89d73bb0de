/**
 * effect-db-pool benchmark harness.
 *
 *   npm run bench              full run (a few minutes)
 *   npm run bench -- --quick   under a minute
 *   npm run bench -- --only=cycle,scaling,memory,e2e,lexer
 *   npm run bench -- --only=lexer          the statement classifier alone (seconds, no server)
 *   npm run bench -- --only=e2e --no-pin   the end-to-end part without pinning node to one CPU
 *   npm run bench -- --only=e2e --subjects=ours-pipelined,multiplex --concurrency=16 --queries=select
 *                                          a subset of the end-to-end part (see E2eOptions.subset)
 *   npx tsx bench/median.ts --last=3       the e2e report from the median of the last 3 runs
 *
 * (bench/launch.ts bundles this file with esbuild and runs it under node --expose-gc.)
 *
 * Prints tables and ratios, and writes bench/results/<timestamp>.json with machine info.
 */
import { execSync } from "node:child_process"
import { mkdirSync, readFileSync, writeFileSync } from "node:fs"
import * as os from "node:os"
import { join } from "node:path"
import type { CycleResult } from "./cycle.ts"
import { defaultConfigs, runCycles } from "./cycle.ts"
import { e2eReport } from "./e2e-report.ts"
import type { E2eOutcome } from "./e2e.ts"
import { runE2e } from "./e2e.ts"
import type { LexerOutcome } from "./lexer.ts"
import { lexerReport, runLexer } from "./lexer.ts"
import type { MemoryResult, ScalingResult } from "./scaling.ts"
import { runMemory, runScaling } from "./scaling.ts"
import { benchDir, fmt, hasGc, median, table } from "./stats.ts"

const args = process.argv.slice(2)
const quick = args.includes("--quick")
const onlyArg = args.find((a) => a.startsWith("--only="))
const only = new Set(
  onlyArg === undefined ? ["cycle", "scaling", "memory", "e2e", "lexer"] : onlyArg.slice(7).split(",")
)
const log = (line: string) => console.error(`[bench] ${line}`)
/** `--name=a,b` as a list, or `undefined` when absent. */
const listArg = (name: string): ReadonlyArray<string> | undefined =>
  args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3).split(",").filter((x) => x !== "")
const subset = (() => {
  const subjects = listArg("subjects")
  const counts = (name: string) =>
    listArg(name)?.map((x) => {
      const n = Number(x)
      if (!Number.isInteger(n) || n < 1) throw new Error(`--${name}: ${JSON.stringify(x)} is not a positive integer`)
      return n
    })
  const concurrency = counts("concurrency")
  const queries = listArg("queries")
  const rounds = counts("rounds")?.[0]
  return subjects === undefined && concurrency === undefined && queries === undefined && rounds === undefined
    ? undefined
    : { subjects, concurrency, queries, rounds }
})()

const version = (pkg: string): string => {
  try {
    const path = join(benchDir, "..", "node_modules", pkg, "package.json")
    return (JSON.parse(readFileSync(path, "utf8")) as { version: string }).version
  } catch {
    return "unknown"
  }
}

const gitCommit = (): string => {
  try {
    return execSync("git rev-parse --short HEAD", { stdio: ["ignore", "pipe", "ignore"] }).toString().trim()
  } catch {
    return "unknown"
  }
}

const machine = () => ({
  node: process.version,
  v8: process.versions.v8,
  cpu: os.cpus()[0]?.model ?? "unknown",
  cores: os.cpus().length,
  os: `${os.type()} ${os.release()} ${os.arch()}`,
  totalMemGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
  exposeGc: hasGc,
  versions: {
    effect: version("effect"),
    tarn: version("tarn"),
    "generic-pool": version("generic-pool"),
    pg: version("pg"),
    "@effect/sql-pg": version("@effect/sql-pg")
  },
  commit: gitCommit()
})

const cycleTable = (results: ReadonlyArray<CycleResult>): string => {
  const configs = [...new Set(results.map((r) => `${r.workers}:${r.connections}`))]
  const subjects = [...new Set(results.map((r) => r.subject))]
  const cell = (subject: string, config: string) => {
    const r = results.find((x) => x.subject === subject && `${x.workers}:${x.connections}` === config)
    return r === undefined ? "" : fmt(r.medianUs)
  }
  return table(
    ["µs/cycle (median)  workers:connections", ...configs],
    subjects.map((s) => [s, ...configs.map((c) => cell(s, c))])
  )
}

interface Ratio {
  readonly name: string
  readonly target: string
  readonly byConfig: Record<string, number>
  /** Interquartile range of the round-by-round ratios, per configuration. */
  readonly spread: Record<string, string>
  readonly holds: boolean
}

/**
 * A ratio between two subjects of one configuration: the median of the round-by-round ratios
 * (round r of both ran minutes apart at most, so they drew about the same load from the shared
 * machine), with the quartiles of those ratios: the spread a "holds" stands on.
 */
const pairedRatio = (
  a: CycleResult | undefined,
  b: CycleResult | undefined
): { median: number; q1: number; q3: number } => {
  if (a === undefined || b === undefined) return { median: NaN, q1: NaN, q3: NaN }
  const rs = a.rounds.map((x, i) => x / b.rounds[i]!).sort((x, y) => x - y)
  return { median: median(rs), q1: rs[Math.floor((rs.length - 1) / 4)]!, q3: rs[Math.ceil(((rs.length - 1) * 3) / 4)]! }
}

const ratios = (results: ReadonlyArray<CycleResult>): Array<Ratio> => {
  const configs = [...new Set(results.map((r) => `${r.workers}:${r.connections}`))]
  const find = (subject: string, config: string) =>
    results.find((x) => x.subject === subject && `${x.workers}:${x.connections}` === config)
  const out: Array<Ratio> = []
  const add = (
    name: string,
    target: string,
    a: string,
    b: string,
    ok: (x: number) => boolean,
    only?: ReadonlyArray<string>
  ) => {
    const byConfig: Record<string, number> = {}
    const spread: Record<string, string> = {}
    for (const c of configs) {
      const r = pairedRatio(find(a, c), find(b, c))
      byConfig[c] = r.median
      spread[c] = `${fmt(r.q1)}–${fmt(r.q3)}`
    }
    const judged = Object.entries(byConfig).filter(([c, x]) =>
      Number.isFinite(x) && (only === undefined || only.includes(c))
    )
    if (judged.length === 0) return
    out.push({ name, target, byConfig, spread, holds: judged.every(([, x]) => ok(x)) })
  }
  const floorS = "Effect floor (scoped acquireRelease)"
  const floorU = "Effect floor (acquireUseRelease)"
  const handoff = "minimal hand-off use"
  const le13 = (x: number) => x <= 1.3
  for (const reset of ["none", "rollback"]) {
    add(`QueuePool checkout [${reset}] / floor (scoped)`, "≤ 1.3×", `QueuePool checkout [${reset}]`, floorS, le13)
    add(`QueuePool use [${reset}] / floor (acquireUseRelease)`, "≤ 1.3×", `QueuePool use [${reset}]`, floorU, le13)
    add(
      `QueuePool use [${reset}] / minimal hand-off (design floor)`,
      "≤ 1.15×",
      `QueuePool use [${reset}]`,
      handoff,
      (x) => x <= 1.15
    )
  }
  // A reset that completes synchronously keeps the release on the synchronous path.
  add(
    "QueuePool use [rollback] / QueuePool use [none]",
    "≤ 1.25×",
    "QueuePool use [rollback]",
    "QueuePool use [none]",
    (x) => x <= 1.25
  )
  add(
    "QueuePool checkout [rollback] / QueuePool checkout [none]",
    "≤ 1.25×",
    "QueuePool checkout [rollback]",
    "QueuePool checkout [none]",
    (x) => x <= 1.25
  )
  for (const reset of ["none", "rollback"]) {
    add(
      `effect/Pool get / QueuePool use [${reset}]`,
      "≥ 1.2× at 64:8, 1024:8",
      "effect/Pool get",
      `QueuePool use [${reset}]`,
      (x) => x >= 1.2,
      [
        "64:8",
        "1024:8"
      ]
    )
    add(
      `effect/Pool get / QueuePool checkout [${reset}]`,
      "(info)",
      "effect/Pool get",
      `QueuePool checkout [${reset}]`,
      () => true
    )
    add(
      `effect/Pool use / QueuePool use [${reset}]`,
      "(info)",
      "effect/Pool use",
      `QueuePool use [${reset}]`,
      () => true
    )
  }
  add("tarn / QueuePool use [none]", "(info)", "tarn", "QueuePool use [none]", () => true)
  add("generic-pool / QueuePool use [none]", "(info)", "generic-pool", "QueuePool use [none]", () => true)
  return out
}

const ratioTable = (rs: ReadonlyArray<Ratio>): string => {
  const configs = rs.length === 0 ? [] : Object.keys(rs[0]!.byConfig)
  return table(
    ["ratio", ...configs, "target", "holds"],
    rs.map((r) => [
      r.name,
      // Targets show the quartiles of the round-by-round ratios beside the median.
      ...configs.map((c) => `${fmt(r.byConfig[c] ?? NaN)}×${r.target === "(info)" ? "" : ` (${r.spread[c]})`}`),
      r.target,
      r.target === "(info)" ? "" : r.holds ? "yes" : "NO"
    ])
  )
}

const main = async () => {
  const started = new Date()
  const info = machine()
  log(
    `${quick ? "quick" : "full"} run on ${info.cpu} x${info.cores}, node ${info.node}, effect ${info.versions.effect}`
  )
  if (!hasGc) log("node runs without --expose-gc: rounds are not preceded by a GC, memory is skipped")

  const output: {
    machine: ReturnType<typeof machine>
    mode: string
    startedAt: string
    durationS?: number
    cycle?: { results: ReadonlyArray<CycleResult>; ratios: ReadonlyArray<Ratio> }
    scaling?: ReadonlyArray<ScalingResult>
    memory?: ReadonlyArray<MemoryResult>
    e2e?: E2eOutcome
    lexer?: LexerOutcome
  } = { machine: info, mode: quick ? "quick" : "full", startedAt: started.toISOString() }

  if (only.has("cycle")) {
    const results = await runCycles({
      configs: defaultConfigs,
      // Many short rounds rather than a few long ones: a ratio is the median of per-round ratios.
      cycles: quick ? 20_000 : 50_000,
      warmupCycles: quick ? 10_000 : 50_000,
      rounds: quick ? 3 : 15,
      resets: ["none", "rollback"],
      log
    })
    const rs = ratios(results)
    output.cycle = { results, ratios: rs }
    console.log("\nConnection cycle (checkout + Effect.yieldNow / await + release), stub driver\n")
    console.log(cycleTable(results))
    console.log("\nRatios (a / b)\n")
    console.log(ratioTable(rs))
  }

  if (only.has("scaling")) {
    const scaling = await runScaling({
      waiters: [100, 1_000, 10_000],
      connections: 10,
      cycles: quick ? 20_000 : 100_000,
      rounds: quick ? 3 : 5,
      log
    })
    output.scaling = scaling
    const counts = [...new Set(scaling.map((r) => r.waiters))]
    const subjects = [...new Set(scaling.map((r) => r.subject))]
    console.log("\nScaling: µs/cycle with N concurrent fibers on 10 connections\n")
    console.log(table(
      ["subject", ...counts.map((n) => `${n}`)],
      subjects.map((s) => [
        s,
        ...counts.map((n) => fmt(scaling.find((r) => r.subject === s && r.waiters === n)?.medianUs ?? NaN))
      ])
    ))
  }

  if (only.has("memory")) {
    const memory = await runMemory(quick ? [1_000, 10_000] : [100, 1_000, 10_000], 10, log)
    output.memory = memory
    if (memory.length > 0) {
      console.log("\nMemory per waiting fiber (heap delta after full GC / waiters), 10 connections held\n")
      console.log(table(
        ["subject", "waiters", "bytes/waiter", "pool's own bytes/waiter"],
        memory.map((m) => [m.subject, `${m.waiters}`, fmt(m.bytesPerWaiter, 0), fmt(m.poolBytesPerWaiter, 0)])
      ))
    }
  }

  if (only.has("e2e")) {
    const e2e = await runE2e({ quick, log, pin: !args.includes("--no-pin"), subset })
    output.e2e = e2e
    // Tables and the e2e targets (holds / NO): bench/e2e-report.ts; `npx tsx bench/median.ts
    // <result files>` prints the same from the median of several runs.
    const report = e2eReport([e2e])
    if (report.text !== "") console.log(report.text)
  }

  if (only.has("lexer")) {
    const lexer = runLexer({ quick, log })
    output.lexer = lexer
    console.log("\nStatement classifier (src/pg/internal/lexer.ts, session.ts)\n")
    console.log(lexerReport(lexer))
  }

  output.durationS = Math.round((Date.now() - started.getTime()) / 100) / 10
  const dir = join(benchDir, "results")
  mkdirSync(dir, { recursive: true })
  const suffix = `${quick ? "-quick" : ""}${subset === undefined ? "" : "-subset"}`
  const file = join(dir, `${started.toISOString().replace(/[:.]/g, "-")}${suffix}.json`)
  writeFileSync(file, JSON.stringify(output, null, 2) + "\n")
  console.log(`\n${quick ? "quick" : "full"} run took ${output.durationS} s; results: ${file}`)
}

// A run whose event loop empties before it finishes (a deadlock) must not pass for a success.
process.on("beforeExit", () => {
  console.error("[bench] the event loop emptied before the run finished (deadlock?)")
  process.exit(1)
})

main().then(
  () => process.exit(0),
  (error) => {
    console.error(error)
    process.exit(1)
  }
)
