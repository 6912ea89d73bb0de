/**
 * Summarise a V8 .cpuprofile: self time by function (top N), and self time per source file.
 *
 *   npx tsx bench/profile-report.ts <file.cpuprofile> [top=40]
 */
import { readFileSync } from "node:fs"

interface Node {
  readonly id: number
  readonly callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number }
  readonly children?: ReadonlyArray<number>
}
interface Profile {
  readonly nodes: ReadonlyArray<Node>
  readonly samples: ReadonlyArray<number>
  readonly timeDeltas: ReadonlyArray<number>
}

const [file, topArg = "40"] = process.argv.slice(2)
if (file === undefined) throw new Error("usage: profile-report.ts <file.cpuprofile> [top]")
const profile = JSON.parse(readFileSync(file, "utf8")) as Profile
const byId = new Map(profile.nodes.map((n) => [n.id, n]))
const self = new Map<number, number>()
profile.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)))
const total = [...self.values()].reduce((a, b) => a + b, 0)

const short = (url: string) =>
  url.replace(/^.*\/node_modules\//, "").replace(/^.*\/work\/main\//, "").replace(/^file:\/\//, "")
const byFn = new Map<string, number>()
const byFile = new Map<string, number>()
for (const [id, t] of self) {
  const { callFrame: f } = byId.get(id)!
  const key = `${f.functionName || "(anonymous)"}  ${short(f.url)}:${f.lineNumber + 1}`
  byFn.set(key, (byFn.get(key) ?? 0) + t)
  const fk = short(f.url) || f.functionName
  byFile.set(fk, (byFile.get(fk) ?? 0) + t)
}
const pct = (t: number) => `${((100 * t) / total).toFixed(1).padStart(5)}%`
console.log(`total sampled ${(total / 1000).toFixed(0)} ms\n\nself time by function:`)
for (const [k, t] of [...byFn].sort((a, b) => b[1] - a[1]).slice(0, Number(topArg))) console.log(`${pct(t)}  ${k}`)
console.log("\nself time by file:")
for (const [k, t] of [...byFile].sort((a, b) => b[1] - a[1]).slice(0, 25)) console.log(`${pct(t)}  ${k}`)
