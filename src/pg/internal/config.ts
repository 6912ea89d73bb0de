/**
 * `PgDriver`'s settings: their types, the rules of every field, and their validation, made when
 * the layer builds (every check `@effect/sql-pg` would only make when connecting). `PgDriver`
 * re-exports the types and {@link PgConfigError}.
 *
 * @internal
 */
import type { PgConnection } from "@effect/sql-pg"
import { Data, Duration, Effect, Redacted, Result } from "effect"
import * as V from "../../internal/validate.ts"
import type { SessionReset } from "./connection.ts"
import * as HostList from "./host-list.ts"
import type { LoadBalanceHosts, TargetSessionAttrs } from "./host-list.ts"
import * as PoolerInternal from "./pooler.ts"
import type { Pooler } from "./pooler.ts"

// ---------------------------------------------------------------------------------- settings

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

// -------------------------------------------------------------------------------- validation

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
  /** The setting's name, as given. */
  readonly field: string
  /** The value given (`"<redacted>"` for a secret). */
  readonly value: unknown
  /** What is wrong with it. */
  readonly reason: string
}> {
  constructor(args: { readonly field: string; readonly value: unknown; readonly reason: string }) {
    super({ ...args, value: secretFields.has(args.field) ? "<redacted>" : args.value })
  }
  /** Names the setting, its value (never a secret's) and the reason. */
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
    const parsed = HostList.parseUrl(String(Redacted.value(value)))
    return typeof parsed === "string" ? Result.fail(parsed) : Result.succeed(value as Redacted.Redacted)
  }, undefined),
  host: V.string({ noNul: true }),
  // One port, or a comma-separated list of ports, one per host (libpq's `port=5432,5433`).
  port: V.custom<number | string | undefined>((value) => {
    if (typeof value !== "number" && typeof value !== "string") {
      return Result.fail("must be an integer between 1 and 65535, or a list \"5432,5433\"")
    }
    const ports = HostList.parsePortList(value)
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
    if (name === "" || name.includes("\0") || value.includes("\0")) {
      return "names must be non-empty, names and values without NUL"
    }
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
  cancelTimeout: V.duration(undefined, {
    min: [Duration.millis(20), "must be at least 20 milliseconds (or \"Infinity\")"]
  }),
  sessionReset: V.literal<SessionReset>(["none", "auto", "always"], "auto"),
  targetSessionAttrs: V.literal<TargetSessionAttrs>(HostList.targetSessionAttrsValues, "any"),
  loadBalanceHosts: V.literal<LoadBalanceHosts>(HostList.loadBalanceHostsValues, "disable"),
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
const configAliases = {
  user: "username",
  dbname: "database",
  connectionString: "url",
  hostname: "host",
  pass: "password"
}

/**
 * Validate connection settings (types, ranges, URL scheme, `Redacted` secrets, names): every
 * check `@effect/sql-pg` would only make when connecting is made here, when the layer builds.
 */
export const validate = (config: Config): Effect.Effect<Config, PgConfigError> =>
  Effect.gen(function*() {
    yield* pg.check(V.notAnObject(config, "config"))
    const record = config as unknown as Record<string, unknown>
    if (record.multiplex !== undefined && record.multiplex !== false) {
      return yield* pg.fail(
        "multiplex",
        record.multiplex,
        "is not a PgDriver setting: a pooled connection is lent to one borrower at a time; " +
          "to pipeline statements over a few connections use PgSql.layer({ pipeline: { maxInFlight } }) " +
          "(docs/postgres.md \"Pipelined statements\")"
      )
    }
    const unknown = V.unknownKey(config, configKeys, "PgDriver", configAliases)
    // A name that is no option may be a misspelled secret (`pasword`): its value is never kept.
    yield* pg.check(unknown && { ...unknown, value: "<redacted>" })
    yield* pg.decode(configRules, config)
    // The host list as a whole: as many ports as hosts (or one), no `path` / `stream` with several.
    const hostsProblem = HostList.problem(config)
    if (hostsProblem !== undefined) {
      return yield* pg.fail(
        hostsProblem.field,
        (config as Record<string, unknown>)[hostsProblem.field],
        hostsProblem.reason
      )
    }
    // `pooler: "transaction"`: no DISCARD ALL through it, statements unnamed unless asked for.
    const refused = PoolerInternal.refused(config)
    if (refused !== undefined) return yield* pg.fail(...refused)
    const poolerDefaults = PoolerInternal.defaultsFor(config)
    return poolerDefaults === undefined ? config : { ...config, ...poolerDefaults }
  })

/** The settings each driver of `PgDriver.make` was made with, by driver. */
const driverSettings = new WeakMap<object, Config>()

/** Remember the settings `driver` was made with (`PgDriver.make`). */
export const rememberSettings = <D extends object>(driver: D, config: Config): D => {
  driverSettings.set(driver, config)
  return driver
}

/** The settings a `PgDriver.make` driver was made with; `undefined` for any other driver. */
export const settingsOf = (driver: object | undefined): Config | undefined =>
  driver === undefined ? undefined : driverSettings.get(driver)
