/**
 * `PgDriver`'s settings: {@link Config} and, under its name, the types of its fields, and the
 * {@link PgDriver} service that provides them to the layers above the pool. Their rules and
 * validation are `config.ts`. `PgDriver` re-exports both.
 *
 * @internal
 */
import type { PgConnection } from "@effect/sql-pg"
import { Context } from "effect"
import type { Duration, Redacted } from "effect"

/**
 * Connection settings: `@effect/sql-pg`'s `PgConnection.Config` without `multiplex` (a pooled
 * connection is lent to one borrower at a time; to pipeline statements use `PgSql.layer({ pipeline })`),
 * plus what the pool needs of a session: how a return resets it (`alwaysReset`, `sessionReset`),
 * how long an interrupted statement may take to stop (`cancelTimeout`), a transaction-mode pooler
 * in between (`pooler`, `listenUrl`), and several hosts (`host: "a,b"`, `port: "5432,5433"`,
 * `targetSessionAttrs`, `loadBalanceHosts`). `url`, `password` and `listenUrl` are `Redacted`.
 * Every setting is validated when {@link layer} builds ({@link PgConfigError}).
 *
 * The types of its fields are under this name: {@link Config.SessionReset},
 * {@link Config.Pooler}, {@link Config.TargetSessionAttrs}, {@link Config.LoadBalanceHosts},
 * and {@link Config.Host} (one host of the list, see {@link hostsOf}).
 *
 * @category models
 * @since 0.1.0
 */
export interface Config extends Omit<PgConnection.Config, "multiplex" | "port"> {
  /**
   * Send the reset `ROLLBACK` on every return, even when the session is known to be outside a
   * transaction. Default false: skipped (see {@link Connection}).
   */
  readonly alwaysReset?: boolean | undefined
  /** What a return clears of the session's state (`DISCARD ALL`): {@link Config.SessionReset}. Default `"auto"`. */
  readonly sessionReset?: Config.SessionReset | undefined
  /**
   * How long an interrupted statement may take to stop (`@effect/sql-pg` sends the server a
   * cancel request and waits for the session to drain) before the driver closes the socket
   * instead and the interrupt returns: the session is then dead and the pool replaces it.
   * Default 30 ms (a healthy local server confirms a cancel in ~2-20 ms); `"Infinity"` waits for
   * the driver's own drain (up to ~5 s on an unresponsive server). The bound costs a statement
   * nothing: one timer is armed when the driver starts cancelling an interrupted statement (or an
   * abandoned stream), none otherwise. At least 20 ms: the driver sends its cancel request 10 ms
   * after the interrupt, and a socket closed before that would leave the statement running on the
   * server. An interrupted pre-ping closes the socket at once.
   *
   * A cancel request cancels whatever the session runs when it reaches the server, so nothing
   * else is sent on the session until the request is confirmed (the server closes its side
   * connection once it has signalled the backend) and the interrupted statement has ended; within
   * the same bound, else the session is closed. A statement of another fiber queued on that
   * session (a StaticPool session) was never sent: it runs on a fresh session instead. A session
   * whose cancel was sent but never met its statement (the statement ended first) is retired by
   * `@effect/sql-pg`: it is never handed to a new checkout.
   */
  readonly cancelTimeout?: Duration.Input | undefined
  /**
   * `"transaction"` behind a transaction-mode pooler (PgBouncer `pool_mode = transaction`).
   * Default `"none"`.
   *
   * It makes every statement unnamed (`prepare` defaults to `false`: a named statement parsed on
   * one server session is missing on the next, SQLSTATE 26000; `prepare: true` is kept, for
   * PgBouncer 1.21+ with `max_prepared_statements`) and sends no `DISCARD ALL` (`sessionReset`
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
   */
  readonly pooler?: Config.Pooler | undefined
  /**
   * Where `PgClient.listen` opens its session (`Redacted`, `postgres://`). Default: the
   * statements' address. It replaces `url`, `host`, `port`, `path` and `stream` for the listener;
   * the other settings apply as they are. For a transaction-mode pooler (see `pooler`).
   */
  readonly listenUrl?: Redacted.Redacted | undefined
  /**
   * The port, or one port per host: `"5432,5433"` (an empty entry means 5432). With several
   * hosts (`host: "a,b"`, or a URL `postgres://u@a:5432,b:5433/db`, or `?host=a,b&port=1,2`), one
   * port for all or one per host. An explicit `host` / `port` wins over the URL's query
   * parameter, which wins over its authority.
   */
  readonly port?: number | string | undefined
  /**
   * Which server to accept ({@link Config.TargetSessionAttrs}; or the URL's
   * `target_session_attrs`). Default `"any"`. As libpq (docs/postgres.md: "Several hosts and
   * failover").
   *
   * A connect tries each host in turn: a host that fails to connect, or whose session does not
   * match (the session is closed), sends it to the next. The check reads what the server reports
   * at startup (`in_hot_standby`, `default_transaction_read_only`, PostgreSQL 14+, no round trip)
   * and otherwise asks, as libpq does (`SHOW transaction_read_only`, `pg_is_in_recovery()`). When
   * no host gives an acceptable session the connect fails with a `SqlError` whose cause is a
   * {@link HostsError} listing every host's failure.
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
   */
  readonly targetSessionAttrs?: Config.TargetSessionAttrs | undefined
  /**
   * The order hosts are tried in ({@link Config.LoadBalanceHosts}; or the URL's
   * `load_balance_hosts`): `"disable"` (default) in order; `"random"`: a fresh random order for
   * every connect.
   */
  readonly loadBalanceHosts?: Config.LoadBalanceHosts | undefined
}

/**
 * The types of {@link Config}'s fields.
 *
 * @since 0.2.0
 */
export declare namespace Config {
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
   * refuses the others.
   *
   * @category models
   * @since 0.2.0
   */
  export type SessionReset = "none" | "auto" | "always"

  /**
   * What sits between the driver and PostgreSQL: `"none"` (default; a session pooler, e.g.
   * PgBouncer `pool_mode = session`, counts as none) or `"transaction"`, a transaction-mode pooler
   * (PgBouncer `pool_mode = transaction`), which runs each transaction and each autocommit
   * statement on whichever server session is free.
   *
   * @category models
   * @since 0.2.0
   */
  export type Pooler = "none" | "transaction"

  /**
   * Which server a connection accepts (libpq's `target_session_attrs`):
   *
   * - `"any"` (default): the first host that accepts the connection;
   * - `"read-write"`: a session that accepts writes (not a hot standby, and
   *   `default_transaction_read_only` off);
   * - `"read-only"`: the opposite (a standby, or a server whose sessions default to read-only);
   * - `"primary"`: a server not in recovery; `"standby"`: a server in recovery;
   * - `"prefer-standby"`: a standby if any host has one, else any server.
   *
   * @category models
   * @since 0.2.0
   */
  export type TargetSessionAttrs = "any" | "read-write" | "read-only" | "primary" | "standby" | "prefer-standby"

  /**
   * The order hosts are tried in (libpq's `load_balance_hosts`): `"disable"` (default) in the
   * order given; `"random"`: a fresh random order for every connect, spreading connections over
   * the hosts.
   *
   * @category models
   * @since 0.2.0
   */
  export type LoadBalanceHosts = "disable" | "random"

  /**
   * One host of the list: a name or address, or a unix-socket directory (a `host` starting with
   * `/`), and its port.
   *
   * @category models
   * @since 0.2.0
   */
  export interface Host {
    /** Name, address, or unix-socket directory (starts with `/`). */
    readonly host: string
    /** TCP port (5432 when not given). */
    readonly port: number
  }
}

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
