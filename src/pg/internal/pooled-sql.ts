/**
 * `PgSql`'s `SqlConnection` over one checkout of the pool ({@link PooledSql}): it runs the
 * statement on the driver's connection, bounds transaction control, turns a dead session into an
 * invalidated connection and a retryable error, refuses what would wait for itself, and on a
 * session shared across fibers (StaticPool) waits while another connection's transaction or
 * `reserve` owns it.
 *
 * @internal
 */
import { Cause, Effect, Result, Stream } from "effect"
import type { Connection as SqlConnection } from "effect/sql/SqlConnection"
import type { SqlError } from "effect/sql/SqlError"
import type { PooledConnection, Service as PoolService } from "../../ConnectionPool.ts"
import { ConnectionImpl, isUnsent } from "./connection.ts"
import { disconnected, isDisconnect, isRefusedMessage, refusedMessage } from "./errors.ts"
import { isLostPreparedStatement, lostPreparedStatement } from "./pooler.ts"
import { classify } from "./session.ts"
import type { Verdict } from "./session.ts"
import type { Session } from "./shared-session.ts"
import { commitOutcomeUnknown, controlExpired, handleClosed, selfDeadlock, unsent } from "./sql-errors.ts"

/** What a `ROLLBACK` on a dead session returns (nothing to roll back): one shared empty result. */
const noRows: ReadonlyArray<never> = []

/** Which of `SqlConnection`'s statement methods a statement came through (rows or values, prepared or not, raw). */
export type Ask = "rows" | "rows unprepared" | "raw" | "values" | "values unprepared"

/** effect/sql's row transform (column names), as its `SqlConnection` passes it. */
export type TransformRows = <A extends object>(row: ReadonlyArray<A>) => ReadonlyArray<A>

/** One statement as `SqlConnection`'s methods give it (text, parameters, which method, row transform). */
export type Send = (
  sql: string,
  params: ReadonlyArray<unknown>,
  ask: Ask,
  transformRows: TransformRows | undefined
) => Effect.Effect<unknown, SqlError>

/**
 * A failure the connection must answer: a disconnect, or any failure after which the driver knows
 * the session is closed (e.g. a FATAL 25P03 idle-in-transaction timeout): the connection is not
 * used again. (A session only retired after a cancel is not closed: an ordinary error leaves it to
 * its holders.) Also: one of the driver's named statements gone from the session (a
 * transaction-mode pooler the driver was not told about): an error that names the setting. And a
 * message the server refused (08P01, ERROR): the session goes on; not retryable.
 */
const mustHandle = (error: SqlError, connection: ConnectionImpl): boolean =>
  isDisconnect(error) || connection.isClosed || isLostPreparedStatement(error) || isRefusedMessage(error)

/** A result's rows, untransformed. */
const rowsOf = (result: { readonly rows: ReadonlyArray<unknown> }): ReadonlyArray<unknown> => result.rows

/** A pool over another driver than `PgDriver`: a defect (the layers are wired wrong). */
const notPgDriver = () =>
  Effect.die(new Error("PgSql needs a ConnectionPool over PgDriver (the raw connection is not a PgDriver.Connection)"))

/* eslint-disable @typescript-eslint/no-explicit-any -- effect/sql's `Connection` types rows as `any` */
/** `SqlConnection` over one checkout; disconnects invalidate the checkout and the pool. */
export class PooledSql implements SqlConnection {
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
    readonly pooled: PooledConnection<ConnectionImpl>,
    readonly pool: PoolService<ConnectionImpl>,
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
    run: (c: ConnectionImpl) => Effect.Effect<A, SqlError>,
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
    run: (c: ConnectionImpl) => Effect.Effect<A, SqlError>,
    onDeadRollback: A
  ): Effect.Effect<A, SqlError> {
    // What the statement is (cached per text; the connection reads the same verdict).
    return this.execWith(classify(sql), sql, run, onDeadRollback)
  }

  /**
   * A pipelined statement on this connection (a lane's: no stream, no shared session, no
   * transaction), its text classified by the router as autocommit-safe (no transaction control,
   * nothing to clean up): the driver call made now, inside the effect that runs it.
   */
  onLane(
    verdict: Verdict,
    sql: string,
    params: ReadonlyArray<unknown>,
    ask: Ask,
    transformRows: TransformRows | undefined
  ): Effect.Effect<unknown, SqlError> {
    if (!this.pooled.isValid || this.ended) return Effect.fail(unsent(handleClosed("execute")))
    const c = this.pooled.connection
    if (!(c instanceof ConnectionImpl)) return notPgDriver()
    let statement: Effect.Effect<unknown, SqlError>
    switch (ask) {
      case "rows":
      case "rows unprepared":
        statement = Effect.map(
          c.send(verdict, sql, params, c.native.query(sql, params, ask === "rows")),
          transformRows === undefined ? rowsOf : (r) => transformRows(r.rows as ReadonlyArray<object>)
        )
        break
      case "raw":
        statement = c.send(verdict, sql, params, c.native.query(sql, params))
        break
      case "values":
      case "values unprepared":
        statement = c.send(verdict, sql, params, c.native.queryValues(sql, params, ask === "values"))
    }
    return Effect.catchCause(statement, this.laneFailure ??= (cause) => this.laneFailed(c, cause))
  }

  /** {@link PooledSql.laneFailed} on this lane's connection, made once (its statements share it). */
  private laneFailure: ((cause: Cause.Cause<SqlError>) => Effect.Effect<void, SqlError>) | undefined = undefined

  /** A lane's statement failed: as {@link PooledSql.failed}, without a `catchIf` per statement. */
  private laneFailed(connection: ConnectionImpl, cause: Cause.Cause<SqlError>): Effect.Effect<void, SqlError> {
    const found = Cause.findError(cause)
    if (Result.isFailure(found) || Cause.hasDies(cause)) return Effect.failCause(cause)
    return mustHandle(found.success, connection)
      ? this.failed(found.success, connection, false, false)
      : Effect.failCause(cause)
  }

  private execWith<A>(
    verdict: Verdict,
    sql: string,
    run: (c: ConnectionImpl) => Effect.Effect<A, SqlError>,
    onDeadRollback: A
  ): Effect.Effect<A, SqlError> {
    // A cleanup statement (`ROLLBACK`, `RELEASE SAVEPOINT`...) has nothing left to do on a dead
    // session (the server rolls back the transaction of a session that ended).
    if (!this.pooled.isValid || this.ended) {
      if (verdict.cleanup) return Effect.succeed(onDeadRollback)
      // Not sent: a statement of the pool's (not a transaction's) goes to a fresh session.
      return Effect.fail(this.owns ? handleClosed("execute") : unsent(handleClosed("execute")))
    }
    const connection = this.pooled.connection
    if (!(connection instanceof ConnectionImpl)) return notPgDriver()
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
      (error) => mustHandle(error, connection),
      (error) => Effect.as(this.failed(error, connection, committing, verdict.cleanup), onDeadRollback)
    )
  }

  /**
   * A statement failed with an error {@link mustHandle} picks: the connection is invalidated (and
   * the pool's other idle ones on a disconnect), and the error named for the caller; a `cleanup`
   * statement on a dead session succeeds instead (nothing left to roll back).
   */
  private failed(
    error: SqlError,
    connection: ConnectionImpl,
    committing: boolean,
    cleanup: boolean
  ): Effect.Effect<void, SqlError> {
    if (!connection.isClosed && isLostPreparedStatement(error)) {
      return Effect.fail(lostPreparedStatement(error))
    }
    if (!connection.isClosed && isRefusedMessage(error)) return Effect.fail(refusedMessage(error, "execute"))
    const disconnect = isDisconnect(error)
    // Never sent (the driver closed the session before it went out): not an unknown COMMIT,
    // and a statement of the pool's goes to a fresh session (see `borrower`).
    const notSent = isUnsent(error)
    const invalidate = this.pooled.invalidate(error, "statement")
    const invalidated = disconnect ? Effect.andThen(invalidate, this.pool.invalidateAll) : invalidate
    if (cleanup) return invalidated
    return Effect.andThen(
      invalidated,
      Effect.fail(
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

  execute(
    sql: string,
    params: ReadonlyArray<unknown>,
    transformRows: (<A extends object>(row: ReadonlyArray<A>) => ReadonlyArray<A>) | undefined
  ) {
    return this.query(sql, params, transformRows, true)
  }
  executeUnprepared(
    sql: string,
    params: ReadonlyArray<unknown>,
    transformRows: (<A extends object>(row: ReadonlyArray<A>) => ReadonlyArray<A>) | undefined
  ) {
    return this.query(sql, params, transformRows, false)
  }
  /** Rows keyed by column, transformed; `prepare`: through the driver's named-statement cache. */
  private query(
    sql: string,
    params: ReadonlyArray<unknown>,
    transformRows: (<A extends object>(row: ReadonlyArray<A>) => ReadonlyArray<A>) | undefined,
    prepare: boolean
  ) {
    return this.guard(
      sql,
      (c) =>
        Effect.map(
          c.query(sql, params, prepare),
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
    const rows = this.pooled.connection.stream(sql, params).pipe(
      Stream.mapError((error) => isRefusedMessage(error) ? refusedMessage(error, "stream") : error),
      Stream.catchIf(isDisconnect, (error) =>
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
