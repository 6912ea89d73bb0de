/**
 * The things the benchmark compares ("subjects"): each runs `workers` concurrent loops of
 * `perWorker` connection cycles. A cycle = checkout + one yield (Effect.yieldNow / await) +
 * release, over a stub driver whose operations cost nothing (HikariCP's "connection cycle").
 */
import { Effect, Exit, Pool, Scope } from "effect"
import type { ConnectionPool, PoolOptions } from "effect-db-pool"
import { Driver, QueuePool } from "effect-db-pool"
import * as GenericPool from "generic-pool"
import * as Tarn from "tarn"

export interface StubConnection {
  readonly id: number
}

/** A driver whose every operation succeeds at once. */
export const stubDriver = (): Driver.DriverShape<StubConnection> => {
  let next = 0
  return {
    name: "stub",
    connect: Effect.sync(() => ({ id: ++next })),
    close: () => Effect.void,
    rollback: () => Effect.void,
    commit: () => Effect.void,
    ping: () => Effect.void,
    isDisconnect: () => false
  }
}

export interface Subject {
  readonly name: string
  /** Run `workers` concurrent loops of `perWorker` cycles; resolves when every loop is done. */
  readonly run: (workers: number, perWorker: number) => Promise<void>
  readonly close: () => Promise<void>
}

/** A loop of `n` cycles in one fiber. The same loop for every Effect subject (and the floor). */
const loop = <E>(cycle: Effect.Effect<void, E>, n: number): Effect.Effect<void, E> =>
  Effect.gen(function*() {
    for (let i = 0; i < n; i++) yield* cycle
  })

const workerIndexes = new Map<number, ReadonlyArray<number>>()
const indexes = (workers: number): ReadonlyArray<number> => {
  let xs = workerIndexes.get(workers)
  if (xs === undefined) {
    xs = Array.from({ length: workers }, (_, i) => i)
    workerIndexes.set(workers, xs)
  }
  return xs
}

export const runEffectWorkers = <E>(cycle: Effect.Effect<void, E>, workers: number, perWorker: number): Promise<void> =>
  Effect.runPromise(
    Effect.forEach(indexes(workers), () => loop(cycle, perWorker), { concurrency: "unbounded", discard: true })
  )

const effectSubject = (
  name: string,
  cycle: Effect.Effect<void, unknown>,
  scope?: Scope.Closeable
): Subject => ({
  name,
  run: (workers, perWorker) => runEffectWorkers(cycle, workers, perWorker),
  close: () => scope === undefined ? Promise.resolve() : Effect.runPromise(Scope.close(scope, Exit.void))
})

/** Build a QueuePool over the stub driver in a scope the caller closes. */
export const makeQueuePool = async (
  options: QueuePool.Options<StubConnection>
): Promise<{ readonly pool: ConnectionPool.Service<StubConnection>; readonly scope: Scope.Closeable }> => {
  const scope = Scope.makeUnsafe()
  const pool = await Effect.runPromise(
    QueuePool.make<StubConnection>(options).pipe(
      Effect.provide(Driver.layer(stubDriver())),
      Scope.provide(scope)
    )
  )
  return { pool, scope }
}

export const queuePoolCheckout = (pool: ConnectionPool.Service<StubConnection>): Effect.Effect<void, unknown> =>
  Effect.scoped(Effect.flatMap(pool.checkout, () => Effect.yieldNow))

export const queuePoolUse = (pool: ConnectionPool.Service<StubConnection>): Effect.Effect<void, unknown> =>
  pool.use(() => Effect.yieldNow)

export const queuePoolSubjects = async (
  connections: number,
  reset: PoolOptions.ResetOnReturn
): Promise<Array<Subject>> => {
  // maxOverflow 0: exactly `connections` connections; other options are the library defaults
  // (timeout 30 s, resetTimeout 10 s, no pre-ping, no recycle).
  const { pool, scope } = await makeQueuePool({ poolSize: connections, maxOverflow: 0, resetOnReturn: reset })
  return [
    effectSubject(`QueuePool checkout [${reset}]`, queuePoolCheckout(pool)),
    effectSubject(`QueuePool use [${reset}]`, queuePoolUse(pool), scope)
  ]
}

export const makeEffectPool = async (
  connections: number
): Promise<{ readonly pool: Pool.Pool<StubConnection>; readonly scope: Scope.Closeable }> => {
  const scope = Scope.makeUnsafe()
  let next = 0
  const pool = await Effect.runPromise(
    Pool.make({ acquire: Effect.sync((): StubConnection => ({ id: ++next })), size: connections }).pipe(
      Scope.provide(scope)
    )
  )
  return { pool, scope }
}

export const effectPoolGet = (pool: Pool.Pool<StubConnection>): Effect.Effect<void> =>
  Effect.scoped(Effect.flatMap(Pool.get(pool), () => Effect.yieldNow))

export const effectPoolSubjects = async (connections: number): Promise<Array<Subject>> => {
  const { pool, scope } = await makeEffectPool(connections)
  return [
    effectSubject("effect/Pool get", effectPoolGet(pool)),
    effectSubject("effect/Pool use", Pool.use(pool, () => Effect.yieldNow), scope)
  ]
}

/** What any scoped resource costs in Effect: the bar a pool's cycle is measured against. */
export const floorScoped: Effect.Effect<void> = Effect.scoped(
  Effect.flatMap(Effect.acquireRelease(Effect.void, () => Effect.void), () => Effect.yieldNow)
)
/** The scope-free floor (what `use` is measured against). */
export const floorUse: Effect.Effect<void> = Effect.acquireUseRelease(
  Effect.void,
  () => Effect.yieldNow,
  () => Effect.void
)

export const floorSubjects = (): Array<Subject> => [
  effectSubject("Effect floor (scoped acquireRelease)", floorScoped),
  effectSubject("Effect floor (acquireUseRelease)", floorUse)
]

/**
 * The design floor: the smallest correct direct hand-off pool — an idle list and a FIFO of
 * parked fibers; a returned connection goes straight to the oldest waiter; a waiter that is
 * interrupted leaves the queue, or passes on a connection handed to it meanwhile. No feature
 * beyond that: no timeout, reset, events, metrics, validation, status. What QueuePool `use`
 * costs above it is what its features cost.
 */
export const minimalHandoffSubject = (connections: number): Subject => {
  let next = 0
  const idle: Array<StubConnection> = Array.from({ length: connections }, () => ({ id: ++next }))
  interface Waiter {
    resume: (conn: Effect.Effect<StubConnection>) => void
    handed: StubConnection | undefined
  }
  const waiters = new Set<Waiter>()
  const release = (conn: StubConnection): void => {
    const first = waiters.values().next()
    if (first.done) {
      idle.push(conn)
      return
    }
    waiters.delete(first.value)
    first.value.handed = conn
    first.value.resume(Effect.succeed(conn))
  }
  const wait = Effect.suspend(() => {
    const waiter: Waiter = { resume: undefined!, handed: undefined }
    return Effect.onInterrupt(
      Effect.callback<StubConnection>((resume) => {
        waiter.resume = resume
        waiters.add(waiter)
        return Effect.sync(() => waiters.delete(waiter))
      }),
      () => Effect.sync(() => waiter.handed !== undefined && release(waiter.handed))
    )
  })
  const cycle = Effect.uninterruptibleMask((restore) =>
    Effect.suspend(() => {
      const conn = idle.shift()
      const acquired = conn !== undefined && waiters.size === 0 ? Effect.succeed(conn) : restore(wait)
      if (conn !== undefined && waiters.size > 0) idle.unshift(conn)
      return Effect.flatMap(acquired, (c) => Effect.ensuring(restore(Effect.yieldNow), Effect.sync(() => release(c))))
    })
  )
  return effectSubject("minimal hand-off use", cycle)
}

const runPromiseWorkers = (cycle: () => Promise<void>, workers: number, perWorker: number): Promise<void> => {
  const worker = async () => {
    for (let i = 0; i < perWorker; i++) await cycle()
  }
  return Promise.all(indexes(workers).map(worker)).then(() => undefined)
}

export const tarnSubject = (connections: number): Subject => {
  let next = 0
  const pool = new Tarn.Pool<StubConnection>({
    create: () => Promise.resolve({ id: ++next }),
    destroy: () => undefined,
    min: 0,
    max: connections
  })
  const cycle = async () => {
    const c = await pool.acquire().promise
    await undefined
    pool.release(c)
  }
  return {
    name: "tarn",
    run: (workers, perWorker) => runPromiseWorkers(cycle, workers, perWorker),
    close: () => pool.destroy().then(() => undefined)
  }
}

export const genericPoolSubject = (connections: number): Subject => {
  let next = 0
  const pool = GenericPool.createPool<StubConnection>(
    { create: () => Promise.resolve({ id: ++next }), destroy: () => Promise.resolve() },
    { max: connections, min: 0 }
  )
  const cycle = async () => {
    const c = await pool.acquire()
    await undefined
    void pool.release(c)
  }
  return {
    name: "generic-pool",
    run: (workers, perWorker) => runPromiseWorkers(cycle, workers, perWorker),
    close: () => pool.drain().then(() => pool.clear())
  }
}
