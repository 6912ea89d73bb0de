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
import type { Duration, Option, Scope, Stream } from "effect"
import type { CheckoutError, ConnectionInvalidatedError, PoolConfigError } from "./PoolError.ts"
import type { ObservedEvent } from "./PoolEvent.ts"
import type { InvalidationReason } from "./PoolMetrics.ts"
import type { ResetOnReturn, StrategyName } from "./PoolOptions.ts"

/**
 * How many events one `events` subscriber may have waiting before newer ones are dropped.
 *
 * @category constants
 * @since 0.1.0
 */
export const eventBufferSize = 4096

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
 * A snapshot of the pool's occupancy in the shape of effect's `Pool.Stats` (what
 * `@effect/sql-pg`'s `PgClient.poolStats` returns). `idle`, `used` and `pending` are the
 * {@link PoolStatus} counts `checkedIn`, `checkedOut` and `waiting`; `min` and `max` are the
 * strategy's bounds:
 *
 * | strategy | `min` | `max` |
 * |---|---|---|
 * | QueuePool | `minIdle` | `poolSize + maxOverflow`; `Infinity` when unlimited (`maxOverflow: -1` or `poolSize: 0`) |
 * | NullPool | 0 | `Infinity` (one connection per checkout, nothing kept) |
 * | StaticPool | 0 | 1 (one shared connection: `used` 1 however many fibers share it) |
 * | FiberPool | 0 | `Infinity` (`poolSize` bounds the connections kept idle, not the ones open) |
 * | AssertionPool | 0 | 1 |
 *
 * `used` counts connections being opened for a checkout too; after a `resize` shrank a
 * QueuePool, `used` may exceed `max` until the busy connections beyond it come back.
 * `Infinity` reads as `null` in JSON.
 *
 * @category models
 * @since 0.2.0
 */
export interface PoolStats {
  /** Connections open and idle in the pool (`status.checkedIn`). */
  readonly idle: number
  /** Connections checked out, including ones being opened for a checkout (`status.checkedOut`). */
  readonly used: number
  /** Checkouts waiting for a connection, at a suspended pool's gate too (`status.waiting`). */
  readonly pending: number
  /** Connections the pool keeps open without demand (QueuePool `minIdle`, else 0). */
  readonly min: number
  /** Connections the pool allows open at once (`Infinity`: no bound). */
  readonly max: number
}

/**
 * How checkouts share a connection: `"pool"`, every concurrent checkout gets the same one
 * (StaticPool); `"fiber"`, a checkout made while the same fiber holds one gets that one
 * (`reentrant`, FiberPool). Only the last release of a shared checkout resets and checks it in.
 *
 * @category models
 * @since 0.2.0
 */
export type Sharing = "pool" | "fiber"

/**
 * A pool's settings after validation and defaults, as the service reports them. Durations are
 * `Duration`s (`Duration.infinity` = never / no bound). Strategy options that a strategy does
 * not have are `undefined` (`poolSize` of a NullPool).
 *
 * @category models
 * @since 0.1.0
 */
export interface PoolSettings {
  /** The `name` option (default: the strategy's name). */
  readonly name: string
  /** The strategy: `"QueuePool"`, `"NullPool"`, ... */
  readonly strategy: StrategyName
  /** QueuePool: connections kept; FiberPool: idle per-fiber connections kept. */
  readonly poolSize: number | undefined
  /** QueuePool: connections allowed beyond `poolSize` (-1 = unlimited). */
  readonly maxOverflow: number | undefined
  /** QueuePool: how long a checkout waits for a slot. */
  readonly timeout: Duration.Duration | undefined
  /** QueuePool: most recently returned first. */
  readonly lifo: boolean | undefined
  /**
   * How checkouts share a connection ({@link Sharing}): `"pool"` for StaticPool, `"fiber"` with
   * `reentrant` (FiberPool); `undefined` when every checkout has a connection of its own.
   */
  readonly sharing: Sharing | undefined
  /** Max connection age, checked at checkout (default `Duration.infinity`: never). */
  readonly recycle: Duration.Duration
  /** Whether a reused connection is pinged before it is handed out (default false). */
  readonly prePing: boolean
  /** What a return does first: `"rollback"` (default), `"commit"` or `"none"`. */
  readonly resetOnReturn: ResetOnReturn
  /** Bound on a release's reset and close (default 10 s); past it the connection is invalidated. */
  readonly resetTimeout: Duration.Duration
  /** Bound on opening one connection (default 30 s); also bounds a pre-ping. */
  readonly connectTimeout: Duration.Duration
  /** Whether nested checkouts of one fiber share a connection (default false; FiberPool: true). */
  readonly reentrant: boolean
  /** A checkout held longer logs one warning (default `Duration.infinity`: off). */
  readonly leakDetectionThreshold: Duration.Duration
  /** Checkouts after which a connection is replaced (default 0: unlimited). */
  readonly maxUses: number
  /** Max connection lifetime, minus a random jitter (default `Duration.infinity`: never). */
  readonly maxLifetime: Duration.Duration
}

/**
 * A checked-out connection (SQLAlchemy's `PoolProxiedConnection`).
 *
 * @category models
 * @since 0.1.0
 */
export interface PooledConnection<C = unknown> {
  /** Id of the slot (connection record) it came from; -1 once detached. */
  readonly slot: number
  /** The raw driver connection. Throws `ConnectionInvalidatedError` once invalidated or returned. */
  readonly connection: C
  /** The raw driver connection, or a typed failure once invalidated or returned. */
  readonly raw: Effect.Effect<C, ConnectionInvalidatedError>
  /** False after a hard invalidation or the return. */
  readonly isValid: boolean
  /** True once {@link PooledConnection.detach | detach} has taken the connection out of the pool. */
  readonly isDetached: boolean
  /**
   * Per-connection user data: survives checkin, cleared on reconnect. On detach the handle
   * takes a copy of its own (the slot's map stays with the slot).
   */
  readonly info: Map<string, unknown>
  /** Per-slot user data: lives as long as the slot. `undefined` once detached (no slot any more). */
  readonly recordInfo: Map<string, unknown> | undefined
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
  readonly strategy: StrategyName
  /** Check a connection out for the life of the current scope. */
  readonly checkout: Effect.Effect<PooledConnection<C>, CheckoutError, Scope.Scope>
  /** Borrow a connection for one effect, with no scope. */
  readonly use: <A, E, R>(
    f: (connection: PooledConnection<C>) => Effect.Effect<A, E, R>
  ) => Effect.Effect<A, E | CheckoutError, R>
  /** The pool's occupancy now: size, checked in, checked out, overflow, waiting ({@link PoolStatus}). */
  readonly status: Effect.Effect<PoolStatus>
  /** Occupancy in effect's `Pool.Stats` shape ({@link PoolStats}): what `PgClient.poolStats` reports. */
  readonly stats: Effect.Effect<PoolStats>
  /** Close idle connections. Checked-out ones are untouched and are pooled again on return. */
  readonly dispose: Effect.Effect<void>
  /** A fresh pool with the same options, hooks and driver, living in the given scope. Connects nothing. */
  readonly recreate: Effect.Effect<Service<C>, never, Scope.Scope>
  /** Pool-wide invalidation: every connection made until now is recycled at its next checkout. */
  readonly invalidateAll: Effect.Effect<void>
  /** Clock time (ms) of the last pool-wide invalidation; `None` when there was none. */
  readonly invalidationTime: Effect.Effect<Option.Option<number>>
  /** The pool's settings after validation and defaults (SQLAlchemy's `timeout()`, `size()`, ...); sizes as resized. */
  readonly settings: PoolSettings
  /**
   * Change `poolSize` / `maxOverflow` at run time (QueuePool; absent fields stay). Growing serves
   * waiters at once; shrinking closes idle connections beyond the new size now and busy ones as
   * they come back, never interrupting a user. `maxOverflow: -1` lifts the limit (the pool still
   * keeps `poolSize` connections). `poolSize: 0` is refused: as an option 0 means "no limit", the
   * opposite of a drain; to stop new checkouts use {@link Service.suspend}. A bad value, or a
   * strategy without a size, fails with `PoolConfigError`. Event: resize.
   */
  readonly resize: (size: {
    readonly poolSize?: number | undefined
    readonly maxOverflow?: number | undefined
  }) => Effect.Effect<void, PoolConfigError>
  /**
   * Suspend the pool for maintenance or failover: new checkouts wait (bounded by the pool's
   * `timeout`, where it has one; they count in `status.waiting`) while checked-out work goes on
   * and returns normally. Nested checkouts of a lease already held are not held back. Idempotent.
   * Event: suspend; gauge `db.client.connection.pool.suspended`.
   */
  readonly suspend: Effect.Effect<void>
  /** End a suspension: waiting checkouts go on in arrival order. Idempotent. Event: resume. */
  readonly resume: Effect.Effect<void>
  /** Is the pool suspended? */
  readonly isSuspended: Effect.Effect<boolean>
  /**
   * Events for observers. Subscribe (fork) before the activity you want to see. Each subscriber
   * has a buffer of {@link eventBufferSize} events: a subscriber that falls further behind loses
   * the newest events (counted by `droppedEvents`) and never slows the pool or grows its memory.
   */
  readonly events: Stream.Stream<ObservedEvent>
  /** Events dropped so far because a subscriber's buffer was full. */
  readonly droppedEvents: Effect.Effect<number>
}

/**
 * The pool service tag. Provided by every strategy layer.
 *
 * The raw connection is `unknown` through this tag, since one tag serves every driver. A
 * program written for one driver reads the same service through that driver's typed tag
 * (`PgDriver.Pool`, `MockDriver.Pool`) or {@link typed}, and gets its connection typed.
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
export class ConnectionPool
  extends Context.Service<ConnectionPool, Service<unknown>>()("effect-db-pool/ConnectionPool")
{}

/**
 * The {@link ConnectionPool} tag, typed with the raw connection type `C` of the driver the pool
 * runs over: the same service (same requirement, same key), seen with its connection typed.
 * Drivers export theirs (`PgDriver.Pool`, `MockDriver.Pool`); call this for a driver of your
 * own. The type is a promise about the `Driver` layer below the pool: use a driver's tag only
 * with pools built over that driver.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { ConnectionPool } from "effect-db-pool"
 *
 * interface MyConnection { readonly query: (sql: string) => Effect.Effect<unknown> }
 * const MyPool = ConnectionPool.typed<MyConnection>()
 *
 * const program = MyPool.use((pool) => pool.use((conn) => conn.connection.query("select 1")))
 * ```
 *
 * @category services
 * @since 0.1.0
 */
export const typed = <C>(): Context.Service<ConnectionPool, Service<C>> =>
  ConnectionPool as unknown as Context.Service<ConnectionPool, Service<C>>

/**
 * Check out from the pool in context, for the life of the current scope.
 *
 * @category accessors
 * @since 0.1.0
 */
export const checkout: Effect.Effect<PooledConnection<unknown>, CheckoutError, ConnectionPool | Scope.Scope> = Effect
  .flatMap(Effect.service(ConnectionPool), (pool) => pool.checkout)

/**
 * Borrow a connection from the pool in context for one effect.
 *
 * @category accessors
 * @since 0.1.0
 */
export const use = <A, E, R>(
  f: (connection: PooledConnection<unknown>) => Effect.Effect<A, E, R>
): Effect.Effect<A, E | CheckoutError, R | ConnectionPool> =>
  Effect.flatMap(Effect.service(ConnectionPool), (pool) => pool.use(f))

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
