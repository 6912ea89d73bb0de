/**
 * One pooled PostgreSQL session over `@effect/sql-pg`'s native `PgConnection`: the raw
 * connection `PgDriver` hands the pool. It knows whether the session is outside a transaction,
 * whether it may hold session state, and whether it is already dead, and it bounds what an
 * interrupted statement waits for. `PgDriver` re-exports {@link Connection}.
 *
 * @internal
 */
import type { PgConnection } from "@effect/sql-pg"
import { Effect, Fiber, Stream } from "effect"
import type { Queue, Scope } from "effect"
import { ConnectionError, isSqlError, SqlError } from "effect/sql/SqlError"
import { unsendable } from "./encoding.ts"
import { disconnected, isDisconnect, unknownError } from "./errors.ts"
import { sessionStateRefused } from "./pooler.ts"
import { classify } from "./session.ts"
import type { Verdict } from "./session.ts"
import type { Config } from "./settings.ts"
import * as SqlPg from "./sql-pg-internals.ts"
import { type SessionWatch, watchOf } from "./target-session.ts"

/** Default `PgDriver` `cancelTimeout`, in milliseconds. */
export const defaultCancelMillis = 30

/** `@effect/sql-pg` sends its cancel request this long after an interrupt (`abortDrainGraceMillis`). */
const driverCancelGraceMillis = 10

/**
 * The session was closed because an interrupted statement (or pre-ping, `graceMs` 0) did not
 * stop in time, or (`request`) the cancel request sent for it was not confirmed in time.
 */
const unconfirmedCancel = (graceMs: number, request = false): SqlError => {
  const what = graceMs <= 0
    ? "an interrupted pre-ping (no answer within the bound)"
    : request
    ? `the cancel request for an interrupted statement was not confirmed within ${graceMs} ms (cancelTimeout)`
    : `an interrupted statement did not stop within ${graceMs} ms (cancelTimeout)`
  return new SqlError({
    reason: new ConnectionError({
      cause: new Error(what),
      message: `PgDriver: the session was closed: ${what}`,
      operation: "query"
    })
  })
}

/** Errors of statements that never left the client: the session was closed before they were sent. */
const unsent = new WeakSet<SqlError>()

/** A copy of `error` marked never sent ({@link isUnsent}). */
const unsentCopy = (error: SqlError): SqlError => {
  const copy = new SqlError({ reason: error.reason })
  unsent.add(copy)
  return copy
}

/**
 * Did this statement fail without ever leaving the client (its session was closed by this
 * driver before it was sent)? Such a statement can be sent again on another session.
 * @internal
 */
export const isUnsent = (error: unknown): boolean => isSqlError(error) && unsent.has(error)

/**
 * The statement to clear session state on return. Never through a transaction-mode pooler
 * (PgBouncer): there the server session is not ours between transactions and the pooler runs its
 * own `server_reset_query` (`pooler: "transaction"` forces `sessionReset: "none"`).
 */
const discardStatement = "DISCARD ALL"

/**
 * One pooled PostgreSQL session: the raw connection a `ConnectionPool` over {@link layer}
 * hands out (`pooled.connection`). Made by the driver only (`instanceof PgDriver.Connection` tells one).
 *
 * It tracks whether the session is known to be outside a transaction, so reset on return can
 * skip its `ROLLBACK`. The rule is conservative: the session starts known-idle; a statement run
 * through {@link Connection.query} / `queryValues` / `stream` keeps it known-idle only when its
 * text is a single `SELECT`/`INSERT`/`UPDATE`/`DELETE`/`WITH`/`VALUES`/`TABLE`/`SHOW` statement
 * (read with PostgreSQL's lexical rules: comments are blanks, a `;` in a literal is no
 * separator); anything else makes the state unknown until a `COMMIT` / `ROLLBACK` (exactly
 * that, no `AND CHAIN`) succeeds. Reading {@link Connection.pg} (the
 * untracked session) makes the state unknown for good, until the next reset.
 *
 * With `sessionReset: "auto"` it also tracks whether a statement may have changed session state
 * ({@link Connection.sessionDirty}); such a session gets `DISCARD ALL` on return. Behind a
 * transaction-mode pooler (`pooler: "transaction"`) such a statement is refused before it is sent
 * (a `SqlError` whose cause is a `TransactionPoolerError` naming the feature), `DO` and `CALL`
 * excepted. Both read the same verdict: see `PgDriver.touchesSessionState`.
 *
 * @category models
 * @since 0.1.0
 */
export abstract class Connection {
  /** Backend process id (`pg_backend_pid()`). */
  abstract get processId(): number

  /**
   * The native session, untracked. Using it is fine; the pool then no longer assumes the
   * session is outside a transaction and resets it on return (with `sessionReset: "auto"`, a
   * `DISCARD ALL` too).
   */
  abstract get pg(): PgConnection.PgConnection

  /** Known to be outside a transaction (so the reset on return can be skipped). */
  abstract get knownIdle(): boolean

  /**
   * A statement since the last reset may have changed session state (`sessionReset: "auto"`
   * only; `"none"` and `"always"` do not look): see {@link touchesSessionState}. Reading
   * {@link Connection.pg} or calling {@link Connection.listen} makes it `true`.
   */
  abstract get sessionDirty(): boolean

  /** Will the next reset send `DISCARD ALL`? */
  abstract get needsDiscard(): boolean

  /**
   * Why the session is dead, when the driver already knows (socket closed, fatal error, or
   * retired after an unconfirmed cancel); `undefined` otherwise. Best effort: a session can be
   * dead without this knowing.
   */
  abstract get deadError(): SqlError | undefined

  /**
   * The driver already knows the session is dead ({@link Connection.deadError} is set): checked
   * synchronously at checkout (`DriverShape.isDead`), no round trip.
   */
  abstract get isDead(): boolean

  /** Run a statement (rows keyed by column), tracking the transaction state. */
  abstract query(
    sql: string,
    params?: ReadonlyArray<unknown>,
    prepare?: boolean
  ): Effect.Effect<PgConnection.Result, SqlError>

  /** Run a statement (positional rows), tracking the transaction state. */
  abstract queryValues(
    sql: string,
    params?: ReadonlyArray<unknown>,
    prepare?: boolean
  ): Effect.Effect<ReadonlyArray<ReadonlyArray<unknown>>, SqlError>

  /** Stream rows, tracking the transaction state. */
  abstract stream(sql: string, params?: ReadonlyArray<unknown>): Stream.Stream<PgConnection.Row, SqlError>

  /** `LISTEN` on a channel until the scope closes (does not touch the transaction state; marks the session dirty). */
  abstract listen(
    channel: string
  ): Effect.Effect<Queue.Dequeue<PgConnection.Notification, SqlError>, SqlError, Scope.Scope>

  /**
   * Reset on return: the `ROLLBACK`/`COMMIT`, skipped when known idle, then `DISCARD ALL` when
   * {@link Connection.needsDiscard}; fails at once when the session is known dead.
   */
  abstract reset(statement: "ROLLBACK" | "COMMIT"): Effect.Effect<void, SqlError>

  /**
   * The cheapest round trip: an empty query (Parse/Bind/Execute of "" → EmptyQueryResponse). A
   * session known dead fails at once, as a disconnect; an interrupted ping (the pool's
   * `connectTimeout` bound) closes the socket at once. A watched standby session whose reply
   * reported that its server left recovery fails it too (see `SessionWatch`).
   */
  abstract get ping(): Effect.Effect<void, SqlError>
}

/** The {@link Connection} `PgDriver` makes, with what the pool, `PgSql` and the pipelined mode use of it. */
export class ConnectionImpl extends Connection {
  /** Known to be outside a transaction. */
  private idle = true
  private retired = false
  /** A statement may have changed session state since the last reset (`"auto"`). */
  private dirty = false
  /** Why this driver closed the socket itself (a bound expired, an interrupt went unconfirmed). */
  private killedWith: SqlError | undefined = undefined
  /** What this package reaches of `@effect/sql-pg`'s internals for this session (`sql-pg-internals.ts`). */
  private readonly sqlPg: SqlPg.Access
  /**
   * What a statement gets, never sent, from a session this driver closed ({@link ConnectionImpl.kill})
   * or the driver saw die (told by its retire hook).
   */
  private refusedWith: SqlError | undefined = undefined
  /** A session accepted as a standby: is it still one (`targetSessionAttrs`)? See `SessionWatch`. */
  private readonly watch: SessionWatch | undefined
  /** `PgDriver` `cancelTimeout` in ms (`Infinity`: the driver's own drain). */
  cancelMillis = defaultCancelMillis
  /**
   * The driver's cancel of this session is bounded in place ({@link ConnectionImpl.boundCancel}):
   * statements run in the caller's fiber. `false` (another `@effect/sql-pg`): each statement runs
   * in a fiber of its own ({@link ConnectionImpl.interruptibly}).
   */
  private readonly cancelBounded: boolean
  /** Transaction-control bound ({@link ConnectionImpl.within}): deadline (`Date.now()` ms), its error, one lazy timer. */
  private controlDeadline = Infinity
  private controlExpired: (() => SqlError) | undefined = undefined
  private controlTimer: ReturnType<typeof setTimeout> | undefined = undefined

  constructor(
    readonly native: PgConnection.PgConnection,
    readonly scope: Scope.Closeable,
    readonly alwaysReset = false,
    readonly sessionReset: Config.SessionReset = "auto",
    /** Behind a transaction-mode pooler (`pooler: "transaction"`): statements that would leave session state are refused. */
    readonly transactionPooler = false
  ) {
    super()
    this.sqlPg = SqlPg.access(native)
    this.sqlPg.onRetire?.(() => {
      this.retired = true
      // Retired because the driver saw the session die (not for a late cancel): from now on a
      // statement fails at once with a copy of the death's error marked never sent; the driver
      // would fail it with the error of the statements that were on the wire, which may have run.
      const dead = this.sqlPg.deadError?.()
      if (dead !== undefined && this.refusedWith === undefined) this.refusedWith = unsentCopy(dead)
    })
    this.cancelBounded = this.boundCancel()
    this.watch = watchOf(native)
  }

  /**
   * Bound the wait of an interrupted statement without a fiber per statement. `@effect/sql-pg`
   * drains an interrupted statement in the interrupted fiber, holding the session: it waits
   * 10 ms (`abortDrainGraceMillis`), then runs the session's `cancel` (a CancelRequest on a side
   * connection, up to 5 s) and waits for the statement to end (up to 5 s more). The session's
   * `cancel` is replaced here: it waits for the cancel request to be done (the server closes the
   * side connection once it has signalled the backend), and one timer closes the socket
   * `cancelTimeout` after the interrupt if the request is not done by then, or the interrupted
   * statement still runs (closing the socket ends the drain: the interrupt returns).
   *
   * The wait is a fence. A cancel request cancels whatever the backend runs when it arrives, so
   * the next statement must not go out before it has arrived: it would be cancelled in place of
   * the interrupted one. The session is held meanwhile (the drain holds it), and a session whose
   * request is not confirmed in time is closed, never used again. Statements themselves cost
   * nothing extra. `false` when the driver's internals are not as expected.
   */
  private boundCancel(): boolean {
    const site = this.sqlPg.cancel
    // Without a way to close the socket, the timer could not end the drain: a fiber per statement.
    if (site === undefined || this.sqlPg.close === undefined) return false
    const original = site.original
    site.replace(Effect.suspend(() => {
      // No retire hook to tell when a late cancel may still land: retire every cancelled session.
      if (this.sqlPg.onRetire === undefined) this.retired = true
      const graceMs = this.cancelMillis
      if (!Number.isFinite(graceMs)) return original
      // The statement being drained: the socket is closed for it only if it is still the one on the wire.
      const draining = site.onWire()
      return Effect.flatMap(
        Effect.forkDetach(original, { startImmediately: true }),
        (request) =>
          Effect.callback<void>((resume) => {
            let waiting = true
            const done = () => {
              if (!waiting) return
              waiting = false
              resume(Effect.void)
            }
            const timer = setTimeout(() => {
              const unconfirmed = request.pollUnsafe() === undefined
              if (unconfirmed || (draining !== undefined && site.onWire() === draining)) {
                this.kill(unconfirmedCancel(graceMs, unconfirmed && site.onWire() !== draining))
              }
              done()
            }, Math.max(0, graceMs - driverCancelGraceMillis))
            // Not what keeps a process alive: the interrupted statement's socket does.
            if (typeof timer === "object" && typeof timer.unref === "function") timer.unref()
            // The request is done: the drain goes on (the timer still bounds it).
            if (request.pollUnsafe() !== undefined) done()
            else request.addObserver(done)
          })
      )
    }))
    return true
  }

  /** The `@effect/sql-pg` internals not found for this session (`sql-pg-internals.ts`). */
  get missingInternals(): ReadonlyArray<SqlPg.Internal> {
    return this.sqlPg.missing
  }

  /**
   * Switch the driver's multiplexed mode for this session (a pipeline lane of
   * `PgSql.layer({ pipeline })`): `false` when this `@effect/sql-pg` lacks it (statements then
   * run one at a time). Only while the session holds no statement of an exclusive borrower.
   */
  setPipelined(on: boolean): boolean {
    const multiplex = this.sqlPg.multiplex
    if (multiplex === undefined) return false
    multiplex.set(on)
    return true
  }

  /** No pipelined statement (even an abandoned one) is queued or on the wire. */
  get pipelineIdle(): boolean {
    return this.sqlPg.multiplex?.isIdle() ?? true
  }

  /** Wait until no pipelined statement is queued or on the wire. */
  get awaitPipelineIdle(): Effect.Effect<void> {
    return this.sqlPg.multiplex?.idle ?? Effect.void
  }

  /** The connection is closed: stop its timers. */
  disarm(): void {
    this.controlDeadline = Infinity
    if (this.controlTimer !== undefined) clearTimeout(this.controlTimer)
    this.controlTimer = undefined
  }

  override get processId(): number {
    return this.native.processId
  }

  override get pg(): PgConnection.PgConnection {
    this.idle = false
    if (this.sessionReset === "auto") this.dirty = true
    return this.native
  }

  override get knownIdle(): boolean {
    return this.idle
  }

  override get sessionDirty(): boolean {
    return this.dirty
  }

  override get needsDiscard(): boolean {
    return this.sessionReset === "always" || this.dirty
  }

  override get deadError(): SqlError | undefined {
    const dead = this.sqlPg.deadError?.()
    if (dead !== undefined) return dead
    if (this.killedWith !== undefined) return this.killedWith
    const mismatch = this.mismatch
    if (mismatch !== undefined) return mismatch
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

  override get isDead(): boolean {
    return this.retired || this.killedWith !== undefined || this.sqlPg.deadError?.() !== undefined ||
      (this.watch !== undefined && this.watch.mismatch !== undefined)
  }

  /**
   * The session was accepted as a standby and its server has since left recovery (see
   * `PgDriver.Config.TargetSessionAttrs`): the error its statements and checkouts fail with.
   */
  private get mismatch(): SqlError | undefined {
    const mismatch = this.watch?.mismatch
    if (mismatch === undefined) return undefined
    return new SqlError({
      reason: new ConnectionError({
        cause: mismatch,
        message: `PgDriver: the session is retired: ${mismatch.message} (its server left recovery)`,
        operation: "query"
      })
    })
  }

  /** A statement of a watched session: fails when its reply reported that the server left recovery. */
  private readonly checkWatch = <A>(value: A): Effect.Effect<A, SqlError> => {
    const mismatch = this.mismatch
    return mismatch === undefined ? Effect.succeed(value) : Effect.fail(mismatch)
  }

  /**
   * Close the socket now: the statement on the wire (if any) fails at once with `error`, and the
   * session is dead (`deadError` equals `error`). Statements queued for the session, and any sent
   * to it later, fail with an equal error marked never sent ({@link isUnsent}): they never
   * reached the server, so running them on another session is safe. Synchronous; never waits
   * for the server.
   */
  kill(error: SqlError): void {
    if (this.killedWith !== undefined) return
    this.killedWith = error
    this.refusedWith = unsentCopy(error)
    // The statement on the wire is told `error`, the statements queued behind it (never written)
    // the copy marked never sent (`sql-pg-internals.ts` `close`: with `base.fatal`; without it,
    // destroying the socket fails them all with "Connection closed"; without either, the session
    // is only marked closed and the pool closes it).
    this.sqlPg.close?.(error, this.refusedWith)
  }

  /**
   * The session's socket is closed (this driver closed it, or the driver saw it die). A session
   * only retired ({@link Connection.isDead}: not to be handed out again) is not closed: it serves
   * its current holders.
   */
  get isClosed(): boolean {
    return this.killedWith !== undefined || this.sqlPg.deadError?.() !== undefined
  }

  /**
   * Run `effect` (a statement of this session) bounded by `millis`: past it the socket is closed
   * ({@link ConnectionImpl.kill}) and the statement fails with `expired()`. Works where interruption
   * cannot (a transaction's COMMIT/ROLLBACK runs uninterruptibly).
   */
  within<A>(effect: Effect.Effect<A, SqlError>, millis: number, expired: () => SqlError): Effect.Effect<A, SqlError> {
    if (!Number.isFinite(millis)) return effect
    if (this.sqlPg.close === undefined) return this.abandonAfter(effect, millis, expired)
    return Effect.suspend(() => {
      // One lazy timer per session instead of arming and clearing a timer for every BEGIN /
      // COMMIT (this runs for every transaction-control statement): a statement sets the deadline
      // and clears it when it ends; the timer, when it fires, re-arms for a later deadline or
      // closes the socket of one that passed.
      this.controlDeadline = Date.now() + millis
      this.controlExpired = expired
      if (this.controlTimer === undefined) this.armControl(millis)
      return Effect.onExitPrimitive(effect, this.endControl)
    })
  }

  /**
   * {@link ConnectionImpl.within} when the socket cannot be closed (`@effect/sql-pg`'s internals
   * missing): the statement runs in a fiber of its own, left behind at the deadline; the session
   * is then marked dead (the pool closes it).
   */
  private abandonAfter<A>(
    effect: Effect.Effect<A, SqlError>,
    millis: number,
    expired: () => SqlError
  ): Effect.Effect<A, SqlError> {
    return Effect.flatMap(
      Effect.forkDetach(effect, { startImmediately: true }),
      (fiber) =>
        Effect.callback<A, SqlError>((resume) => {
          let stop: (() => void) | undefined = undefined
          const timer = setTimeout(() => {
            stop?.()
            const error = expired()
            this.kill(error)
            resume(Effect.fail(error))
          }, millis)
          stop = fiber.addObserver((exit) => {
            clearTimeout(timer)
            resume(exit)
          })
          return Effect.sync(() => {
            clearTimeout(timer)
            stop?.()
            fiber.interruptUnsafe()
          })
        })
    )
  }

  private readonly endControl = (): undefined => {
    this.controlDeadline = Infinity
    return undefined
  }

  private armControl(millis: number): void {
    const timer = setTimeout(this.checkControl, millis)
    // Not what keeps a process alive: the socket of the statement in flight does.
    if (typeof timer === "object" && typeof timer.unref === "function") timer.unref()
    this.controlTimer = timer
  }

  private readonly checkControl = (): void => {
    this.controlTimer = undefined
    const deadline = this.controlDeadline
    if (deadline === Infinity) return
    const left = deadline - Date.now()
    if (left > 0) return this.armControl(left)
    this.controlDeadline = Infinity
    this.kill(this.controlExpired!())
  }

  /**
   * Run a native statement so that an interrupt returns within `graceMs`: the statement runs in
   * a fiber of its own; an interrupt interrupts that fiber (the driver's cancel request and
   * drain go on in the background) and waits for it at most `graceMs`, then closes the socket and
   * returns. With `graceMs` 0 the socket is closed at once (a pre-ping: silence means dead).
   */
  private interruptibly<A>(effect: Effect.Effect<A, SqlError>, graceMs: number): Effect.Effect<A, SqlError> {
    if (!Number.isFinite(graceMs)) return effect
    return Effect.uninterruptibleMask((restore) =>
      Effect.flatMap(Effect.forkDetach(effect, { startImmediately: true }), (fiber) => {
        const done = fiber.pollUnsafe()
        if (done !== undefined) return done
        return Effect.onInterrupt(restore(Fiber.join(fiber)), () => this.abandon(fiber, graceMs))
      })
    )
  }

  private abandon(fiber: Fiber.Fiber<unknown, SqlError>, graceMs: number): Effect.Effect<void> {
    const unconfirmed = () => unconfirmedCancel(graceMs)
    return Effect.callback<void>((resume) => {
      // No retire hook to tell when a late cancel may still land: retire every cancelled session.
      if (this.sqlPg.onRetire === undefined) this.retired = true
      if (graceMs <= 0) {
        this.kill(unconfirmed())
        fiber.interruptUnsafe()
        return resume(Effect.void)
      }
      fiber.interruptUnsafe()
      if (fiber.pollUnsafe() !== undefined) return resume(Effect.void)
      let stopObserving: (() => void) | undefined = undefined
      const timer = setTimeout(() => {
        stopObserving?.()
        this.kill(unconfirmed())
        resume(Effect.void)
      }, graceMs)
      stopObserving = fiber.addObserver(() => {
        clearTimeout(timer)
        resume(Effect.void)
      })
    })
  }

  /**
   * Bookkeeping before a statement runs, from its {@link classify} verdict (cached per text): the
   * transaction state, and the `"auto"` dirty mark. Through a transaction-mode pooler, a
   * statement that would leave session state is refused instead: the error, or `undefined`.
   */
  private see(verdict: Verdict): SqlError | undefined {
    const change = verdict.sessionChange
    if (change !== undefined) {
      if (this.transactionPooler && change !== "routine") return sessionStateRefused(change)
      if (this.sessionReset === "auto") this.dirty = true
    }
    if (this.idle && !verdict.autocommitSafe) this.idle = false
    return undefined
  }

  /**
   * A statement of the user's (`native`: the driver call, made only if it runs), with the
   * bookkeeping of {@link ConnectionImpl.see}. Bounded on interrupt (`PgDriver` `cancelTimeout`);
   * on a session this driver closed, it fails at once (the closed statement's cancel request may
   * still hold the native session for a few seconds: nothing may queue behind it), as on one the
   * driver saw die, marked never sent (another session may run it: a pipelined statement that
   * took a shared connection in the moment between its death and its removal). Text the
   * protocol cannot carry fails at once too, with nothing sent (`encoding.ts`).
   */
  private statement<A>(
    sql: string,
    params: ReadonlyArray<unknown>,
    native: () => Effect.Effect<A, SqlError>
  ): Effect.Effect<A, SqlError> {
    return Effect.suspend(() => this.send(classify(sql), sql, params, native()))
  }

  /**
   * {@link ConnectionImpl.statement} now, with the text's verdict already known (a pipelined
   * statement, classified by its router): call it inside the effect that runs it. `native` is
   * the driver's statement (not run when the statement is refused).
   */
  send<A>(
    verdict: Verdict,
    sql: string,
    params: ReadonlyArray<unknown>,
    native: Effect.Effect<A, SqlError>
  ): Effect.Effect<A, SqlError> {
    const unsent = unsendable(sql, params)
    if (unsent !== undefined) return Effect.fail(unsent)
    const refused = this.see(verdict)
    if (refused !== undefined) return Effect.fail(refused)
    const sent = this.refusedWith !== undefined
      ? Effect.fail(this.refusedWith)
      : this.cancelBounded
      ? native
      : this.interruptibly(native, this.cancelMillis)
    const run = this.watch !== undefined && this.watch.failsStatements ? Effect.flatMap(sent, this.checkWatch) : sent
    // A `DISCARD ALL` / `DEALLOCATE` of the borrower's own (e.g. the PgBouncer-style `onReset`
    // hook): the server no longer has the driver's statements, so neither may the cache.
    if (verdict.dropsStatements) {
      return Effect.tap(run, () =>
        Effect.sync(() => {
          const statements = this.sqlPg.preparedStatements()
          // Not found: the reset will close the session rather than hand out a stale cache.
          if (statements === undefined) return void (this.dirty = true)
          statements.clear()
          // A whole `DISCARD ALL` that succeeded: the session is as clean as a reset leaves it.
          if (verdict.discardsAll) this.dirty = false
        }))
    }
    // Still known idle after `see`: an autocommit-safe statement, it cannot end a transaction.
    if (this.idle || !verdict.endsTransaction) return run
    return Effect.tap(run, () =>
      Effect.sync(() => {
        this.idle = true
      }))
  }

  override query(
    sql: string,
    params: ReadonlyArray<unknown> = [],
    prepare = true
  ): Effect.Effect<PgConnection.Result, SqlError> {
    return this.statement(sql, params, () => this.native.query(sql, params, prepare))
  }

  override queryValues(
    sql: string,
    params: ReadonlyArray<unknown> = [],
    prepare = true
  ): Effect.Effect<ReadonlyArray<ReadonlyArray<unknown>>, SqlError> {
    return this.statement(sql, params, () => this.native.queryValues(sql, params, prepare))
  }

  override stream(sql: string, params: ReadonlyArray<unknown> = []): Stream.Stream<PgConnection.Row, SqlError> {
    return Stream.suspend(() => {
      if (this.killedWith !== undefined) return Stream.fail(this.killedWith)
      const unsent = unsendable(sql, params)
      if (unsent !== undefined) return Stream.fail(unsent)
      const refused = this.see(classify(sql))
      return refused !== undefined ? Stream.fail(refused) : this.native.stream(sql, params)
    })
  }

  override listen(
    channel: string
  ): Effect.Effect<Queue.Dequeue<PgConnection.Notification, SqlError>, SqlError, Scope.Scope> {
    return Effect.suspend(() => {
      if (this.sessionReset === "auto") this.dirty = true
      return this.native.listen(channel)
    })
  }

  override reset(statement: "ROLLBACK" | "COMMIT"): Effect.Effect<void, SqlError> {
    return Effect.suspend(() => {
      const dead = this.deadError
      if (dead !== undefined) return Effect.fail(dead)
      const discard = this.needsDiscard
      if (this.idle && !this.alwaysReset) return discard ? this.discard : Effect.void
      const end = Effect.flatMap(this.query(statement), (result) => {
        this.idle = true
        return statement === "COMMIT" && result.command === "ROLLBACK"
          ? Effect.logDebug("PgDriver: reset COMMIT rolled back an aborted transaction")
          : Effect.void
      })
      return discard ? Effect.andThen(end, this.discard) : end
    })
  }

  /**
   * `DISCARD ALL` (outside a transaction: after the rollback/commit), then forget the driver's
   * prepared statements, which it deallocated. Fails without a round trip when the statement
   * cache cannot be found: the pool then closes the session (as clean as a discarded one).
   */
  private get discard(): Effect.Effect<void, SqlError> {
    return Effect.suspend(() => {
      const statements = this.sqlPg.preparedStatements()
      if (statements === undefined) {
        return Effect.fail(unknownError(
          new Error("@effect/sql-pg's prepared-statement cache was not found"),
          "PgDriver: cannot clear the prepared-statement cache after DISCARD ALL; closing the session instead",
          "reset"
        ))
      }
      // Unnamed (prepare = false): nothing of its own to leave in the cache.
      const discard = this.native.query(discardStatement, [], false)
      return Effect.map(this.cancelBounded ? discard : this.interruptibly(discard, this.cancelMillis), () => {
        statements.clear()
        this.idle = true
        this.dirty = false
      })
    })
  }

  override get ping(): Effect.Effect<void, SqlError> {
    return Effect.suspend(() => {
      const dead = this.deadError
      if (dead !== undefined) return Effect.fail(isDisconnect(dead) ? dead : disconnected(dead, "ping"))
      const ping = Effect.asVoid(this.interruptibly(this.native.query("", [], false), 0))
      return this.watch === undefined ? ping : Effect.flatMap(ping, this.checkWatch)
    })
  }
}
