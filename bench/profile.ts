/**
 * A focused QueuePool hot-path loop to profile:
 *
 *   node --cpu-prof --cpu-prof-dir=/tmp/prof --import tsx bench/profile.ts [checkout|use] [none|rollback] [workers] [connections] [cycles]
 *   npx tsx bench/profile-report.ts /tmp/prof/<the larger file>.cpuprofile
 *
 * Env: TIMEOUT / RESET_TIMEOUT override the pool's `timeout` / `resetTimeout` (e.g. "Infinity"),
 * to see what the timers cost.
 */
import type { PoolOptions } from "effect-db-pool"
import { performance } from "node:perf_hooks"
import { makeQueuePool, queuePoolCheckout, queuePoolUse, runEffectWorkers } from "./subjects.ts"

const [mode = "use", reset = "none", w = "64", c = "8", n = "1000000"] = process.argv.slice(2)
const workers = Number(w)
const connections = Number(c)
const cycles = Number(n)

const { pool } = await makeQueuePool({
  poolSize: connections,
  maxOverflow: 0,
  resetOnReturn: reset as PoolOptions.ResetOnReturn,
  ...(process.env.TIMEOUT ? { timeout: process.env.TIMEOUT as "Infinity" } : {}),
  ...(process.env.RESET_TIMEOUT ? { resetTimeout: process.env.RESET_TIMEOUT as "Infinity" } : {})
})
const cycle = mode === "checkout" ? queuePoolCheckout(pool) : queuePoolUse(pool)
const perWorker = Math.ceil(cycles / workers)
await runEffectWorkers(cycle, workers, Math.ceil(perWorker / 10))
const t0 = performance.now()
await runEffectWorkers(cycle, workers, perWorker)
const us = ((performance.now() - t0) * 1000) / (perWorker * workers)
const env = `timeout=${process.env.TIMEOUT ?? "default"} resetTimeout=${process.env.RESET_TIMEOUT ?? "default"}`
console.log(`QueuePool ${mode} [${reset}] ${workers}:${connections} ${env}: ${us.toFixed(2)} µs/cycle`)
process.exit(0)
