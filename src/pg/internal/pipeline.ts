/**
 * Pipeline lanes for `PgSql.layer({ pipeline })`: autocommit statements from many fibers share a
 * few connections checked out of the pool, each lane a session in `@effect/sql-pg`'s multiplexed
 * mode (every statement its own Parse/Bind/Execute/Sync cycle, so an error skips only to its own
 * `Sync`: a failing neighbour never fails it).
 *
 * - A statement takes the lane with the fewest statements in flight, below `maxInFlight`; when
 *   every lane is full another connection is checked out (up to `maxConnections`); past that it
 *   waits for room.
 * - A lane goes back to the pool when its last statement ends (after every statement it carried,
 *   abandoned ones included, has left the wire; multiplexing is switched off first), or when it
 *   died. An exclusive checkout waiting (a transaction, `reserve`, a stream, a session-changing
 *   statement) has priority: lanes take no new statement until it has its connection.
 * - Interrupting a pipelined statement discards its result; the server still runs it (a cancel
 *   request would cancel whichever statement the backend runs then: possibly a neighbour's).
 *
 * @internal
 */
import { Cause, Context, Effect, Exit, Metric, Queue, Result, Scope, Stream } from "effect"
import type { SqlError } from "effect/sql/SqlError"
import type { PooledConnection, Service as PoolService } from "../../ConnectionPool.ts"
import { leakWatchOf, Unwatched } from "../../internal/leaks.ts"
import type { LeakWatch } from "../../internal/leaks.ts"
import type { CheckoutError } from "../../PoolError.ts"
import * as PoolMetrics from "../../PoolMetrics.ts"
import type { ConnectionImpl as Connection } from "./connection.ts"
import type { Ask, PooledSql, Send, TransformRows } from "./pooled-sql.ts"
import { classify } from "./session.ts"
import type { Verdict } from "./session.ts"
import { unsentRetries, wasUnsent } from "./sql-errors.ts"

/**
 * Work marked exclusive (`PgSql.exclusive(effect)`): under `pipeline` its statements get a
 * connection of their own (cancellable on interrupt), as without the mode. `false` by default.
 */
export const Exclusive = Context.Reference<boolean>("effect-db-pool/pg/Exclusive", { defaultValue: () => false })

/** One connection serving pipelined statements. */
export interface Lane {
  readonly pooled: PooledConnection<Connection>
  readonly sql: PooledSql
  readonly scope: Scope.Closeable
  /** Statements of this lane whose callers still wait for them. */
  inFlight: number
  /** Left the lane list: takes no statement. */
  closed: boolean
  /** Handed back to the pool (or on its way). */
  released: boolean
  /** Empty, to be handed back after the callers it served had a turn. */
  lingering: boolean
  /** Statements it carried. */
  statements: number
}

/** Pipelined work on one connection, as {@link Lanes.status} reports it. */
export interface LaneStatus {
  /** The server backend's process id (`pg_backend_pid()`). */
  readonly processId: number
  /** Pipelined statements sent or queued on it whose callers wait for them. */
  readonly inFlight: number
  /** Statements it carried since it began to serve pipelined statements. */
  readonly statements: number
}

/**
 * A connection of the pool began (`open`) or stopped (`close`) serving pipelined statements
 * (`PgSql.pipelineEvents`); `close` says how many statements it carried, how many were still in
 * flight and why: `idle` (its last statement ended), `exclusive` (emptied for a transaction,
 * `reserve`, stream or session-changing statement waiting for the pool), `broken` (its session
 * died: the statements in flight on it failed), `client closed`. `PgSql` re-exports it as
 * `PipelineEvent`.
 *
 * @category models
 * @since 0.2.0
 */
export type LaneEvent =
  | {
    /** It began to serve pipelined statements. */
    readonly type: "open"
    /** The pool's `name`. */
    readonly pool: string
    /** The server backend's process id (`pg_backend_pid()`). */
    readonly processId: number
  }
  | {
    /** It stopped serving pipelined statements (back to the pool, or closed). */
    readonly type: "close"
    /** The pool's `name`. */
    readonly pool: string
    /** The server backend's process id (`pg_backend_pid()`). */
    readonly processId: number
    /** Statements it carried. */
    readonly statements: number
    /** Statements still in flight on it (a broken connection fails them; a closing client abandons them). */
    readonly inFlight: number
    /** Why it stopped. */
    readonly reason: "idle" | "exclusive" | "broken" | "client closed"
  }

/** Why a connection stopped serving pipelined statements. */
export type LaneEndReason = Extract<LaneEvent, { readonly type: "close" }>["reason"]

/**
 * How long an exclusive checkout that found room in the pool may take before lanes drain for it
 * if it waits in the pool (another fiber took the room first), ms; it looks again as often.
 */
const exclusiveGraceMillis = 20

/** How many events one {@link Lanes.events} subscriber may have waiting before newer ones are dropped. */
const eventBufferSize = 1024

/** Bounds of the pipeline (validated by `PgSql`). */
export interface Bounds {
  readonly maxInFlight: number
  readonly maxConnections: number
}

export class Lanes {
  private readonly lanes: Array<Lane> = []
  /** Statements sent pipelined, and those of them whose caller was interrupted (for the metrics). */
  private statements = 0
  private abandoned = 0
  private opening = 0
  private readonly waiters = new Set<() => void>()
  /** Exclusive checkouts waiting for the pool: lanes take nothing new meanwhile. */
  private exclusiveWaiting = 0
  /**
   * With the pool's `leakDetectionThreshold`: a lane is not a leak while it serves statements
   * (checked out unwatched); each statement held on its lane past the threshold is reported.
   */
  private readonly leakWatch: LeakWatch | undefined

  constructor(
    readonly pool: PoolService<Connection>,
    readonly bounds: Bounds,
    readonly connect: (pooled: PooledConnection<Connection>) => PooledSql,
    readonly checkoutError: (error: CheckoutError) => SqlError
  ) {
    this.leakWatch = leakWatchOf(pool as PoolService<unknown>)
  }

  /** The lanes now open, with their in-flight counts. */
  status(): ReadonlyArray<LaneStatus> {
    return this.lanes.map((lane) => ({
      processId: lane.pooled.connection.processId,
      inFlight: lane.inFlight,
      statements: lane.statements
    }))
  }

  private readonly listeners = new Set<(event: LaneEvent) => void>()

  /** Lanes opening and closing, as they happen (bounded per subscriber; the newest dropped past it). */
  readonly events: Stream.Stream<LaneEvent> = Stream.callback<LaneEvent>((queue) =>
    Effect.acquireRelease(
      Effect.sync(() => {
        const listener = (event: LaneEvent) => void Queue.offerUnsafe(queue, event)
        this.listeners.add(listener)
        return listener
      }),
      (listener) => Effect.sync(() => this.listeners.delete(listener))
    ), { bufferSize: eventBufferSize, strategy: "dropping" })

  private emit(event: LaneEvent): void {
    for (const listener of this.listeners) listener(event)
  }

  private closed(lane: Lane, reason: LaneEndReason): void {
    if (this.listeners.size === 0) return
    this.emit({
      type: "close",
      pool: this.pool.settings.name,
      processId: lane.pooled.connection.processId,
      statements: lane.statements,
      inFlight: lane.inFlight,
      reason
    })
  }

  /**
   * Publish the pipelined-mode metrics of pool `pool` (`PoolMetrics.forPipeline`) in the
   * registry of `context`, read when a snapshot is taken. Returns their removal.
   */
  register(pool: string, context: Context.Context<never>): () => void {
    const m = PoolMetrics.forPipeline(pool)
    const observe = <I, S>(metric: Metric.Metric<I, S>, get: () => S) =>
      Metric.registerUnsafe(metric, context, { get, update: () => {}, modify: () => {} })
    const registrations = [
      observe(m.connections, () => ({ value: this.lanes.length })),
      observe(m.inFlight, () => ({ value: this.lanes.reduce((sum, lane) => sum + lane.inFlight, 0) })),
      observe(m.statements, () => ({ count: this.statements, incremental: true })),
      observe(m.abandoned, () => ({ count: this.abandoned, incremental: true }))
    ]
    return () => {
      for (const r of registrations) r.remove()
    }
  }

  /**
   * One statement of the pipelined mode: on a lane when it may share one (a single autocommit-safe
   * statement that changes no session state, outside {@link Exclusive}): its own result, error,
   * interruption, the lane held until it ends, sent again (on a lane with room) while it never
   * left the client, up to `retries` times. Any other statement: `exclusive`. `ask` is which of
   * `SqlConnection`'s methods it came through.
   */
  route(
    sql: string,
    params: ReadonlyArray<unknown>,
    ask: Ask,
    transformRows: TransformRows | undefined,
    exclusive: Send,
    retries: number = unsentRetries
  ): Effect.Effect<unknown, SqlError> {
    /** Taken (counted) inside the `onExit` it is handed back by: no interruption falls between. */
    let lane: Lane | undefined = undefined
    let shared = false
    return Effect.catchCause(
      Effect.onExit(
        Effect.withFiber((fiber) => {
          const verdict = classify(sql)
          if (!verdict.autocommitSafe || verdict.sessionChange !== undefined || fiber.getRef(Exclusive)) {
            return exclusive(sql, params, ask, transformRows)
          }
          shared = true
          // A lane with room now (the common case): no wait, no extra step.
          lane = this.exclusiveWaiting === 0 ? this.roomy() : undefined
          if (lane === undefined) return this.runLeased(verdict, sql, params, ask, transformRows)
          lane.inFlight++
          lane.statements++
          this.statements++
          return this.statement(lane, verdict, sql, params, ask, transformRows)
        }),
        (exit) => lane === undefined ? Effect.void : this.done(lane, exit)
      ),
      (cause) => {
        if (shared && retries > 0 && !Cause.hasDies(cause)) {
          const found = Cause.findError(cause)
          if (Result.isSuccess(found) && wasUnsent(found.success)) {
            return this.route(sql, params, ask, transformRows, exclusive, retries - 1)
          }
        }
        return Effect.failCause(cause)
      }
    )
  }

  /** {@link Lanes.route} on a lane leased (waited for, or opened). */
  private runLeased(
    verdict: Verdict,
    sql: string,
    params: ReadonlyArray<unknown>,
    ask: Ask,
    transformRows: TransformRows | undefined
  ): Effect.Effect<unknown, SqlError> {
    return Effect.uninterruptibleMask((restore) =>
      Effect.flatMap(restore(this.lease), (lane) => {
        lane.statements++
        this.statements++
        return Effect.onExit(
          restore(Effect.suspend(() => this.statement(lane, verdict, sql, params, ask, transformRows))),
          (exit) => this.done(lane, exit)
        )
      })
    )
  }

  /** The open lane with the fewest statements in flight, below `maxInFlight`. */
  private roomy(): Lane | undefined {
    let best: Lane | undefined = undefined
    for (const lane of this.lanes) {
      if (
        lane.inFlight < this.bounds.maxInFlight && lane.pooled.isValid &&
        (best === undefined || lane.inFlight < best.inFlight)
      ) best = lane
    }
    return best
  }

  /**
   * The statement on `lane` (made now, inside the effect that runs it), watched by the pool's
   * leak detection when it is on (per statement, not per lane).
   */
  private statement(
    lane: Lane,
    verdict: Verdict,
    sql: string,
    params: ReadonlyArray<unknown>,
    ask: Ask,
    transformRows: TransformRows | undefined
  ): Effect.Effect<unknown, SqlError> {
    const statement = lane.sql.onLane(verdict, sql, params, ask, transformRows)
    return this.leakWatch === undefined ? statement : this.leakWatch(statement, lane.pooled.slot)
  }

  /**
   * An exclusive checkout (`acquirer`, the exclusive statement path): lanes drain for it when it
   * would otherwise wait for one of their connections.
   */
  exclusive<A, E, R>(checkout: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> {
    return Effect.suspend(() =>
      // No lane open or opening: none holds a connection it could need (a lane opened later
      // queues behind it in the pool). The common case at low load: no bookkeeping at all.
      this.lanes.length === 0 && this.opening === 0
        ? checkout
        : Effect.flatMap(this.pool.stats, (stats) =>
          // A pool without a bound never makes a checkout wait for a connection.
          stats.max === Infinity
            ? checkout
            // Room (an idle connection or a free slot, nobody queued): lanes keep serving; should
            // the checkout wait after all (another fiber took the room first), they drain after
            // `exclusiveGraceMillis`. No room: they drain now.
            : this.drainingFor(checkout, stats.pending === 0 && (stats.idle > 0 || stats.used < stats.max)))
    )
  }

  /**
   * `checkout` with the lanes draining for it (now, or after the grace when `room`), until it
   * ends. Uninterruptible until the cleanup is in place: a drain never outlives its checkout.
   */
  private drainingFor<A, E, R>(checkout: Effect.Effect<A, E, R>, room: boolean): Effect.Effect<A, E, R> {
    return Effect.uninterruptibleMask((restore) =>
      Effect.suspend(() => {
        let draining = false
        const drain = () => {
          draining = true
          this.exclusiveWaiting++
          this.releaseEmpty()
        }
        let timer: ReturnType<typeof setTimeout> | undefined = undefined
        const arm = () => {
          timer = setTimeout(look, exclusiveGraceMillis)
          // Not what keeps a process alive: the checkout itself does.
          if (typeof timer === "object" && typeof timer.unref === "function") timer.unref()
        }
        // After the grace: drain only if a checkout waits in the pool (another fiber took the room
        // this one saw). None waiting: this one holds a slot of its own and is still connecting
        // (or pre-pinging), which the lanes' connections would not speed up: look again later.
        const look = () => Effect.runSync(this.pool.stats).pending > 0 ? drain() : arm()
        if (room) arm()
        else drain()
        // Busy lanes go back when their last statement ends.
        return Effect.ensuring(
          restore(checkout),
          Effect.sync(() => {
            if (timer !== undefined) clearTimeout(timer)
            if (draining && --this.exclusiveWaiting === 0) this.wakeAll()
          })
        )
      })
    )
  }

  /** Lanes with nothing in flight go back to the pool now (an exclusive checkout waits for one). */
  private releaseEmpty(): void {
    for (const lane of this.lanes.filter((lane) => lane.inFlight === 0)) {
      this.remove(lane, "exclusive")
      lane.released = true
      Effect.runFork(this.release(lane))
    }
  }

  private readonly lease: Effect.Effect<Lane, SqlError> = Effect.suspend(() => {
    if (this.exclusiveWaiting === 0) {
      const best = this.roomy()
      if (best !== undefined) {
        best.inFlight++
        return Effect.succeed(best)
      }
      // One connection opened at a time: the statements waiting meanwhile fit on it (maxInFlight).
      if (this.opening === 0 && this.lanes.length < this.bounds.maxConnections) return this.open
    }
    return Effect.andThen(this.wait, this.lease)
  })

  private readonly wait: Effect.Effect<void> = Effect.callback<void>((resume) => {
    const waiter = () => resume(Effect.void)
    this.waiters.add(waiter)
    return Effect.sync(() => void this.waiters.delete(waiter))
  })

  private wakeOne(): void {
    for (const waiter of this.waiters) {
      this.waiters.delete(waiter)
      return waiter()
    }
  }

  private wakeAll(): void {
    const waiters = Array.from(this.waiters)
    this.waiters.clear()
    for (const waiter of waiters) waiter()
  }

  /** Check out a connection for a new lane (this statement is its first). */
  private readonly open: Effect.Effect<Lane, SqlError> = Effect.uninterruptibleMask((restore) =>
    Effect.suspend(() => {
      this.opening++
      return Effect.flatMap(Scope.make(), (scope) =>
        Effect.onExit(
          restore(
            Scope.provide(scope)(
              this.leakWatch === undefined
                ? this.pool.checkout
                : Effect.provideService(this.pool.checkout, Unwatched, true)
            )
          ),
          (exit) =>
            Effect.suspend(() => {
              this.opening--
              if (Exit.isSuccess(exit)) return Effect.void
              this.wakeOne()
              return Scope.close(scope, exit)
            })
        ).pipe(
          Effect.mapError(this.checkoutError),
          Effect.map((pooled) => {
            pooled.connection.setPipelined(true)
            const lane: Lane = {
              pooled,
              sql: this.connect(pooled),
              scope,
              inFlight: 1,
              closed: false,
              released: false,
              lingering: false,
              statements: 0
            }
            this.lanes.push(lane)
            if (this.listeners.size > 0) {
              this.emit({ type: "open", pool: this.pool.settings.name, processId: pooled.connection.processId })
            }
            // Room for others too (up to maxInFlight on the new lane): each looks again.
            if (this.bounds.maxInFlight > 1) this.wakeAll()
            return lane
          })
        ))
    })
  )

  /** A statement of `lane` ended (succeeded, failed or was interrupted). */
  private done(lane: Lane, exit: Exit.Exit<unknown, unknown>): Effect.Effect<void> {
    lane.inFlight--
    if (exit._tag === "Failure" && Exit.hasInterrupts(exit)) this.abandoned++
    if (!lane.closed) {
      if (!lane.pooled.isValid || (lane.inFlight === 0 && this.exclusiveWaiting > 0)) {
        // Dead (the rest in flight on it fail with it), or emptied for an exclusive checkout.
        this.remove(lane, lane.pooled.isValid ? "exclusive" : "broken")
        if (this.exclusiveWaiting === 0) this.wakeAll()
      } else {
        if (lane.inFlight === 0) this.lingerThenRelease(lane)
        if (this.exclusiveWaiting === 0) this.wakeOne()
        return Effect.void
      }
    }
    if (lane.inFlight > 0 || lane.released) return Effect.void
    lane.released = true
    return this.release(lane)
  }

  /**
   * An emptied lane stays open until the callers it served had a turn (their next statements
   * usually come within the same turn of the event loop), then goes back to the pool if still empty.
   */
  private lingerThenRelease(lane: Lane): void {
    if (lane.lingering) return
    lane.lingering = true
    setImmediate(() => {
      lane.lingering = false
      if (lane.closed || lane.inFlight > 0) return
      this.remove(lane, "idle")
      lane.released = true
      if (this.exclusiveWaiting === 0) this.wakeAll()
      Effect.runFork(this.release(lane))
    })
  }

  /**
   * The client's scope closes: lanes take no new statement. An empty lane goes back to the pool
   * now (one still carrying abandoned statements is invalidated, closed by the pool); a lane with
   * statements in flight goes back when its last one ends (`done`): the server runs them anyway,
   * so their callers get their results, as an exclusive statement running at close does. Waiting
   * statements look again (and open a lane of a pool that may be closing: its checkout error).
   */
  readonly closeAll: Effect.Effect<void> = Effect.suspend(() => {
    const lanes = this.lanes.splice(0)
    for (const lane of lanes) {
      lane.closed = true
      this.closed(lane, "client closed")
    }
    this.wakeAll()
    return Effect.forEach(lanes, (lane) => {
      if (lane.released || lane.inFlight > 0) return Effect.void
      lane.released = true
      const connection = lane.pooled.connection
      const idle = connection.pipelineIdle
      return Effect.andThen(
        idle
          ? Effect.void
          : lane.pooled.invalidate(new Error("client closed with pipelined statements running"), "statement"),
        Effect.suspend(() => {
          connection.setPipelined(false)
          return Scope.close(lane.scope, Exit.void)
        })
      )
    }, { discard: true })
  })

  private remove(lane: Lane, reason: LaneEndReason): void {
    lane.closed = true
    this.closed(lane, reason)
    const index = this.lanes.indexOf(lane)
    if (index >= 0) this.lanes.splice(index, 1)
  }

  /**
   * Back to the pool: once nothing it carried is on the wire (an abandoned statement still runs),
   * multiplexing off. Waiting for abandoned statements happens in the background, bounded by the
   * pool's `resetTimeout`: past it the connection is invalidated (closed by the pool).
   */
  private release(lane: Lane): Effect.Effect<void> {
    const connection = lane.pooled.connection
    const back = Effect.suspend(() => {
      connection.setPipelined(false)
      return Scope.close(lane.scope, Exit.void)
    })
    if (connection.pipelineIdle || !lane.pooled.isValid) return back
    return Effect.asVoid(Effect.forkDetach(
      Effect.timeoutOrElse(connection.awaitPipelineIdle, {
        duration: this.pool.settings.resetTimeout,
        orElse: () => lane.pooled.invalidate(new Error("abandoned pipelined statements still running"), "statement")
      }).pipe(Effect.andThen(back))
    ))
  }
}
