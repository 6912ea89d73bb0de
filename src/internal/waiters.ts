/**
 * The waiter queue of a bounded pool: first come, first served, with direct hand-off.
 *
 * Contract:
 * - `wait(restore)` parks the caller at the back of the queue until a record is handed to it
 *   (`handOff`), its deadline passes (it fails with the pool's timeout error), or the pool ends
 *   it (`failAll`). Only the wait itself is interruptible (`restore`). A waiter interrupted or
 *   timed out after a record was handed to it gives that record back (`giveBack`, the
 *   strategy's `give`): no record is ever lost between a hand-off and a wake-up.
 * - `handOff(record, now)` gives a returned record straight to the longest waiter (`false` when
 *   nobody waits): it never goes through the idle list, so a newcomer cannot overtake a waiter.
 * - A hand-off is decided at once (the record is the waiter's from that moment: nobody overtakes
 *   it), but the waiter is resumed from the scheduler, in one batch with the other wake-ups of
 *   this turn of the event loop (as effect/Pool does), not inside the releasing call: a waiter
 *   resumed there would write its next statement in the middle of the socket callback that
 *   returned the connection. The measurements behind it: bench/README.md, "batched wake-ups".
 * - Deadlines: every wait has the same timeout and the queue is FIFO, so deadlines are in queue
 *   order. One sweeper fiber sleeps until the oldest deadline (instead of a timer per wait); it
 *   runs only while someone waits, on the pool's clock (`TestClock` in tests).
 *
 * @internal
 */
import { Effect } from "effect"
import type { Fiber, Scheduler } from "effect"
import type { PoolCore } from "./core.ts"
import type { ConnectionRecord } from "./record.ts"
import type { Restore } from "./strategy.ts"

interface Waiter<C, E> {
  resume: (effect: Effect.Effect<ConnectionRecord<C>, E>) => void
  /** Set when a record was handed to this waiter. */
  record: ConnectionRecord<C> | undefined
  /** Clock time (ms) past which the wait fails with the timeout error. */
  deadline: number
  /** In the queue, counted in `live`; cleared when woken or when its wait ends (its entry is then skipped). */
  queued: boolean
}

/** @internal */
export class WaiterQueue<C, E> {
  /**
   * FIFO: `queue[head..]`, with entries of waiters that left early skipped lazily, so
   * joining, leaving and being served are O(1) and allocate nothing beyond the waiter.
   */
  private queue: Array<Waiter<C, E>> = []
  private head = 0
  /** Waiters `queued`. */
  private live = 0
  /** Wake-ups are queued here and run in a batch by the scheduler of the fibers that wait. */
  private scheduler: Scheduler.Scheduler | undefined = undefined
  private dispatcher: Scheduler.SchedulerDispatcher | undefined = undefined
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
    return this.live
  }

  /** Slots of the queue's array, served and skipped ones included: bounded (see {@link first}). */
  get footprint(): number {
    return this.queue.length
  }

  /**
   * Park until a record is handed over, the deadline passes or the pool fails every waiter.
   * `now`: a clock reading the caller just took (-1: read it here).
   */
  wait(restore: Restore, now = -1): Effect.Effect<ConnectionRecord<C>, E> {
    const waiter: Waiter<C, E> = { resume: undefined!, record: undefined, deadline: Infinity, queued: false }
    // No canceller: an interrupted wait leaves the queue in the exit handler below (one frame
    // instead of a canceller effect and the runtime's finalizer frame per wait).
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- the callback's own `this` is the scheduler
    const queue = this
    const sleep = Effect.callback<ConnectionRecord<C>, E>(function(this: Scheduler.Scheduler, resume) {
      if (queue.scheduler !== this) {
        queue.scheduler = this
        queue.dispatcher = this.makeDispatcher()
      }
      waiter.resume = resume
      if (queue.timeoutMs >= 0) waiter.deadline = (now >= 0 ? now : queue.core.now()) + queue.timeoutMs
      queue.queue.push(waiter)
      waiter.queued = true
      queue.live++
    })
    const timed = this.timeoutMs >= 0 && this.sweeper === undefined
      ? Effect.andThen(this.startSweeper, restore(sleep))
      : restore(sleep)
    return Effect.onExitPrimitive(timed, (exit) => {
      if (exit._tag === "Success") return undefined
      // Left while queued (interrupted): out of the queue.
      if (waiter.queued) {
        this.leave(waiter)
        this.compact()
        return undefined
      }
      // Interrupted (or timed out) after a record was handed over: pass the record on.
      if (waiter.record === undefined) return undefined
      const record = waiter.record
      waiter.record = undefined
      return this.giveBack(record)
    })
  }

  /**
   * The longest waiter still queued (entries of waiters that left are dropped on the way). The
   * served prefix `queue[..head]` is cut off once it is most of the array: under steady load
   * the queue may never run empty, and the array must not grow with every wait ever made.
   */
  private first(): Waiter<C, E> | undefined {
    const queue = this.queue
    while (this.head < queue.length) {
      const waiter = queue[this.head]!
      if (waiter.queued) {
        if (this.head >= 1024 && this.head * 2 >= queue.length) {
          this.queue = queue.slice(this.head)
          this.head = 0
        }
        return waiter
      }
      queue[this.head++] = undefined!
    }
    // Empty: start over at the front.
    if (this.head > 0) {
      queue.length = 0
      this.head = 0
    }
    return undefined
  }

  /** The waiter is out of the queue (served, timed out, interrupted); the last one out empties it. */
  private leave(waiter: Waiter<C, E>): void {
    waiter.queued = false
    if (--this.live === 0) {
      this.queue.length = 0
      this.head = 0
    }
  }

  /** Many waiters left from behind a long one: drop their entries now, not when they reach the head. */
  private compact(): void {
    const left = this.queue.length - this.head - this.live
    if (left < 256 || left < this.live) return
    this.queue = this.queue.slice(this.head).filter((waiter) => waiter.queued)
    this.head = 0
  }

  /**
   * Hand a record to the longest waiter; `false` when nobody waits. A waiter whose deadline has
   * passed (the sweeper runs late on a busy event loop) times out here instead of being served:
   * no checkout ever succeeds after waiting longer than the timeout. `now`: a clock reading the
   * caller just took (-1: read it here).
   */
  handOff(record: ConnectionRecord<C>, now = -1): boolean {
    if (this.live === 0) return false
    if (this.timeoutMs < 0) now = -Infinity
    else if (now < 0) now = this.core.now()
    for (let waiter = this.first(); waiter !== undefined; waiter = this.first()) {
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
    for (let waiter = this.first(); waiter !== undefined; waiter = this.first()) this.wake(waiter, failure)
  }

  /** Take the waiter out of the queue now; resume it with `result` in the scheduler's next batch. */
  private wake(waiter: Waiter<C, E>, result: Effect.Effect<ConnectionRecord<C>, E>): void {
    this.leave(waiter)
    this.dispatcher!.scheduleTask(() => waiter.resume(result), 0)
  }

  private readonly sweep: Effect.Effect<void> = Effect.suspend(() => {
    const now = this.core.now()
    for (let waiter = this.first(); waiter !== undefined; waiter = this.first()) {
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
