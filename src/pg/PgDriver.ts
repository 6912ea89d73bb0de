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
import { Config as EffectConfig, Context, Data, Duration, Effect, Exit, Layer, Redacted, Scope } from "effect"
import { Stream } from "effect"
import type { Queue } from "effect"
import { PgConnection } from "@effect/sql-pg"
import { ConnectionError, isSqlError, SqlError, UnknownError } from "effect/sql/SqlError"
import { Driver } from "../Driver.ts"
import type { DriverShape } from "../Driver.ts"
import { DisconnectionError, PoolClosedError, PoolTimeoutError } from "../PoolError.ts"

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

/**
 * A connection option was invalid. Raised when the layer is built; the value of a secret
 * (`url`, `password`) is never shown.
 *
 * @category errors
 * @since 0.1.0
 */
export class PgConfigError extends Data.TaggedError("PgConfigError")<{
  readonly field: string
  readonly value: unknown
  readonly reason: string
}> {
  override get message(): string {
    const secret = this.field === "url" || this.field === "password"
    let shown: string
    try {
      shown = secret ? "<redacted>" : typeof this.value === "string" ? JSON.stringify(this.value) : String(this.value)
    } catch {
      shown = typeof this.value
    }
    return `Invalid PostgreSQL option "${this.field}" = ${shown}: ${this.reason}`
  }
}

/** Fields whose value is a secret: the error keeps "<redacted>" instead (it may be logged or serialised). */
const secretFields = new Set(["url", "password"])

const invalid = (field: string, value: unknown, reason: string) =>
  Effect.fail(new PgConfigError({ field, value: secretFields.has(field) ? "<redacted>" : value, reason }))

const isDuration = (value: unknown): boolean => {
  if (typeof value === "number" && Number.isNaN(value)) return false
  try {
    const d = Duration.fromInputUnsafe(value as Duration.Input)
    return d !== undefined && !Duration.isNegative(d)
  } catch {
    return false
  }
}

const optionalString = (config: Record<string, unknown>, field: string) => {
  const value = config[field]
  return value === undefined || typeof value === "string" ? Effect.void : invalid(field, value, "must be a string")
}

const optionalInt = (config: Record<string, unknown>, field: string, min: number, max = Number.MAX_SAFE_INTEGER) => {
  const value = config[field]
  return value === undefined || (Number.isInteger(value) && (value as number) >= min && (value as number) <= max)
    ? Effect.void
    : invalid(field, value, `must be an integer between ${min} and ${max}`)
}

/**
 * Validate connection settings (types, ranges, URL scheme, `Redacted` secrets).
 *
 * @category validation
 * @since 0.1.0
 */
export const validate = (config: Config): Effect.Effect<Config, PgConfigError> =>
  Effect.gen(function*() {
    if (typeof config !== "object" || config === null) return yield* invalid("config", config, "must be an object")
    const record = config as unknown as Record<string, unknown>
    if ("multiplex" in record && record.multiplex !== undefined && record.multiplex !== false) {
      return yield* invalid("multiplex", record.multiplex, "is not supported: a pooled connection is exclusive to its borrower")
    }
    if (config.url !== undefined) {
      if (!Redacted.isRedacted(config.url)) return yield* invalid("url", config.url, "must be Redacted (Redacted.make(url))")
      const text = Redacted.value(config.url)
      let parsed: URL | undefined
      try {
        parsed = new URL(String(text))
      } catch {
        parsed = undefined
      }
      if (parsed === undefined || (parsed.protocol !== "postgres:" && parsed.protocol !== "postgresql:")) {
        return yield* invalid("url", config.url, "must be a postgres:// or postgresql:// URL")
      }
    }
    if (config.password !== undefined && !Redacted.isRedacted(config.password) && !Effect.isEffect(config.password)) {
      return yield* invalid("password", config.password, "must be Redacted (Redacted.make(password)) or an Effect of one")
    }
    for (const field of ["host", "path", "database", "username", "applicationName", "startupOptions"]) {
      yield* optionalString(record, field)
    }
    yield* optionalInt(record, "port", 1, 65535)
    yield* optionalInt(record, "preparedStatementCacheSize", 0)
    yield* optionalInt(record, "maxMessageSize", 1)
    for (const field of ["connectTimeout", "keepAlive"]) {
      if (record[field] !== undefined && !isDuration(record[field])) {
        return yield* invalid(field, record[field], "must be a non-negative duration such as \"5 seconds\"")
      }
    }
    if (config.alwaysReset !== undefined && typeof config.alwaysReset !== "boolean") {
      return yield* invalid("alwaysReset", config.alwaysReset, "must be true or false")
    }
    if (config.prepare !== undefined && typeof config.prepare !== "boolean") {
      return yield* invalid("prepare", config.prepare, "must be true or false")
    }
    if (config.stream !== undefined && typeof config.stream !== "function") {
      return yield* invalid("stream", config.stream, "must be a function returning a Duplex")
    }
    if (
      config.startupParameters !== undefined &&
      (typeof config.startupParameters !== "object" || config.startupParameters === null ||
        Object.values(config.startupParameters).some((v) => typeof v !== "string"))
    ) {
      return yield* invalid("startupParameters", config.startupParameters, "must be a record of strings")
    }
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
    Context.make(Driver, make(valid) as DriverShape<any>).pipe(Context.add(PgDriver, { config: valid }))))

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
