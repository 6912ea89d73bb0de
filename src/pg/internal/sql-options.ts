/**
 * `PgSql`'s options: {@link Options} (with {@link PipelineOptions}), their rules and their
 * validation when the layer builds, failing with {@link PgSqlConfigError}. `PgSql` re-exports
 * the types and the error.
 *
 * @internal
 */
import { Data, Effect, Result } from "effect"
import type { Duration } from "effect"
import * as V from "../../internal/validate.ts"

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
   * borrower at a time (QueuePool, NullPool, AssertionPool; not StaticPool, FiberPool or `reentrant`).
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
export const defaultMaxInFlight = 32

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
 * An option of `PgSql.layer` was invalid, or does not fit the pool in context (`pipeline` over a
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

// ---------------------------------------------------------------------------- validation

const check = V.validator((invalid) => new PgSqlConfigError(invalid))

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

/** Validate {@link Options} (types, ranges, names) when the layer builds. */
export const validateOptions = <R>(options: Options<R>): Effect.Effect<Options<R>, PgSqlConfigError> =>
  Effect.gen(function*() {
    yield* check.check(V.notAnObject(options))
    yield* check.check(V.unknownKey(options, optionKeys, "PgSql.layer"))
    yield* check.decode(optionRules, options)
    return options
  })
