/**
 * The waiter queue of a bounded pool: first come, first served, with direct hand-off.
 *
 * Contract:
 * - `wait(restore)` parks the caller at the back of the queue until a record is handed to it
 *   (`handOff`), its deadline passes (it fails with the pool's timeout error), or the pool ends
 *   it (`failAll`). Only the wait itself is interruptible (`restore`). A waiter interrupted or
 *   timed out after a record was handed to it gives that record back (`giveBack`, the
 *   strategy's `give`): no record is ever lost between a hand-off and a wake-up.
 * - `handOff(record)` gives a returned record straight to the longest waiter (`false` when
 *   nobody waits): it never goes through the idle list, so a newcomer cannot overtake a waiter.
 * - Wake-ups are immediate, as `Deferred`'s, so a returned connection is back at work without a
 *   trip through the scheduler; past a small depth (hand-offs made inside woken waiters whose
 *   work finished synchronously) they continue in a microtask, so the stack stays flat.
 * - Deadlines: every wait has the same timeout and the queue is FIFO, so deadlines are in queue
 *   order. One sweeper fiber sleeps until the oldest deadline (instead of a timer per wait); it
 *   runs only while someone waits, on the pool's clock (`TestClock` in tests).
 *
 * @internal
 */
import { Effect } from "effect"
import type { Fiber } from "effect"
import type { PoolCore } from "./core.ts"
import type { ConnectionRecord } from "./record.ts"
import type { Restore } from "./strategy.ts"

interface Waiter<C, E> {
  resume: (effect: Effect.Effect<ConnectionRecord<C>, E>) => void
  /** Set when a record was handed to this waiter. */
  record: ConnectionRecord<C> | undefined
  /** Clock time (ms) past which the wait fails with the timeout error. */
  deadline: number
}

/** @internal */
export class WaiterQueue<C, E> {
  private readonly waiters = new Set<Waiter<C, E>>()
  private wakeDepth = 0
  private sweeper: Fiber.Fiber<void> | undefined = undefined

  /**
   * @param timeoutMs how long a wait may last; -1 = forever
   * @param timeoutError the failure of a wait past its deadline (read when one times out)
   * @param giveBack takes back a record handed to a waiter that left meanwhile
   */
  constructor(
    private readonly core: PoolCore<C>,
    private readonly timeoutMs: number,
    private readonly timeoutError: () => E,
    private readonly giveBack: (record: ConnectionRecord<C>) => Effect.Effect<void>
  ) {}

  /** Fibers waiting now. */
  get size(): number {
    return this.waiters.size
  }

  /**
   * Park until a record is handed over, the deadline passes or the pool fails every waiter.
   * `now`: a clock reading the caller just took (-1: read it here).
   */
  wait(restore: Restore, now = -1): Effect.Effect<ConnectionRecord<C>, E> {
    const waiter: Waiter<C, E> = { resume: undefined!, record: undefined, deadline: Infinity }
    const sleep = Effect.callback<ConnectionRecord<C>, E>((resume) => {
      waiter.resume = resume
      if (this.timeoutMs >= 0) waiter.deadline = (now >= 0 ? now : this.core.now()) + this.timeoutMs
      this.waiters.add(waiter)
      return Effect.sync(() => {
        this.waiters.delete(waiter)
      })
    })
    const timed = this.timeoutMs >= 0 && this.sweeper === undefined
      ? Effect.andThen(this.startSweeper, restore(sleep))
      : restore(sleep)
    // Interrupted (or timed out) after a record was handed over: pass the record on.
    return Effect.onExitPrimitive(timed, (exit) => {
      if (exit._tag === "Success" || waiter.record === undefined) return undefined
      const record = waiter.record
      waiter.record = undefined
      return this.giveBack(record)
    })
  }

  /**
   * Hand a record to the longest waiter; `false` when nobody waits. A waiter whose deadline has
   * passed (the sweeper runs late on a busy event loop) times out here instead of being served:
   * no checkout ever succeeds after waiting longer than the timeout.
   */
  handOff(record: ConnectionRecord<C>): boolean {
    const now = this.timeoutMs >= 0 && this.waiters.size > 0 ? this.core.now() : -Infinity
    for (const waiter of this.waiters) {
      if (waiter.deadline <= now) {
        this.core.instruments?.timedOut()
        this.wake(waiter, Effect.fail(this.timeoutError()))
        continue
      }
      waiter.record = record
      this.wake(waiter, Effect.succeed(record))
      return true
    }
    return false
  }

  /** End every wait with `failure` (the pool closed) and stop the sweeper. */
  failAll(failure: Effect.Effect<never, E>): void {
    this.sweeper?.interruptUnsafe()
    this.sweeper = undefined
    for (const waiter of this.waiters) this.wake(waiter, failure)
  }

  private wake(waiter: Waiter<C, E>, result: Effect.Effect<ConnectionRecord<C>, E>): void {
    this.waiters.delete(waiter)
    if (this.wakeDepth >= 8) {
      queueMicrotask(() => waiter.resume(result))
      return
    }
    this.wakeDepth++
    try {
      waiter.resume(result)
    } finally {
      this.wakeDepth--
    }
  }

  private readonly sweep: Effect.Effect<void> = Effect.suspend(() => {
    const now = this.core.now()
    for (const waiter of this.waiters) {
      if (waiter.deadline > now) return Effect.andThen(Effect.sleep(waiter.deadline - now), this.sweep)
      this.core.instruments?.timedOut()
      this.wake(waiter, Effect.fail(this.timeoutError()))
    }
    this.sweeper = undefined
    return Effect.void
  })

  private readonly startSweeper = Effect.map(Effect.forkDetach(this.sweep), (fiber) => {
    this.sweeper = fiber
  })
}
