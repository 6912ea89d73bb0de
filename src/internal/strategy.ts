/**
 * The strategy contract: what a pool strategy provides to the checkout pipeline.
 *
 * A strategy decides only WHICH slot a checkout gets and where a returned slot goes; the
 * pipeline (`checkout.ts`) does everything between (connect, recycle, pre-ping, hooks, reset).
 *
 * - `take` hands out a record (idle, or a new empty slot the pipeline will connect), waiting if
 *   it must; it runs uninterruptibly except for what it wraps in `restore` (its wait).
 * - `give` takes back any record it handed out, connected or empty, exactly once.
 * - `takeNow` / `giveNow` are the optional synchronous fast paths: an idle record taken, or a
 *   record taken back, with no effect at all; `undefined` / `false` sends the caller to
 *   `take` / `give`.
 * - `status`, `limits`, `settings`, `dispose`, `shutdown` report and end.
 * - What the pipeline must know of a strategy is said here, typed, never read from its options:
 *   `waitBound` (how long a checkout may wait, and the error past it: the gate of a suspended
 *   pool waits as long), `share` (checkouts share a connection: StaticPool), `wantsSite`.
 * - `upkeep` and `resize` / `sizes` are optional capabilities.
 *
 * @internal
 */
import type { Duration, Effect } from "effect"
import type { PoolSettings, PoolStatus, Sharing } from "../ConnectionPool.ts"
import type { IdleSlots } from "./housekeeper.ts"
import type { ResolvedIdle } from "./options.ts"
import type { ConnectionRecord } from "./record.ts"

/**
 * How many connections the strategy keeps open without demand (`min`) and allows open at once
 * (`max`, `Infinity` when unbounded): the bounds of `ConnectionPool.stats`.
 */
export interface Limits {
  readonly min: number
  readonly max: number
}

/** No bound: nothing kept without demand, no limit on connections open at once. */
export const unbounded: Limits = { min: 0, max: Infinity }

/** A bounded pool's sizes. */
export interface Sizes {
  readonly poolSize: number
  readonly maxOverflow: number
}

/** The most connections a strategy opens at once now, `undefined` for no limit (from its {@link Limits}). */
export const limitOf = (strategy: Strategy<any, any>): number | undefined => {
  const max = strategy.limits().max
  return Number.isFinite(max) ? max : undefined
}

/** What a strategy reports in `PoolSettings` beside the common options; `undefined` where it has none. */
export type OwnSettings = Pick<PoolSettings, "poolSize" | "maxOverflow" | "timeout" | "lifo">

/** The own settings of a strategy that has none. */
export const noOwnSettings: OwnSettings = {
  poolSize: undefined,
  maxOverflow: undefined,
  timeout: undefined,
  lifo: undefined
}

/** How long a checkout may wait for a slot, and what it fails with past that. */
export interface WaitBound<E> {
  readonly timeout: Duration.Duration
  /** The failure of a wait past `timeout`; `suspended`: it waited at the gate of a suspended pool. */
  readonly timedOut: (suspended: boolean) => E
}

/** Runs an effect with the interruptibility the caller had (from `uninterruptibleMask`). */
export type Restore = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>

/**
 * What a strategy provides. `take` runs uninterruptibly except for what it wraps in `restore`
 * (its wait); `give` accepts any record it handed out, connected or empty, exactly once.
 * @internal
 */
export interface Strategy<C, E> {
  /** Called at run time; `now` is a clock reading the caller just took, or -1. */
  readonly take: (restore: Restore, now: number) => Effect.Effect<ConnectionRecord<C>, E>
  readonly give: (record: ConnectionRecord<C>) => Effect.Effect<void>
  readonly status: () => PoolStatus
  /** The bounds now (QueuePool's change with `resize`). */
  readonly limits: () => Limits
  /** Its own settings now (sizes as resized), for `PoolSettings`. */
  readonly settings: () => OwnSettings
  /**
   * The bound on a checkout's wait (QueuePool's `timeout`); checkouts held at the gate of a
   * suspended pool wait as long and fail with `timedOut(true)`. Absent: no bound.
   */
  readonly waitBound?: WaitBound<E> | undefined
  /** Close idle connections; checked-out ones are untouched and come back normally. */
  readonly dispose: Effect.Effect<void>
  /** The pool's scope ends: fail waiters, close idle connections, close whatever comes back later. */
  readonly shutdown: Effect.Effect<void>
  /**
   * Checkouts that share one lease (see `reentrant.ts`): `"pool"` for StaticPool. Default:
   * `"fiber"` when the `reentrant` option is on, else none.
   */
  readonly share?: Sharing | undefined
  /**
   * Optional synchronous fast paths: `takeNow` returns an idle record when one can be taken
   * without waiting (else `undefined`, and `take` runs); `giveNow` takes a record back when that
   * needs no effect (else `false`, and `give` runs); `now` is a clock reading the caller just
   * took (-1: none), for what the hand-off times.
   */
  readonly takeNow?: (() => ConnectionRecord<C> | undefined) | undefined
  readonly giveNow?: ((record: ConnectionRecord<C>, now: number) => boolean) | undefined
  /** The strategy reports checkout sites (AssertionPool): capture them even without leak detection. */
  readonly wantsSite?: boolean | undefined
  /**
   * Change the sizes at run time (QueuePool): growing serves waiters at once, shrinking closes
   * idle connections beyond the new size and busy ones as they come back. Absent = fixed size.
   */
  readonly resize?: ((size: Sizes) => Effect.Effect<void>) | undefined
  /** The sizes now (they change with `resize`). */
  readonly sizes?: (() => Sizes) | undefined
  /** Background upkeep of the idle list (minIdle, idleTimeout, keepalive, lifetime), when offered. */
  readonly upkeep?: { readonly slots: IdleSlots<C>; readonly options: ResolvedIdle } | undefined
}
