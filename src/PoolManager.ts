/**
 * `PoolManager`: one pool per distinct set of connect arguments, for multi-tenant programs
 * (SQLAlchemy's `manage()` / `_DBProxy` heir). A pool is built on first use of its key with the
 * strategy you configure, shared by everyone asking for the same key, disposed on demand or
 * after an idle time-to-live, and every pool is closed when the manager's scope closes.
 *
 * Built on effect's `RcMap`: a pool is "in use" while some scope holds it through
 * {@link PoolManager.get} (a checkout or `use` through the manager holds it too), and only an
 * unused pool can expire.
 *
 * @since 0.1.0
 */
import { Context, Duration, Effect, Equal, Hash, Layer, RcMap, Redacted, Scope } from "effect"
import { ConnectionPool } from "./ConnectionPool.ts"
import type { PooledConnection, Service } from "./ConnectionPool.ts"
import type { CheckoutError } from "./PoolError.ts"

/**
 * How to build and key the pools.
 *
 * @category models
 * @since 0.1.0
 */
export interface Options<Args, E, R, C = unknown> {
  /**
   * Build the pool for one set of connect arguments: a layer providing `ConnectionPool` (e.g.
   * `QueuePool.layer(opts).pipe(Layer.provide(PgDriver.layer({ url: args.url })))`) or a scoped
   * effect returning the service (`QueuePool.make(opts)`). Runs once per key, on first use; the
   * pool lives in its own scope, closed when the pool is disposed, expires or the manager closes.
   */
  readonly pool: (args: Args) => Layer.Layer<ConnectionPool, E, R> | Effect.Effect<Service<C>, E, R | Scope.Scope>
  /**
   * The key that decides which arguments share a pool (SQLAlchemy's `sa_pool_key`). Default
   * {@link defaultKey}: a serialisation of the arguments with object keys sorted.
   */
  readonly key?: ((args: Args) => string) | undefined
  /**
   * How long a pool nobody holds is kept before it is closed. Default `"Infinity"`: kept until
   * {@link PoolManager.dispose} or the manager's scope closes, as SQLAlchemy's `manage()`.
   */
  readonly idleTimeToLive?: Duration.Input | undefined
}

/**
 * A running manager. `C` is the raw connection type (typed when `pool` returns a typed service).
 *
 * @category models
 * @since 0.1.0
 */
export interface PoolManager<Args, E, C = unknown> {
  /** The key the given arguments map to. */
  readonly keyOf: (args: Args) => string
  /** The pool for these arguments (built on first use), held for the life of the current scope. */
  readonly get: (args: Args) => Effect.Effect<Service<C>, E, Scope.Scope>
  /** Check a connection out of the pool for these arguments, for the life of the current scope. */
  readonly checkout: (args: Args) => Effect.Effect<PooledConnection<C>, E | CheckoutError, Scope.Scope>
  /** Borrow a connection from the pool for these arguments for one effect. */
  readonly use: <A, E2, R2>(
    args: Args,
    f: (connection: PooledConnection<C>) => Effect.Effect<A, E2, R2>
  ) => Effect.Effect<A, E | E2 | CheckoutError, R2>
  /**
   * Run an effect with the pool for these arguments as its `ConnectionPool` service (held while
   * the effect runs): code written against `ConnectionPool` runs unchanged per tenant.
   */
  readonly provide: (
    args: Args
  ) => <A, E2, R2>(effect: Effect.Effect<A, E2, R2>) => Effect.Effect<A, E | E2, Exclude<R2, ConnectionPool>>
  /**
   * Drop the pool for these arguments: the next `get` builds a new one. An unused pool is
   * closed now; one still held is closed when its last holder releases it (its checkouts come
   * back normally). No-op for a key with no pool.
   */
  readonly dispose: (args: Args) => Effect.Effect<void>
  /** Keys that currently have a pool (including idle ones waiting to expire). */
  readonly keys: Effect.Effect<ReadonlyArray<string>>
}

/** The RcMap key: equal by the string key, carrying the arguments to build the pool from. */
class PoolKey<Args> implements Equal.Equal {
  constructor(readonly key: string, readonly args: Args) {}
  [Equal.symbol](that: Equal.Equal): boolean {
    return that instanceof PoolKey && that.key === this.key
  }
  [Hash.symbol](): number {
    return Hash.string(this.key)
  }
}

/**
 * The default key: JSON with object keys sorted, so `{ host, port }` and `{ port, host }` share a
 * pool. A `Redacted` value (a password) contributes a hash of its value, never the value itself;
 * give `key` explicitly when arguments hold functions or class instances that JSON cannot tell apart.
 *
 * @category keys
 * @since 0.1.0
 */
export const defaultKey = (args: unknown): string =>
  JSON.stringify(args, function(this: { readonly [k: string]: unknown }, field, value: unknown) {
    const original = this[field] // before `toJSON` (a Redacted serialises as "<redacted>")
    if (Redacted.isRedacted(original)) return `<redacted ${Hash.hash(Redacted.value(original))}>`
    if (value !== null && typeof value === "object" && !Array.isArray(value)) {
      const sorted: { [k: string]: unknown } = {}
      for (const k of Object.keys(value).sort()) sorted[k] = (value as { [k: string]: unknown })[k]
      return sorted
    }
    return typeof value === "bigint" ? `${value}n` : value
  }) ?? "undefined"

/**
 * Make a manager in the current scope; closing that scope closes every pool it built.
 *
 * @example
 * ```ts
 * import { Effect, Layer } from "effect"
 * import { Driver, PoolManager, QueuePool } from "effect-db-pool"
 *
 * declare const driverFor: (tenant: { readonly url: string }) => Layer.Layer<Driver.Driver>
 *
 * const program = Effect.gen(function*() {
 *   const pools = yield* PoolManager.make({
 *     pool: (tenant: { readonly url: string }) => QueuePool.layer({ poolSize: 2 }).pipe(Layer.provide(driverFor(tenant))),
 *     idleTimeToLive: "10 minutes"
 *   })
 *   yield* pools.use({ url: "postgres://a/db" }, (conn) => Effect.log(conn.slot))
 * })
 * ```
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = <Args, E = never, R = never, C = unknown>(
  options: Options<Args, E, R, C>
): Effect.Effect<PoolManager<Args, E, C>, never, R | Scope.Scope> =>
  Effect.gen(function*() {
    const keyOf = options.key ?? defaultKey
    const map = yield* RcMap.make({
      lookup: ({ args }: PoolKey<Args>): Effect.Effect<Service<C>, E, R | Scope.Scope> => {
        const built = options.pool(args)
        // A layer's pool is `Service<unknown>`, so `C` is `unknown` whenever `pool` returns a layer.
        return Layer.isLayer(built)
          ? Effect.map(Layer.build(built as Layer.Layer<ConnectionPool, E, R>), (context) => Context.get(context, ConnectionPool) as Service<C>)
          : built as Effect.Effect<Service<C>, E, R | Scope.Scope>
      },
      idleTimeToLive: options.idleTimeToLive ?? Duration.infinity
    })
    const get = (args: Args): Effect.Effect<Service<C>, E, Scope.Scope> =>
      Effect.suspend(() => {
        const key = new PoolKey(keyOf(args), args)
        // A failed build is not cached: the next get tries again.
        return RcMap.get(map, key).pipe(Effect.tapError(() => RcMap.invalidate(map, key)))
      })
    const manager: PoolManager<Args, E, C> = {
      keyOf,
      get,
      checkout: (args) => Effect.flatMap(get(args), (pool) => pool.checkout),
      use: (args, f) => Effect.scoped(Effect.flatMap(get(args), (pool) => pool.use(f))),
      provide: (args) => (effect) =>
        Effect.acquireUseRelease(
          Scope.make(),
          (scope) => Effect.flatMap(Scope.provide(get(args), scope), (pool) => Effect.provideService(effect, ConnectionPool, pool as Service<unknown>)),
          (scope, exit) => Scope.close(scope, exit)
        ),
      dispose: (args) => Effect.suspend(() => RcMap.invalidate(map, new PoolKey(keyOf(args), args))),
      keys: Effect.map(
        Effect.catchCause(RcMap.keys(map), () => Effect.succeed([] as Iterable<PoolKey<Args>>)),
        (keys) => Array.from(keys, (k) => k.key)
      )
    }
    return manager
  })

