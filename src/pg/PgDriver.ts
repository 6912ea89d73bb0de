/**
 * The PostgreSQL `Driver`: raw connections are `@effect/sql-pg`'s native `PgConnection`s, one
 * per child scope (closing the connection = closing that scope).
 *
 * Besides opening and closing, the driver knows what the pool needs: whether an error means the
 * session is dead ({@link isDisconnect}), whether a connection is already known dead (checked
 * at checkout, no round trip: {@link Connection.isDead}), and whether a connection is known to be
 * outside a transaction, so that reset on return can skip its `ROLLBACK` round trip
 * ({@link Connection}). It also bounds what would wait on an unresponsive server: an interrupted
 * statement ({@link CancelConfig.cancelTimeout}) or pre-ping closes the socket and returns.
 *
 * @since 0.1.0
 */
import { Config as EffectConfig, Context, Duration, Effect, Exit, Layer, Redacted, Scope } from "effect"
import { PgConnection } from "@effect/sql-pg"
import { typed } from "../ConnectionPool.ts"
import type { ConnectionPool, Service as PoolService } from "../ConnectionPool.ts"
import { Driver } from "../Driver.ts"
import type { DriverShape } from "../Driver.ts"
import { PgConfigError, validate } from "./internal/config.ts"
import { Connection, defaultCancelMillis } from "./internal/connection.ts"
import { isDisconnect } from "./internal/errors.ts"
import * as Hosts from "./internal/hosts.ts"
import * as PoolerInternal from "./internal/pooler.ts"

export { PgConfigError } from "./internal/config.ts"
export { Connection } from "./internal/connection.ts"
export { disconnected, isDisconnect } from "./internal/errors.ts"
export { touchesSessionState } from "./internal/session.ts"

// ------------------------------------------------------------------------------------ config

/**
 * What a return does about session state (`SET`, `set_config(..., false)`, `SET ROLE`, temp
 * tables, `PREPARE`, `LISTEN`, session advisory locks, `WITH HOLD` cursors...), on top of the
 * `ROLLBACK`/`COMMIT` of the pool's `resetOnReturn`:
 *
 * - `"auto"` (default): `DISCARD ALL` on the sessions whose statements may have changed session
 *   state (see {@link Connection.sessionDirty}); the others pay nothing.
 * - `"always"`: `DISCARD ALL` on every return (one more round trip per checkout, and every
 *   statement is parsed again by the next borrower). For state `"auto"` cannot see: a function
 *   that calls `set_config` inside, `nextval`'s `currval`/`lastval`...
 * - `"none"`: nothing; session state survives a return and the next borrower sees it.
 *
 * After a `DISCARD ALL` the driver's prepared-statement cache is cleared too (the server has
 * deallocated every statement). With `resetOnReturn: "none"` the pool sends nothing at all.
 * Not for a transaction-mode pooler (PgBouncer): `pooler: "transaction"` makes it `"none"` and
 * refuses the others (see {@link PoolerConfig}).
 *
 * @category models
 * @since 0.1.0
 */
export type SessionReset = "none" | "auto" | "always"

/**
 * Connection settings: `@effect/sql-pg`'s `PgConnection.Config` without `multiplex` (a pooled
 * connection is exclusive to its borrower). `url` and `password` are `Redacted`.
 *
 * `alwaysReset: true` sends the reset statement on every return even when the connection is
 * known to be outside a transaction (default false: skipped, see {@link Connection}).
 * `sessionReset` (default `"auto"`): see {@link SessionReset}.
 *
 * @category models
 * @since 0.1.0
 */
export type Config = Omit<PgConnection.Config, "multiplex" | "port"> & {
  readonly alwaysReset?: boolean | undefined
  readonly sessionReset?: SessionReset | undefined
} & CancelConfig & PoolerConfig & HostsConfig

/**
 * Several hosts and which server to accept, as libpq (README: "Multi-host, failover and read
 * replicas").
 *
 * - Several hosts: `host: "a,b"` with `port: 5432` (one for all) or `port: "5432,5433"` (one per
 *   host), or a URL with several hosts, `postgres://u@a:5432,b:5433/db` (or `?host=a,b&port=1,2`).
 *   An explicit `host` / `port` wins over the URL's query parameter, which wins over its authority.
 * - `targetSessionAttrs` (or the URL's `target_session_attrs`), default `"any"`: see
 *   {@link TargetSessionAttrs}.
 * - `loadBalanceHosts` (or the URL's `load_balance_hosts`), default `"disable"` (hosts in
 *   order); `"random"`: a fresh random order for every connect.
 *
 * A connect tries each host in turn: a host that fails to connect, or whose session does not
 * match `targetSessionAttrs` (the session is closed), sends it to the next. The check reads what
 * the server reports at startup (`in_hot_standby`, `default_transaction_read_only`, PostgreSQL
 * 14+, no round trip) and otherwise asks, as libpq does (`SHOW transaction_read_only`,
 * `pg_is_in_recovery()`). When no host gives an acceptable session the connect fails with a
 * `SqlError` whose cause is a {@link HostsError} listing every host's failure.
 *
 * A session accepted as a standby (`"standby"`, `"read-only"` on a hot standby,
 * `"prefer-standby"`'s first choice) is watched while pooled: when its server is promoted,
 * PostgreSQL 14+ reports `in_hot_standby = off` in the reply to the session's next statement.
 * From then on that session and every other session of its host are dead to the pool (replaced
 * at their next checkout, whose connect checks the hosts again), a pre-ping fails, and with
 * `"standby"` / `"read-only"` the statement whose reply carried the report fails with a
 * retryable `ConnectionError` ("PgDriver: the session is retired: ... is primary, not standby
 * (its server left recovery)", cause a {@link TargetSessionAttrsError}): no statement returns
 * rows read on the promoted server. A stream's rows are not held back (its session is retired
 * after it). PostgreSQL 13 and older send no such report: nothing is noticed there.
 *
 * @category models
 * @since 0.1.0
 */
export interface HostsConfig {
  /** The port, or one port per host: `"5432,5433"` (an empty entry means 5432). */
  readonly port?: number | string | undefined
  readonly targetSessionAttrs?: TargetSessionAttrs | undefined
  readonly loadBalanceHosts?: LoadBalanceHosts | undefined
}

/**
 * Which server a connection accepts (libpq's `target_session_attrs`): `"any"` (default),
 * `"read-write"` (accepts writes: not a hot standby, `default_transaction_read_only` off),
 * `"read-only"`, `"primary"` (not in recovery), `"standby"` (in recovery), `"prefer-standby"`
 * (a standby when a host has one, else any server).
 *
 * @category models
 * @since 0.1.0
 */
export type TargetSessionAttrs = Hosts.TargetSessionAttrs

/**
 * The order hosts are tried in (libpq's `load_balance_hosts`): `"disable"` (default) in order,
 * `"random"` shuffled for every connect.
 *
 * @category models
 * @since 0.1.0
 */
export type LoadBalanceHosts = Hosts.LoadBalanceHosts

/**
 * No host gave an acceptable session: `attempts` holds every host's failure, in the order
 * tried (a `SqlError`, or a {@link TargetSessionAttrsError}). The cause of the connect's
 * `SqlError`, whose reason is a retryable `ConnectionError` when some host was unreachable,
 * dropped the connection, did not match (a failover may be under way) or had too many
 * connections, and otherwise the kind every host refused with (authentication, ...; mixed kinds:
 * `UnknownError`), not retryable. A single host's own connect error is kept as is.
 *
 * @category errors
 * @since 0.1.0
 */
export const HostsError = Hosts.HostsError

/**
 * @category errors
 * @since 0.1.0
 */
export type HostsError = Hosts.HostsError

/**
 * A host accepted the connection but is not what `targetSessionAttrs` asks for (`session` says
 * what it is): one of a {@link HostsError}'s attempts.
 *
 * @category errors
 * @since 0.1.0
 */
export const TargetSessionAttrsError = Hosts.TargetSessionAttrsError

/**
 * @category errors
 * @since 0.1.0
 */
export type TargetSessionAttrsError = Hosts.TargetSessionAttrsError

/**
 * The hosts a config names, in order, each with its port (`host: "a,b"`, `port: "1,2"`, a URL
 * with several hosts...), or why they cannot be read.
 *
 * @example
 * ```ts
 * import { Redacted } from "effect"
 * import { PgDriver } from "effect-db-pool/pg"
 *
 * PgDriver.hostsOf({ url: Redacted.make("postgres://u@a:5432,b:5433/db") })
 * // [{ host: "a", port: 5432 }, { host: "b", port: 5433 }]
 * PgDriver.hostsOf({ host: "a,b", port: "5432,5433" }) // the same
 * ```
 *
 * @category utils
 * @since 0.1.0
 */
export const hostsOf = (config: Config): ReadonlyArray<Hosts.Host> | PgConfigError => {
  const targets = Hosts.resolve(config)
  return "hosts" in targets
    ? targets.hosts
    : new PgConfigError({ field: targets.field, value: (config as Record<string, unknown>)[targets.field], reason: targets.reason })
}

/**
 * What sits between the driver and PostgreSQL: `"none"` (default; a session-mode pooler counts
 * as none) or `"transaction"`, a transaction-mode pooler (PgBouncer `pool_mode = transaction`),
 * which runs each transaction and each autocommit statement on whichever server session is free.
 *
 * @category models
 * @since 0.1.0
 */
export type Pooler = PoolerInternal.Pooler

/**
 * Behind a transaction-mode pooler (PgBouncer `pool_mode = transaction`): `pooler:
 * "transaction"` makes every statement unnamed (`prepare` defaults to `false`: a named statement
 * parsed on one server session is missing on the next, SQLSTATE 26000; `prepare: true` is kept,
 * for PgBouncer 1.21+ with `max_prepared_statements`) and sends no `DISCARD ALL` (`sessionReset`
 * defaults to `"none"`; `"auto"` / `"always"` fail the layer with {@link PgConfigError}: the
 * pooler resets sessions itself). `PgClient.listen` then needs `listenUrl`, the server's own
 * address: `LISTEN` through such a pooler never receives a notification.
 *
 * `listenUrl` (`Redacted`, `postgres://`): where `PgClient.listen` opens its session (default:
 * the statements' address). It replaces `url`, `host`, `port`, `path` and `stream` for the
 * listener; the other settings apply as they are.
 *
 * Without `pooler: "transaction"`, the failure is recognised: a transaction that reuses a
 * statement the driver prepared on another server session fails with a `SqlError` whose cause is
 * a {@link TransactionPoolerError} naming the setting ({@link isTransactionPoolerError}).
 *
 * @example
 * ```ts
 * import { Layer, Redacted } from "effect"
 * import { QueuePool } from "effect-db-pool"
 * import { PgDriver, PgSql } from "effect-db-pool/pg"
 *
 * // PgBouncer (pool_mode = transaction) on 6432; LISTEN straight to the server on 5432.
 * const Sql = PgSql.layer.pipe(
 *   Layer.provideMerge(QueuePool.layer({ poolSize: 10 })),
 *   Layer.provideMerge(PgDriver.layer({
 *     url: Redacted.make("postgres://app@pgbouncer:6432/app"),
 *     pooler: "transaction",
 *     listenUrl: Redacted.make("postgres://app@db:5432/app")
 *   }))
 * )
 * ```
 *
 * @category models
 * @since 0.1.0
 */
export interface PoolerConfig {
  readonly pooler?: Pooler | undefined
  readonly listenUrl?: Redacted.Redacted | undefined
}

/**
 * A session-level feature met a transaction-mode pooler (see {@link PoolerConfig}): the cause
 * of a `SqlError` (reason `UnknownError`, not retryable) whose message names the setting.
 * `feature: "prepared-statements"`: a statement the driver prepared is gone from the server
 * session (SQLSTATE 26000 on one of the driver's own names), most likely a transaction-mode
 * pooler the driver was not told about; `"listen"`: `PgClient.listen` with `pooler:
 * "transaction"` and no `listenUrl`.
 *
 * @category errors
 * @since 0.1.0
 */
export const TransactionPoolerError = PoolerInternal.TransactionPoolerError

/**
 * @category errors
 * @since 0.1.0
 */
export type TransactionPoolerError = PoolerInternal.TransactionPoolerError

/**
 * Did this fail because a session-level feature met a transaction-mode pooler
 * ({@link TransactionPoolerError})? Its message names the setting to change.
 *
 * @category predicates
 * @since 0.1.0
 */
export const isTransactionPoolerError: (error: unknown) => boolean = PoolerInternal.isTransactionPoolerError

/**
 * How long an interrupted statement may take to stop (`@effect/sql-pg` sends the server a cancel
 * request and waits for the session to drain) before the driver closes the socket instead and the
 * interrupt returns: the session is then dead and the pool replaces it. Default 30 ms (a healthy
 * local server confirms a cancel in ~2-20 ms); `"Infinity"` waits for the driver's own drain (up
 * to ~5 s on an unresponsive server). The bound costs a statement nothing: one timer is armed
 * when the driver starts cancelling an interrupted statement (or an abandoned stream), none
 * otherwise. At least 20 ms: the driver sends its cancel request 10 ms after the interrupt, and a
 * socket closed before that would leave the statement running on the server. An interrupted
 * pre-ping closes the socket at once.
 *
 * @category models
 * @since 0.1.0
 */
export interface CancelConfig {
  readonly cancelTimeout?: Duration.Input | undefined
}

// ----------------------------------------------------------------------------- driver/layer

/**
 * The `PgDriver` service: the validated settings, for layers above the pool (`PgSql` reads it
 * for `PgClient.config` and span attributes).
 *
 * @category services
 * @since 0.1.0
 */
export class PgDriver extends Context.Service<PgDriver, { readonly config: Config }>()("effect-db-pool/pg/PgDriver") {}

/**
 * The `ConnectionPool` service of a pool built over this driver, with its raw connection typed
 * as a {@link Connection}: `yield* PgDriver.Pool` where `yield* ConnectionPool.ConnectionPool`
 * would give an `unknown` connection. Same service, same requirement.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { PgDriver } from "effect-db-pool/pg"
 *
 * const knownIdle = Effect.gen(function*() {
 *   const pool = yield* PgDriver.Pool
 *   return yield* pool.use((conn) => Effect.succeed(conn.connection.knownIdle))
 * })
 * ```
 *
 * @category services
 * @since 0.1.0
 */
export const Pool: Context.Service<ConnectionPool, PoolService<Connection>> = typed<Connection>()

/**
 * The driver for already validated settings.
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = (config: Config): DriverShape<Connection> => {
  // `pooler: "transaction"` implies `prepare: false` and `sessionReset: "none"` (see PoolerConfig).
  const { alwaysReset = false, sessionReset = "auto", cancelTimeout, pooler: _pooler, listenUrl: _listenUrl, ...connectionConfig } = {
    ...config,
    ...PoolerInternal.defaultsFor(config)
  }
  const cancelMillis = cancelTimeout === undefined
    ? defaultCancelMillis
    : Duration.toMillis(Duration.fromInputUnsafe(cancelTimeout))
  // The first acceptable host (several hosts, targetSessionAttrs); one host: PgConnection.make.
  const connectNative = Hosts.connector(connectionConfig, isDisconnect)
  return {
    name: "postgresql",
    connect: Effect.uninterruptibleMask((restore) =>
      Effect.flatMap(Scope.make(), (scope) =>
        restore(Scope.provide(connectNative, scope)).pipe(
          Effect.onExit((exit) => Exit.isFailure(exit) ? Scope.close(scope, exit) : Effect.void),
          Effect.map((native) => {
            const connection = new Connection(native, scope, alwaysReset, sessionReset)
            connection.cancelMillis = cancelMillis
            return connection
          })
        ))
    ),
    close: (connection) => Effect.suspend(() => {
      connection.disarm()
      return Scope.close(connection.scope, Exit.void)
    }),
    rollback: (connection) => connection.reset("ROLLBACK"),
    commit: (connection) => connection.reset("COMMIT"),
    ping: (connection) => connection.ping,
    isDisconnect,
    // The session died while idle (idle_session_timeout, a terminated backend, a socket error,
    // a bound this driver enforced): the checkout replaces it without handing it out.
    isDead: (connection) => connection.isDead,
    // Known outside a transaction, no session state to discard and not known dead: the pool
    // skips the reset round trip.
    needsReset: (connection) =>
      connection.alwaysReset || !connection.knownIdle || connection.needsDiscard || connection.isDead
  }
}

/**
 * Provide the pool's `Driver` (raw connections are {@link Connection}s) and the {@link PgDriver}
 * settings. Settings are validated when the layer builds.
 *
 * @example
 * ```ts
 * import { Layer, Redacted } from "effect"
 * import { QueuePool } from "effect-db-pool"
 * import { PgDriver, PgSql } from "effect-db-pool/pg"
 *
 * const Sql = PgSql.layer.pipe(
 *   Layer.provide(QueuePool.layer({ poolSize: 5, prePing: true })),
 *   Layer.provide(PgDriver.layer({ url: Redacted.make("postgres://postgres@127.0.0.1:5432/test") }))
 * )
 * ```
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (config: Config): Layer.Layer<Driver | PgDriver, PgConfigError> =>
  Layer.effectContext(Effect.map(validate(config), (valid) =>
    Context.make(Driver, make(valid) as unknown as DriverShape<unknown>).pipe(Context.add(PgDriver, { config: valid }))))

/**
 * As {@link layer}, with settings read from `Config`.
 *
 * @example
 * ```ts
 * import { Config } from "effect"
 * import { PgDriver } from "effect-db-pool/pg"
 *
 * const Driver = PgDriver.layerConfig({
 *   url: Config.Redacted("DATABASE_URL"),
 *   applicationName: Config.succeed("my-app")
 * })
 * ```
 *
 * @category layers
 * @since 0.1.0
 */
export const layerConfig = (
  config: EffectConfig.Wrap<Config>
): Layer.Layer<Driver | PgDriver, PgConfigError | EffectConfig.ConfigError> =>
  Layer.unwrap(Effect.map(EffectConfig.unwrap(config), layer))
