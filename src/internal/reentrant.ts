/**
 * Shared checkouts, written once: a checkout made while another checkout with the same key is
 * open returns the same `PooledConnection`; only the last release resets the connection and
 * checks it in (the wrapped pipeline checkout runs once per lease).
 *
 * - key `"fiber"` (the fiber id): reentrant checkout, SQLAlchemy's `use_threadlocal` heir
 *   (the `reentrant` option, FiberPool). Child fibers have their own ids, so their own leases.
 * - key `"pool"` (one key): every concurrent checkout shares one lease (StaticPool).
 *
 * A lease whose handle was hard-invalidated or detached is not joined again: the next checkout
 * opens a new lease (a new pipeline checkout); holders of the old one keep their handle, which
 * reports `isValid: false` (invalidated) or stays detached, until they release it.
 *
 * Interruption: the wait (the pipeline's own wait, or a joiner's wait for a lease still
 * connecting) is the only interruptible part. Every reference taken is released exactly once,
 * and an opener interrupted while connecting makes its joiners retry, not fail.
 *
 * @internal
 */
import { Cause, Deferred, Effect, Exit, Scope } from "effect"
import type { PooledConnection } from "../ConnectionPool.ts"
import type { CheckoutError } from "../PoolError.ts"
import type { Restore } from "./strategy.ts"

/** What is shared: nested checkouts of one fiber, or every checkout of the pool. @internal */
export type ShareBy = "fiber" | "pool"

/** The part of the service that is wrapped. @internal */
export interface Checkouts<C> {
  readonly checkout: Effect.Effect<PooledConnection<C>, CheckoutError, Scope.Scope>
  readonly use: <A, E, R>(
    f: (connection: PooledConnection<C>) => Effect.Effect<A, E, R>
  ) => Effect.Effect<A, E | CheckoutError, R>
}

interface Lease<C> {
  readonly key: number
  /** Holders, including ones still waiting for `ready`. */
  refs: number
  handle: PooledConnection<C> | undefined
  /** Owns the one pipeline checkout of this lease. */
  readonly scope: Scope.Closeable
  /** The handle; `undefined` when the opener was interrupted (joiners retry). */
  readonly ready: Deferred.Deferred<PooledConnection<C> | undefined, CheckoutError>
}

/** @internal */
export const share = <C>(inner: Checkouts<C>, by: ShareBy): Checkouts<C> => {
  const leases = new Map<number, Lease<C>>()

  const release = (lease: Lease<C>): Effect.Effect<void> =>
    Effect.suspend(() => {
      if (--lease.refs > 0) return Effect.void
      if (leases.get(lease.key) === lease) leases.delete(lease.key)
      return Scope.close(lease.scope, Exit.void)
    })

  const joinable = (lease: Lease<C>): boolean =>
    lease.handle === undefined || (lease.handle.isValid && !lease.handle.isDetached)

  const open = (key: number, restore: Restore): Effect.Effect<readonly [Lease<C>, PooledConnection<C>], CheckoutError> => {
    const lease: Lease<C> = {
      key,
      refs: 1,
      handle: undefined,
      scope: Scope.makeUnsafe(),
      ready: Deferred.makeUnsafe()
    }
    leases.set(key, lease)
    return restore(Scope.provide(inner.checkout, lease.scope)).pipe(
      Effect.onExit((exit) => {
        if (Exit.isSuccess(exit)) {
          lease.handle = exit.value
          Deferred.doneUnsafe(lease.ready, exit)
          return Effect.void
        }
        if (leases.get(key) === lease) leases.delete(key)
        Deferred.doneUnsafe(
          lease.ready,
          Cause.hasInterruptsOnly(exit.cause) ? Exit.succeed(undefined) : (exit as Exit.Exit<never, CheckoutError>)
        )
        return release(lease)
      }),
      Effect.map((handle) => [lease, handle] as const)
    )
  }

  const join = (lease: Lease<C>, restore: Restore): Effect.Effect<readonly [Lease<C>, PooledConnection<C>], CheckoutError> => {
    lease.refs++
    if (lease.handle !== undefined) return Effect.succeed([lease, lease.handle] as const)
    return restore(Deferred.await(lease.ready)).pipe(
      Effect.onExit((exit) => Exit.isSuccess(exit) && exit.value !== undefined ? Effect.void : release(lease)),
      Effect.flatMap((handle) => handle === undefined ? acquire(restore) : Effect.succeed([lease, handle] as const))
    )
  }

  /** Take one reference on the lease for the current key. Call inside `uninterruptibleMask`. */
  const acquire = (restore: Restore): Effect.Effect<readonly [Lease<C>, PooledConnection<C>], CheckoutError> =>
    Effect.withFiber((fiber) => {
      const key = by === "pool" ? 0 : fiber.id
      const current = leases.get(key)
      return current !== undefined && joinable(current) ? join(current, restore) : open(key, restore)
    })

  return {
    checkout: Effect.uninterruptibleMask((restore) =>
      Effect.flatMap(acquire(restore), ([lease, handle]) => Effect.as(Effect.addFinalizer(() => release(lease)), handle))
    ),
    use: (f) =>
      Effect.uninterruptibleMask((restore) =>
        Effect.flatMap(acquire(restore), ([lease, handle]) =>
          Effect.onExit(restore(Effect.suspend(() => f(handle))), () => release(lease)))
      )
  }
}
