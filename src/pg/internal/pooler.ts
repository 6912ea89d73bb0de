/**
 * Behind a transaction-mode pooler (PgBouncer `pool_mode = transaction`, and the poolers that
 * work the same way): what `PgDriver.layer({ pooler: "transaction" })` changes, and how the
 * failure of a driver configured without it is recognised and explained.
 *
 * Such a pooler hands each transaction (and each autocommit statement) whichever server session
 * is free. What lives in a session outside a transaction is then lost, or leaks to another
 * client:
 *
 * - named prepared statements (`@effect/sql-pg` caches them per client connection): the next
 *   `Bind` lands on a session that never parsed it, SQLSTATE 26000 `prepared statement
 *   "effect_..." does not exist`. Outside a transaction `@effect/sql-pg` retries unnamed (the
 *   statement succeeds, the name leaks on the first session); inside one the transaction is
 *   aborted and the 26000 is the user's error. PgBouncer 1.21+ with `max_prepared_statements`
 *   tracks protocol-level names itself; older ones (Debian 12 ships 1.18) do not.
 * - `DISCARD ALL` (the driver's `sessionReset`) runs on some other client's server session,
 *   between its transactions; the pooler resets sessions itself (`server_reset_query`).
 * - `LISTEN`: the notification arrives on a server session that went back to the pooler
 *   (PgBouncer logs "got packet 'A' from server when not linked"); the listener waits forever.
 * - Session state (`SET`, session advisory locks, temp objects, SQL `PREPARE`, `WITH HOLD`
 *   cursors, `DISCARD`): it stays on a server session that other clients get next (one client's
 *   `SET statement_timeout` applies to the statements of whichever clients get that session). With
 *   `pooler: "transaction"` such a statement is refused before it is sent
 *   ({@link sessionStateRefused}), inside a transaction too (a plain `SET` outlives its `COMMIT`).
 *
 * @internal
 */
import { Data } from "effect"
import type { Redacted } from "effect"
import { isSqlError, SqlError, UnknownError } from "effect/sql/SqlError"
import type { SessionChange } from "./session.ts"
import type { Config } from "./settings.ts"
import * as SqlPg from "./sql-pg-internals.ts"

/** Every `pooler`. */
export const poolers: ReadonlyArray<Config.Pooler> = ["none", "transaction"]

/** Session state a transaction-mode pooler refuses: every {@link SessionChange} but `"routine"` (`DO`, `CALL`: unknowable). */
export type RefusedChange = Exclude<SessionChange, "routine">

/**
 * What {@link TransactionPoolerError} is about.
 *
 * @inline
 */
export type Feature = "prepared-statements" | "listen" | RefusedChange

/** Per refused statement kind: what it is, why it breaks behind the pooler, and the fix. */
const refusals: Record<Exclude<RefusedChange, "listen">, readonly [what: string, why: string, fix: string]> = {
  "set": [
    "SET without LOCAL (also RESET, SET ROLE, SET SESSION AUTHORIZATION, set_config(..., false), UPDATE pg_settings)",
    "it changes the server session, which the pooler hands to other clients next (and this client's next " +
    "statement may run on another session)",
    "use SET LOCAL or set_config(name, value, true) inside a transaction (sql.withTransaction), or set it for " +
    "the role or database (ALTER ROLE ... SET)"
  ],
  "advisory-lock": [
    "a session-level advisory lock (pg_advisory_lock, pg_try_advisory_lock and their _shared forms)",
    "the server session holds it while the pooler hands that session to other clients (and the unlock may " +
    "run on another session)",
    "use pg_advisory_xact_lock / pg_try_advisory_xact_lock inside a transaction (released at its end)"
  ],
  "temp-object": [
    "a temporary object (CREATE TEMP TABLE / VIEW / SEQUENCE, SELECT ... INTO TEMP, the pg_temp schema)",
    "it lives in the server session, which the pooler hands to other clients next: they see it, and this " +
    "client's next statement may not",
    "create a temporary table inside a transaction with ON COMMIT DROP, or use a regular table"
  ],
  "prepare": [
    "SQL PREPARE / DEALLOCATE",
    "the prepared statement lives in the server session, and the next EXECUTE may run on another one",
    "send the statement itself, with parameters"
  ],
  "hold-cursor": [
    "a WITH HOLD cursor",
    "it outlives its transaction in the server session, which the pooler hands to other clients next",
    "declare the cursor without HOLD inside a transaction, or stream the rows (sql.stream)"
  ],
  "discard": [
    "DISCARD",
    "it resets whichever server session the pooler picked, not this client's",
    "leave session resets to the pooler (PgBouncer's server_reset_query)"
  ]
}

/**
 * A session-level feature met a transaction-mode pooler: the cause of a `SqlError` (reason
 * `UnknownError`, not retryable) whose message names the setting or statement that fixes it
 * (`PgDriver.isTransactionPoolerError` tests for it). Re-exported as `PgDriver.TransactionPoolerError`.
 *
 * - `"prepared-statements"`: a statement the driver had prepared on its session is gone
 *   (SQLSTATE 26000 on one of the driver's own `effect_...` names): the connection goes through a
 *   transaction-mode pooler (most likely) and the driver was not told (`pooler: "transaction"`).
 * - `"listen"`: `PgClient.listen` with `pooler: "transaction"` and no `listenUrl`, or a `LISTEN`
 *   statement with `pooler: "transaction"`.
 * - `"set"`, `"advisory-lock"`, `"temp-object"`, `"prepare"`, `"hold-cursor"`, `"discard"`: a
 *   statement that would leave that session state, with `pooler: "transaction"`; it was not sent.
 *
 * @category errors
 * @since 0.1.0
 */
export class TransactionPoolerError extends Data.TaggedError("TransactionPoolerError")<{
  /** Which session-level feature failed: `"prepared-statements"` or `"listen"`. */
  readonly feature: Feature
  /** The server's own error (the 26000), for `"prepared-statements"`. */
  readonly cause?: unknown
}> {
  /** Says what happened and which setting fixes it. */
  override get message(): string {
    const feature = this.feature
    if (feature === "prepared-statements") {
      return `PgDriver: a prepared statement this connection created is gone from its server session ` +
        `(${serverMessage(this.cause) ?? "SQLSTATE 26000"}): the connection most likely goes through a ` +
        `transaction-mode pooler (PgBouncer pool_mode = transaction), which runs each transaction on ` +
        `whichever server session is free. Set PgDriver.layer({ pooler: "transaction" }) (unnamed ` +
        `statements, no DISCARD ALL), or on PgBouncer 1.21+ set max_prepared_statements`
    }
    if (feature === "listen") {
      return `PgSql: LISTEN does not work through a transaction-mode pooler (pooler: "transaction"): ` +
        `notifications arrive on a server session that is no longer the listener's. Listen with ` +
        `PgClient.listen and set PgDriver.layer({ listenUrl }) to the server's own address (not the pooler's)`
    }
    const [what, why, fix] = refusals[feature]
    return `PgDriver: ${what} through a transaction-mode pooler (pooler: "transaction"): ${why}. ` +
      `The statement was not sent; ${fix}`
  }
}

const serverMessage = (cause: unknown): string | undefined => {
  const server = isSqlError(cause) ? cause.reason.cause : cause
  const message = typeof server === "object" && server !== null ? (server as { message?: unknown }).message : undefined
  return typeof message === "string" ? message : undefined
}

/** `prepared statement "effect_<namespace>_<n>" does not exist`: one of `@effect/sql-pg`'s own names. */
const driverStatement = new RegExp(`prepared statement "${SqlPg.statementName.source}" does not exist`)

/**
 * Is this the server saying that one of the driver's named statements is gone (26000)? With
 * `pooler: "transaction"` (unnamed statements) it cannot happen; the driver clears its cache
 * after a `DISCARD ALL` / `DEALLOCATE` it sees.
 */
export const isLostPreparedStatement = (error: unknown): boolean => {
  if (!isSqlError(error)) return false
  const server = error.reason.cause as { readonly code?: unknown; readonly message?: unknown } | undefined
  return server?.code === "26000" && typeof server.message === "string" && driverStatement.test(server.message)
}

const poolerError = (cause: TransactionPoolerError, operation: string): SqlError =>
  new SqlError({ reason: new UnknownError({ cause, message: cause.message, operation }) })

/** A lost prepared statement (see {@link isLostPreparedStatement}) as the error naming the setting. */
export const lostPreparedStatement = (error: unknown, operation = "execute"): SqlError =>
  poolerError(new TransactionPoolerError({ feature: "prepared-statements", cause: error }), operation)

/**
 * A statement that would leave session state (`change`), with `pooler: "transaction"`: refused
 * before it is sent, with the error naming the feature and the fix.
 */
export const sessionStateRefused = (change: RefusedChange): SqlError =>
  poolerError(new TransactionPoolerError({ feature: change }), "execute")

/** `listen` through a transaction-mode pooler, without a `listenUrl`. */
export const listenUnsupported = (): SqlError =>
  poolerError(new TransactionPoolerError({ feature: "listen" }), "listen")

/**
 * Did this fail because a session-level feature met a transaction-mode pooler
 * ({@link TransactionPoolerError})? Its message names the setting to change.
 *
 * @category predicates
 * @since 0.1.0
 */
export const isTransactionPoolerError = (error: unknown): boolean =>
  isSqlError(error) && error.reason.cause instanceof TransactionPoolerError

/** The settings `pooler` implies, and the combinations it refuses. */
export interface PoolerSettings {
  readonly pooler?: Config.Pooler | undefined
  readonly prepare?: boolean | undefined
  readonly sessionReset?: Config.SessionReset | undefined
}

/**
 * The effective settings for `pooler: "transaction"`: `prepare` defaults to `false` (every
 * statement unnamed; `prepare: true` is kept, for PgBouncer 1.21+ with
 * `max_prepared_statements`), `sessionReset` to `"none"`. `undefined` when there is nothing to
 * change.
 */
export const defaultsFor = (
  config: PoolerSettings
): { readonly prepare: boolean; readonly sessionReset: "none" } | undefined =>
  config.pooler === "transaction" ? { prepare: config.prepare ?? false, sessionReset: "none" } : undefined

/**
 * A combination `pooler: "transaction"` refuses: `sessionReset` other than `"none"` (its
 * `DISCARD ALL` would run on another client's server session; the pooler resets sessions
 * itself). As `[field, value, reason]`.
 */
export const refused = (config: PoolerSettings): readonly [string, unknown, string] | undefined =>
  config.pooler === "transaction" && config.sessionReset !== undefined && config.sessionReset !== "none"
    ? [
      "sessionReset",
      config.sessionReset,
      "must be \"none\" with pooler: \"transaction\": DISCARD ALL must not be sent through a transaction-mode " +
      "pooler (it would run on whichever server session is free; the pooler resets sessions itself)"
    ]
    : undefined

/**
 * The listener's connection settings with `listenUrl` as its address: `url`, `host`, `port`,
 * `path` and `stream` (which would win over a URL) give way; the rest applies as it is.
 */
export const listenAt = <C extends object>(config: C, listenUrl: Redacted.Redacted): C => {
  const { host: _host, port: _port, path: _path, stream: _stream, url: _url, ...rest } = config as
    & C
    & Record<
      "host" | "port" | "path" | "stream" | "url",
      unknown
    >
  return { ...rest, url: listenUrl } as unknown as C
}
