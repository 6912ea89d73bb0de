/**
 * `SqlClient` and `PgClient` (from `effect/sql` / `@effect/sql-pg`) over the `ConnectionPool`
 * in context, whatever its strategy. The pool's raw connections must come from `PgDriver`.
 *
 * - A single statement borrows a connection for exactly that statement (`pool.use`, no scope).
 * - A transaction, a stream and `reserve` check one out for their scope (`pool.checkout`);
 *   nested transactions are savepoints on that connection.
 * - `listen` opens a session of its own (outside the pool) for its scope: a listener pins its
 *   session, which must not hold a pool slot or be handed to the listening fiber's statements.
 *   It connects to `PgDriver`'s `listenUrl` when set; with `pooler: "transaction"` and no
 *   `listenUrl` it fails at once (`PgDriver.TransactionPoolerError`: LISTEN through a
 *   transaction-mode pooler never hears a notification).
 * - A transaction reusing a statement the driver prepared on another server session (a
 *   transaction-mode pooler the driver was not told about: SQLSTATE 26000) fails with a
 *   `PgDriver.TransactionPoolerError` cause naming `pooler: "transaction"`.
 * - `COMMIT` of an aborted transaction fails (PostgreSQL answers it with `ROLLBACK`).
 * - Transaction control (`BEGIN`, `COMMIT`, `ROLLBACK`, savepoints) is bounded by
 *   `transactionControlTimeout` (default the pool's `resetTimeout`): past it the socket is
 *   closed, a `COMMIT` fails with {@link CommitOutcomeUnknownError} as cause, a `ROLLBACK` /
 *   `RELEASE` counts as done.
 * - A statement that fails because the session died invalidates its connection and stamps a
 *   pool-wide invalidation (every older connection is recycled at its next checkout), and fails
 *   with a `SqlError` whose reason is `ConnectionError` (`PgDriver.isDisconnect` holds for it).
 * - A single statement (not a transaction's) that never left the client because its session was
 *   closed under it while it waited (a cancel request of another fiber's interrupted statement
 *   the driver could not confirm in time, another holder's failure on a StaticPool session) is
 *   sent again on a fresh session, up to 3 times: it cannot have run.
 * - Reset on return costs no round trip when the connection is known to be outside a
 *   transaction (see `PgDriver.Connection`).
 * - On a session shared across fibers (StaticPool) a transaction or `reserve` owns it: other
 *   fibers' statements, streams and transactions wait until it ends. Its connection ends with
 *   it: a statement sent through it afterwards (a `reserve`d connection kept past its scope, a
 *   fiber forked inside the transaction) fails with `ConnectionError` "This connection is
 *   closed", as under every other strategy; it never runs inside the next owner's transaction.
 * - What would wait for itself fails at once with a {@link SelfDeadlockError} cause: a statement
 *   from the fiber reading a stream on the same session (or from the stream's transaction), or
 *   the owner of a shared session asking the pool for it again. docs/postgres.md: "Shared
 *   sessions and streams".
 *
 * {@link layer} is a function: call it where you provide it. effect memoizes layers by
 * reference: `Effect.provide(layer)` builds with a `MemoMap` forked from the one that built the
 * surrounding context, and a fork looks a layer up in its parents first, so a layer value an
 * outer `provide` already built is reused as it was built (over the outer pool), whatever is
 * provided beneath it now. The rule of this library: every layer that reads services from below
 * is a function; call it where you provide it.
 *
 * @since 0.1.0
 */
import { PgClient, PgConnection } from "@effect/sql-pg"
import { Context, Data, Effect, Layer, Result, Stream } from "effect"
import type { Scope } from "effect"
import { Duration } from "effect"
import type * as Reactivity from "effect/reactivity/Reactivity"
import * as SqlClient from "effect/sql/SqlClient"
import type { Connection as SqlConnection } from "effect/sql/SqlConnection"
import { ConnectionError, isSqlError, SqlError, UnknownError } from "effect/sql/SqlError"
import * as Statement from "effect/sql/Statement"
import { ConnectionPool } from "../ConnectionPool.ts"
import type { PooledConnection, Service as PoolService } from "../ConnectionPool.ts"
import { driverOf } from "../internal/service.ts"
import * as V from "../internal/validate.ts"
import {
  AssertionPoolError,
  ConnectError,
  ConnectionInvalidatedError,
  ConnectTimeoutError,
  DisconnectionError,
  DriverError,
  PoolClosedError,
  PoolTimeoutError
} from "../PoolError.ts"
import type { CheckoutError } from "../PoolError.ts"
import { settingsOf } from "./internal/config.ts"
import { connector } from "./internal/connect.ts"
import { isUnsent } from "./internal/connection.ts"
import { channelNameError, disconnected, isRefusedMessage, refusedMessage, unknownError } from "./internal/errors.ts"
import * as HostList from "./internal/host-list.ts"
import { Exclusive, Lanes } from "./internal/pipeline.ts"
import type { LaneEvent, LaneStatus } from "./internal/pipeline.ts"
import * as Pooler from "./internal/pooler.ts"
import { readOnly as markReadOnly } from "./internal/read-only.ts"
import * as Routing from "./internal/routing.ts"
import { classify } from "./internal/session.ts"
import { Session } from "./internal/shared-session.ts"
import * as PgDriver from "./PgDriver.ts"

/**
 * Client options (the statement-level part of `PgClient.PgClientConfig`).
 *
 * @category models
 * @since 0.1.0
 */
export interface Options<R = never> {
  /** Rename result columns, e.g. snake_case → camelCase. */
  readonly transformResultNames?: ((name: string) => string) | undefined
  /** Rename identifiers in queries, e.g. camelCase → snake_case. */
  readonly transformQueryNames?: ((name: string) => string) | undefined
  /** Apply the name transforms inside JSON values too. Default true. */
  readonly transformJson?: boolean | undefined
  /** Extra span attributes on every statement. */
  readonly spanAttributes?: Record<string, unknown> | undefined
  /**
   * Bound on each transaction-control statement (`BEGIN`, `COMMIT`, `ROLLBACK`, `SAVEPOINT`,
   * `RELEASE SAVEPOINT`, `ROLLBACK TO SAVEPOINT`), which effect/sql runs uninterruptibly (an
   * `Effect.timeout` around a transaction cannot cut them short). Past it the socket is closed
   * and the connection invalidated: a `COMMIT` fails with an "outcome unknown" error (see
   * {@link isCommitOutcomeUnknown}); a `ROLLBACK` / `RELEASE` counts as done (the server rolls
   * back the transaction of a session that ended). Default: the pool's `resetTimeout` (10 s);
   * `"Infinity"`: unbounded.
   */
  readonly transactionControlTimeout?: Duration.Input | undefined
  /**
   * Runs after each checkout, in the fiber that uses the connection, as `PgClient`'s
   * `onAcquire`: once per statement outside a transaction, and once per `withTransaction`,
   * `reserve`, stream, `listen` and `notify`. Finalizers it adds run when that use ends. The
   * services it requires are captured when the client is built; the consuming fiber's own take
   * precedence. Keep it cheap: it runs while holding the connection.
   */
  readonly onAcquire?: Effect.Effect<void, never, R> | undefined
  /**
   * Pipeline autocommit statements from many fibers over a few connections of the pool (see
   * {@link PipelineOptions}). Off by default. Needs a pool that lends a connection to one
   * borrower at a time (QueuePool, NullPool, ...; not StaticPool / AssertionPool / `reentrant`).
   */
  readonly pipeline?: PipelineOptions | undefined
}

/**
 * The pipelined mode of {@link layer}. A single statement that is autocommit-safe and changes
 * no session state (a lone `SELECT` / `INSERT` / `UPDATE` / `DELETE` / `WITH` / `VALUES` /
 * `TABLE` / `SHOW` read with PostgreSQL's lexical rules, no `SET`, `LISTEN`, `PREPARE`, temp
 * table...) is sent on a connection shared with other fibers' statements, each in its own
 * Parse/Bind/Execute/Sync cycle: it gets its own result, its own error (a failing neighbour never
 * fails it), its own span. Transactions, `reserve`, streams, `listen`, every other statement and
 * everything under {@link exclusive} get a connection of their own from the same pool, as
 * without the mode; they go first: shared connections take no new statement while one waits.
 *
 * - A statement goes to the shared connection with the fewest in flight, below `maxInFlight`;
 *   when all are full another is checked out, up to `maxConnections`; past that it waits.
 * - A shared connection returns to the pool when its last statement ends.
 * - Interrupting a pipelined statement discards its result; the server still runs it to its end
 *   (a cancel request would cancel whatever the session runs then: possibly a neighbour's
 *   statement). A statement that must be cancellable runs under {@link exclusive}, in a
 *   transaction, or through `sql.reserve`.
 * - A shared connection that dies (terminated backend, network) fails exactly the statements in
 *   flight on it, each with a retryable `ConnectionError`, and is invalidated in the pool.
 * - When the client closes, statements in flight still get their results; each shared connection
 *   goes back to the pool after its last one.
 * - With the pool's `leakDetectionThreshold`, each statement held on its shared connection past the
 *   threshold is reported (not the shared connection serving them).
 * - {@link pipelineStatus} shows the shared connections and their statements in flight.
 *
 * @category models
 * @since 0.2.0
 */
export interface PipelineOptions {
  /**
   * Statements in flight on one shared connection, 1–128. Default 32 (as `@effect/sql-pg`'s
   * `multiplexConcurrency`): a larger bound sends more per write on fewer connections; a smaller
   * one limits how many statements queue behind a slow one.
   */
  readonly maxInFlight?: number | undefined
  /**
   * Shared connections at most. Default: the pool's `poolSize` (QueuePool), else 1. The pool's own
   * bounds still hold: every shared connection is a checkout.
   */
  readonly maxConnections?: number | undefined
}

/** {@link PipelineOptions} `maxInFlight` when not given. */
const defaultMaxInFlight = 32

/** Validated {@link PipelineOptions}. */
const pipelineRule = V.custom<PipelineOptions | undefined>((value) => {
  if (value === undefined) return Result.succeed(undefined)
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return Result.fail("must be an object ({ maxInFlight?, maxConnections? })")
  }
  for (const key of Object.keys(value)) {
    if (key !== "maxInFlight" && key !== "maxConnections") {
      return Result.fail(`has an unknown key "${key}" (maxInFlight, maxConnections)`)
    }
  }
  const { maxConnections, maxInFlight } = value as PipelineOptions
  if (maxInFlight !== undefined && !(Number.isInteger(maxInFlight) && maxInFlight >= 1 && maxInFlight <= 128)) {
    return Result.fail("maxInFlight must be an integer from 1 to 128")
  }
  if (maxConnections !== undefined && !(Number.isInteger(maxConnections) && maxConnections >= 1)) {
    return Result.fail("maxConnections must be an integer of at least 1")
  }
  return Result.succeed(value as PipelineOptions)
}, undefined)

// ------------------------------------------------------------------------------- errors

/**
 * An option of {@link layer} was invalid, or does not fit the pool in context (`pipeline` over a
 * pool that shares sessions). Raised when the layer is built, naming the option, its value and
 * the reason, as the pool's `PoolConfigError` does for pool options (the driver's settings fail
 * with `PgDriver.PgConfigError`).
 *
 * @category errors
 * @since 0.2.0
 */
export class PgSqlConfigError extends Data.TaggedError("PgSqlConfigError")<{
  /** The option's name, as given (a misspelled name too). */
  readonly field: string
  /** The value given. */
  readonly value: unknown
  /** What is wrong with it. */
  readonly reason: string
}> {
  /** Names the option, its value and the reason. */
  override get message(): string {
    return `Invalid PgSql option "${this.field}" = ${V.showValue(this.value)}: ${this.reason}`
  }
}

const isCheckoutError = (e: unknown): e is CheckoutError =>
  e instanceof PoolTimeoutError || e instanceof ConnectError || e instanceof ConnectTimeoutError ||
  e instanceof ConnectionInvalidatedError || e instanceof DriverError || e instanceof PoolClosedError ||
  e instanceof AssertionPoolError

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
    if (PgDriver.isDisconnect(cause) || server?.code === tooManyConnections) {
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

const failCheckout = (error: CheckoutError): Effect.Effect<never, SqlError> => Effect.fail(checkoutError(error))

const handleClosed = (operation: string) =>
  new SqlError({
    reason: new ConnectionError({
      cause: new ConnectionInvalidatedError({}),
      message: "PgSql: This connection is closed",
      operation
    })
  })

/** Failures of the pool's statements that never left the client (see `borrower`). */
const unsentStatements = new WeakSet<SqlError>()

/** Mark a pool statement's failure as never sent: the borrower sends it again on a fresh session. */
const unsent = (error: SqlError): SqlError => {
  unsentStatements.add(error)
  return error
}

/**
 * How many times a statement that never left the client (its session closed under it while it
 * waited: a cancel the driver could not confirm, another holder's failure on a StaticPool
 * session) is sent again on a fresh session before its failure is reported.
 */
const unsentRetries = 3

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

const commitOutcomeUnknown = (cause: unknown): SqlError => {
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
const controlExpired = (sql: string, millis: number): SqlError =>
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

const selfDeadlock = (kind: SelfDeadlockError["kind"], operation: string): SqlError => {
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

// ---------------------------------------------------------------------------- connection

/** What a `ROLLBACK` on a dead session returns (nothing to roll back): one shared empty result. */
const noRows: ReadonlyArray<never> = []

/* eslint-disable @typescript-eslint/no-explicit-any -- effect/sql's `Connection` types rows as `any` */
/** `SqlConnection` over one checkout; disconnects invalidate the checkout and the pool. */
class PooledSql implements SqlConnection {
  /** Streams of this connection being read (a transaction's or `reserve`'s: nothing else may use it meanwhile). */
  private streams = 0
  /** Bound on transaction-control statements, ms (`transactionControlTimeout`); set by the client. */
  controlMillis = Infinity
  /**
   * The transaction or `reserve` this connection owned its shared session for has ended: it
   * refuses statements as a returned connection does (its session may be another's by now).
   */
  ended = false

  constructor(
    readonly pooled: PooledConnection<PgDriver.Connection>,
    readonly pool: PoolService<PgDriver.Connection>,
    /** Only when the pool shares sessions between checkouts (StaticPool, reentrant leases). */
    readonly session: Session<PooledSql> | undefined = undefined,
    /** This is the transaction / `reserve` connection that owns its (StaticPool) session. */
    readonly owns = false
  ) {}

  /**
   * Refuse what would wait for itself; on a StaticPool session, run as a user (waiting while a
   * transaction or `reserve` of another connection owns it). Unshared pools: two field reads.
   */
  private guard<A>(
    sql: string,
    run: (c: PgDriver.Connection) => Effect.Effect<A, SqlError>,
    onDeadRollback: A
  ): Effect.Effect<A, SqlError> {
    if (this.streams > 0) return Effect.fail(selfDeadlock("stream", "execute"))
    const session = this.session
    if (session === undefined) return this.exec(sql, run, onDeadRollback)
    return Effect.withFiber((fiber) => {
      if (session.streaming(fiber.id)) return Effect.fail(selfDeadlock("stream", "execute"))
      if (!session.lock || this.owns) return this.exec(sql, run, onDeadRollback)
      return Effect.uninterruptibleMask((restore) =>
        Effect.andThen(
          session.enter(fiber, restore, "execute"),
          // `exec` reads the connection's state after the wait (the owner may have ended it meanwhile).
          Effect.ensuring(
            restore(Effect.suspend(() => this.exec(sql, run, onDeadRollback))),
            Effect.sync(() => session.leave())
          )
        )
      )
    })
  }

  private exec<A>(
    sql: string,
    run: (c: PgDriver.Connection) => Effect.Effect<A, SqlError>,
    onDeadRollback: A
  ): Effect.Effect<A, SqlError> {
    // What the statement is (cached per text; the connection reads the same verdict): a cleanup
    // statement (`ROLLBACK`, `RELEASE SAVEPOINT`...) has nothing left to do on a dead session (the
    // server rolls back the transaction of a session that ended).
    const verdict = classify(sql)
    if (!this.pooled.isValid || this.ended) {
      if (verdict.cleanup) return Effect.succeed(onDeadRollback)
      // Not sent: a statement of the pool's (not a transaction's) goes to a fresh session.
      return Effect.fail(this.owns ? handleClosed("execute") : unsent(handleClosed("execute")))
    }
    const connection = this.pooled.connection
    if (!(connection instanceof PgDriver.Connection)) {
      return Effect.die(
        new Error("PgSql needs a ConnectionPool over PgDriver (the raw connection is not a PgDriver.Connection)")
      )
    }
    // Transaction control runs uninterruptibly (effect/sql): bounded here, by closing the socket.
    const millis = this.controlMillis
    // Transaction control (BEGIN, COMMIT, ROLLBACK, SAVEPOINT, RELEASE) is bounded.
    const control = millis !== Infinity && verdict.control !== undefined
    // A COMMIT (`COMMIT [AND CHAIN]`, `END`, `COMMIT PREPARED`) sent on a live session whose answer
    // never comes: the outcome is unknown (bounded or not: an unbounded COMMIT whose socket dies is as unknown).
    const committing = verdict.control === "commit" && !connection.isClosed
    const statement = control
      ? connection.within(run(connection), millis, () => controlExpired(sql.trim(), millis))
      : run(connection)
    return Effect.catchIf(
      statement,
      // A disconnect, or any failure after which the driver knows the session is closed (e.g. a
      // FATAL 25P03 idle-in-transaction timeout): the connection is not used again. (A session
      // only retired after a cancel is not closed: an ordinary error leaves it to its holders.)
      // Also: one of the driver's named statements gone from the session (a transaction-mode
      // pooler the driver was not told about): an error that names the setting.
      // And a message the server refused (08P01, ERROR): the session goes on; not retryable.
      (error) =>
        PgDriver.isDisconnect(error) || connection.isClosed || Pooler.isLostPreparedStatement(error) ||
        isRefusedMessage(error),
      (error) => {
        if (!connection.isClosed && Pooler.isLostPreparedStatement(error)) {
          return Effect.fail(Pooler.lostPreparedStatement(error))
        }
        if (!connection.isClosed && isRefusedMessage(error)) return Effect.fail(refusedMessage(error, "execute"))
        const disconnect = PgDriver.isDisconnect(error)
        // Never sent (the driver closed the session before it went out): not an unknown COMMIT,
        // and a statement of the pool's goes to a fresh session (see `borrower`).
        const notSent = isUnsent(error)
        const invalidate = this.pooled.invalidate(error, "statement")
        return Effect.andThen(
          disconnect ? Effect.andThen(invalidate, this.pool.invalidateAll) : invalidate,
          verdict.cleanup
            ? Effect.succeed(onDeadRollback)
            : Effect.fail(
              committing && !notSent
                ? commitOutcomeUnknown(error)
                : disconnect
                ? notSent && !this.owns
                  ? unsent(disconnected(error, "execute"))
                  : disconnected(error, "execute")
                : error
            )
        )
      }
    )
  }

  execute(
    sql: string,
    params: ReadonlyArray<unknown>,
    transformRows: (<A extends object>(row: ReadonlyArray<A>) => ReadonlyArray<A>) | undefined
  ) {
    return this.guard(
      sql,
      (c) =>
        Effect.map(
          c.query(sql, params),
          (r) => transformRows ? transformRows(r.rows as ReadonlyArray<object>) : r.rows
        ),
      noRows as ReadonlyArray<any>
    )
  }
  executeUnprepared(
    sql: string,
    params: ReadonlyArray<unknown>,
    transformRows: (<A extends object>(row: ReadonlyArray<A>) => ReadonlyArray<A>) | undefined
  ) {
    return this.guard(
      sql,
      (c) =>
        Effect.map(
          c.query(sql, params, false),
          (r) => transformRows ? transformRows(r.rows as ReadonlyArray<object>) : r.rows
        ),
      noRows as ReadonlyArray<any>
    )
  }
  executeRaw(sql: string, params: ReadonlyArray<unknown>) {
    return this.guard(sql, (c) => c.query(sql, params) as Effect.Effect<unknown, SqlError>, undefined as unknown)
  }
  executeValues(sql: string, params: ReadonlyArray<unknown>) {
    return this.guard(sql, (c) => c.queryValues(sql, params), noRows)
  }
  executeValuesUnprepared(sql: string, params: ReadonlyArray<unknown>) {
    return this.guard(sql, (c) => c.queryValues(sql, params, false), noRows)
  }
  executeStream(
    sql: string,
    params: ReadonlyArray<unknown>,
    transformRows: (<A extends object>(row: ReadonlyArray<A>) => ReadonlyArray<A>) | undefined
  ): Stream.Stream<any, SqlError> {
    // While the stream is open (until its scope closes: read to the end, failed or abandoned),
    // the session serves nothing else: this connection and the reading fiber are marked, so what
    // would wait for the stream from inside it fails at once (see `guard`).
    return Stream.unwrap(Effect.uninterruptibleMask((restore) =>
      Effect.withFiber((fiber) => {
        const session = this.session
        if (this.streams > 0 || session?.streaming(fiber.id)) return Effect.fail(selfDeadlock("stream", "stream"))
        const user = session !== undefined && session.lock && !this.owns
        const open = Effect.suspend(() => {
          this.streams++
          session?.openStream(fiber.id)
          return Effect.as(
            Effect.addFinalizer(() =>
              Effect.sync(() => {
                this.streams--
                session?.closeStream(fiber.id)
                if (user) session.leave()
              })
            ),
            this.rows(sql, params, transformRows)
          )
        })
        return user ? Effect.andThen(session.enter(fiber, restore, "stream"), open) : open
      })
    ))
  }

  private rows(
    sql: string,
    params: ReadonlyArray<unknown>,
    transformRows: (<A extends object>(row: ReadonlyArray<A>) => ReadonlyArray<A>) | undefined
  ): Stream.Stream<any, SqlError> {
    if (!this.pooled.isValid || this.ended) return Stream.fail(handleClosed("stream"))
    const rows = (this.pooled.connection as PgDriver.Connection).stream(sql, params).pipe(
      Stream.mapError((error) => isRefusedMessage(error) ? refusedMessage(error, "stream") : error),
      Stream.catchIf(PgDriver.isDisconnect, (error) =>
        Stream.fromEffect(Effect.andThen(
          Effect.andThen(this.pooled.invalidate(error, "statement"), this.pool.invalidateAll),
          Effect.fail(disconnected(error, "stream"))
        )))
    )
    return transformRows
      ? Stream.mapArray(rows, (chunk) => transformRows(chunk) as any)
      : rows
  }
}
/* eslint-enable @typescript-eslint/no-explicit-any */

/** The key under which a `PgSql` client keeps its pipeline lanes (see {@link pipelineStatus}). */
const pipelineKey = "~effect-db-pool/pg/PgSql/pipeline"

/** The pipeline lanes of the client in context (`undefined`: it does not pipeline). */
const lanesOf = Effect.map(SqlClient.SqlClient, (client) => {
  const lanes = (client as unknown as Record<string, unknown>)[pipelineKey]
  return lanes instanceof Lanes ? lanes : undefined
})

/**
 * Pipelined work on one shared connection ({@link pipelineStatus}).
 *
 * @category models
 * @since 0.2.0
 */
export interface PipelineConnectionStatus extends LaneStatus {}

/**
 * A connection of the pool began (`open`) or stopped (`close`) serving pipelined statements
 * ({@link pipelineEvents}); `close` says how many statements it carried, how many were still in
 * flight and why: `idle` (its last statement ended), `exclusive` (emptied for a transaction,
 * `reserve`, stream or session-changing statement waiting for the pool), `broken` (its session
 * died: the statements in flight on it failed), `client closed`.
 *
 * @category models
 * @since 0.2.0
 */
export type PipelineEvent = LaneEvent

/**
 * The pipelined mode's events of the `SqlClient` in context (`PgSql.layer({ pipeline })`): each
 * shared connection's `open` and `close` ({@link PipelineEvent}); an empty stream when the client
 * does not pipeline. Each subscriber has a buffer of 1,024 events; past it the newest are dropped.
 * The pool's own `events` see each shared connection as one checkout and checkin.
 *
 * @category getters
 * @since 0.2.0
 */
export const pipelineEvents: Stream.Stream<PipelineEvent, never, SqlClient.SqlClient> = Stream.unwrap(
  Effect.map(lanesOf, (lanes) => lanes === undefined ? Stream.empty : lanes.events)
)

/**
 * The shared connections of the `SqlClient` in context in pipelined mode
 * (`PgSql.layer({ pipeline })`), each with its backend process id and its statements in flight
 * (sent or queued, whose callers still wait); `undefined` when the client does not pipeline. A
 * connection that ended its last statement is back in the pool and not listed.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { PgSql } from "effect-db-pool/pg"
 *
 * const inFlight = Effect.map(PgSql.pipelineStatus, (lanes) =>
 *   (lanes ?? []).reduce((sum, lane) => sum + lane.inFlight, 0))
 * ```
 *
 * @category getters
 * @since 0.2.0
 */
export const pipelineStatus: Effect.Effect<
  ReadonlyArray<PipelineConnectionStatus> | undefined,
  never,
  SqlClient.SqlClient
> = Effect.map(lanesOf, (lanes) => lanes?.status())

/**
 * Run `effect`'s single statements on connections of their own under `PgSql.layer({ pipeline })`
 * (as without the mode): an interrupted one is cancelled on the server, not only discarded.
 * Without the mode it changes nothing.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { SqlClient } from "effect/sql"
 * import { PgSql } from "effect-db-pool/pg"
 *
 * const report = Effect.gen(function*() {
 *   const sql = yield* SqlClient.SqlClient
 *   return yield* sql`select count(*) as n from orders`
 * }).pipe(PgSql.exclusive, Effect.timeout("5 seconds"))
 * ```
 *
 * @category combinators
 * @since 0.2.0
 */
export const exclusive = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.provideService(effect, Exclusive, true)

/** Each client's own transaction service (statements find their transaction's connection by it). */
let clientIds = 0

/** PostgreSQL answers `COMMIT` with `ROLLBACK` when the transaction was aborted: that must fail. */
const commit = (conn: SqlConnection): Effect.Effect<void, SqlError> =>
  Effect.flatMap(
    conn.executeRaw("COMMIT", []),
    (result) =>
      (result as PgConnection.Result | undefined)?.command === "ROLLBACK"
        ? Effect.fail(unknownError(
          new Error("COMMIT rolled back an aborted transaction"),
          "PgSql: COMMIT rolled back an aborted transaction",
          "commit"
        ))
        : Effect.void
  )

interface PgJson extends Statement.Custom<"PgJson", unknown> {}
/** The same custom kind `PgClient.makeCompiler` encodes as jsonb. */
const PgJson = Statement.custom<PgJson>("PgJson")

const sql = V.validator((invalid) => new PgSqlConfigError(invalid))

/** The rules of every {@link Options} field (an option without one does not compile). */
const optionRules = V.rulesFor<Options>()({
  transformResultNames: V.func<(name: string) => string>(),
  transformQueryNames: V.func<(name: string) => string>(),
  transformJson: V.boolean(),
  spanAttributes: V.record<Record<string, unknown>>("must be a record"),
  transactionControlTimeout: V.duration(undefined),
  onAcquire: V.custom<Effect.Effect<void> | undefined>(
    (value) => Effect.isEffect(value) ? Result.succeed(value as Effect.Effect<void>) : Result.fail("must be an Effect"),
    undefined
  ),
  pipeline: pipelineRule
})

const optionKeys = V.keysOfRules(optionRules)

const validateOptions = <R>(options: Options<R>): Effect.Effect<Options<R>, PgSqlConfigError> =>
  Effect.gen(function*() {
    yield* sql.check(V.notAnObject(options))
    yield* sql.check(V.unknownKey(options, optionKeys, "PgSql.layer"))
    yield* sql.decode(optionRules, options)
    return options
  })

/**
 * The settings of the driver the pool connects with: read from the pool itself, so a pool
 * provided on its own (`PoolManager.provide`) is described by its own settings, never by a
 * `PgDriver` of the surrounding program. A pool service made by hand: the `PgDriver` in context.
 */
const driverConfig = (pool: PoolService<PgDriver.Connection>): Effect.Effect<PgDriver.Config> => {
  const own = settingsOf(driverOf(pool as PoolService<unknown>))
  if (own !== undefined) return Effect.succeed(own)
  return Effect.flatMap(Effect.serviceOption(PgDriver.PgDriver), (driver) =>
    driver._tag === "Some"
      ? Effect.succeed(driver.value.config)
      : Effect.die(
        new Error("PgSql needs a ConnectionPool over PgDriver (the pool's driver has no PgDriver settings)")
      ))
}

/** Server address and database, for span attributes (several hosts: the first). */
const hostOf = (config: PgDriver.Config): { host: string; port: number; database: string } => HostList.describe(config)

/**
 * Build the client over the pool in context (used by {@link layer}).
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = <R = never>(
  options: Options<R> = {}
): Effect.Effect<
  PgClient.PgClient & SqlClient.SqlClient,
  PgSqlConfigError,
  ConnectionPool | Scope.Scope | Reactivity.Reactivity | R
> =>
  Effect.gen(function*() {
    const valid = yield* validateOptions(options)
    // `onAcquire` with the services captured now; the consuming fiber's own take precedence.
    const hook = valid.onAcquire
    const captured = yield* Effect.context<R>()
    const onAcquire = hook &&
      Effect.updateContext(hook, (current: Context.Context<never>) => Context.merge(captured, current))
    const pool = yield* PgDriver.Pool
    const config = yield* driverConfig(pool)
    const target = hostOf(config)
    const compiler = PgClient.makeCompiler(valid.transformQueryNames, valid.transformJson)
    const transformRows = valid.transformResultNames
      ? Statement.defaultTransforms(valid.transformResultNames, valid.transformJson).array
      : undefined

    // Transaction control is bounded by `transactionControlTimeout`, else the pool's `resetTimeout`.
    const controlBound = valid.transactionControlTimeout === undefined
      ? pool.settings.resetTimeout
      : Duration.fromInputUnsafe(valid.transactionControlTimeout)
    const controlMillis = Duration.isFinite(controlBound) ? Duration.toMillis(controlBound) : Infinity
    const bounded = (conn: PooledSql): PooledSql => {
      conn.controlMillis = controlMillis
      return conn
    }

    // Checkouts that share one session: across fibers (StaticPool) or within one (reentrant
    // leases). Decided once: a pool that shares nothing never looks a session up.
    const sharing = pool.settings.sharing
    const sessions = new WeakMap<PooledConnection<PgDriver.Connection>, Session<PooledSql>>()
    const sessionOf = (pooled: PooledConnection<PgDriver.Connection>): Session<PooledSql> => {
      let session = sessions.get(pooled)
      if (session === undefined) {
        session = new Session<PooledSql>(sharing === "pool", selfDeadlock)
        sessions.set(pooled, session)
      }
      return session
    }
    const connect = sharing === undefined
      ? (pooled: PooledConnection<PgDriver.Connection>) => bounded(new PooledSql(pooled, pool))
      : (pooled: PooledConnection<PgDriver.Connection>) => bounded(new PooledSql(pooled, pool, sessionOf(pooled)))
    // A router over several pools (PgReplicas) gives each pool's client its own transaction service.
    const transactionService = (yield* Routing.SharedTransactionService) ??
      Context.Service<SqlClient.TransactionConnection, SqlClient.TransactionConnection.Service>(
        `effect-db-pool/pg/PgSql/TransactionConnection/${clientIds++}`
      )

    // Pipelined mode: lanes of shared connections; exclusive checkouts go first (see `Lanes`).
    if (valid.pipeline !== undefined && sharing !== undefined) {
      return yield* Effect.fail(
        new PgSqlConfigError({
          field: "pipeline",
          value: valid.pipeline,
          reason: `needs a pool that lends a connection to one borrower at a time (not ${
            sharing === "pool" ? "StaticPool" : "reentrant leases"
          })`
        })
      )
    }
    const lanes = valid.pipeline === undefined ? undefined : new Lanes(
      pool,
      {
        maxInFlight: valid.pipeline.maxInFlight ?? defaultMaxInFlight,
        maxConnections: valid.pipeline.maxConnections ??
          (pool.settings.strategy === "QueuePool" ? Math.max(1, pool.settings.poolSize ?? 1) : 1)
      },
      (pooled) => bounded(new PooledSql(pooled, pool)),
      checkoutError
    )
    if (lanes !== undefined) {
      const unregister = lanes.register(pool.settings.name, yield* Effect.context<never>())
      yield* Effect.addFinalizer(() => Effect.andThen(lanes.closeAll, Effect.sync(unregister)))
    }
    // Exclusive checkouts go first: shared connections take no new statement while one waits.
    const poolCheckout = lanes === undefined ? pool.checkout : lanes.exclusive(pool.checkout)

    const checkout: Effect.Effect<SqlConnection, SqlError, Scope.Scope> = poolCheckout.pipe(
      Effect.map((pooled): SqlConnection => connect(pooled)),
      Effect.mapError(checkoutError)
    )
    const acquirer = onAcquire === undefined ? checkout : Effect.tap(checkout, onAcquire)
    // Data-first (not `.pipe(Effect.catchIf(...))`): the curried form costs ~0.4 µs a statement.
    // One statement's connection: the pool's own `use` (no scope), or under the pipelined mode an
    // exclusive checkout (it goes before the lanes). With `onAcquire`, each statement is scoped so
    // that the hook's finalizers run when it ends.
    const withHook = onAcquire === undefined
      ? <A, E, R>(f: (connection: SqlConnection) => Effect.Effect<A, E, R>) => f
      : <A, E, R>(f: (connection: SqlConnection) => Effect.Effect<A, E, R>) => (connection: SqlConnection) =>
        Effect.scoped(Effect.andThen(onAcquire, f(connection)))
    const use = lanes === undefined
      ? <A, E, R>(f: (connection: SqlConnection) => Effect.Effect<A, E, R>) => pool.use((pooled) => f(connect(pooled)))
      : <A, E, R>(f: (connection: SqlConnection) => Effect.Effect<A, E, R>) =>
        Effect.scoped(Effect.flatMap(poolCheckout, (pooled) => f(connect(pooled))))
    // A statement that never left the client (its session was closed under it) is sent again on
    // a fresh session: it cannot have run, and it was never interrupted (collateral of another
    // fiber's interrupted statement on a shared session, or of another holder's failure).
    const borrow = <A, E, R>(
      f: (connection: SqlConnection) => Effect.Effect<A, E, R>,
      retries: number
    ): Effect.Effect<A, E | SqlError, R> =>
      Effect.catchIf(
        use(f),
        (error: unknown) => isCheckoutError(error) || unsentStatements.has(error as SqlError),
        (error): Effect.Effect<A, E | SqlError, R> =>
          isCheckoutError(error)
            ? failCheckout(error)
            : retries > 0
            ? borrow(f, retries - 1)
            : Effect.fail(error as E)
      ) as Effect.Effect<A, E | SqlError, R>
    const pipelined = <A, E, R>(
      f: (connection: SqlConnection) => Effect.Effect<A, E, R>,
      retries: number
    ): Effect.Effect<A, E | SqlError, R> =>
      Effect.catchIf(
        lanes!.run(f),
        (error: unknown) => unsentStatements.has(error as SqlError),
        (error): Effect.Effect<A, E | SqlError, R> => retries > 0 ? pipelined(f, retries - 1) : Effect.fail(error as E)
      ) as Effect.Effect<A, E | SqlError, R>
    /** One statement in pipelined mode: on a lane when it may share one, else exclusive. */
    const route = <A>(sql: string, f: (connection: SqlConnection) => Effect.Effect<A, SqlError>) =>
      Effect.withFiber((fiber) => {
        const verdict = classify(sql)
        return verdict.autocommitSafe && verdict.sessionChange === undefined && !fiber.getRef(Exclusive)
          ? pipelined(f, unsentRetries)
          : borrow(f, unsentRetries)
      })
    const router: SqlConnection = {
      execute: (sql, params, transformRows) => route(sql, (c) => c.execute(sql, params, transformRows)),
      executeUnprepared: (sql, params, transformRows) =>
        route(sql, (c) => c.executeUnprepared(sql, params, transformRows)),
      executeRaw: (sql, params) => route(sql, (c) => c.executeRaw(sql, params)),
      executeValues: (sql, params) => route(sql, (c) => c.executeValues(sql, params)),
      executeValuesUnprepared: (sql, params) => route(sql, (c) => c.executeValuesUnprepared(sql, params)),
      executeStream: (sql, params, transformRows) =>
        Stream.unwrap(Effect.map(acquirer, (c) => c.executeStream(sql, params, transformRows)))
    }
    const borrower = lanes === undefined
      ? <A, E, R>(f: (connection: SqlConnection) => Effect.Effect<A, E, R>) => borrow(withHook(f), unsentRetries)
      : <A, E, R>(f: (connection: SqlConnection) => Effect.Effect<A, E, R>) => withHook(f)(router)
    // A transaction or `reserve` on a session shared across fibers owns it until its scope
    // closes (after COMMIT / ROLLBACK): other fibers' statements, streams and transactions wait.
    // Its connection ends with it: a statement sent through it later (a fiber forked inside it,
    // a `reserve`d connection kept past its scope) fails as on a returned connection, and never
    // runs inside the transaction that owns the session next.
    const ownedCheckout: Effect.Effect<SqlConnection, SqlError, Scope.Scope> = sharing !== "pool"
      ? checkout
      : Effect.uninterruptibleMask((restore) =>
        Effect.withFiber((fiber) => {
          // From inside a transaction that owns the session (a `reserve` in it): it would wait
          // for that transaction. Refused before the checkout, which would wait for the session
          // itself when it was retired (a new holder waits for its holders to leave).
          const inTransaction = Context.getOrUndefined(fiber.context, transactionService)?.[0]
          return inTransaction instanceof PooledSql && inTransaction.pool === pool && inTransaction.owns &&
              !inTransaction.ended
            ? Effect.fail(selfDeadlock("owned", "transaction"))
            : Effect.mapError(restore(poolCheckout), checkoutError)
        }).pipe(Effect.flatMap((pooled) => {
          const session = sessionOf(pooled)
          const owner = bounded(new PooledSql(pooled, pool, session, true))
          return Effect.withFiber((fiber) =>
            session.own(owner, fiber, restore, Context.getOrUndefined(fiber.context, transactionService)?.[0])
          ).pipe(
            Effect.andThen(Effect.addFinalizer(() =>
              Effect.sync(() => {
                owner.ended = true
                session.disown()
              })
            )),
            Effect.as(owner)
          )
        }))
      )
    const transactionAcquirer = onAcquire === undefined ? ownedCheckout : Effect.tap(ownedCheckout, onAcquire)

    const makeOptions: SqlClient.SqlClient.MakeOptions = {
      acquirer,
      borrower,
      transactionAcquirer,
      transactionService,
      compiler,
      driver: "pg",
      prepareTransactionControls: true,
      commit,
      // Once the connection was invalidated (its session died), there is nothing to roll back.
      isTransaction: (conn) => (conn as PooledSql).pooled.isValid,
      releaseSavepoint: (name) => `RELEASE SAVEPOINT ${name}`,
      spanAttributes: [
        ...(valid.spanAttributes ? Object.entries(valid.spanAttributes) : []),
        ["db.system.name", "postgresql"],
        ["db.namespace", target.database],
        ["server.address", target.host],
        ["server.port", target.port]
      ],
      transformRows
    }
    const client = yield* SqlClient.make(makeOptions)

    // A listener pins its session until its scope closes. It gets a session of its own, outside
    // the pool: holding a pool slot would starve the pool, and under FiberPool the fiber's next
    // statement would be handed the same, pinned session and wait forever.
    const {
      alwaysReset: _alwaysReset,
      sessionReset: _sessionReset,
      cancelTimeout: _cancelTimeout,
      pooler,
      listenUrl,
      ...sessionConfig
    } = config
    // Through a transaction-mode pooler a LISTEN never hears a notification: the listener goes
    // straight to the server (`listenUrl`), or fails at once saying so.
    // Several hosts / targetSessionAttrs: the listener connects as the pool's sessions do.
    const listenConnect = listenUrl !== undefined
      ? connector(Pooler.listenAt(sessionConfig, listenUrl), PgDriver.isDisconnect)
      : pooler === "transaction"
      ? Effect.fail(Pooler.listenUnsupported())
      : connector(sessionConfig, PgDriver.isDisconnect)
    const listenSession = onAcquire === undefined ? listenConnect : Effect.tap(listenConnect, onAcquire)
    // `onAcquire` as the client runs it (a field of PgClientConfig since @effect/sql-pg 4.1).
    const reported = { ...valid, onAcquire }
    const pgConfig: PgClient.PgClientConfig = {
      ...config,
      // A port list ("5432,5433", one per host): the first host's.
      port: typeof config.port === "string" ? target.port : config.port,
      ...reported
    }
    return Object.assign(client, {
      [PgClient.TypeId]: PgClient.TypeId,
      // For PgReplicas: one SqlClient over several pools' acquirers.
      [Routing.optionsKey]: makeOptions,
      config: pgConfig,
      json: (value: unknown) => Statement.fragment([PgJson(value, undefined, undefined)]),
      poolStats: pool.stats,
      [pipelineKey]: lanes,
      // A channel name over 63 bytes is refused before anything is sent (no session opened).
      listen: (channel: string) => {
        const invalid = channelNameError(channel, "listen")
        return invalid !== undefined
          ? Effect.fail(invalid)
          : Effect.flatMap(listenSession, (session) => session.listen(channel))
      },
      notify: (channel: string, payload: string) => {
        const invalid = channelNameError(channel, "notify")
        return invalid !== undefined
          ? Effect.fail(invalid)
          : Effect.asVoid(borrower((conn) => conn.executeRaw("SELECT pg_notify($1, $2)", [channel, payload])))
      }
    }) as PgClient.PgClient & SqlClient.SqlClient
  })

/**
 * Provide `SqlClient` and `PgClient` over the `ConnectionPool` in context (a pool over
 * `PgDriver`, whose settings it reads from the pool). Options are validated when the layer
 * builds (a bad one fails it with {@link PgSqlConfigError}).
 *
 * Each call makes a new layer: call it where you provide it. effect memoizes layers by
 * reference, also across nested `Effect.provide`s, so one layer value provided again inside a
 * program that already built it is not built again: the inner program would get the outer
 * client, over the outer pool (see the module doc).
 *
 * @example
 * ```ts
 * import { Effect, Layer, Redacted } from "effect"
 * import { SqlClient } from "effect/sql"
 * import { QueuePool } from "effect-db-pool"
 * import { PgDriver, PgSql } from "effect-db-pool/pg"
 *
 * const Sql = PgSql.layer({ transformResultNames: (name) => name.toLowerCase() }).pipe(
 *   Layer.provide(QueuePool.layer({ poolSize: 5, prePing: true })),
 *   Layer.provide(PgDriver.layer({ url: Redacted.make("postgres://postgres@127.0.0.1:5432/test") }))
 * )
 * const program = Effect.gen(function*() {
 *   const sql = yield* SqlClient.SqlClient
 *   return yield* sql`select 1 as one`
 * }).pipe(Effect.provide(Sql))
 * ```
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = <R = never>(
  options: Options<R> = {}
): Layer.Layer<
  PgClient.PgClient | SqlClient.SqlClient,
  PgSqlConfigError,
  ConnectionPool | Exclude<R, Scope.Scope | Reactivity.Reactivity>
> => PgClient.layerFrom(make(options))

/**
 * The former name of {@link layer} with options; same behaviour.
 *
 * @deprecated Use {@link layer}: `PgSql.layer(options)`. Removed in the next release.
 * @category layers
 * @since 0.1.0
 */
export const layerWith: <R = never>(
  options: Options<R>
) => Layer.Layer<
  PgClient.PgClient | SqlClient.SqlClient,
  PgSqlConfigError,
  ConnectionPool | Exclude<R, Scope.Scope | Reactivity.Reactivity>
> = layer

/**
 * Mark `effect`'s database work read-only: under `PgReplicas.layer` its
 * statements, streams, transactions and `reserve` go to a healthy replica (else the primary).
 * A read-only transaction (`SqlClient.BeginTransaction` `"BEGIN READ ONLY"`) counts too. A
 * statement inside a transaction opened without the mark stays on that transaction's connection.
 * Over a single pool (`PgSql.layer()`) the mark changes nothing.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { SqlClient } from "effect/sql"
 * import { PgSql } from "effect-db-pool/pg"
 *
 * const report = Effect.gen(function*() {
 *   const sql = yield* SqlClient.SqlClient
 *   return yield* sql`select count(*) as n from orders`
 * }).pipe(PgSql.readOnly)
 * ```
 *
 * @category combinators
 * @since 0.1.0
 */
export const readOnly: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R> = markReadOnly
