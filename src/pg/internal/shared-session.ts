/**
 * What PgSql knows about a session that several checkouts share (one `PooledConnection` handle):
 * StaticPool's one connection, shared across fibers (`lock`), or a reentrant lease (FiberPool,
 * `reentrant: true`), shared by the nested checkouts of one fiber. Pools that share nothing
 * (QueuePool, NullPool, AssertionPool) have none: their statements pay nothing for it.
 *
 * `lock` (StaticPool): a transaction or `reserve` owns the session while it lasts; statements
 * and streams of other connections ("users") run only while nobody owns it, and ownership is
 * taken only once no user is in flight. Waiters queue in arrival order (fair: a queued
 * transaction is not overtaken by later statements), interruptibly, without a timeout
 * (StaticPool has none: a statement waits as long as the transaction before it lasts).
 *
 * @internal
 */
import { Deferred, Effect, Exit } from "effect"
import type { Fiber } from "effect"
import type { SqlError } from "effect/sql/SqlError"

/** How a wait that could never end (the waiter would wait for itself) fails: `PgSql`'s `SelfDeadlockError`. */
export type SelfDeadlock = (kind: "stream" | "owned", operation: string) => SqlError

type Restore = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>

interface Waiter<Owner> {
  /** The transaction / `reserve` connection taking ownership; `undefined`: a statement or stream. */
  readonly owner: Owner | undefined
  readonly fiber: number
  readonly done: Deferred.Deferred<void>
  granted: boolean
}

/**
 * One shared session's state (see the module comment). `Owner`: the transaction / `reserve`
 * connection that can own it.
 */
export class Session<Owner> {
  /** Streams being read on the session, by the fiber that opened them. */
  readonly streams = new Map<number, number>()
  /** The transaction or `reserve` connection that owns the session (`lock` only). */
  owner: Owner | undefined = undefined
  ownerFiber = -1
  /** Statements and streams of non-owners in flight (`lock` only). */
  users = 0
  readonly queue: Array<Waiter<Owner>> = []

  constructor(
    readonly lock: boolean,
    private readonly selfDeadlock: SelfDeadlock
  ) {}

  streaming(fiber: number): boolean {
    return this.streams.has(fiber)
  }

  openStream(fiber: number): void {
    this.streams.set(fiber, (this.streams.get(fiber) ?? 0) + 1)
  }

  closeStream(fiber: number): void {
    const n = (this.streams.get(fiber) ?? 1) - 1
    if (n > 0) this.streams.set(fiber, n)
    else this.streams.delete(fiber)
  }

  /** Enter as a user; waits while another connection owns the session (or is queued first). */
  enter(fiber: Fiber.Fiber<unknown, unknown>, restore: Restore, operation: string): Effect.Effect<void, SqlError> {
    if (this.owner === undefined && this.queue.length === 0) {
      this.users++
      return Effect.void
    }
    if (this.owner !== undefined && this.ownerFiber === fiber.id) {
      return Effect.fail(this.selfDeadlock("owned", operation))
    }
    return this.wait({ owner: undefined, fiber: fiber.id, done: Deferred.makeUnsafe(), granted: false }, restore)
  }

  leave(): void {
    this.users--
    this.drain()
  }

  /** Take ownership for `conn`; waits for the owner before it and for the users in flight. */
  own(
    conn: Owner,
    fiber: Fiber.Fiber<unknown, unknown>,
    restore: Restore,
    inTransaction: unknown
  ): Effect.Effect<void, SqlError> {
    if (this.owner === undefined && this.users === 0 && this.queue.length === 0) {
      this.owner = conn
      this.ownerFiber = fiber.id
      return Effect.void
    }
    if (this.streaming(fiber.id)) return Effect.fail(this.selfDeadlock("stream", "transaction"))
    if (this.owner !== undefined && (this.ownerFiber === fiber.id || inTransaction === this.owner)) {
      return Effect.fail(this.selfDeadlock("owned", "transaction"))
    }
    return this.wait({ owner: conn, fiber: fiber.id, done: Deferred.makeUnsafe(), granted: false }, restore)
  }

  disown(): void {
    this.owner = undefined
    this.ownerFiber = -1
    this.drain()
  }

  /** Grant queued waiters in order, as far as the head allows. */
  private drain(): void {
    while (this.queue.length > 0 && this.owner === undefined) {
      const head = this.queue[0]!
      if (head.owner !== undefined) {
        if (this.users > 0) return
        this.owner = head.owner
        this.ownerFiber = head.fiber
      } else {
        this.users++
      }
      this.queue.shift()
      head.granted = true
      Deferred.doneUnsafe(head.done, Exit.void)
    }
  }

  private wait(waiter: Waiter<Owner>, restore: Restore): Effect.Effect<void> {
    this.queue.push(waiter)
    return Effect.onInterrupt(restore(Deferred.await(waiter.done)), () =>
      Effect.sync(() => {
        if (waiter.granted) {
          if (waiter.owner !== undefined) this.disown()
          else this.leave()
          return
        }
        const i = this.queue.indexOf(waiter)
        if (i >= 0) this.queue.splice(i, 1)
        this.drain()
      }))
  }
}
