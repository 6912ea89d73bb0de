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
import { Config as EffectConfig, Context, Data, Duration, Effect, Exit, Fiber, Layer, Redacted, Result, Scope } from "effect"
import { Stream } from "effect"
import type { Queue } from "effect"
import { PgConnection } from "@effect/sql-pg"
import { ConnectionError, SqlError } from "effect/sql/SqlError"
import { typed } from "../ConnectionPool.ts"
import type { ConnectionPool, Service as PoolService } from "../ConnectionPool.ts"
import { Driver } from "../Driver.ts"
import type { DriverShape } from "../Driver.ts"
import * as V from "../internal/validate.ts"
import { disconnected, fieldOf, isDisconnect, unknownError } from "./internal/errors.ts"
import * as Hosts from "./internal/hosts.ts"
import * as PoolerInternal from "./internal/pooler.ts"
import {
  autocommitSafe,
  discardsAll,
  dropsStatements,
  endsTransaction,
  mayTouchSession,
  touchesSession
} from "./internal/session.ts"

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

/** Default {@link CancelConfig.cancelTimeout}, in milliseconds. */
const defaultCancelMillis = 30

/** `@effect/sql-pg` sends its cancel request this long after an interrupt (`abortDrainGraceMillis`). */
const driverCancelGraceMillis = 10

/** The session was closed because an interrupted statement (or pre-ping, `graceMs` 0) did not stop in time. */
const unconfirmedCancel = (graceMs: number): SqlError => {
  const what = graceMs <= 0
    ? "an interrupted pre-ping (no answer within the bound)"
    : `an interrupted statement did not stop within ${graceMs} ms (cancelTimeout)`
  return new SqlError({
    reason: new ConnectionError({
      cause: new Error(what),
      message: `PgDriver: the session was closed: ${what}`,
      operation: "query"
    })
  })
}

/** Fields whose value is a secret: an error about one keeps "<redacted>" instead (it may be logged or serialised). */
const secretFields: ReadonlySet<string> = new Set(["url", "password", "listenUrl"])

/**
 * A connection option was invalid. Raised when the layer is built; the value of a secret
 * (`url`, `password`) is never kept, so never shown.
 *
 * @category errors
 * @since 0.1.0
 */
export class PgConfigError extends Data.TaggedError("PgConfigError")<{
  readonly field: string
  readonly value: unknown
  readonly reason: string
}> {
  constructor(args: { readonly field: string; readonly value: unknown; readonly reason: string }) {
    super({ ...args, value: secretFields.has(args.field) ? "<redacted>" : args.value })
  }
  override get message(): string {
    const shown = secretFields.has(this.field) || this.value === "<redacted>" ? "<redacted>" : V.showValue(this.value)
    return `Invalid PostgreSQL option "${this.field}" = ${shown}: ${this.reason}`
  }
}

const pg = V.validator((invalid) => new PgConfigError(invalid))

const reservedStartupParameters = new Set(["user", "database", "replication", "options"])

/** The rules of every {@link Config} field (an option of `PgConnection.Config` without one does not compile). */
const configRules = V.rulesFor<Config>()({
  url: V.custom<Redacted.Redacted | undefined>((value) => {
    if (!Redacted.isRedacted(value)) return Result.fail("must be Redacted (Redacted.make(url))")
    // One host or several (`postgres://u@a:1,b:2/db`); never quoted back (it may hold a password).
    const parsed = Hosts.parseUrl(String(Redacted.value(value)))
    return typeof parsed === "string" ? Result.fail(parsed) : Result.succeed(value as Redacted.Redacted)
  }, undefined),
  host: V.string({ noNul: true }),
  // One port, or a comma-separated list of ports, one per host (libpq's `port=5432,5433`).
  port: V.custom<number | string | undefined>((value) => {
    if (typeof value !== "number" && typeof value !== "string") return Result.fail("must be an integer between 1 and 65535, or a list \"5432,5433\"")
    const ports = Hosts.parsePortList(value)
    return typeof ports === "string" ? Result.fail(ports) : Result.succeed(value)
  }, undefined),
  path: V.string({ noNul: true }),
  ssl: V.custom<PgConnection.Config["ssl"]>(
    (value) =>
      typeof value === "boolean" || (typeof value === "object" && value !== null && !Array.isArray(value))
        ? Result.succeed(value as PgConnection.Config["ssl"])
        : Result.fail("must be true, false or tls.ConnectionOptions"),
    undefined
  ),
  database: V.string({ noNul: true }),
  username: V.string({ noNul: true }),
  password: V.custom<PgConnection.Config["password"]>(
    (value) =>
      Redacted.isRedacted(value) || Effect.isEffect(value)
        ? Result.succeed(value as PgConnection.Config["password"])
        : Result.fail("must be Redacted (Redacted.make(password)) or an Effect of one"),
    undefined
  ),
  connectTimeout: V.duration(undefined, { min: [Duration.nanos(1n), "must be positive (\"Infinity\" waits forever)"] }),
  // @effect/sql-pg truncates it to whole seconds and refuses anything outside [1, 2^31 - 1] s when connecting.
  keepAlive: V.duration(undefined, {
    min: [Duration.seconds(1), "must be between 1 second and 2147483647 seconds"],
    max: [Duration.seconds(2147483647), "must be between 1 second and 2147483647 seconds"]
  }),
  applicationName: V.string({ noNul: true }),
  // @effect/sql-pg refuses these when connecting: refused here, when the layer builds.
  startupParameters: V.record<Readonly<Record<string, string>>>("must be a record of strings", (name, value) => {
    if (typeof value !== "string") return `must be a record of strings ("${name}" is not a string)`
    if (name === "" || name.includes("\0") || value.includes("\0")) return "names must be non-empty, names and values without NUL"
    const key = name.toLowerCase()
    if (reservedStartupParameters.has(key)) return `"${name}" is reserved (use the option of that name)`
    if (key === "client_encoding" && value.toUpperCase() !== "UTF8" && value.toUpperCase() !== "UTF-8") {
      return "client_encoding must be UTF8"
    }
    return undefined
  }),
  startupOptions: V.string({ noNul: true }),
  stream: V.func<NonNullable<PgConnection.Config["stream"]>>("must be a function returning a Duplex"),
  types: V.custom<PgConnection.Config["types"]>(
    (value) =>
      typeof value === "object" && value !== null && typeof (value as { register?: unknown }).register === "function"
        ? Result.succeed(value as PgConnection.Config["types"])
        : Result.fail("must be a PgTypes.Registry"),
    undefined
  ),
  prepare: V.boolean(),
  preparedStatementCacheSize: V.integer({ min: 0 }),
  maxMessageSize: V.integer({ min: 1 }),
  alwaysReset: V.boolean(),
  // The driver sends its cancel request 10 ms after an interrupt: closing the socket before that
  // would leave the statement running on the server (it only notices a gone client when it writes).
  cancelTimeout: V.duration(undefined, { min: [Duration.millis(20), "must be at least 20 milliseconds (or \"Infinity\")"] }),
  sessionReset: V.literal<SessionReset>(["none", "auto", "always"], "auto"),
  targetSessionAttrs: V.literal<TargetSessionAttrs>(Hosts.targetSessionAttrsValues, "any"),
  loadBalanceHosts: V.literal<LoadBalanceHosts>(Hosts.loadBalanceHostsValues, "disable"),
  pooler: V.literal<Pooler>(PoolerInternal.poolers, "none"),
  listenUrl: V.custom<Redacted.Redacted | undefined>((value) => {
    if (!Redacted.isRedacted(value)) return Result.fail("must be Redacted (Redacted.make(url))")
    const text = String(Redacted.value(value))
    return /^postgres(?:ql)?:\/\//i.test(text) && URL.canParse(text)
      ? Result.succeed(value as Redacted.Redacted)
      : Result.fail("must be a postgres:// or postgresql:// URL")
  }, undefined)
})

/** `multiplex: false` is accepted (it is what a pooled connection is anyway); see {@link validate}. */
const configKeys: ReadonlyArray<string> = [...V.keysOfRules(configRules), "multiplex"]

/** Names users reach for that mean one of ours. */
const configAliases = { user: "username", dbname: "database", connectionString: "url", hostname: "host", pass: "password" }

/**
 * Validate connection settings (types, ranges, URL scheme, `Redacted` secrets, names): every
 * check `@effect/sql-pg` would only make when connecting is made here, when the layer builds.
 */
const validate = (config: Config): Effect.Effect<Config, PgConfigError> =>
  Effect.gen(function*() {
    yield* pg.check(V.notAnObject(config, "config"))
    const record = config as unknown as Record<string, unknown>
    if (record.multiplex !== undefined && record.multiplex !== false) {
      return yield* pg.fail("multiplex", record.multiplex, "is not supported: a pooled connection is exclusive to its borrower")
    }
    const unknown = V.unknownKey(config, configKeys, "PgDriver", configAliases)
    // A name that is no option may be a misspelled secret (`pasword`): its value is never kept.
    yield* pg.check(unknown && { ...unknown, value: "<redacted>" })
    yield* pg.decode(configRules, config)
    // The host list as a whole: as many ports as hosts (or one), no `path` / `stream` with several.
    const hostsProblem = Hosts.problem(config)
    if (hostsProblem !== undefined) {
      return yield* pg.fail(hostsProblem.field, (config as Record<string, unknown>)[hostsProblem.field], hostsProblem.reason)
    }
    // `pooler: "transaction"`: no DISCARD ALL through it, statements unnamed unless asked for.
    const refused = PoolerInternal.refused(config)
    if (refused !== undefined) return yield* pg.fail(...refused)
    const poolerDefaults = PoolerInternal.defaultsFor(config)
    return poolerDefaults === undefined ? config : { ...config, ...poolerDefaults }
  })

// -------------------------------------------------------------------------------- connection

/**
 * The statement to clear session state on return. Never through a transaction-mode pooler
 * (PgBouncer): there the server session is not ours between transactions and the pooler runs its
 * own `server_reset_query` (`pooler: "transaction"` forces `sessionReset: "none"`).
 */
const discardStatement = "DISCARD ALL"

const nothingPrepared = { clear: () => {} }

/**
 * `@effect/sql-pg` keeps the statements a session has prepared in `prepared.statements` (a `Map`
 * keyed by SQL text) and has no API to forget them: after a `DISCARD ALL` (or `DEALLOCATE`) the
 * entries name statements the server no longer has, and the first one a transaction reuses fails
 * with 26000 and aborts it. That map (clearing it is all it takes: the next use parses again), or
 * `undefined` when it cannot be found; then the session is closed instead of discarded (a new
 * session is just as clean, ~20x the cost).
 */
const preparedStatements = (native: PgConnection.PgConnection): { readonly clear: () => void } | undefined => {
  const internals = (native as unknown as Record<string, Internals | undefined>)[internalsKey]
  const base = (internals?.base ?? native) as unknown as Record<string, unknown>
  if (!("prepared" in base)) return undefined
  const cache = base.prepared
  if (cache === undefined) return nothingPrepared // `prepare: false` or a cache of size 0
  const statements = fieldOf(cache, "statements")
  return statements instanceof Map ? statements : undefined
}

const internalsKey = "~@effect/sql-pg/PgConnection/internals"

interface Internals {
  /** The unpinned connection (where `prepared`, the statement cache, lives). */
  readonly base?: object
  readonly deadError?: () => SqlError | undefined
  readonly retireHooks?: Set<() => void>
}

/**
 * One pooled PostgreSQL session: the raw connection a `ConnectionPool` over {@link layer}
 * hands out (`pooled.connection`).
 *
 * It tracks whether the session is known to be outside a transaction, so reset on return can
 * skip its `ROLLBACK`. The rule is conservative: the session starts known-idle; a statement run
 * through {@link Connection.query} / `queryValues` / `stream` keeps it known-idle only when its
 * text is a single `SELECT`/`INSERT`/`UPDATE`/`DELETE`/`WITH`/`VALUES`/`TABLE`/`SHOW` (no `;`
 * inside, no leading comment); anything else makes the state unknown until a `COMMIT` /
 * `ROLLBACK` (exactly that, no `AND CHAIN`) succeeds. Reading {@link Connection.pg} (the
 * untracked session) makes the state unknown for good, until the next reset.
 *
 * With `sessionReset: "auto"` it also tracks whether a statement may have changed session state
 * ({@link Connection.sessionDirty}); such a session gets `DISCARD ALL` on return.
 *
 * @category models
 * @since 0.1.0
 */
export class Connection {
  /** Known to be outside a transaction. */
  private idle = true
  private retired = false
  /** A statement may have changed session state since the last reset (`"auto"`). */
  private dirty = false
  /** Why this driver closed the socket itself (a bound expired, an interrupt went unconfirmed). */
  private killedWith: SqlError | undefined = undefined
  private readonly internals: Internals | undefined
  /** @internal {@link CancelConfig.cancelTimeout} in ms (`Infinity`: the driver's own drain). */
  cancelMillis = defaultCancelMillis
  /**
   * The driver's cancel of this session is bounded in place ({@link Connection.boundCancel}):
   * statements run in the caller's fiber. `false` (another `@effect/sql-pg`): each statement runs
   * in a fiber of its own ({@link Connection.interruptibly}).
   */
  private readonly cancelBounded: boolean
  /** Transaction-control bound ({@link Connection.within}): deadline (`Date.now()` ms), its error, one lazy timer. */
  private controlDeadline = Infinity
  private controlExpired: (() => SqlError) | undefined = undefined
  private controlTimer: ReturnType<typeof setTimeout> | undefined = undefined

  /** @internal */
  constructor(
    /** @internal */ readonly native: PgConnection.PgConnection,
    /** @internal */ readonly scope: Scope.Closeable,
    /** @internal */ readonly alwaysReset = false,
    /** @internal */ readonly sessionReset: SessionReset = "auto"
  ) {
    const internals = (native as unknown as Record<string, Internals | undefined>)[internalsKey]
    this.internals = internals
    internals?.retireHooks?.add(() => {
      this.retired = true
    })
    this.cancelBounded = this.boundCancel()
  }

  /**
   * Bound the wait of an interrupted statement without a fiber per statement. `@effect/sql-pg`
   * drains an interrupted statement in the interrupted fiber: it waits 10 ms
   * (`abortDrainGraceMillis`), then runs the session's `cancel` (a CancelRequest on a side
   * connection, up to 5 s) and waits for the statement to end (up to 5 s more). The session's
   * `cancel` is replaced here: it starts the cancel request in the background and arms one timer
   * that closes the socket `cancelTimeout` after the interrupt unless the interrupted statement
   * ended by then (closing the socket ends the drain: the interrupt returns). Statements
   * themselves then cost nothing extra. `false` when the driver's internals are not as expected.
   */
  private boundCancel(): boolean {
    const base = this.internals?.base as { cancel?: unknown; consumer?: unknown } | undefined
    if (base === undefined || !("consumer" in base) || !Effect.isEffect(base.cancel)) return false
    const original = base.cancel as Effect.Effect<void>
    base.cancel = Effect.suspend(() => {
      const graceMs = this.cancelMillis
      if (!Number.isFinite(graceMs)) return original
      // The statement being drained: the socket is closed only if it is still the one on the wire.
      const draining = base.consumer
      if (draining !== undefined) {
        setTimeout(() => {
          if (base.consumer === draining) this.kill(unconfirmedCancel(graceMs))
        }, Math.max(0, graceMs - driverCancelGraceMillis))
      }
      return Effect.asVoid(Effect.forkDetach(original, { startImmediately: true }))
    })
    return true
  }

  /** @internal The connection is closed: stop its timers. */
  disarm(): void {
    this.controlDeadline = Infinity
    if (this.controlTimer !== undefined) clearTimeout(this.controlTimer)
    this.controlTimer = undefined
  }

  /** Backend process id (`pg_backend_pid()`). */
  get processId(): number {
    return this.native.processId
  }

  /**
   * The native session, untracked. Using it is fine; the pool then no longer assumes the
   * session is outside a transaction and resets it on return (with `sessionReset: "auto"`, a
   * `DISCARD ALL` too).
   */
  get pg(): PgConnection.PgConnection {
    this.idle = false
    if (this.sessionReset === "auto") this.dirty = true
    return this.native
  }

  /** Known to be outside a transaction (so the reset on return can be skipped). */
  get knownIdle(): boolean {
    return this.idle
  }

  /**
   * A statement since the last reset may have changed session state (`sessionReset: "auto"`
   * only; `"none"` and `"always"` do not look): see {@link touchesSessionState}. Reading
   * {@link Connection.pg} or calling {@link Connection.listen} makes it `true`.
   */
  get sessionDirty(): boolean {
    return this.dirty
  }

  /** Will the next reset send `DISCARD ALL`? */
  get needsDiscard(): boolean {
    return this.sessionReset === "always" || this.dirty
  }

  /**
   * Why the session is dead, when the driver already knows (socket closed, fatal error, or
   * retired after an unconfirmed cancel); `undefined` otherwise. Best effort: a session can be
   * dead without this knowing.
   */
  get deadError(): SqlError | undefined {
    const internals = (this.native as unknown as Record<string, Internals | undefined>)[internalsKey]
    const dead = internals?.deadError?.()
    if (dead !== undefined) return dead
    if (this.killedWith !== undefined) return this.killedWith
    return this.retired
      ? new SqlError({
        reason: new ConnectionError({
          cause: new Error("session retired by the driver"),
          message: "PgDriver: the session was retired (unconfirmed cancel)",
          operation: "checkout"
        })
      })
      : undefined
  }

  /**
   * The driver already knows the session is dead ({@link Connection.deadError} is set): checked
   * synchronously at checkout (`DriverShape.isDead`), no round trip.
   */
  get isDead(): boolean {
    return this.retired || this.killedWith !== undefined || this.internals?.deadError?.() !== undefined
  }

  /**
   * Close the socket now: the statement on the wire (if any) fails at once with `error`, and the
   * session is dead (`deadError` is `error`). Synchronous; never waits for the server.
   * @internal
   */
  kill(error: SqlError): void {
    if (this.killedWith !== undefined) return
    this.killedWith = error
    const base = this.internals?.base as
      | { readonly fatal?: (error: SqlError) => void; readonly session?: { readonly socket?: { destroy(): void } } }
      | undefined
    // `fatal` destroys the socket and fails the statement in progress with `error`; without it
    // (another @effect/sql-pg), destroying the socket fails it with "Connection closed".
    if (typeof base?.fatal === "function") base.fatal(error)
    else base?.session?.socket?.destroy()
  }

  /**
   * Run `effect` (a statement of this session) bounded by `millis`: past it the socket is closed
   * ({@link Connection.kill}) and the statement fails with `expired()`. Works where interruption
   * cannot (a transaction's COMMIT/ROLLBACK runs uninterruptibly).
   * @internal
   */
  within<A>(effect: Effect.Effect<A, SqlError>, millis: number, expired: () => SqlError): Effect.Effect<A, SqlError> {
    if (!Number.isFinite(millis)) return effect
    return Effect.suspend(() => {
      // One lazy timer per session instead of a timer per statement: a statement sets the
      // deadline and clears it when it ends; the timer, when it fires, re-arms for a later
      // deadline or closes the socket of one that passed (a timer per BEGIN/COMMIT cost ~1 µs).
      this.controlDeadline = Date.now() + millis
      this.controlExpired = expired
      if (this.controlTimer === undefined) this.armControl(millis)
      return Effect.onExitPrimitive(effect, this.endControl)
    })
  }

  private readonly endControl = (): undefined => {
    this.controlDeadline = Infinity
    return undefined
  }

  private armControl(millis: number): void {
    const timer = setTimeout(this.checkControl, millis)
    // Not what keeps a process alive: the socket of the statement in flight does.
    if (typeof timer === "object" && typeof timer.unref === "function") timer.unref()
    this.controlTimer = timer
  }

  private readonly checkControl = (): void => {
    this.controlTimer = undefined
    const deadline = this.controlDeadline
    if (deadline === Infinity) return
    const left = deadline - Date.now()
    if (left > 0) return this.armControl(left)
    this.controlDeadline = Infinity
    this.kill(this.controlExpired!())
  }

  /**
   * Run a native statement so that an interrupt returns within `graceMs`: the statement runs in
   * a fiber of its own; an interrupt interrupts that fiber (the driver's cancel request and
   * drain go on in the background) and waits for it at most `graceMs`, then closes the socket and
   * returns. With `graceMs` 0 the socket is closed at once (a pre-ping: silence means dead).
   */
  private interruptibly<A>(effect: Effect.Effect<A, SqlError>, graceMs: number): Effect.Effect<A, SqlError> {
    if (!Number.isFinite(graceMs)) return effect
    return Effect.uninterruptibleMask((restore) =>
      Effect.flatMap(Effect.forkDetach(effect, { startImmediately: true }), (fiber) => {
        const done = fiber.pollUnsafe()
        if (done !== undefined) return done
        return Effect.onInterrupt(restore(Fiber.join(fiber)), () => this.abandon(fiber, graceMs))
      })
    )
  }

  private abandon(fiber: Fiber.Fiber<unknown, SqlError>, graceMs: number): Effect.Effect<void> {
    const unconfirmed = () => unconfirmedCancel(graceMs)
    return Effect.callback<void>((resume) => {
      if (graceMs <= 0) {
        this.kill(unconfirmed())
        fiber.interruptUnsafe()
        return resume(Effect.void)
      }
      fiber.interruptUnsafe()
      if (fiber.pollUnsafe() !== undefined) return resume(Effect.void)
      let stopObserving: (() => void) | undefined = undefined
      const timer = setTimeout(() => {
        stopObserving?.()
        this.kill(unconfirmed())
        resume(Effect.void)
      }, graceMs)
      stopObserving = fiber.addObserver(() => {
        clearTimeout(timer)
        resume(Effect.void)
      })
    })
  }

  /**
   * Bookkeeping before a statement runs: the transaction state, and the `"auto"` dirty mark. One
   * scan for a few literals rules most statements out. `true` when the statement may deallocate
   * the driver's prepared statements.
   */
  private see(sql: string): boolean {
    if (this.idle && !autocommitSafe.test(sql)) this.idle = false
    if (!mayTouchSession.test(sql)) return false
    if (this.sessionReset === "auto" && !this.dirty && touchesSession.test(sql)) this.dirty = true
    return dropsStatements.test(sql)
  }

  private track<A, E, R>(sql: string, run: () => Effect.Effect<A, E, R>): Effect.Effect<A, E, R> {
    return Effect.suspend(() => {
      // A `DISCARD ALL` / `DEALLOCATE` of the borrower's own (e.g. the PgBouncer-style `onReset`
      // hook): the server no longer has the driver's statements, so neither may the cache.
      if (this.see(sql)) {
        return Effect.tap(run(), () =>
          Effect.sync(() => {
            const statements = preparedStatements(this.native)
            // Not found: the reset will close the session rather than hand out a stale cache.
            if (statements === undefined) return void (this.dirty = true)
            statements.clear()
            // A whole `DISCARD ALL` that succeeded: the session is as clean as a reset leaves it.
            if (discardsAll.test(sql)) this.dirty = false
          }))
      }
      if (!endsTransaction.test(sql)) return run()
      return Effect.tap(run(), () =>
        Effect.sync(() => {
          this.idle = true
        }))
    })
  }

  /**
   * A statement of the user's: bounded on interrupt ({@link CancelConfig.cancelTimeout}); on a
   * session this driver closed, it fails at once (the closed statement's cancel request may still
   * hold the native session for a few seconds: nothing may queue behind it).
   */
  private statement<A>(run: () => Effect.Effect<A, SqlError>): Effect.Effect<A, SqlError> {
    if (this.killedWith !== undefined) return Effect.fail(this.killedWith)
    return this.cancelBounded ? run() : this.interruptibly(run(), this.cancelMillis)
  }

  /** Run a statement (rows keyed by column), tracking the transaction state. */
  query(sql: string, params: ReadonlyArray<unknown> = [], prepare = true): Effect.Effect<PgConnection.Result, SqlError> {
    return this.track(sql, () => this.statement(() => this.native.query(sql, params, prepare)))
  }

  /** Run a statement (positional rows), tracking the transaction state. */
  queryValues(
    sql: string,
    params: ReadonlyArray<unknown> = [],
    prepare = true
  ): Effect.Effect<ReadonlyArray<ReadonlyArray<unknown>>, SqlError> {
    return this.track(sql, () => this.statement(() => this.native.queryValues(sql, params, prepare)))
  }

  /** Stream rows, tracking the transaction state. */
  stream(sql: string, params: ReadonlyArray<unknown> = []): Stream.Stream<PgConnection.Row, SqlError> {
    return Stream.suspend(() => {
      if (this.killedWith !== undefined) return Stream.fail(this.killedWith)
      this.see(sql)
      return this.native.stream(sql, params)
    })
  }

  /** `LISTEN` on a channel until the scope closes (does not touch the transaction state; marks the session dirty). */
  listen(channel: string): Effect.Effect<Queue.Dequeue<PgConnection.Notification, SqlError>, SqlError, Scope.Scope> {
    return Effect.suspend(() => {
      if (this.sessionReset === "auto") this.dirty = true
      return this.native.listen(channel)
    })
  }

  /**
   * Reset on return: the `ROLLBACK`/`COMMIT`, skipped when known idle, then `DISCARD ALL` when
   * {@link Connection.needsDiscard}; fails at once when the session is known dead.
   */
  reset(statement: "ROLLBACK" | "COMMIT"): Effect.Effect<void, SqlError> {
    return Effect.suspend(() => {
      const dead = this.deadError
      if (dead !== undefined) return Effect.fail(dead)
      const discard = this.needsDiscard
      if (this.idle && !this.alwaysReset) return discard ? this.discard : Effect.void
      const end = Effect.flatMap(this.query(statement), (result) => {
        this.idle = true
        return statement === "COMMIT" && result.command === "ROLLBACK"
          ? Effect.logDebug("PgDriver: reset COMMIT rolled back an aborted transaction")
          : Effect.void
      })
      return discard ? Effect.andThen(end, this.discard) : end
    })
  }

  /**
   * `DISCARD ALL` (outside a transaction: after the rollback/commit), then forget the driver's
   * prepared statements, which it deallocated. Fails without a round trip when the statement
   * cache cannot be found: the pool then closes the session (as clean as a discarded one).
   */
  private get discard(): Effect.Effect<void, SqlError> {
    return Effect.suspend(() => {
      const statements = preparedStatements(this.native)
      if (statements === undefined) {
        return Effect.fail(unknownError(
          new Error("@effect/sql-pg's prepared-statement cache was not found"),
          "PgDriver: cannot clear the prepared-statement cache after DISCARD ALL; closing the session instead",
          "reset"
        ))
      }
      // Unnamed (prepare = false): nothing of its own to leave in the cache.
      const discard = this.native.query(discardStatement, [], false)
      return Effect.map(this.cancelBounded ? discard : this.interruptibly(discard, this.cancelMillis), () => {
        statements.clear()
        this.idle = true
        this.dirty = false
      })
    })
  }

  /**
   * The cheapest round trip: an empty query (Parse/Bind/Execute of "" → EmptyQueryResponse). A
   * session known dead fails at once, as a disconnect; an interrupted ping (the pool's
   * `connectTimeout` bound) closes the socket at once.
   */
  get ping(): Effect.Effect<void, SqlError> {
    return Effect.suspend(() => {
      const dead = this.deadError
      return dead !== undefined
        ? Effect.fail(isDisconnect(dead) ? dead : disconnected(dead, "ping"))
        : Effect.asVoid(this.interruptibly(this.native.query("", [], false), 0))
    })
  }
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
