/**
 * One pool's checkout pipeline as a state record: what the way out (`acquire.ts`) and the way
 * back (`handle.ts`) share. Made once per pool, when its service is assembled (`service.ts`).
 *
 * @internal
 */
import { Duration } from "effect"
import type { Schedule } from "effect"
import type { CheckoutError, DisconnectionError } from "../PoolError.ts"
import { Gate } from "./control.ts"
import type { PoolCore } from "./core.ts"
import type { Strategy } from "./strategy.ts"

/** @internal */
export interface Pipeline<C> {
  readonly core: PoolCore<C>
  readonly strategy: Strategy<C, CheckoutError>
  /** Closed while the pool is suspended. */
  readonly gate: Gate<C>
  /**
   * How a checkout retries after a `DisconnectionError` (`checkoutRetry`). Typed for every error
   * an attempt fails with: the retry runs only `while` the error is a `DisconnectionError`, so
   * the schedule never sees another.
   */
  readonly retry: Schedule.Schedule<unknown, CheckoutError | DisconnectionError>
  /** A leak timer is armed per checkout (`leakDetectionThreshold` is finite). */
  readonly armsLeakTimer: boolean
  /** Records remember when they were last returned (`lastUsed`): background upkeep reads it. */
  readonly tracksIdle: boolean
}

/** @internal */
export const make = <C>(
  core: PoolCore<C>,
  strategy: Strategy<C, CheckoutError>,
  tracksIdle: boolean
): Pipeline<C> => ({
  core,
  strategy,
  gate: new Gate(core, strategy),
  retry: core.options.checkoutRetry as Schedule.Schedule<unknown, CheckoutError | DisconnectionError>,
  armsLeakTimer: Duration.isFinite(core.options.leakDetectionThreshold),
  tracksIdle
})
