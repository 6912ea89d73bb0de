/**
 * Connection-cycle benchmark (HikariCP's method): every subject, one workers:connections
 * configuration at a time, all in this one process. Warm-up first, then `rounds` rounds in which
 * each subject runs once (the order rotates each round, so drift hits everyone alike); the
 * median round is reported, and ratios (bench/run.ts) are medians of round-by-round ratios.
 */
import type { PoolOptions } from "effect-db-pool"
import { median, timeRounds } from "./stats.ts"
import type { Subject } from "./subjects.ts"
import {
  effectPoolSubjects,
  floorSubjects,
  genericPoolSubject,
  minimalHandoffSubject,
  queuePoolSubjects,
  tarnSubject
} from "./subjects.ts"

export interface CycleConfig {
  readonly workers: number
  readonly connections: number
}

export interface CycleResult {
  readonly subject: string
  readonly workers: number
  readonly connections: number
  readonly cyclesPerRound: number
  /** µs per cycle, one per round. */
  readonly rounds: ReadonlyArray<number>
  readonly medianUs: number
}

export interface CycleOptions {
  readonly configs: ReadonlyArray<CycleConfig>
  /** Cycles per subject per round (split over the workers). */
  readonly cycles: number
  readonly warmupCycles: number
  readonly rounds: number
  readonly resets: ReadonlyArray<PoolOptions.ResetOnReturn>
  readonly log: (line: string) => void
}

export const defaultConfigs: ReadonlyArray<CycleConfig> = [
  { workers: 1, connections: 1 },
  { workers: 32, connections: 16 },
  { workers: 64, connections: 8 },
  { workers: 1024, connections: 8 }
]

const subjectsFor = async (
  connections: number,
  resets: ReadonlyArray<PoolOptions.ResetOnReturn>
): Promise<Array<Subject>> => {
  const ours: Array<Subject> = []
  for (const reset of resets) ours.push(...(await queuePoolSubjects(connections, reset)))
  return [
    ...floorSubjects(),
    minimalHandoffSubject(connections),
    ...ours,
    ...(await effectPoolSubjects(connections)),
    tarnSubject(connections),
    genericPoolSubject(connections)
  ]
}

export const runCycles = async (options: CycleOptions): Promise<Array<CycleResult>> => {
  const results: Array<CycleResult> = []
  for (const config of options.configs) {
    const { connections, workers } = config
    const perWorker = Math.max(1, Math.ceil(options.cycles / workers))
    const total = perWorker * workers
    const warmPerWorker = Math.max(1, Math.ceil(options.warmupCycles / workers))
    const subjects = await subjectsFor(connections, options.resets)
    options.log(
      `cycle ${workers}:${connections}  (${total} cycles x ${options.rounds} rounds, ${subjects.length} subjects)`
    )
    for (const s of subjects) await s.run(workers, warmPerWorker)
    const samples = await timeRounds(
      subjects.length,
      options.rounds,
      total,
      (i) => subjects[i]!.run(workers, perWorker)
    )
    for (let i = 0; i < subjects.length; i++) {
      results.push({
        subject: subjects[i]!.name,
        workers,
        connections,
        cyclesPerRound: total,
        rounds: samples[i]!,
        medianUs: median(samples[i]!)
      })
    }
    for (const s of subjects) await s.close()
  }
  return results
}
