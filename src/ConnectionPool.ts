/**
 * The `ConnectionPool` service: what every pool strategy provides, whichever layer built it.
 *
 * Swap the strategy by swapping the layer (`QueuePool.layer`, ...); code that uses the pool
 * only sees this interface. A checkout is a scoped resource: its finalizer resets the
 * connection and checks it in, whatever ends the scope.
 *
 * @since 0.1.0
 */
import { Context, Effect } from "effect"
import type { Scope, Stream } from "effect"
import type { CheckoutError, ConnectionInvalidatedError } from "./PoolError.ts"
import type { PoolEvent } from "./PoolEvent.ts"
import type { InvalidationReason } from "./PoolMetrics.ts"

/**
 * A pool's counts, as SQLAlchemy's `status()`.
 * `checkedOut = size - checkedIn + overflow` for QueuePool and FiberPool. Counts are of
 * connections, not handles: checkouts sharing one connection (reentrant, StaticPool) count once.
 * Each strategy's module doc says what its counts mean.
 *
 * @category models
 * @since 0.1.0
 */
export interface PoolStatus {
  /** Configured size (QueuePool `poolSize`). */
  readonly size: number
  /** Idle slots in the pool. */
  readonly checkedIn: number
  /** Slots handed out (including ones being connected for a checkout). */
  readonly checkedOut: number
  /** Slots beyond `size` (negative while the pool is not yet full). */
  readonly overflow: number
  /** Fibers waiting for a slot. */
  readonly waiting: number
}

/**
 * A checked-out connection (SQLAlchemy's `PoolProxiedConnection`).
 *
 * @category models
 * @since 0.1.0
 */
export interface PooledConnection<C = unknown> {
  /** Id of the slot (connection record) it came from; -1 once detached and returned. */
  readonly slot: number
  /** The raw driver connection. Throws `ConnectionInvalidatedError` once invalidated or returned. */
  readonly connection: C
  /** The raw driver connection, or a typed failure once invalidated or returned. */
  readonly raw: Effect.Effect<C, ConnectionInvalidatedError>
  /** False after a hard invalidation or the return. */
  readonly isValid: boolean
  readonly isDetached: boolean
  /** Per-connection user data: survives checkin, cleared on reconnect, copied on detach. */
  readonly info: Map<string, unknown>
  /** Per-slot user data: lives as long as the slot. */
  readonly recordInfo: Map<string, unknown>
  /**
   * Hard invalidation: close the raw connection now and give the slot back (it reconnects at its
   * next checkout). The handle becomes unusable. Events: invalidate, close, checkin. `reason`
   * (default `"user"`) labels the `invalidations` metric.
   */
  readonly invalidate: (cause?: unknown, reason?: InvalidationReason) => Effect.Effect<void>
  /** Soft invalidation: keep using it; it is recycled at its next checkout. Event: soft_invalidate. */
  readonly softInvalidate: (cause?: unknown) => Effect.Effect<void>
  /**
   * Take the raw connection out of the pool's control: the slot is freed (it connects anew next
   * time) and returning this handle resets and closes the connection instead of pooling it.
   */
  readonly detach: Effect.Effect<void>
}

/**
 * The pool service.
 *
 * @category models
 * @since 0.1.0
 */
export interface Service<C = unknown> {
  /** The `name` option (logs, metrics, errors). */
  readonly name: string
  /** `"QueuePool"`, `"NullPool"`, ... */
  readonly strategy: string
  /** Check a connection out for the life of the current scope. */
  readonly checkout: Effect.Effect<PooledConnection<C>, CheckoutError, Scope.Scope>
  /** Borrow a connection for one effect, with no scope. */
  readonly use: <A, E, R>(
    f: (connection: PooledConnection<C>) => Effect.Effect<A, E, R>
  ) => Effect.Effect<A, E | CheckoutError, R>
  readonly status: Effect.Effect<PoolStatus>
  /** Close idle connections. Checked-out ones are untouched and are pooled again on return. */
  readonly dispose: Effect.Effect<void>
  /** A fresh pool with the same options, hooks and driver, living in the given scope. Connects nothing. */
  readonly recreate: Effect.Effect<Service<C>, never, Scope.Scope>
  /** Pool-wide invalidation: every connection made until now is recycled at its next checkout. */
  readonly invalidateAll: Effect.Effect<void>
  /** Clock time (ms) of the last pool-wide invalidation; 0 when none. */
  readonly invalidationTime: Effect.Effect<number>
  /** Events for observers. Subscribe (fork) before the activity you want to see. */
  readonly events: Stream.Stream<PoolEvent<C>>
}

/**
 * The pool service tag. Provided by every strategy layer.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { ConnectionPool } from "effect-db-pool"
 *
 * const program = Effect.gen(function*() {
 *   const pool = yield* ConnectionPool.ConnectionPool
 *   yield* Effect.scoped(Effect.flatMap(pool.checkout, (conn) => Effect.log(conn.slot)))
 *   return yield* pool.status
 * })
 * ```
 *
 * @category services
 * @since 0.1.0
 */
export class ConnectionPool extends Context.Service<ConnectionPool, Service<any>>()("effect-db-pool/ConnectionPool") {}

/**
 * Check out from the pool in context, for the life of the current scope.
 *
 * @category accessors
 * @since 0.1.0
 */
export const checkout: Effect.Effect<PooledConnection<any>, CheckoutError, ConnectionPool | Scope.Scope> = Effect
  .flatMap(Effect.service(ConnectionPool), (pool) => pool.checkout)

/**
 * Borrow a connection from the pool in context for one effect.
 *
 * @category accessors
 * @since 0.1.0
 */
export const use = <A, E, R>(
  f: (connection: PooledConnection<any>) => Effect.Effect<A, E, R>
): Effect.Effect<A, E | CheckoutError, R | ConnectionPool> => Effect.flatMap(Effect.service(ConnectionPool), (pool) => pool.use(f))

/**
 * Status of the pool in context.
 *
 * @category accessors
 * @since 0.1.0
 */
export const status: Effect.Effect<PoolStatus, never, ConnectionPool> = Effect.flatMap(
  Effect.service(ConnectionPool),
  (pool) => pool.status
)
