/**
 * The errors of `PgSql`'s statements: a failed checkout as a `SqlError` ({@link checkoutError}),
 * statements that never left the client ({@link unsent}: sent again on a fresh session), a
 * `COMMIT` whose outcome is unknown ({@link CommitOutcomeUnknownError}), a transaction-control
 * statement past its bound, and what would wait for itself ({@link SelfDeadlockError}). `PgSql`
 * re-exports the public ones.
 *
 * @internal
 */
import { Data, Effect } from "effect"
import { ConnectionError, isSqlError, SqlError, UnknownError } from "effect/sql/SqlError"
import { ConnectError, ConnectionInvalidatedError, DisconnectionError, PoolClosedError } from "../../PoolError.ts"
import type { CheckoutError } from "../../PoolError.ts"
import { isDisconnect } from "./errors.ts"

/** SQLSTATE 53300, `too_many_connections`: the server refuses for now; worth a retry. */
const tooManyConnections = "53300"

/**
 * A failed checkout as the `SqlError` the SQL layer speaks. A connect failure keeps the driver's
 * own `SqlError`, its message (where, as whom, the server's reason) and its reason (refused,
 * authentication 28xxx, authorisation 42501, unknown database 3D000, bad startup option 22023,
 * ...: a FATAL at connect says nothing about retrying), except two refusals for now, made
 * retryable `ConnectionError`s: a server starting up or shutting down (57P01–57P05, see
 * `PgDriver.isDisconnect`) and too many connections (53300). A closed pool is permanent: a
 * non-retryable `UnknownError` saying so. The rest become a `ConnectionError` whose cause is the
 * pool's error.
 *
 * @category errors
 * @since 0.1.0
 */
export const checkoutError = (error: CheckoutError): SqlError => {
  if (error instanceof ConnectError && isSqlError(error.cause)) {
    const cause = error.cause
    if (cause.reason._tag === "ConnectionError") return cause
    const server = cause.reason.cause as { readonly code?: unknown; readonly message?: unknown } | undefined
    if (isDisconnect(cause) || server?.code === tooManyConnections) {
      // Refused for now: retryable, with the driver's message (where, as whom, why).
      const refused = server?.code === tooManyConnections ? cause : new DisconnectionError({ cause })
      const message = cause.message.startsWith("PgDriver: ")
        ? cause.message
        : `PgSql: the server refused the connection for now (${String(server?.message ?? cause.message)})`
      return new SqlError({ reason: new ConnectionError({ cause: refused, message, operation: "checkout" }) })
    }
    return cause
  }
  if (error instanceof PoolClosedError) {
    return new SqlError({
      reason: new UnknownError({ cause: error, message: `PgSql: ${error.message}`, operation: "checkout" })
    })
  }
  return new SqlError({ reason: new ConnectionError({ cause: error, message: error.message, operation: "checkout" }) })
}

/** A failed checkout as a failed statement (`SqlError`). */
export const failCheckout = (error: CheckoutError): Effect.Effect<never, SqlError> => Effect.fail(checkoutError(error))

/** A statement sent through a connection already returned (or whose owning transaction ended). */
export const handleClosed = (operation: string): SqlError =>
  new SqlError({
    reason: new ConnectionError({
      cause: new ConnectionInvalidatedError({}),
      message: "PgSql: This connection is closed",
      operation
    })
  })

/** Failures of the pool's statements that never left the client (see `sql-borrower.ts`). */
const unsentStatements = new WeakSet<SqlError>()

/** Mark a pool statement's failure as never sent: the borrower sends it again on a fresh session. */
export const unsent = (error: SqlError): SqlError => {
  unsentStatements.add(error)
  return error
}

/** Was this failure marked never sent ({@link unsent})? */
export const wasUnsent = (error: unknown): boolean => unsentStatements.has(error as SqlError)

/**
 * How many times a statement that never left the client (its session closed under it while it
 * waited: a cancel the driver could not confirm, another holder's failure on a StaticPool
 * session) is sent again on a fresh session before its failure is reported.
 */
export const unsentRetries = 3

/**
 * A `COMMIT` was sent and its answer never came (the bound expired, or the session died while
 * waiting): the transaction may or may not have committed. The cause of a `SqlError` whose
 * reason is `UnknownError` (not retryable: a blind retry may apply the transaction twice).
 *
 * @category errors
 * @since 0.1.0
 */
export class CommitOutcomeUnknownError extends Data.TaggedError("CommitOutcomeUnknownError")<{
  /** Why the answer never came (the expired bound, the lost connection). */
  readonly cause: unknown
}> {
  /** "COMMIT was sent but never answered: ...". */
  override get message(): string {
    return "COMMIT was sent but never answered: the transaction may or may not have committed"
  }
}

/**
 * Did this fail with the outcome of a `COMMIT` unknown (sent, never answered)? Check whether
 * the work took effect before doing it again.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { SqlClient } from "effect/sql"
 * import { PgSql } from "effect-db-pool/pg"
 *
 * const transfer = Effect.gen(function*() {
 *   const sql = yield* SqlClient.SqlClient
 *   yield* sql.withTransaction(sql`update accounts set balance = balance - 10 where id = 1`)
 * }).pipe(
 *   Effect.catchIf(PgSql.isCommitOutcomeUnknown, (e) => Effect.logWarning("check before retrying", e))
 * )
 * ```
 *
 * @category predicates
 * @since 0.1.0
 */
export const isCommitOutcomeUnknown = (error: unknown): boolean =>
  isSqlError(error) && error.reason.cause instanceof CommitOutcomeUnknownError

/** A `COMMIT` whose answer never came, as the `SqlError` it fails with. */
export const commitOutcomeUnknown = (cause: unknown): SqlError => {
  const detail = isSqlError(cause) ? cause.message : String(cause)
  return new SqlError({
    reason: new UnknownError({
      cause: new CommitOutcomeUnknownError({ cause }),
      message:
        `PgSql: COMMIT was sent but never answered, the outcome is unknown: the transaction may have committed (${detail})`,
      operation: "commit"
    })
  })
}

/** A transaction-control statement past its bound (the socket is then closed). */
export const controlExpired = (sql: string, millis: number): SqlError =>
  new SqlError({
    reason: new ConnectionError({
      cause: new Error(`${sql} did not answer within ${millis} ms`),
      message:
        `PgSql: ${sql} did not answer within ${millis} ms (transactionControlTimeout); the connection was closed`,
      operation: "execute"
    })
  })

/**
 * The cause of a `SqlError` (reason `UnknownError`, not retryable) raised instead of a wait
 * that could never end, because the waiter would wait for itself:
 *
 * - `"stream"`: a statement, stream or transaction was issued on a session while a stream on
 *   that same session is being read — by the fiber that reads it (reentrant leases, FiberPool,
 *   StaticPool), or by anything of the transaction / `reserve` whose connection the stream runs
 *   on. The session serves nothing else until the stream has been read to its end.
 * - `"owned"`: on a session shared across fibers (StaticPool), the fiber that holds a
 *   transaction or `reserve` on it (or a fiber inside that transaction) asked the pool for the
 *   session again, outside the connection it holds (a statement with the transaction removed
 *   from its context, a statement next to a `reserve`d connection, a `reserve` inside the
 *   transaction).
 *
 * @category errors
 * @since 0.1.0
 */
export class SelfDeadlockError extends Data.TaggedError("SelfDeadlockError")<{
  /** `"stream"`: an open stream holds the session; `"owned"`: this fiber's own transaction / `reserve` does. */
  readonly kind: "stream" | "owned"
  /** What was refused: `"execute"`, `"stream"`, `"transaction"` (or `reserve`). */
  readonly operation: string
}> {
  /** Says what would have waited for what, and how to avoid it. */
  override get message(): string {
    return this.kind === "stream"
      ? `PgSql: ${this.operation} issued while a stream on the same session is being read: it would wait for ` +
        `the stream, whose reader waits for it. Read the stream to its end (or collect it) first, or run ` +
        `the statement outside the stream's transaction / on another connection`
      : `PgSql: ${this.operation} would wait for the transaction or reserve that this fiber (or its ` +
        `transaction) itself holds on the same shared session (StaticPool): use the connection it holds`
  }
}

/** What would wait for itself, as the `SqlError` it fails with at once. */
export const selfDeadlock = (kind: SelfDeadlockError["kind"], operation: string): SqlError => {
  const cause = new SelfDeadlockError({ kind, operation })
  return new SqlError({ reason: new UnknownError({ cause, message: cause.message, operation }) })
}

/**
 * Is this the `SqlError` PgSql raises instead of waiting for itself ({@link SelfDeadlockError})?
 *
 * @category predicates
 * @since 0.1.0
 */
export const isSelfDeadlock = (error: unknown): boolean =>
  isSqlError(error) && error.reason.cause instanceof SelfDeadlockError
