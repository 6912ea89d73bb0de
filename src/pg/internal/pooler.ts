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
 *
 * @internal
 */
import { Data } from "effect"
import type { Redacted } from "effect"
import { isSqlError, SqlError, UnknownError } from "effect/sql/SqlError"
import * as SqlPg from "./sql-pg-internals.ts"

/**
 * What sits between the driver and PostgreSQL: `"none"` (default; a session pooler, e.g.
 * PgBouncer `pool_mode = session`, counts as none) or `"transaction"`, a transaction-mode pooler
 * (PgBouncer `pool_mode = transaction`), which runs each transaction and each autocommit
 * statement on whichever server session is free. Re-exported as `PgDriver.Pooler`.
 *
 * @category models
 * @since 0.1.0
 */
export type Pooler = "none" | "transaction"

export const poolers: ReadonlyArray<Pooler> = ["none", "transaction"]

/**
 * What {@link TransactionPoolerError} is about.
 *
 * @inline
 */
export type Feature = "prepared-statements" | "listen"

/**
 * A session-level feature met a transaction-mode pooler: the cause of a `SqlError` (reason
 * `UnknownError`, not retryable) whose message names the setting that fixes it
 * (`PgDriver.isTransactionPoolerError` tests for it). Re-exported as `PgDriver.TransactionPoolerError`.
 *
 * - `"prepared-statements"`: a statement the driver had prepared on its session is gone
 *   (SQLSTATE 26000 on one of the driver's own `effect_...` names): the connection goes through a
 *   transaction-mode pooler (most likely) and the driver was not told (`pooler: "transaction"`).
 * - `"listen"`: `PgClient.listen` with `pooler: "transaction"` and no `listenUrl`.
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
    return this.feature === "prepared-statements"
      ? `PgDriver: a prepared statement this connection created is gone from its server session ` +
        `(${serverMessage(this.cause) ?? "SQLSTATE 26000"}): the connection most likely goes through a ` +
        `transaction-mode pooler (PgBouncer pool_mode = transaction), which runs each transaction on ` +
        `whichever server session is free. Set PgDriver.layer({ pooler: "transaction" }) (unnamed ` +
        `statements, no DISCARD ALL), or on PgBouncer 1.21+ set max_prepared_statements`
      : `PgSql: LISTEN does not work through a transaction-mode pooler (pooler: "transaction"): ` +
        `notifications arrive on a server session that is no longer the listener's. Set ` +
        `PgDriver.layer({ listenUrl }) to the server's own address (not the pooler's)`
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

/** `listen` through a transaction-mode pooler, without a `listenUrl`. */
export const listenUnsupported = (): SqlError => poolerError(new TransactionPoolerError({ feature: "listen" }), "listen")

/** Is this a `SqlError` caused by a {@link TransactionPoolerError}? */
export const isTransactionPoolerError = (error: unknown): boolean =>
  isSqlError(error) && error.reason.cause instanceof TransactionPoolerError

/** The settings `pooler` implies, and the combinations it refuses. */
export interface PoolerSettings {
  readonly pooler?: Pooler | undefined
  readonly prepare?: boolean | undefined
  readonly sessionReset?: "none" | "auto" | "always" | undefined
}

/**
 * The effective settings for `pooler: "transaction"`: `prepare` defaults to `false` (every
 * statement unnamed; `prepare: true` is kept, for PgBouncer 1.21+ with
 * `max_prepared_statements`), `sessionReset` to `"none"`. `undefined` when there is nothing to
 * change.
 */
export const defaultsFor = (config: PoolerSettings): { readonly prepare: boolean; readonly sessionReset: "none" } | undefined =>
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
  const { host: _host, port: _port, path: _path, stream: _stream, url: _url, ...rest } = config as C & Record<
    "host" | "port" | "path" | "stream" | "url",
    unknown
  >
  return { ...rest, url: listenUrl } as unknown as C
}
