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
import { PgConnection } from "@effect/sql-pg"
import { Config as EffectConfig, Context, Duration, Effect, Exit, Layer, Redacted, Scope } from "effect"
import { typed } from "../ConnectionPool.ts"
import type { ConnectionPool, Service as PoolService } from "../ConnectionPool.ts"
import { Driver } from "../Driver.ts"
import type { DriverShape } from "../Driver.ts"
import { PgConfigError, rememberSettings, validate } from "./internal/config.ts"
import { Connection, defaultCancelMillis } from "./internal/connection.ts"
import { isDisconnect } from "./internal/errors.ts"
import * as Hosts from "./internal/hosts.ts"
import type { LoadBalanceHosts, TargetSessionAttrs } from "./internal/hosts.ts"
import * as PoolerInternal from "./internal/pooler.ts"
import type { Pooler } from "./internal/pooler.ts"
import * as SqlPg from "./internal/sql-pg-internals.ts"

export { PgConfigError } from "./internal/config.ts"
export { Connection } from "./internal/connection.ts"
export { EncodingError } from "./internal/encoding.ts"
export type { Problem as EncodingProblem } from "./internal/encoding.ts"
export { disconnected, isDisconnect } from "./internal/errors.ts"
export { HostsError, TargetSessionAttrsError } from "./internal/hosts.ts"
export type { Host, HostAttempt, LoadBalanceHosts, TargetSessionAttrs } from "./internal/hosts.ts"
export { TransactionPoolerError } from "./internal/pooler.ts"
export type { Pooler } from "./internal/pooler.ts"
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
 * connection is lent to one borrower at a time; to pipeline statements use `PgSql.layer({ pipeline })`).
 * `url` and `password` are `Redacted`.
 *
 * `alwaysReset: true` sends the reset statement on every return even when the connection is
 * known to be outside a transaction (default false: skipped, see {@link Connection}).
 * `sessionReset` (default `"auto"`): see {@link SessionReset}.
 *
 * @category models
 * @since 0.1.0
 */
export type Config =
  & Omit<PgConnection.Config, "multiplex" | "port">
  & {
    /** Send the reset `ROLLBACK` on every return, even when the session is known idle. Default false. */
    readonly alwaysReset?: boolean | undefined
    /** What a return clears of the session's state (`DISCARD ALL`): {@link SessionReset}. Default `"auto"`. */
    readonly sessionReset?: SessionReset | undefined
  }
  & CancelConfig
  & PoolerConfig
  & HostsConfig

/**
 * Several hosts and which server to accept, as libpq (docs/postgres.md: "Several hosts and
 * failover").
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
  /** Which server to accept ({@link TargetSessionAttrs}). Default `"any"`. */
  readonly targetSessionAttrs?: TargetSessionAttrs | undefined
  /** `"disable"` (default): hosts in order; `"random"`: a fresh random order for every connect. */
  readonly loadBalanceHosts?: LoadBalanceHosts | undefined
}

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
    : new PgConfigError({
      field: targets.field,
      value: (config as Record<string, unknown>)[targets.field],
      reason: targets.reason
    })
}

/**
 * Behind a transaction-mode pooler (PgBouncer `pool_mode = transaction`): `pooler:
 * "transaction"` makes every statement unnamed (`prepare` defaults to `false`: a named statement
 * parsed on one server session is missing on the next, SQLSTATE 26000; `prepare: true` is kept,
 * for PgBouncer 1.21+ with `max_prepared_statements`) and sends no `DISCARD ALL` (`sessionReset`
 * defaults to `"none"`; `"auto"` / `"always"` fail the layer with {@link PgConfigError}: the
 * pooler resets sessions itself). `PgClient.listen` then needs `listenUrl`, the server's own
 * address: `LISTEN` through such a pooler never receives a notification.
 *
 * A statement that would leave session state on the server session (which the pooler hands to
 * other clients next) fails before it is sent, with a `SqlError` whose cause is a
 * {@link TransactionPoolerError} naming the feature and the fix: `SET` without `LOCAL`, `RESET`,
 * `set_config(..., false)`, session advisory locks, temp objects (except a `TABLE ... ON COMMIT
 * DROP`), SQL `PREPARE`/`DEALLOCATE`, `LISTEN`, `WITH HOLD` cursors, `DISCARD` — inside a
 * transaction too (a plain `SET` outlives its `COMMIT`). `SET LOCAL`, `set_config(..., true)` and
 * `pg_advisory_xact_lock` inside a transaction are fine; `DO` and `CALL` pass (what their bodies
 * do cannot be seen). The same reading as `sessionReset: "auto"`: see {@link touchesSessionState}.
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
 * const Sql = PgSql.layer().pipe(
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
  /** `"transaction"` behind a transaction-mode pooler (unnamed statements, no `DISCARD ALL`). Default `"none"`. */
  readonly pooler?: Pooler | undefined
  /** Where `PgClient.listen` opens its session (`postgres://` URL). Default: the statements' address. */
  readonly listenUrl?: Redacted.Redacted | undefined
}

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
 * A cancel request cancels whatever the session runs when it reaches the server, so nothing else
 * is sent on the session until the request is confirmed (the server closes its side connection
 * once it has signalled the backend) and the interrupted statement has ended; within the same
 * bound, else the session is closed. A statement of another fiber queued on that session (a
 * StaticPool session) was never sent: it runs on a fresh session instead. A session whose
 * cancel was sent but never met its statement (the statement ended first) is retired by
 * `@effect/sql-pg`: it is never handed to a new checkout.
 *
 * @category models
 * @since 0.1.0
 */
export interface CancelConfig {
  /** Bound on an interrupted statement's cancel, then the socket is closed. Default 30 ms; at least 20 ms; `"Infinity"`: the driver's own wait. */
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
export class PgDriver extends Context.Service<PgDriver, {
  /** The driver's settings after validation. */
  readonly config: Config
}>()("effect-db-pool/pg/PgDriver") {}

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
  const {
    alwaysReset = false,
    sessionReset = "auto",
    cancelTimeout,
    pooler,
    listenUrl: _listenUrl,
    ...connectionConfig
  } = {
    ...config,
    ...PoolerInternal.defaultsFor(config)
  }
  const cancelMillis = cancelTimeout === undefined
    ? defaultCancelMillis
    : Duration.toMillis(Duration.fromInputUnsafe(cancelTimeout))
  // The first acceptable host (several hosts, targetSessionAttrs); one host: PgConnection.make.
  const connectNative = Hosts.connector(connectionConfig, isDisconnect)
  // Layers above the pool (`PgSql`) read these settings from the pool's driver.
  return rememberSettings(
    {
      name: "postgresql",
      target: Hosts.where(connectionConfig),
      connect: Effect.uninterruptibleMask((restore) =>
        Effect.flatMap(Scope.make(), (scope) =>
          restore(Scope.provide(connectNative, scope)).pipe(
            Effect.onExit((exit) => Exit.isFailure(exit) ? Scope.close(scope, exit) : Effect.void),
            Effect.flatMap((native) => {
              const connection = new Connection(native, scope, alwaysReset, sessionReset, pooler === "transaction")
              connection.cancelMillis = cancelMillis
              // Once per process: what this @effect/sql-pg lacks and what the driver does instead.
              return Effect.as(SqlPg.warnMissing(connection.missingInternals), connection)
            })
          ))
      ),
      close: (connection) =>
        Effect.suspend(() => {
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
    } satisfies DriverShape<Connection>,
    config
  )
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
 * const Sql = PgSql.layer().pipe(
 *   Layer.provide(QueuePool.layer({ poolSize: 5, prePing: true })),
 *   Layer.provide(PgDriver.layer({ url: Redacted.make("postgres://postgres@127.0.0.1:5432/test") }))
 * )
 * ```
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (config: Config): Layer.Layer<Driver | PgDriver, PgConfigError> =>
  Layer.effectContext(
    Effect.map(validate(config), (valid) =>
      Context.make(Driver, make(valid) as unknown as DriverShape<unknown>).pipe(
        Context.add(PgDriver, { config: valid })
      ))
  )

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
