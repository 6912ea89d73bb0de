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

/** The shared checkouts of one pool. */
interface Shared<C> {
  readonly inner: Checkouts<C>
  readonly by: Sharing
  /** The driver knows the connection dead (`DriverShape.isDead`). */
  readonly isDead: (connection: C) => boolean
  /** The open leases, by key: the fiber id (`"fiber"`), or 0 (`"pool"`). */
  readonly leases: Map<number, Lease<C>>
  /**
   * Key `"pool"`: the lease each fiber holds, and how many references it holds on it (a fiber
   * holds one lease at most: its nested checkouts join the lease it holds). Key `"fiber"`: the
   * key is the fiber, so the lease under its key is the one it holds.
   */
  readonly holding: Map<number, { readonly lease: Lease<C>; refs: number }> | undefined
}

type Leased<C> = readonly [Lease<C>, PooledConnection<C>]

/** Drop one reference of fiber `fiber` on the lease; the last one ends the lease's checkout. */
const release = <C>(shared: Shared<C>, lease: Lease<C>, fiber: number): Effect.Effect<void> =>
  Effect.suspend(() => {
    if (shared.holding !== undefined) {
      const held = shared.holding.get(fiber)
      if (held !== undefined && held.lease === lease && --held.refs === 0) shared.holding.delete(fiber)
    }
    if (--lease.refs > 0) return Effect.void
    if (shared.leases.get(lease.key) === lease) shared.leases.delete(lease.key)
    return Scope.close(lease.scope, Exit.void)
  })

/** Its handle can be handed out: still valid and attached (or not connected yet). */
const usable = <C>(lease: Lease<C>): boolean =>
  lease.handle === undefined || (lease.handle.isValid && !lease.handle.isDetached)

/** A new holder may join it: usable, and its connection not known dead. */
const joinable = <C>(shared: Shared<C>, lease: Lease<C>): boolean =>
  usable(lease) && (lease.handle === undefined || !shared.isDead(lease.handle.connection))

const hold = <C>(shared: Shared<C>, lease: Lease<C>, fiber: number): void => {
  if (shared.holding === undefined) return
  const held = shared.holding.get(fiber)
  if (held === undefined) shared.holding.set(fiber, { lease, refs: 1 })
  else if (held.lease === lease) held.refs++
}

/** A new lease under `key`: one checkout of the inner pipeline, in the lease's own scope. */
const open = <C>(
  shared: Shared<C>,
  key: number,
  fiber: number,
  restore: Restore
): Effect.Effect<Leased<C>, CheckoutError> => {
  const lease: Lease<C> = {
    key,
    refs: 1,
    handle: undefined,
    scope: Scope.makeUnsafe(),
    ready: Deferred.makeUnsafe()
  }
  shared.leases.set(key, lease)
  hold(shared, lease, fiber)
  return restore(Scope.provide(shared.inner.checkout, lease.scope)).pipe(
    Effect.onExit((exit) => {
      if (Exit.isSuccess(exit)) {
        lease.handle = exit.value
        Deferred.doneUnsafe(lease.ready, exit)
        return Effect.void
      }
      if (shared.leases.get(key) === lease) shared.leases.delete(key)
      Deferred.doneUnsafe(
        lease.ready,
        Cause.hasInterruptsOnly(exit.cause) ? Exit.succeed(undefined) : (exit as Exit.Exit<never, CheckoutError>)
      )
      return release(shared, lease, fiber)
    }),
    Effect.map((handle) => [lease, handle] as const)
  )
}

/** Join an open lease: at once when it is connected, else when its opener is done. */
const join = <C>(
  shared: Shared<C>,
  lease: Lease<C>,
  fiber: number,
  restore: Restore
): Effect.Effect<Leased<C>, CheckoutError> => {
  lease.refs++
  hold(shared, lease, fiber)
  if (lease.handle !== undefined) return Effect.succeed([lease, lease.handle] as const)
  return restore(Deferred.await(lease.ready)).pipe(
    Effect.onExit((exit) =>
      Exit.isSuccess(exit) && exit.value !== undefined ? Effect.void : release(shared, lease, fiber)
    ),
    Effect.flatMap((handle) =>
      handle === undefined ? acquire(shared, restore, fiber) : Effect.succeed([lease, handle] as const)
    )
  )
}

/** Take one reference on the lease for fiber `id`'s key. Call inside `uninterruptibleMask`. */
const acquire = <C>(shared: Shared<C>, restore: Restore, id: number): Effect.Effect<Leased<C>, CheckoutError> => {
  // A fiber that holds a lease keeps to it: waiting for a new one would wait for itself.
  const held = shared.holding === undefined ? undefined : shared.holding.get(id)?.lease
  if (held !== undefined && usable(held)) return join(shared, held, id, restore)
  const key = shared.by === "pool" ? 0 : id
  const current = shared.leases.get(key)
  if (current === undefined) return open(shared, key, id, restore)
  // Key "fiber": the fiber's own lease, nested in its own use (a dead one is still its own).
  return (shared.holding === undefined ? usable(current) : joinable(shared, current))
    ? join(shared, current, id, restore)
    : open(shared, key, id, restore)
}

/** @internal */
export const share = <C>(
  inner: Checkouts<C>,
  by: Sharing,
  /** The driver knows the connection dead (`DriverShape.isDead`); absent: never. */
  isDead: (connection: C) => boolean = () => false
): Checkouts<C> => {
  const shared: Shared<C> = {
    inner,
    by,
    isDead,
    leases: new Map(),
    holding: by === "pool" ? new Map() : undefined
  }
  return {
    checkout: Effect.uninterruptibleMask((restore) =>
      Effect.withFiber((fiber) =>
        Effect.flatMap(
          acquire(shared, restore, fiber.id),
          ([lease, handle]) => Effect.as(Effect.addFinalizer(() => release(shared, lease, fiber.id)), handle)
        )
      )
    ),
    use: (f) =>
      Effect.uninterruptibleMask((restore) =>
        Effect.withFiber((fiber) =>
          Effect.flatMap(
            acquire(shared, restore, fiber.id),
            ([lease, handle]) =>
              Effect.onExit(restore(Effect.suspend(() => f(handle))), () => release(shared, lease, fiber.id))
          )
        )
      )
  }
}
