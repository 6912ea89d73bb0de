/**
 * How PostgreSQL errors are read: which ones mean the session is gone (by SQLSTATE class and
 * socket code along the `cause` chain), and the `SqlError`s the binding builds for them.
 * `PgDriver` re-exports {@link isDisconnect}.
 *
 * @internal
 */
import { ConnectionError, isSqlError, SqlError, UnknownError } from "effect/sql/SqlError"
import type { SqlErrorReason } from "effect/sql/SqlError"
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
 * The server sent this error with severity ERROR: it answered and the session goes on (FATAL and
 * PANIC end it). The unlocalised severity (PostgreSQL 9.6+) first: `severity` may be translated.
 */
const answered = (cause: unknown): boolean =>
  (fieldOf(cause, "severityUnlocalized") ?? fieldOf(cause, "severity")) === "ERROR"

/**
 * What the first code along a `cause` chain says: `true` (a disconnect SQLSTATE, a socket code,
 * a `DisconnectionError`), `false` (any other SQLSTATE: the server answered; the pool's own
 * timeout/closed errors), `undefined` (nothing found). A disconnect SQLSTATE sent with severity
 * ERROR is no disconnect (the session goes on: 08P01 for a Bind with the wrong number of
 * parameters or a malformed message, dblink's 08001); otherwise severity is not looked at: a
 * FATAL at connect (unknown database, authentication, bad startup option) is no disconnect.
 */
const verdict = (cause: unknown, depth: number): boolean | undefined => {
  if (cause === undefined || cause === null || depth > 5) return undefined
  if (cause instanceof DisconnectionError) return true
  if (cause instanceof PoolTimeoutError || cause instanceof PoolClosedError) return false
  // PgSql's "COMMIT sent, never answered": retrying it blindly could commit twice.
  if (fieldOf(cause, "_tag") === "CommitOutcomeUnknownError") return false
  const code = fieldOf(cause, "code")
  if (typeof code === "string") {
    if (disconnectStates.test(code)) return !answered(cause)
    if (socketCodes.has(code)) return true
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
 *   57P01, a server starting/stopping as 57P03, `idle_session_timeout` as 57P05): **true**,
 *   unless the server sent it with severity ERROR (the session goes on: 08P01 for a Bind with
 *   the wrong number of parameters, dblink's 08001): **false**;
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

/**
 * The server refused a message it could not read (08P01 protocol_violation, severity ERROR: a
 * Bind with the wrong number of parameters, a malformed message) and the session goes on. The
 * same statement meets the same answer, so it is no `ConnectionError` (retryable) as
 * `@effect/sql-pg` classifies class 08: {@link refusedMessage} makes it an `UnknownError`.
 */
export const isRefusedMessage = (error: unknown): error is SqlError => {
  if (!isSqlError(error) || error.reason._tag !== "ConnectionError") return false
  const cause = error.reason.cause
  return fieldOf(cause, "code") === "08P01" && answered(cause)
}

/** A {@link isRefusedMessage} error as a non-retryable `UnknownError` quoting the server. */
export const refusedMessage = (error: SqlError, operation: string): SqlError => {
  const server = fieldOf(error.reason.cause, "message")
  const detail = typeof server === "string" && server.length > 0 ? server : error.message
  return new SqlError({
    reason: new UnknownError({
      cause: error.reason.cause,
      message: `PgSql: the server refused the statement's message: ${detail} (08P01)`,
      operation
    })
  })
}

/** A non-retryable `SqlError` (reason `UnknownError`). */
export const unknownError = (cause: unknown, message: string, operation: string): SqlError =>
  new SqlError({ reason: new UnknownError({ cause, message, operation }) })

// ---------------------------------------------------------------------------- connect errors

/** A reason of the same kind (class) as `reason`, with another message. */
const sameKind = (reason: SqlErrorReason, message: string): SqlErrorReason => {
  const Reason = reason.constructor as new(fields: {
    readonly cause: unknown
    readonly message: string
    readonly operation: string
    readonly constraint?: string
  }) => SqlErrorReason
  const constraint = fieldOf(reason, "constraint")
  return new Reason({
    cause: reason.cause,
    message,
    operation: reason.operation ?? "connect",
    ...(typeof constraint === "string" && { constraint })
  })
}

/** Control characters (a newline in a server message or a name) would break the one line. */
const oneLine = (text: string): string => {
  let out = ""
  let blank = false
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c < 0x20 || c === 0x7f) {
      if (!blank) out += " "
      blank = true
    } else {
      out += text[i]
      blank = false
    }
  }
  return out.trim()
}

/**
 * Why a connect failed, in one line: the server's reason with its SQLSTATE (`password
 * authentication failed for user "app" (28P01)`), a socket error as Node words it (`connect
 * ECONNREFUSED 127.0.0.1:5499`, `getaddrinfo ENOTFOUND db.invalid`), the driver's connect bound
 * (`timed out after 5000 ms (PgDriver connectTimeout)`), or the driver's own words.
 */
export const connectReason = (error: SqlError, connectMillis: number): string => {
  const reason = error.reason
  const cause = reason.cause
  if (fieldOf(cause, "_tag") === "PgHostsError") {
    return oneLine(String(fieldOf(cause, "message")).replace(/^PgDriver: /, ""))
  }
  const message = fieldOf(cause, "message")
  const code = fieldOf(cause, "code")
  if (typeof message === "string" && message.length > 0) {
    // The server's ErrorResponse (its fields on the cause), or a socket error (Node's `code`).
    if (typeof code === "string" && sqlState.test(code) && fieldOf(cause, "severity") !== undefined) {
      return oneLine(`${message} (${code})`)
    }
    if (typeof code === "string") return oneLine(message)
    if (message === "Connection timed out" && reason._tag === "ConnectionError") {
      return `timed out after ${connectMillis} ms (PgDriver connectTimeout)`
    }
  }
  const own = (reason.message ?? reason._tag).replace(/^(?:PgConnection|PgDriver): /, "")
  return oneLine(typeof message === "string" && message.length > 0 && message !== own ? `${own}: ${message}` : own)
}

/**
 * A failed connect as the `SqlError` users see: the same reason kind (so `isRetryable` and
 * `catchReason` are unchanged) and cause (the server's fields, the socket error), with a message
 * that says where, as whom and why, on one line:
 * `PgDriver: cannot connect to 127.0.0.1:5499 (database "app", user "app"): connect ECONNREFUSED 127.0.0.1:5499`.
 */
export const connectFailed = (error: SqlError, where: string, connectMillis: number): SqlError =>
  new SqlError({
    reason: sameKind(
      error.reason,
      oneLine(`PgDriver: cannot connect to ${where}: ${connectReason(error, connectMillis)}`)
    )
  })
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
