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
 * reports `isValid: false` (invalidated) or stays detached, until they release it. Nor is a
 * lease whose connection the driver reports dead (`isDead`: e.g. a session retired after a
 * cancel it could not confirm): it is never handed to a new holder, only to a fiber that already
 * holds it (a nested checkout of the same use, which could not wait for itself). A new holder
 * gets a new lease, which for StaticPool waits for the old one's holders and then reconnects.
 *
 * Interruption: the wait (the pipeline's own wait, or a joiner's wait for a lease still
 * connecting) is the only interruptible part. Every reference taken is released exactly once,
 * and an opener interrupted while connecting makes its joiners retry, not fail.
 *
 * @internal
 */
import { Cause, Deferred, Effect, Exit, Scope } from "effect"
import type { PooledConnection, Sharing } from "../ConnectionPool.ts"
import type { CheckoutError } from "../PoolError.ts"
import type { Restore } from "./strategy.ts"

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
export const share = <C>(
  inner: Checkouts<C>,
  by: Sharing,
  /** The driver knows the connection dead (`DriverShape.isDead`); absent: never. */
  isDead: (connection: C) => boolean = () => false
): Checkouts<C> => {
  const leases = new Map<number, Lease<C>>()
  /**
   * Key `"pool"`: the lease each fiber holds, and how many references it holds on it (a fiber
   * holds one lease at most: its nested checkouts join the lease it holds). Key `"fiber"`: the
   * key is the fiber, so the lease under its key is the one it holds.
   */
  const holding = by === "pool" ? new Map<number, { readonly lease: Lease<C>; refs: number }>() : undefined

  const release = (lease: Lease<C>, fiber: number): Effect.Effect<void> =>
    Effect.suspend(() => {
      if (holding !== undefined) {
        const held = holding.get(fiber)
        if (held !== undefined && held.lease === lease && --held.refs === 0) holding.delete(fiber)
      }
      if (--lease.refs > 0) return Effect.void
      if (leases.get(lease.key) === lease) leases.delete(lease.key)
      return Scope.close(lease.scope, Exit.void)
    })

  /** Its handle can be handed out: still valid and attached (or not connected yet). */
  const usable = (lease: Lease<C>): boolean =>
    lease.handle === undefined || (lease.handle.isValid && !lease.handle.isDetached)

  /** A new holder may join it: usable, and its connection not known dead. */
  const joinable = (lease: Lease<C>): boolean =>
    usable(lease) && (lease.handle === undefined || !isDead(lease.handle.connection))

  const hold = (lease: Lease<C>, fiber: number): void => {
    if (holding === undefined) return
    const held = holding.get(fiber)
    if (held === undefined) holding.set(fiber, { lease, refs: 1 })
    else if (held.lease === lease) held.refs++
  }

  const open = (
    key: number,
    fiber: number,
    restore: Restore
  ): Effect.Effect<readonly [Lease<C>, PooledConnection<C>], CheckoutError> => {
    const lease: Lease<C> = {
      key,
      refs: 1,
      handle: undefined,
      scope: Scope.makeUnsafe(),
      ready: Deferred.makeUnsafe()
    }
    leases.set(key, lease)
    hold(lease, fiber)
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
        return release(lease, fiber)
      }),
      Effect.map((handle) => [lease, handle] as const)
    )
  }

  const join = (
    lease: Lease<C>,
    fiber: number,
    restore: Restore
  ): Effect.Effect<readonly [Lease<C>, PooledConnection<C>], CheckoutError> => {
    lease.refs++
    hold(lease, fiber)
    if (lease.handle !== undefined) return Effect.succeed([lease, lease.handle] as const)
    return restore(Deferred.await(lease.ready)).pipe(
      Effect.onExit((exit) => Exit.isSuccess(exit) && exit.value !== undefined ? Effect.void : release(lease, fiber)),
      Effect.flatMap((handle) =>
        handle === undefined ? acquire(restore, fiber) : Effect.succeed([lease, handle] as const)
      )
    )
  }

  /** Take one reference on the lease for fiber `id`'s key. Call inside `uninterruptibleMask`. */
  const acquire = (
    restore: Restore,
    id: number
  ): Effect.Effect<readonly [Lease<C>, PooledConnection<C>], CheckoutError> => {
    // A fiber that holds a lease keeps to it: waiting for a new one would wait for itself.
    const held = holding === undefined ? undefined : holding.get(id)?.lease
    if (held !== undefined && usable(held)) return join(held, id, restore)
    const key = by === "pool" ? 0 : id
    const current = leases.get(key)
    if (current === undefined) return open(key, id, restore)
    // Key "fiber": the fiber's own lease, nested in its own use (a dead one is still its own).
    return (holding === undefined ? usable(current) : joinable(current))
      ? join(current, id, restore)
      : open(key, id, restore)
  }

  return {
    checkout: Effect.uninterruptibleMask((restore) =>
      Effect.withFiber((fiber) =>
        Effect.flatMap(
          acquire(restore, fiber.id),
          ([lease, handle]) => Effect.as(Effect.addFinalizer(() => release(lease, fiber.id)), handle)
        )
      )
    ),
    use: (f) =>
      Effect.uninterruptibleMask((restore) =>
        Effect.withFiber((fiber) =>
          Effect.flatMap(
            acquire(restore, fiber.id),
            ([lease, handle]) => Effect.onExit(restore(Effect.suspend(() => f(handle))), () => release(lease, fiber.id))
          )
        )
      )
  }
}
