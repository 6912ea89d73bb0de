/**
 * Scaling: cycle cost with many fibers queued on few connections, and the memory each waiting
 * fiber costs (heap delta after a full GC / number of waiters; needs node --expose-gc).
 */
import { Deferred, Effect, Exit, Fiber, Pool, Scope } from "effect"
import { collect, hasGc, median, timeRounds } from "./stats.ts"
import {
  effectPoolGet,
  makeEffectPool,
  makeQueuePool,
  queuePoolCheckout,
  queuePoolUse,
  runEffectWorkers
} from "./subjects.ts"

export interface ScalingResult {
  readonly subject: string
  readonly waiters: number
  readonly connections: number
  readonly medianUs: number
  readonly rounds: ReadonlyArray<number>
}

export interface MemoryResult {
  readonly subject: string
  readonly waiters: number
  /** Heap bytes per parked fiber, everything included (fiber, its stack, the pool's waiter, timers). */
  readonly bytesPerWaiter: number
  /** The same minus a bare fiber parked on a Deferred: what the pool itself adds per waiter. */
  readonly poolBytesPerWaiter: number
}

export interface ScalingOptions {
  readonly waiters: ReadonlyArray<number>
  readonly connections: number
  readonly cycles: number
  readonly rounds: number
  readonly log: (line: string) => void
}

export const runScaling = async (options: ScalingOptions): Promise<Array<ScalingResult>> => {
  const { connections } = options
  const ours = await makeQueuePool({ poolSize: connections, maxOverflow: 0 })
  const theirs = await makeEffectPool(connections)
  const subjects: Array<[string, Effect.Effect<void, unknown>]> = [
    ["QueuePool checkout [rollback]", queuePoolCheckout(ours.pool)],
    ["QueuePool use [rollback]", queuePoolUse(ours.pool)],
    ["effect/Pool get", effectPoolGet(theirs.pool)]
  ]
  const results: Array<ScalingResult> = []
  for (const waiters of options.waiters) {
    const perWorker = Math.max(1, Math.ceil(options.cycles / waiters))
    const total = perWorker * waiters
    options.log(`scaling ${waiters}:${connections}  (${total} cycles x ${options.rounds} rounds)`)
    for (const [, cycle] of subjects) await runEffectWorkers(cycle, waiters, Math.max(1, perWorker >> 2))
    const samples = await timeRounds(
      subjects.length,
      options.rounds,
      total,
      (i) => runEffectWorkers(subjects[i]![1], waiters, perWorker)
    )
    subjects.forEach(([subject], i) =>
      results.push({ subject, waiters, connections, medianUs: median(samples[i]!), rounds: samples[i]! })
    )
  }
  await Effect.runPromise(Effect.andThen(Scope.close(ours.scope, Exit.void), Scope.close(theirs.scope, Exit.void)))
  return results
}

/**
 * Heap per parked fiber: `connections` holders take every connection and wait on a gate, then
 * `n` fibers queue for a connection; heap after a full GC minus heap before, over `n`.
 */
const parkedBytes = (
  n: number,
  connections: number,
  holder: (gate: Deferred.Deferred<void>) => Effect.Effect<void, unknown>,
  waiter: (gate: Deferred.Deferred<void>) => Effect.Effect<void, unknown>,
  waiting: Effect.Effect<number>
): Effect.Effect<number, unknown> =>
  Effect.gen(function*() {
    const gate = yield* Deferred.make<void>()
    const holders: Array<Fiber.Fiber<void, unknown>> = []
    for (let i = 0; i < connections; i++) {
      holders.push(yield* Effect.forkChild(holder(gate), { startImmediately: true }))
    }
    for (let i = 0; i < 10; i++) yield* Effect.yieldNow
    collect()
    const before = process.memoryUsage().heapUsed
    const fibers: Array<Fiber.Fiber<void, unknown>> = new Array(n)
    for (let i = 0; i < n; i++) fibers[i] = yield* Effect.forkChild(waiter(gate), { startImmediately: true })
    for (let spins = 0; (yield* waiting) < n && spins < 10_000; spins++) yield* Effect.yieldNow
    const parked = yield* waiting
    if (parked < n) return yield* Effect.die(new Error(`only ${parked} of ${n} fibers are waiting`))
    collect()
    const after = process.memoryUsage().heapUsed
    yield* Deferred.succeed(gate, undefined)
    yield* Fiber.joinAll(holders)
    yield* Fiber.joinAll(fibers)
    return (after - before) / n
  })

export const runMemory = async (
  waiterCounts: ReadonlyArray<number>,
  connections: number,
  log: (line: string) => void
): Promise<Array<MemoryResult>> => {
  if (!hasGc) {
    log("memory: skipped (run node with --expose-gc)")
    return []
  }
  const results: Array<MemoryResult> = []
  for (const n of waiterCounts) {
    log(`memory ${n} waiters on ${connections} connections`)
    // A bare fiber parked on a Deferred: the cost of a waiting fiber without any pool.
    let parked = 0
    const bare = await Effect.runPromise(
      parkedBytes(
        n,
        0,
        () => Effect.void,
        (gate) =>
          Effect.suspend(() => {
            parked++
            return Deferred.await(gate)
          }),
        Effect.sync(() => parked)
      )
    )
    const ours = await makeQueuePool({ poolSize: connections, maxOverflow: 0 })
    const oursBytes = await Effect.runPromise(
      parkedBytes(
        n,
        connections,
        (gate) => Effect.scoped(Effect.flatMap(ours.pool.checkout, () => Deferred.await(gate))),
        () => Effect.scoped(Effect.asVoid(ours.pool.checkout)),
        Effect.map(ours.pool.status, (s) => s.waiting)
      )
    )
    const oursUse = await Effect.runPromise(
      parkedBytes(
        n,
        connections,
        (gate) => ours.pool.use(() => Deferred.await(gate)),
        () => ours.pool.use(() => Effect.void),
        Effect.map(ours.pool.status, (s) => s.waiting)
      )
    )
    const theirs = await makeEffectPool(connections)
    const theirsBytes = await Effect.runPromise(
      parkedBytes(
        n,
        connections,
        (gate) => Effect.scoped(Effect.flatMap(Pool.get(theirs.pool), () => Deferred.await(gate))),
        () => Effect.scoped(Effect.asVoid(Pool.get(theirs.pool))),
        Effect.sync(() => theirs.pool.state.waiters.size)
      )
    )
    await Effect.runPromise(Effect.andThen(Scope.close(ours.scope, Exit.void), Scope.close(theirs.scope, Exit.void)))
    results.push(
      { subject: "bare fiber (Deferred.await)", waiters: n, bytesPerWaiter: bare, poolBytesPerWaiter: 0 },
      { subject: "QueuePool checkout", waiters: n, bytesPerWaiter: oursBytes, poolBytesPerWaiter: oursBytes - bare },
      { subject: "QueuePool use", waiters: n, bytesPerWaiter: oursUse, poolBytesPerWaiter: oursUse - bare },
      { subject: "effect/Pool get", waiters: n, bytesPerWaiter: theirsBytes, poolBytesPerWaiter: theirsBytes - bare }
    )
  }
  return results
}
