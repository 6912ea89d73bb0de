/** Small helpers shared by the benchmark parts. */
import { performance } from "node:perf_hooks"
import { fileURLToPath } from "node:url"

/** The bench/ folder, also when running from the bundle (bench/launch.ts sets the variable). */
export const benchDir: string = process.env.EFFECT_DB_POOL_BENCH_DIR ?? fileURLToPath(new URL(".", import.meta.url))

export const median = (xs: ReadonlyArray<number>): number => {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}

const gcFn = (globalThis as { gc?: () => void }).gc

export const hasGc = gcFn !== undefined

/** Full GC (twice, so weak/finalizable garbage goes too) when node runs with --expose-gc. */
export const collect = (): void => {
  if (gcFn !== undefined) {
    gcFn()
    gcFn()
  }
}

export const now = (): number => performance.now()

/**
 * Time `rounds` rounds of `subjects` runs, each round starting with the next subject so no subject
 * always runs first (or right after the same neighbour). Returns µs per cycle samples per subject.
 */
export const timeRounds = async (
  subjects: number,
  rounds: number,
  cyclesPerRun: number,
  run: (subject: number) => Promise<void>
): Promise<Array<Array<number>>> => {
  const samples = Array.from({ length: subjects }, (): Array<number> => [])
  for (let round = 0; round < rounds; round++) {
    for (let k = 0; k < subjects; k++) {
      const i = (k + round) % subjects
      collect()
      const t0 = now()
      await run(i)
      samples[i]!.push(((now() - t0) * 1000) / cyclesPerRun)
    }
  }
  return samples
}

export const fmt = (x: number, digits = 2): string => Number.isFinite(x) ? x.toFixed(digits) : "n/a"

/** Render rows as a fixed-width text table. */
export const table = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>): string => {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)))
  const line = (cells: ReadonlyArray<string>) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ")
  return [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n")
}
