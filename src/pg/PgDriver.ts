/**
 * The PostgreSQL `Driver`: raw connections are `@effect/sql-pg`'s native `PgConnection`s, one
 * per child scope (closing the connection = closing that scope).
 *
 * Besides opening and closing, the driver knows two things the pool needs: whether an error
 * means the session is dead ({@link isDisconnect}), and whether a connection is known to be
 * outside a transaction, so that reset on return can skip its `ROLLBACK` round trip
 * ({@link Connection}).
 *
 * @since 0.1.0
 */
import { Config as EffectConfig, Context, Data, Duration, Effect, Exit, Layer, Redacted, Result, Scope } from "effect"
import { Stream } from "effect"
import type { Queue } from "effect"
import { PgConnection } from "@effect/sql-pg"
import { ConnectionError, isSqlError, SqlError, UnknownError } from "effect/sql/SqlError"
import { typed } from "../ConnectionPool.ts"
import type { ConnectionPool, Service as PoolService } from "../ConnectionPool.ts"
import { Driver } from "../Driver.ts"
import type { DriverShape } from "../Driver.ts"
import { DisconnectionError, PoolClosedError, PoolTimeoutError } from "../PoolError.ts"
import * as V from "../internal/validate.ts"

// ------------------------------------------------------------------------------------ config

/**
 * Connection settings: `@effect/sql-pg`'s `PgConnection.Config` without `multiplex` (a pooled
 * connection is exclusive to its borrower). `url` and `password` are `Redacted`.
 *
 * `alwaysReset: true` sends the reset statement on every return even when the connection is
 * known to be outside a transaction (default false: skipped, see {@link Connection}).
 *
 * @category models
 * @since 0.1.0
 */
export type Config = Omit<PgConnection.Config, "multiplex"> & { readonly alwaysReset?: boolean | undefined }

/** Fields whose value is a secret: an error about one keeps "<redacted>" instead (it may be logged or serialised). */
const secretFields: ReadonlySet<string> = new Set(["url", "password"])

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
    let parsed: URL | undefined
    try {
      parsed = new URL(String(Redacted.value(value)))
    } catch {
      parsed = undefined
    }
    return parsed === undefined || (parsed.protocol !== "postgres:" && parsed.protocol !== "postgresql:")
      ? Result.fail("must be a postgres:// or postgresql:// URL")
      : Result.succeed(value as Redacted.Redacted)
  }, undefined),
  host: V.string({ noNul: true }),
  port: V.integer({ min: 1, max: 65535 }),
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
  alwaysReset: V.boolean()
})

/** `multiplex: false` is accepted (it is what a pooled connection is anyway); see {@link validate}. */
const configKeys: ReadonlyArray<string> = [...V.keysOfRules(configRules), "multiplex"]

/** Names users reach for that mean one of ours. */
const configAliases = { user: "username", dbname: "database", connectionString: "url", hostname: "host", pass: "password" }

/**
 * Validate connection settings (types, ranges, URL scheme, `Redacted` secrets, names): every
 * check `@effect/sql-pg` would only make when connecting is made here, when the layer builds.
 *
 * @category validation
 * @since 0.1.0
 */
export const validate = (config: Config): Effect.Effect<Config, PgConfigError> =>
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
    return config
  })

// -------------------------------------------------------------------------------- connection

/** Single statements that, run outside a transaction, cannot leave one open. */
const autocommitSafe = /^\s*(?:select|insert|update|delete|with|values|table|show)\b[^;]*;?\s*$/i
/** Statements that, once they succeed, leave the session outside any transaction. */
const endsTransaction = /^\s*(?:commit|rollback|end|abort)(?:\s+(?:work|transaction))?\s*;?\s*$/i

const internalsKey = "~@effect/sql-pg/PgConnection/internals"

interface Internals {
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
 * @category models
 * @since 0.1.0
 */
export class Connection {
  /** Known to be outside a transaction. */
  private idle = true
  private retired = false

  /** @internal */
  constructor(
    /** @internal */ readonly native: PgConnection.PgConnection,
    /** @internal */ readonly scope: Scope.Closeable,
    /** @internal */ readonly alwaysReset = false
  ) {
    const internals = (native as unknown as Record<string, Internals | undefined>)[internalsKey]
    internals?.retireHooks?.add(() => {
      this.retired = true
    })
  }

  /** Backend process id (`pg_backend_pid()`). */
  get processId(): number {
    return this.native.processId
  }

  /**
   * The native session, untracked. Using it is fine; the pool then no longer assumes the
   * session is outside a transaction and resets it on return.
   */
  get pg(): PgConnection.PgConnection {
    this.idle = false
    return this.native
  }

  /** Known to be outside a transaction (so the reset on return can be skipped). */
  get knownIdle(): boolean {
    return this.idle
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

  private track<A, E, R>(sql: string, run: () => Effect.Effect<A, E, R>): Effect.Effect<A, E, R> {
    return Effect.suspend(() => {
      if (this.idle && !autocommitSafe.test(sql)) this.idle = false
      if (!endsTransaction.test(sql)) return run()
      return Effect.tap(run(), () =>
        Effect.sync(() => {
          this.idle = true
        }))
    })
  }

  /** Run a statement (rows keyed by column), tracking the transaction state. */
  query(sql: string, params: ReadonlyArray<unknown> = [], prepare = true): Effect.Effect<PgConnection.Result, SqlError> {
    return this.track(sql, () => this.native.query(sql, params, prepare))
  }

  /** Run a statement (positional rows), tracking the transaction state. */
  queryValues(
    sql: string,
    params: ReadonlyArray<unknown> = [],
    prepare = true
  ): Effect.Effect<ReadonlyArray<ReadonlyArray<unknown>>, SqlError> {
    return this.track(sql, () => this.native.queryValues(sql, params, prepare))
  }

  /** Stream rows, tracking the transaction state. */
  stream(sql: string, params: ReadonlyArray<unknown> = []): Stream.Stream<PgConnection.Row, SqlError> {
    return Stream.suspend(() => {
      if (this.idle && !autocommitSafe.test(sql)) this.idle = false
      return this.native.stream(sql, params)
    })
  }

  /** `LISTEN` on a channel until the scope closes (does not touch the transaction state). */
  listen(channel: string): Effect.Effect<Queue.Dequeue<PgConnection.Notification, SqlError>, SqlError, Scope.Scope> {
    return this.native.listen(channel)
  }

  /** Reset on return: skipped when known idle; fails at once when the session is known dead. */
  reset(statement: "ROLLBACK" | "COMMIT"): Effect.Effect<void, SqlError> {
    return Effect.suspend(() => {
      const dead = this.deadError
      if (dead !== undefined) return Effect.fail(dead)
      if (this.idle && !this.alwaysReset) return Effect.void
      return Effect.flatMap(this.query(statement), (result) => {
        this.idle = true
        return statement === "COMMIT" && result.command === "ROLLBACK"
          ? Effect.logDebug("PgDriver: reset COMMIT rolled back an aborted transaction")
          : Effect.void
      })
    })
  }

  /** The cheapest round trip: an empty query (Parse/Bind/Execute of "" → EmptyQueryResponse). */
  get ping(): Effect.Effect<void, SqlError> {
    return Effect.suspend(() => {
      const dead = this.deadError
      return dead !== undefined ? Effect.fail(dead) : Effect.asVoid(this.native.query("", [], false))
    })
  }
}

// ------------------------------------------------------------------------------ disconnects

const disconnectCodes = /^(?:08|57P0[1-5])/
const socketCodes = new Set(["ECONNRESET", "ECONNREFUSED", "EPIPE", "ETIMEDOUT", "ENOTCONN", "EHOSTUNREACH", "ENETUNREACH"])

const fieldOf = (u: unknown, key: string): unknown =>
  typeof u === "object" && u !== null && key in u ? (u as Record<string, unknown>)[key] : undefined

const looksDead = (cause: unknown, depth: number): boolean => {
  if (cause === undefined || cause === null || depth > 4) return false
  if (cause instanceof DisconnectionError) return true
  const code = fieldOf(cause, "code")
  if (typeof code === "string" && (disconnectCodes.test(code) || socketCodes.has(code))) return true
  const severity = fieldOf(cause, "severity")
  if (severity === "FATAL" || severity === "PANIC") return true
  return looksDead(fieldOf(cause, "cause"), depth + 1)
}

/**
 * Does this error mean the session is gone (SQLAlchemy's `is_disconnect`)?
 *
 * True for: a `DisconnectionError`; a `SqlError` whose reason is `ConnectionError` (a killed
 * busy backend shows up as "Connection closed"), except the pool's own timeout/closed errors;
 * any error whose SQLSTATE is class 08 or 57P01–57P05 (a backend killed while idle shows up as
 * `UnknownError` 57P01, a server starting/stopping as 57P03), or whose severity is
 * FATAL/PANIC; socket errors (`ECONNRESET`, `EPIPE`, ...), looked up through `cause` chains.
 *
 * @example
 * ```ts
 * import { Effect, Schedule } from "effect"
 * import { PgDriver } from "effect-db-pool/pg"
 *
 * const retryOnDisconnect = <A, E, R>(self: Effect.Effect<A, E, R>) =>
 *   Effect.retry(self, { schedule: Schedule.exponential("10 millis"), times: 3, while: PgDriver.isDisconnect })
 * ```
 *
 * @category predicates
 * @since 0.1.0
 */
export const isDisconnect = (error: unknown): boolean => {
  if (error instanceof DisconnectionError) return true
  if (isSqlError(error)) {
    const reason = error.reason
    if (reason._tag === "ConnectionError") {
      return !(reason.cause instanceof PoolTimeoutError || reason.cause instanceof PoolClosedError)
    }
    return looksDead(reason.cause, 0)
  }
  return looksDead(error, 0)
}

/**
 * A dead session as a `SqlError` with a `ConnectionError` reason (so `isRetryable` is true and
 * `catchReason("SqlError", "ConnectionError")` catches every way a session dies), whose cause
 * is a `DisconnectionError` wrapping the driver's original error.
 *
 * @category errors
 * @since 0.1.0
 */
export const disconnected = (original: unknown, operation: string): SqlError => {
  const reason = isSqlError(original) ? original.reason : undefined
  const pgMessage = reason !== undefined ? fieldOf(reason.cause, "message") : fieldOf(original, "message")
  const detail = typeof pgMessage === "string" && pgMessage.length > 0 ? pgMessage : reason?.message ?? String(original)
  return new SqlError({
    reason: new ConnectionError({
      cause: new DisconnectionError({ cause: original }),
      message: `PgSql: the connection was lost (${detail})`,
      operation
    })
  })
}

/** @internal */
export const unknownError = (cause: unknown, message: string, operation: string): SqlError =>
  new SqlError({ reason: new UnknownError({ cause, message, operation }) })

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
  const { alwaysReset = false, ...connectionConfig } = config
  return {
    name: "postgresql",
    connect: Effect.uninterruptibleMask((restore) =>
      Effect.flatMap(Scope.make(), (scope) =>
        restore(Scope.provide(PgConnection.make(connectionConfig), scope)).pipe(
          Effect.onExit((exit) => Exit.isFailure(exit) ? Scope.close(scope, exit) : Effect.void),
          Effect.map((native) => new Connection(native, scope, alwaysReset))
        ))
    ),
    close: (connection) => Scope.close(connection.scope, Exit.void),
    rollback: (connection) => connection.reset("ROLLBACK"),
    commit: (connection) => connection.reset("COMMIT"),
    ping: (connection) => connection.ping,
    isDisconnect,
    // Known outside a transaction and not known dead: the pool skips the reset round trip.
    needsReset: (connection) => connection.alwaysReset || !connection.knownIdle || connection.deadError !== undefined
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
