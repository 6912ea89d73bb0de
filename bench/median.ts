/**
 * The end-to-end report from several runs: each figure is the median across the runs of that
 * run's figure (µs per operation, paired ratio, p99, overload wait...), with every e2e target
 * judged on those medians (holds / NO).
 *
 *   npx tsx bench/median.ts bench/results/<run 1>.json bench/results/<run 2>.json bench/results/<run 3>.json
 *   npx tsx bench/median.ts --last=3          the three newest results with a full e2e part (not a subset)
 */
import { readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { e2eReport } from "./e2e-report.ts"
import type { E2eOutcome } from "./e2e.ts"
import { benchDir } from "./stats.ts"

const args = process.argv.slice(2)
const last = args.find((a) => a.startsWith("--last="))
const dir = join(benchDir, "results")
const withE2e = (file: string): E2eOutcome | undefined => {
  const run = JSON.parse(readFileSync(file, "utf8")) as { e2e?: E2eOutcome }
  return run.e2e !== undefined && run.e2e.results.length > 0 && run.e2e.partial !== true ? run.e2e : undefined
}
const files = last !== undefined
  ? readdirSync(dir).filter((f) => f.endsWith(".json")).sort().map((f) => join(dir, f)).filter((f) =>
    withE2e(f) !== undefined
  )
    .slice(-Number(last.slice(7)))
  : args.filter((a) => !a.startsWith("--"))
if (files.length === 0) {
  console.error("usage: npx tsx bench/median.ts <result.json>... | --last=N")
  process.exit(1)
}
const runs = files.map(withE2e).filter((r): r is E2eOutcome => r !== undefined)
console.log(`median of ${runs.length} runs: ${files.join(", ")}`)
console.log(e2eReport(runs).text)
