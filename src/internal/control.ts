/**
 * Run-time control of a pool, for maintenance and failover (HikariCP's suspend and resize):
 *
 * - {@link Gate}: `suspend` closes the gate in front of every new checkout; they wait (bounded
 *   by the pool's `timeout`, when it has one, and interruptible) while checked-out work goes on
 *   and returns normally; `resume` opens it and the waiters go on in arrival order. Nested
 *   checkouts of a lease already held (reentrant, StaticPool) do not pass the gate, so a
 *   suspension never deadlocks a holder. The open gate costs the hot path one field read.
 * - {@link resize}: validates new sizes and hands them to the strategy (QueuePool); never to
 *   `poolSize` 0, which as an option means "no limit" (drain with `suspend` instead).
 *
 * @internal
 */
import { Duration, Effect, Latch, Result } from "effect"
import { PoolConfigError } from "../PoolError.ts"
import type { CheckoutError } from "../PoolError.ts"
import type { PoolCore } from "./core.ts"
import { decodeSize } from "./options.ts"
import type { Restore, Strategy } from "./strategy.ts"

/** @internal */
export class Gate<C> {
  /** Closed while the pool is suspended. */
  private latch: Latch.Latch | undefined = undefined
  /** Checkouts waiting at the gate (they count in `status.waiting`). */
  waiting = 0

  constructor(private readonly core: PoolCore<C>, private readonly strategy: Strategy<C, CheckoutError>) {}

  get suspended(): boolean {
    return this.latch !== undefined
  }

  readonly suspend: Effect.Effect<void> = Effect.suspend(() => {
    if (this.latch !== undefined) return Effect.void
    this.latch = Latch.makeUnsafe(false)
    return this.core.emitQuiet("suspend", -1, undefined)
  })

  readonly resume: Effect.Effect<void> = Effect.suspend(() => {
    const latch = this.latch
    if (latch === undefined) return Effect.void
    this.latch = undefined
    return Effect.andThen(latch.open, this.core.emitQuiet("resume", -1, undefined))
  })

  /**
   * The pool closed: let every checkout held here through, quietly (no `resume` event); the
   * strategy, already shut down, fails each with `PoolClosedError`.
   */
  readonly close: Effect.Effect<void> = Effect.suspend(() => {
    const latch = this.latch
    this.latch = undefined
    return latch === undefined ? Effect.void : latch.open
  })

  /** Wait until the pool is resumed; past the strategy's wait bound fail as a checkout wait would. */
  pass(restore: Restore): Effect.Effect<void, CheckoutError> {
    return Effect.suspend(() => {
      const latch = this.latch
      if (latch === undefined) return Effect.void
      this.waiting++
      const bound = this.strategy.waitBound
      const wait = restore(latch.await)
      const bounded = bound === undefined || !Duration.isFinite(bound.timeout)
        ? wait
        : Effect.timeoutOrElse(wait, {
          duration: bound.timeout,
          orElse: () => {
            this.core.instruments?.timedOut()
            return Effect.fail(bound.timedOut(true))
          }
        })
      // Resumed and suspended again before this fiber ran: wait once more.
      return bounded.pipe(
        Effect.ensuring(Effect.sync(() => this.waiting--)),
        Effect.andThen(this.pass(restore))
      )
    })
  }
}

/** The sizes a `resize` asks for (absent = unchanged). */
export interface SizeChange {
  readonly poolSize?: number | undefined
  readonly maxOverflow?: number | undefined
}

const invalid = (field: string, value: unknown, reason: string) =>
  Effect.fail(new PoolConfigError({ field, value, reason }))

/**
 * Why `resize` refuses `poolSize: 0`: as an option, 0 means "no limit" (SQLAlchemy's
 * `pool_size=0`), so someone shrinking to 0 to drain a pool would get the opposite.
 */
export const resizeToZero =
  "must be at least 1 at run time: a poolSize of 0 means no limit, not no connections. To stop new checkouts (drain for maintenance) use suspend; to lift the limit use maxOverflow: -1"

/**
 * Validate new sizes (with the rules of the layer options) and hand them to the strategy; a
 * strategy without sizes cannot resize. `poolSize: 0` is refused (see {@link resizeToZero}), and
 * so is a `maxOverflow` alone on a pool of `poolSize` 0, which would ignore it.
 */
export const resize = <C>(
  core: PoolCore<C>,
  strategy: Strategy<C, CheckoutError>,
  change: SizeChange
): Effect.Effect<void, PoolConfigError> =>
  Effect.suspend(() => {
    if (typeof change !== "object" || change === null) return invalid("size", change, "must be an object")
    const current = strategy.sizes?.()
    if (strategy.resize === undefined || current === undefined) {
      return invalid("poolSize", change.poolSize, `cannot be changed at run time: ${core.strategy} has no size`)
    }
    const sizes: { poolSize: number; maxOverflow: number } = { ...current }
    for (const field of ["poolSize", "maxOverflow"] as const) {
      const value = change[field]
      if (value === undefined) continue
      const decoded = decodeSize(field, value)
      if (Result.isFailure(decoded)) return invalid(field, value, decoded.failure)
      sizes[field] = decoded.success
    }
    if (change.poolSize === 0) return invalid("poolSize", 0, resizeToZero)
    if (sizes.poolSize === 0 && change.maxOverflow !== undefined) {
      return invalid(
        "maxOverflow",
        change.maxOverflow,
        "is ignored while poolSize is 0 (no limit): give a poolSize too"
      )
    }
    return strategy.resize(sizes).pipe(
      Effect.andThen(Effect.sync(() => core.instruments?.refreshLimit())),
      Effect.andThen(core.emitQuiet("resize", -1, undefined))
    )
  }).pipe(Effect.uninterruptible)
