/**
 * The checkout pipeline, written once for every strategy: its two entry points, `checkout`
 * (scoped) and `use` (one effect, no scope).
 *
 * A strategy (its contract: `strategy.ts`) only answers "give me a slot" (`take`, which may
 * wait), "take this slot back" (`give`) and "what is your status". Everything between is the
 * pipeline (its state: `pipeline.ts`):
 *
 *   acquire (`acquire.ts`): take slot → [replace if dead | recycle if stale] → [connect if empty]
 *     → [pre-ping unless fresh] → checkout hook, retried by the `checkoutRetry` Schedule
 *   release (`handle.ts`): reset hook → rollback | commit | none → checkin hook → give slot
 *
 * Acquisition and the registration of its release happen in one uninterruptible step, so no
 * interruption can fall between them; only the wait for a slot and the driver calls are
 * interruptible.
 *
 * @internal
 */
import { Context, Effect, Scope } from "effect"
import type { PooledConnection } from "../ConnectionPool.ts"
import type { CheckoutError } from "../PoolError.ts"
import { acquireNow } from "./acquire.ts"
import { Handle, release, releaseNow } from "./handle.ts"
import type { Pipeline } from "./pipeline.ts"
import type { Restore } from "./strategy.ts"

/** Check a connection out for the life of the current scope. @internal */
export const checkout = <C>(pipeline: Pipeline<C>): Effect.Effect<PooledConnection<C>, CheckoutError, Scope.Scope> =>
  Effect.uninterruptibleMask((restore) =>
    Effect.withFiber((fiber) => {
      const scope = Context.get(fiber.context as Context.Context<Scope.Scope>, Scope.Scope)
      const register = (handle: Handle<C>) =>
        Effect.as(Scope.addFinalizerExit(scope, () => release(handle)), handle as PooledConnection<C>)
      const acquired = acquireNow(pipeline, restore)
      return acquired instanceof Handle ? register(acquired) : Effect.flatMap(acquired, register)
    })
  )

/** Borrow a connection for one effect. @internal */
export const use = <C, A, E, R>(
  pipeline: Pipeline<C>,
  f: (connection: PooledConnection<C>) => Effect.Effect<A, E, R>
): Effect.Effect<A, E | CheckoutError, R> => {
  // `f` is called here, at run time (a throw is a defect, the lease still released): no
  // `suspend` around it, nor around the mask's body (`uninterruptibleMask` runs it at run time).
  const lease = (handle: Handle<C>, restore: Restore) => {
    let body: Effect.Effect<A, E, R>
    try {
      body = f(handle)
    } catch (defect) {
      body = Effect.die(defect)
    }
    return Effect.onExitPrimitive(restore(body), () => releaseNow(handle))
  }
  return Effect.uninterruptibleMask((restore) => {
    const acquired = acquireNow(pipeline, restore)
    return acquired instanceof Handle
      ? lease(acquired, restore)
      : Effect.flatMap(acquired, (handle) => lease(handle, restore))
  })
}
