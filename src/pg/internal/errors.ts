/**
 * How PostgreSQL errors are read: which ones mean the session is gone (by SQLSTATE class and
 * socket code along the `cause` chain), and the `SqlError`s the binding builds for them.
 * `PgDriver` re-exports {@link isDisconnect} and {@link disconnected}.
 *
 * @internal
 */
import { ConnectionError, isSqlError, SqlError, UnknownError } from "effect/sql/SqlError"
import { DisconnectionError, PoolClosedError, PoolTimeoutError } from "../../PoolError.ts"

/**
 * SQLSTATEs that mean the session is gone: class 08 (connection exception) and 57P01–57P05
 * (admin shutdown / `pg_terminate_backend`, crash shutdown, cannot connect now, database
 * dropped, idle-session timeout).
 */
const disconnectStates = /^(?:08[0-9A-Z]{3}|57P0[1-5])$/
/** Any SQLSTATE (class: two digits/letters, or F0, HV, P0, XX). */
const sqlState = /^(?:[0-9][0-9A-Z]|F0|HV|P0|XX)[0-9A-Z]{3}$/
/** Socket-level errors (Node's `code`), on a connection or a connect. */
const socketCodes: ReadonlySet<string> = new Set([
  "ECONNRESET",
  "ECONNREFUSED",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "ENOTCONN",
  "EHOSTUNREACH",
  "EHOSTDOWN",
  "ENETUNREACH",
  "ENETDOWN",
  "ENETRESET",
  "ERR_SOCKET_CLOSED",
  "ERR_STREAM_DESTROYED",
  "ERR_STREAM_WRITE_AFTER_END"
])

/** A property of an unknown value, if it has one. */
export const fieldOf = (u: unknown, key: string): unknown =>
  typeof u === "object" && u !== null && key in u ? (u as Record<string, unknown>)[key] : undefined

/**
 * What the first code along a `cause` chain says: `true` (a disconnect SQLSTATE, a socket code,
 * a `DisconnectionError`), `false` (any other SQLSTATE: the server answered; the pool's own
 * timeout/closed errors), `undefined` (nothing found). Severity is not looked at: a FATAL
 * at connect (unknown database, authentication, bad startup option) is no disconnect.
 */
const verdict = (cause: unknown, depth: number): boolean | undefined => {
  if (cause === undefined || cause === null || depth > 5) return undefined
  if (cause instanceof DisconnectionError) return true
  if (cause instanceof PoolTimeoutError || cause instanceof PoolClosedError) return false
  // PgSql's "COMMIT sent, never answered": retrying it blindly could commit twice.
  if (fieldOf(cause, "_tag") === "CommitOutcomeUnknownError") return false
  const code = fieldOf(cause, "code")
  if (typeof code === "string") {
    if (disconnectStates.test(code) || socketCodes.has(code)) return true
    if (sqlState.test(code)) return false
  }
  return verdict(fieldOf(cause, "cause"), depth + 1)
}

/**
 * Does this error mean the session is gone (SQLAlchemy's `is_disconnect`)?
 *
 * Decided by the first code found along the error's `cause` chain:
 *
 * - SQLSTATE class 08 and 57P01–57P05 (a backend killed while idle shows up as `UnknownError`
 *   57P01, a server starting/stopping as 57P03, `idle_session_timeout` as 57P05): **true**;
 * - socket errors (`ECONNRESET`, `ECONNREFUSED`, `EPIPE`, `ETIMEDOUT`, ...): **true**;
 * - any other SQLSTATE (28xxx authentication, 42501, 3D000 unknown database, 22023 bad startup
 *   option, 53300 too many connections, 25P03, ...): **false**, whatever its severity;
 * - no code: a `DisconnectionError` is one; a `SqlError` whose reason is `ConnectionError` is one
 *   ("Connection closed", a connect timeout, a session this library closed), except the pool's
 *   own `PoolTimeoutError` / `PoolClosedError`; anything else is not;
 * - a COMMIT whose outcome is unknown (`PgSql.isCommitOutcomeUnknown`) is not, whatever killed
 *   it: a blind retry could commit twice.
 *
 * So a retry `while: PgDriver.isDisconnect` never retries a wrong password or a missing database.
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
    return verdict(reason.cause, 0) ?? reason._tag === "ConnectionError"
  }
  return verdict(error, 0) ?? false
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

/** A non-retryable `SqlError` (reason `UnknownError`). */
export const unknownError = (cause: unknown, message: string, operation: string): SqlError =>
  new SqlError({ reason: new UnknownError({ cause, message, operation }) })

/** PostgreSQL's `NAMEDATALEN - 1`: the longest identifier, in bytes. */
const maxChannelBytes = 63
const utf8 = new TextEncoder()

/**
 * `LISTEN` / `NOTIFY` refuse a channel name over 63 UTF-8 bytes before anything is sent (as
 * `@effect/sql-pg` does, with the same message): `undefined` when the name is fine.
 */
export const channelNameError = (channel: string, operation: "listen" | "notify"): SqlError | undefined => {
  // Every UTF-16 unit takes at least one UTF-8 byte: a long string is refused without encoding it.
  if (channel.length <= maxChannelBytes && utf8.encode(channel).byteLength <= maxChannelBytes) return undefined
  const message = "PostgreSQL channel names must not exceed 63 UTF-8 bytes"
  return unknownError(new Error(message), message, operation)
}
