/**
 * `PoolManager`: one pool per distinct set of connect arguments, for multi-tenant programs
 * (SQLAlchemy's `manage()` / `_DBProxy` heir). A pool is built on first use of its key with the
 * strategy you configure, shared by everyone asking for the same key, disposed on demand or
 * after an idle time-to-live, and every pool is closed when the manager's scope closes.
 *
 * Built on effect's `RcMap`: a pool is "in use" while some scope holds it through
 * {@link PoolManager.get} (a checkout or `use` through the manager holds it too), and only an
 * unused pool can expire or be evicted.
 *
 * Keys are security-relevant when the arguments carry credentials: a caller whose arguments map
 * to tenant A's key gets tenant A's pool, whatever password it gave. So the default key keeps a
 * `Redacted` value as a keyed fingerprint (HMAC-SHA-256 under a random per-process key, 128 bits
 * shown), never as the value or a short hash; a pool whose connects fail authentication is not
 * kept for its key; and the number of pools is bounded (`idleTimeToLive`, `maxPools`).
 *
 * @since 0.1.0
 */
import { Context, Duration, Effect, Equal, Exit, Hash, Layer, MutableHashMap, RcMap, Redacted, Scope } from "effect"
import type * as NodeCrypto from "node:crypto"
import { ConnectionPool } from "./ConnectionPool.ts"
import type { PooledConnection, Service } from "./ConnectionPool.ts"
import { ConnectError } from "./PoolError.ts"
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
   * {@link defaultKey}. A string is used as it is, so it must tell apart every credential that
   * must not share a pool, and must not contain a secret (it is what {@link PoolManager.keys}
   * shows); any other value (e.g. `{ host: args.host, password: args.password }` with a
   * `Redacted` password) is serialised by {@link defaultKey}, which fingerprints `Redacted`
   * values safely. A string containing `"<redacted>"` (a `Redacted` interpolated into a
   * template, which would make every password share one pool) is refused with a defect.
   */
  readonly key?: ((args: Args) => unknown) | undefined
  /**
   * How long a pool nobody holds is kept before it is closed. Default `"5 minutes"`: a tenant
   * active at least every few minutes keeps its warm pool, and a one-off key (a typo, a wrong
   * password, a tenant seen once) does not hold memory and server connections for the life of
   * the process. `"Infinity"` keeps pools until {@link PoolManager.dispose}, eviction by
   * `maxPools` or the manager's scope closes (SQLAlchemy's `manage()`).
   */
  readonly idleTimeToLive?: Duration.Input | undefined
  /**
   * The most pools kept at once. Default 100. When a new key would exceed it, the least
   * recently used *idle* pools (held by no scope) are closed first; when a held pool is released
   * while the manager is over the bound, idle pools are closed until it is back within it. A
   * pool in use is never closed for this, so when every pool is in use a new key still gets its
   * pool and the manager is over the bound until pools are released (a soft bound: in-use pools
   * are bounded by the program's own concurrency; failing a tenant because others are busy
   * would be worse). `Infinity` for no bound.
   */
  readonly maxPools?: number | undefined
  /**
   * Is this connect failure an authentication failure (wrong password, unknown user)? When a
   * checkout through one of the manager's pools fails with a `ConnectError` whose `cause`
   * satisfies it, the pool is dropped from its key (closed once no one holds it), so the
   * failed credentials leave no pool behind and the next request for that key builds a fresh
   * pool. Default {@link isAuthenticationError}: SQLSTATE class 28 or effect/sql's
   * `AuthenticationError` anywhere in the cause chain.
   */
  readonly isAuthenticationError?: ((cause: unknown) => boolean) | undefined
}

/**
 * A running manager. `C` is the raw connection type (typed when `pool` returns a typed service).
 *
 * @category models
 * @since 0.1.0
 */
export interface PoolManager<Args, E, C = unknown> {
  /** The key the given arguments map to (secrets only as {@link defaultKey}'s fingerprints). */
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
 * `node:crypto`, loaded when the first fingerprint is taken (`process.getBuiltinModule`, Node
 * 22.3 and later), so that importing the package does not load it for programs that never key a
 * secret.
 */
const nodeCrypto = (): typeof NodeCrypto => {
  const load = globalThis.process?.getBuiltinModule
  if (typeof load !== "function") {
    throw new Error("PoolManager: fingerprinting a Redacted key needs node:crypto (Node 22.3 or later)")
  }
  return load("node:crypto")
}

/** The HMAC of fingerprints and its key: random, made on first use, never leaves the process. */
let hmac: { readonly crypto: typeof NodeCrypto; readonly key: Uint8Array } | undefined

/** 128 bits of HMAC-SHA-256 of a secret under the process key, as hex. */
const fingerprint = (secret: unknown): string => {
  if (hmac === undefined) {
    const crypto = nodeCrypto()
    hmac = { crypto, key: crypto.randomBytes(32) }
  }
  // "s" / "j" so that the string "1" and the number 1 differ.
  const text = typeof secret === "string" ? `s${secret}` : `j${defaultKey(secret)}`
  return hmac.crypto.createHmac("sha256", hmac.key).update(text).digest("hex").slice(0, 32)
}

/** Fingerprints of the `Redacted` values seen, so a caller reusing its config pays the HMAC once. */
const fingerprints = new WeakMap<Redacted.Redacted<unknown>, string>()

const fingerprintOf = (redacted: Redacted.Redacted<unknown>): string => {
  let known = fingerprints.get(redacted)
  if (known === undefined) {
    known = fingerprint(Redacted.value(redacted))
    fingerprints.set(redacted, known)
  }
  return known
}

/**
 * The default key: JSON with object keys sorted, so `{ host, port }` and `{ port, host }` share a
 * pool. A `Redacted` value (a password) contributes `<redacted:…>`, a keyed fingerprint of its
 * value: 128 bits of HMAC-SHA-256 under a random key made once per process, so two different
 * secrets never share a key (no collision can be searched for: the HMAC key is unknown outside
 * the process), and the fingerprint reveals nothing about the secret (nor can a guess be checked
 * against it offline). Fingerprints are stable within a process and differ between processes.
 * A plain string starting with `<` gets one more `<`, so no plain value can pass for a
 * fingerprint; a bigint is `<bigint:…>`. Give `key` explicitly when arguments hold functions or
 * class instances that JSON cannot tell apart. Put secrets in `Redacted`: a plain string is
 * part of the key as it is, and the key is what {@link PoolManager.keys} shows.
 *
 * @category keys
 * @since 0.1.0
 */
export const defaultKey = (args: unknown): string =>
  JSON.stringify(args, function(this: { readonly [k: string]: unknown }, field, value: unknown) {
    const original = this[field] // before `toJSON` (a Redacted serialises as "<redacted>")
    if (Redacted.isRedacted(original)) return `<redacted:${fingerprintOf(original)}>`
    if (typeof value === "string") return value.startsWith("<") ? `<${value}` : value
    if (value !== null && typeof value === "object" && !Array.isArray(value)) {
      const sorted: { [k: string]: unknown } = {}
      for (const k of Object.keys(value).sort()) sorted[k] = (value as { [k: string]: unknown })[k]
      return sorted
    }
    return typeof value === "bigint" ? `<bigint:${value}>` : value
  }) ?? "undefined"

const fieldOf = (u: object, key: string): unknown => {
  try {
    return (u as Record<string, unknown>)[key]
  } catch {
    return undefined
  }
}

const authFailed = (u: unknown, depth: number): boolean => {
  if (typeof u !== "object" || u === null || depth > 8) return false
  if (fieldOf(u, "_tag") === "AuthenticationError") return true
  const code = fieldOf(u, "code")
  if (typeof code === "string" && /^28[0-9A-Z]{3}$/.test(code)) return true
  const reason = fieldOf(u, "reason")
  const cause = fieldOf(u, "cause")
  return authFailed(reason, depth + 1) || (cause !== reason && authFailed(cause, depth + 1))
}

/**
 * Does this connect failure mean the credentials were refused? True when the error or anything
 * in its `cause` / `reason` chain has a SQLSTATE `code` of class 28 (Postgres `28P01` invalid
 * password, `28000` invalid authorization, e.g. no `pg_hba.conf` entry) or is effect/sql's
 * `AuthenticationError` (any effect/sql driver, and client-side SCRAM failures).
 *
 * @category predicates
 * @since 0.1.0
 */
export const isAuthenticationError = (error: unknown): boolean => authFailed(error, 0)

/** A running manager's state: its options and the pools it keeps, by key. */
interface State<Args, E, R, C> {
  readonly options: Options<Args, E, R, C>
  readonly maxPools: number
  readonly isAuth: (cause: unknown) => boolean
  /** Keys in order of last use, oldest first: the order idle pools are evicted in. */
  readonly recent: Map<string, PoolKey<Args>>
  /** The pool kept for each key, as handed out (to tell it from a newer pool of the same key). */
  readonly live: Map<string, Service<C>>
  readonly map: RcMap.RcMap<PoolKey<Args>, Service<C>, E>
}

/** The key of these arguments: {@link defaultKey}, or the `key` option's, checked. */
const keyOf = <Args>(options: Options<Args, unknown, unknown, unknown>, args: Args): string => {
  const customKey = options.key
  if (customKey === undefined) return defaultKey(args)
  const key = customKey(args)
  if (typeof key !== "string") return defaultKey(key)
  if (key.includes("<redacted>")) {
    throw new Error(
      "PoolManager: the key contains \"<redacted>\" (a Redacted value turned into text), so every secret would share one pool; " +
        "return the Redacted value inside an object instead, e.g. key: (args) => ({ host: args.host, password: args.password })"
    )
  }
  return key
}

/** Build the pool of one key in the current scope (the RcMap's lookup). */
const lookup = <Args, E, R, C>(
  state: State<Args, E, R, C>,
  key: PoolKey<Args>
): Effect.Effect<Service<C>, E, R | Scope.Scope> =>
  Effect.andThen(
    // Runs when this pool's scope closes, however it ends: forget it unless the key has a newer pool.
    Effect.addFinalizer(() => Effect.sync(() => forget(state, key))),
    Effect.map(build(state.options, key.args), (pool) => {
      const watched = watch(state, key, pool)
      state.live.set(key.key, watched)
      return watched
    })
  )

/** The pool of these arguments, from the `pool` option (a layer or a scoped effect). */
const build = <Args, E, R, C>(
  options: Options<Args, E, R, C>,
  args: Args
): Effect.Effect<Service<C>, E, R | Scope.Scope> => {
  const built = options.pool(args)
  // A layer's pool is `Service<unknown>`, so `C` is `unknown` whenever `pool` returns a layer.
  return Layer.isLayer(built)
    ? Effect.map(
      Layer.build(built as Layer.Layer<ConnectionPool, E, R>),
      (context) => Context.get(context, ConnectionPool) as Service<C>
    )
    : built as Effect.Effect<Service<C>, E, R | Scope.Scope>
}

/** The RcMap's entries while it is open. */
const entries = <Args, E, R, C>(state: State<Args, E, R, C>) =>
  state.map.state._tag === "Open" ? state.map.state.map : undefined

/** The key's pool is gone: forget the key, unless the RcMap already has a newer pool for it. */
const forget = <Args, E, R, C>(state: State<Args, E, R, C>, key: PoolKey<Args>): void => {
  const open = entries(state)
  if (open !== undefined && MutableHashMap.has(open, key)) return
  state.recent.delete(key.key)
  state.live.delete(key.key)
}

/** Drop the key's pool if it is still `pool` (not a newer one): not kept, closed once released. */
const drop = <Args, E, R, C>(state: State<Args, E, R, C>, key: PoolKey<Args>, pool: Service<C>): Effect.Effect<void> =>
  Effect.suspend(() => {
    if (state.live.get(key.key) !== pool) return Effect.void
    state.live.delete(key.key)
    state.recent.delete(key.key)
    return RcMap.invalidate(state.map, key)
  })

/** The pool as handed out: the same service, whose checkouts report authentication failures. */
const watch = <Args, E, R, C>(state: State<Args, E, R, C>, key: PoolKey<Args>, pool: Service<C>): Service<C> => {
  const onError = (error: unknown): Effect.Effect<void> =>
    error instanceof ConnectError && state.isAuth(error.cause) ? drop(state, key, watched) : Effect.void
  const watched: Service<C> = Object.defineProperties({} as Service<C>, {
    ...Object.getOwnPropertyDescriptors(pool),
    // A getter, like the pool's own: reading it is where the checkout site is taken.
    checkout: {
      get: () => Effect.tapError(pool.checkout, onError),
      enumerable: true,
      configurable: true
    },
    use: {
      value: <A, E2, R2>(f: (connection: PooledConnection<C>) => Effect.Effect<A, E2, R2>) =>
        Effect.tapError(pool.use(f), onError),
      enumerable: true,
      configurable: true,
      writable: false
    }
  })
  return watched
}

/**
 * Close least recently used idle pools until `reserve` more fit within `maxPools`. Pools in
 * use are skipped: the bound is exceeded rather than a holder's pool closed.
 */
const trim = <Args, E, R, C>(state: State<Args, E, R, C>, reserve: number): Effect.Effect<void> =>
  Effect.suspend(() => {
    const open = entries(state)
    if (open === undefined) return Effect.void
    let excess = MutableHashMap.size(open) + reserve - state.maxPools
    if (excess <= 0) return Effect.void
    const victims: Array<PoolKey<Args>> = []
    for (const [name, key] of state.recent) {
      if (excess <= 0) break
      const entry = MutableHashMap.get(open, key)
      if (entry._tag === "None") {
        state.recent.delete(name)
      } else if (entry.value.refCount === 0) {
        victims.push(key)
        state.recent.delete(name)
        state.live.delete(name)
        excess--
      }
    }
    return Effect.forEach(victims, (key) => RcMap.invalidate(state.map, key), { discard: true })
  })

/** The pool of these arguments (built on first use), held for the life of the current scope. */
const get = <Args, E, R, C>(state: State<Args, E, R, C>, args: Args): Effect.Effect<Service<C>, E, Scope.Scope> =>
  Effect.suspend(() => {
    const key = new PoolKey(keyOf(state.options, args), args)
    const open = entries(state)
    const isNew = open !== undefined && !MutableHashMap.has(open, key)
    // Most recently used last.
    state.recent.delete(key.key)
    state.recent.set(key.key, key)
    return Effect.andThen(
      isNew ? trim(state, 1) : Effect.void,
      Effect.flatMap(Effect.scope, (scope) =>
        // Added before the RcMap's release, so it runs after it: the pool is idle by then.
        Effect.andThen(
          Scope.addFinalizer(scope, trim(state, 0)),
          RcMap.get(state.map, key).pipe(
            // A failed build is not cached: the next get tries again.
            Effect.tapError(() => RcMap.invalidate(state.map, key)),
            // Failed or interrupted before the pool's scope saw a finalizer: forget the key here.
            Effect.onExit((exit) => Exit.isFailure(exit) ? Effect.sync(() => forget(state, key)) : Effect.void)
          )
        ))
    )
  })

/** Drop the pool of these arguments (see {@link PoolManager.dispose}). */
const dispose = <Args, E, R, C>(state: State<Args, E, R, C>, args: Args): Effect.Effect<void> =>
  Effect.suspend(() => {
    const key = new PoolKey(keyOf(state.options, args), args)
    state.live.delete(key.key)
    state.recent.delete(key.key)
    return RcMap.invalidate(state.map, key)
  })

/** Run `effect` with the pool of these arguments as its `ConnectionPool`, held while it runs. */
const provide = <Args, E, R, C, A, E2, R2>(
  state: State<Args, E, R, C>,
  args: Args,
  effect: Effect.Effect<A, E2, R2>
): Effect.Effect<A, E | E2, Exclude<R2, ConnectionPool>> =>
  Effect.acquireUseRelease(
    Scope.make(),
    (scope) =>
      Effect.flatMap(
        Scope.provide(get(state, args), scope),
        (pool) => Effect.provideService(effect, ConnectionPool, pool as Service<unknown>)
      ),
    (scope, exit) => Scope.close(scope, exit)
  )

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
 *     idleTimeToLive: "10 minutes",
 *     maxPools: 50
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
    const maxPools = options.maxPools ?? 100
    if (!(maxPools >= 1) || (Number.isFinite(maxPools) && !Number.isInteger(maxPools))) {
      return yield* Effect.die(
        new RangeError(`PoolManager: maxPools must be a positive integer or Infinity, got ${maxPools}`)
      )
    }
    const map = yield* RcMap.make({
      // Called on a key's first use, once `state` below is made.
      lookup: (key: PoolKey<Args>) => lookup(state, key),
      idleTimeToLive: options.idleTimeToLive ?? Duration.minutes(5)
    })
    const state: State<Args, E, R, C> = {
      options,
      maxPools,
      isAuth: options.isAuthenticationError ?? isAuthenticationError,
      recent: new Map(),
      live: new Map(),
      map
    }
    return {
      keyOf: (args) => keyOf(options, args),
      get: (args) => get(state, args),
      checkout: (args) => Effect.flatMap(get(state, args), (pool) => pool.checkout),
      use: (args, f) => Effect.scoped(Effect.flatMap(get(state, args), (pool) => pool.use(f))),
      provide: (args) => (effect) => provide(state, args, effect),
      dispose: (args) => dispose(state, args),
      keys: Effect.map(
        Effect.catchCause(RcMap.keys(map), () => Effect.succeed([] as Iterable<PoolKey<Args>>)),
        (keys) => Array.from(keys, (k) => k.key)
      )
    } satisfies PoolManager<Args, E, C>
  })
