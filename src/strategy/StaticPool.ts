/**
 * StaticPool: exactly one raw connection, shared by every checkout. Concurrent checkouts all
 * get the same connection (the same `PooledConnection`); it is opened by the first checkout and
 * kept until `dispose`. Use it for a database that allows one connection only (SQLite in
 * memory), or for tests that must see one session.
 *
 * Shared-connection rules (decided here; SQLAlchemy leaves them open):
 * - **Reset on return** runs once, when the *last* holder returns: a return never rolls back
 *   work that another fiber still has in flight on the shared connection. (SQLAlchemy's
 *   StaticPool resets on every return.) Hooks fire per shared use: checkout and checkin once.
 * - **Hard invalidation** by any holder closes the shared connection at once; every holder's
 *   handle then reports `isValid: false` and `connection` throws. The next checkout reconnects.
 * - **Soft invalidation** marks it: reconnected at the next checkout after the last holder returned.
 * - **Known dead** (`Driver.isDead`, e.g. a PostgreSQL session retired after a cancel request
 *   that did not meet its statement): never handed to a new checkout. New checkouts wait for the
 *   current holders to return it and get a new connection; a holder's own nested checkout
 *   (same fiber) still gets it, since it could not wait for itself.
 * - **dispose** closes the connection if nobody holds it; a held one is untouched.
 *
 * Status: `size` 1, `checkedIn` 1 while the connection is open and unheld, `checkedOut` 1 while
 * held (by any number of checkouts), `overflow` 0, `waiting` = checkouts waiting while the
 * previous holders' reset is still running.
 *
 * @since 0.1.0
 */
import { Deferred, Effect, Exit } from "effect"
import type { Config, Layer } from "effect"
import type { ConnectionPool } from "../ConnectionPool.ts"
import type { Driver } from "../Driver.ts"
import { constructors } from "../internal/constructors.ts"
import type { PoolCore } from "../internal/core.ts"
import { resolveCommon } from "../internal/options.ts"
import type { ResolvedCommon } from "../internal/options.ts"
import type { ConnectionRecord } from "../internal/record.ts"
import { SingleSlot } from "../internal/single.ts"
import { noOwnSettings } from "../internal/strategy.ts"
import type { Restore, Strategy } from "../internal/strategy.ts"
import type { PoolClosedError, PoolConfigError } from "../PoolError.ts"
import type * as PoolOptions from "../PoolOptions.ts"

/**
 * StaticPool takes the options every strategy shares.
 *
 * @category models
 * @since 0.1.0
 */
export interface Options<C = unknown> extends PoolOptions.CommonOptions<C> {}

/** Options after validation and defaults. */
interface Resolved<C = unknown> extends ResolvedCommon<C> {}

/** Validate options and apply defaults. */
const resolve = <C>(options: Options<C>): Effect.Effect<Resolved<C>, PoolConfigError> =>
  resolveCommon(options, "StaticPool")

const strategy = <C>(core: PoolCore<C>): Strategy<C, PoolClosedError> => {
  const slot = new SingleSlot(core)
  let returned = Deferred.makeUnsafe<void>()
  let waiting = 0
  // Holders share one lease (see internal/reentrant.ts), so the slot is only ever wanted again
  // while the last lease's release is still resetting it: wait for that, then re-check.
  const take = (restore: Restore): Effect.Effect<ConnectionRecord<C>, PoolClosedError> =>
    Effect.suspend(() => {
      if (slot.closed) return slot.closedError
      if (!slot.out) {
        returned = Deferred.makeUnsafe<void>()
        return slot.takeOut()
      }
      waiting++
      return restore(Deferred.await(returned)).pipe(
        Effect.ensuring(Effect.sync(() => waiting--)),
        Effect.flatMap(() => take(restore))
      )
    })
  return {
    take,
    give: () =>
      Effect.suspend(() => {
        // Mark the slot free before waking the waiters (they are resumed at once and re-check it).
        const closing = slot.give()
        Deferred.doneUnsafe(returned, Exit.void)
        return closing
      }),
    status: () => slot.status(waiting),
    limits: () => SingleSlot.limits,
    settings: () => noOwnSettings,
    dispose: slot.dispose,
    shutdown: Effect.suspend(() => {
      Deferred.doneUnsafe(returned, Exit.void)
      return slot.shutdown
    }),
    share: "pool"
  }
}

const built = constructors<object, Resolved<unknown>>("StaticPool", resolve, strategy)

/**
 * A StaticPool as a layer providing the `ConnectionPool` service over the `Driver` in context;
 * options are validated when the layer builds (a bad one fails it with `PoolConfigError`).
 *
 * @example
 * ```ts
 * import { StaticPool } from "effect-db-pool"
 *
 * const Pool = StaticPool.layer({ prePing: true })
 * ```
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = built.layer

/**
 * Build a StaticPool in the current scope (closed with it) and return the service itself, for code
 * that wants the value rather than a layer. Options are validated first.
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = built.make

/**
 * As {@link layer}, with the options read from `Config` (environment variables, ...).
 *
 * @category layers
 * @since 0.1.0
 */
export const layerConfig: <C = unknown>(
  config: Config.Wrap<Options<C>>
) => Layer.Layer<ConnectionPool, PoolConfigError | Config.ConfigError, Driver> = built.layerConfig
