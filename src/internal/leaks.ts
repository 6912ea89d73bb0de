/**
 * Leak detection (`leakDetectionThreshold`): a checkout held past the threshold logs one warning
 * naming its checkout site and counts a leak.
 *
 * A connection the library itself holds for many borrowers (a pipelined lane of `PgSql`) is
 * checked out {@link Unwatched}: no timer for the connection, whose holder is not a user; each
 * borrower's share of it is watched instead, as a checkout is ({@link leakWatchOf}).
 *
 * @internal
 */
import { Context, Effect } from "effect"
import type { Fiber } from "effect"
import type { Service } from "../ConnectionPool.ts"
import type { PoolCore } from "./core.ts"
import { millisText } from "./format.ts"
import { captureSite } from "./site.ts"

/**
 * Checkouts made with this set arm no leak timer: connections the library holds for many
 * borrowers (pipeline lanes), whose borrowers are watched one by one instead ({@link leakWatchOf}).
 * @internal
 */
export const Unwatched = Context.Reference<boolean>("effect-db-pool/internal/Unwatched", { defaultValue: () => false })

/**
 * A fiber that, unless interrupted within `leakDetectionThreshold`, warns once (naming the
 * current fiber's site) and counts a leak. `what`: appended to the warning.
 * @internal
 */
export const leakTimer = <C>(
  core: PoolCore<C>,
  slot: number,
  what: string
): Effect.Effect<Fiber.Fiber<unknown, unknown>> => {
  const threshold = core.options.leakDetectionThreshold
  return Effect.flatMap(captureSite, (site) =>
    Effect.forkDetach(
      Effect.andThen(
        Effect.sleep(threshold),
        Effect.suspend(() => {
          core.instruments?.leaked()
          return core.annotate(Effect.logWarning(
            `Connection leak suspected: slot ${slot} checked out for more than ${
              millisText(threshold)
            } by ${site}${what}`
          ))
        })
      )
    ))
}

/** Watch one borrower's use of an {@link Unwatched} checkout of `slot` as a checkout is watched. */
export type LeakWatch = <A, E, R>(effect: Effect.Effect<A, E, R>, slot: number) => Effect.Effect<A, E, R>

/**
 * The pool's {@link LeakWatch}: run `effect`, one borrower's share of a connection checked out
 * {@link Unwatched} (a pipelined statement on its lane), watched as a checkout is: held past
 * `leakDetectionThreshold`, one warning naming its site, counted as a leak.
 */
const watchOf = <C>(core: PoolCore<C>): LeakWatch => (effect, slot) =>
  Effect.uninterruptibleMask((restore) =>
    Effect.flatMap(
      leakTimer(core, slot, " (a pipelined statement)"),
      (timer) => Effect.onExit(restore(effect), () => Effect.sync(() => timer.interruptUnsafe()))
    )
  )

/** Where a pool service with leak detection keeps its {@link LeakWatch} (see {@link leakWatchOf}). */
const leakWatchKey = Symbol.for("effect-db-pool/ConnectionPool/leakWatch")

/** A service that carries its leak watch under {@link leakWatchKey}. */
interface WithLeakWatch {
  readonly [leakWatchKey]?: LeakWatch
}

/**
 * Give the service its leak watch (a non-enumerable property, kept by a copy of the service
 * made from its property descriptors), when the pool has a `leakDetectionThreshold`.
 * @internal
 */
export const attachLeakWatch = <C>(service: Service<C>, core: PoolCore<C>): void => {
  Object.defineProperty(service, leakWatchKey, { value: watchOf(core) })
}

/**
 * The pool's leak watch for borrowers of connections checked out {@link Unwatched}; `undefined`
 * when the pool has no `leakDetectionThreshold` (or was not built here).
 * @internal
 */
export const leakWatchOf = (service: Service<unknown>): LeakWatch | undefined =>
  (service as Service<unknown> & WithLeakWatch)[leakWatchKey]
