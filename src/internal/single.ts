/**
 * One slot kept for the life of the pool: the part StaticPool and AssertionPool share. The
 * record keeps its connection between checkouts; `dispose` closes it only while it is idle.
 *
 * Status: `size` 1, `checkedIn` 1 while a connection is kept idle, `checkedOut` 1 while the slot
 * is out (a StaticPool lease counts once, however many checkouts share it), `overflow` 0.
 *
 * @internal
 */
import { Effect } from "effect"
import type { PoolStatus } from "../ConnectionPool.ts"
import { PoolClosedError } from "../PoolError.ts"
import type { PoolCore } from "./core.ts"
import { closeRecord, ConnectionRecord } from "./record.ts"
import type { Limits } from "./strategy.ts"

/** @internal */
export class SingleSlot<C> {
  /** One connection at most, none kept without demand. */
  static readonly limits: Limits = { min: 0, max: 1 }

  readonly record: ConnectionRecord<C>
  out = false
  closed = false

  constructor(readonly core: PoolCore<C>) {
    this.record = new ConnectionRecord<C>(core.newSlotId())
  }

  /** Fails with `PoolClosedError` once the pool's scope has closed. */
  get closedError(): Effect.Effect<never, PoolClosedError> {
    return Effect.fail(new PoolClosedError({ strategy: this.core.strategy }))
  }

  takeOut(): Effect.Effect<ConnectionRecord<C>> {
    this.out = true
    return Effect.succeed(this.record)
  }

  give(): Effect.Effect<void> {
    this.out = false
    return this.closed ? closeRecord(this.core, this.record) : Effect.void
  }

  status(waiting = 0): PoolStatus {
    const idle = !this.out && this.record.connection !== undefined
    return { size: 1, checkedIn: idle ? 1 : 0, checkedOut: this.out ? 1 : 0, overflow: 0, waiting }
  }

  readonly dispose: Effect.Effect<void> = Effect.suspend(() =>
    this.out ? Effect.void : closeRecord(this.core, this.record)
  )

  readonly shutdown: Effect.Effect<void> = Effect.suspend(() => {
    this.closed = true
    return this.dispose
  })
}
