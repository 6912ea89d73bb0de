/**
 * Every way a pool operation can fail, as tagged, yieldable error classes.
 *
 * Checkout fails with a {@link CheckoutError}; layer construction fails with a
 * {@link PoolConfigError}. Causes from the driver are kept, never swallowed.
 *
 * @since 0.1.0
 */
import { Data } from "effect"
import type { Duration } from "effect"
import { millisText } from "./internal/format.ts"
import { showValue } from "./internal/validate.ts"

const causeMessage = (cause: unknown): string =>
  cause instanceof Error ? cause.message : typeof cause === "string" ? cause : String(cause)

/**
 * No slot became free within `timeout`. The message names the limits, as SQLAlchemy's does:
 * "QueuePool limit of size 5 overflow 10 reached, connection timed out, timeout 30000 ms".
 * `suspended`: the pool was suspended (`pool.suspend`) the whole time and the checkout waited for
 * `resume` in vain: "QueuePool is suspended: the checkout waited for resume, timed out, timeout
 * 30000 ms".
 *
 * @category errors
 * @since 0.1.0
 */
export class PoolTimeoutError extends Data.TaggedError("PoolTimeoutError")<{
  /** The strategy whose checkout timed out (`"QueuePool"`). */
  readonly strategy: string
  /** The pool's `poolSize` when it timed out. */
  readonly poolSize: number
  /** The pool's `maxOverflow` when it timed out (-1 = unlimited). */
  readonly maxOverflow: number
  /** The `timeout` the checkout waited. */
  readonly timeout: Duration.Duration
  /** The pool was suspended the whole wait (the checkout waited for `resume`). */
  readonly suspended?: boolean | undefined
}> {
  /** Names the limits and the timeout, as SQLAlchemy's message. */
  override get message(): string {
    return this.suspended === true
      ? `${this.strategy} is suspended: the checkout waited for resume, timed out, timeout ${millisText(this.timeout)}`
      : `${this.strategy} limit of size ${this.poolSize} overflow ${this.maxOverflow} reached, ` +
        `connection timed out, timeout ${millisText(this.timeout)}`
  }
}

/**
 * The driver could not open a connection (or the `onConnect` hook failed). `cause` is the
 * driver's own error: a wrong password shows up here, never as a timeout.
 *
 * @category errors
 * @since 0.1.0
 */
export class ConnectError extends Data.TaggedError("ConnectError")<{
  /** The driver's own error (or the `onConnect` hook's failure). */
  readonly cause: unknown
}> {
  /** "Could not connect: " and the cause's message. */
  override get message(): string {
    return `Could not connect: ${causeMessage(this.cause)}`
  }
}

/**
 * Opening one connection took longer than `connectTimeout`. Distinct from `PoolTimeoutError`
 * (waiting for a free slot): one says "the database is slow or unreachable", the other "the pool
 * is exhausted". `target` is where the driver connects (`DriverShape.target`): "Connecting to
 * 127.0.0.1:5432 (database "app", user "app") timed out after 500 ms (connectTimeout)".
 * `afterPrePing`: a checkout's pre-ping failed (or went unanswered for half of `connectTimeout`)
 * and the reconnect did not finish within what was left of the same `connectTimeout` (pre-ping
 * and reconnect share it): "Pre-ping and reconnect to ... did not finish within 500 ms
 * (connectTimeout)".
 *
 * @category errors
 * @since 0.1.0
 */
export class ConnectTimeoutError extends Data.TaggedError("ConnectTimeoutError")<{
  /** The `connectTimeout` that passed. */
  readonly timeout: Duration.Duration
  /** Where the driver connects (`host:port (database, user)`), when the driver tells (`DriverShape.target`). */
  readonly target?: string | undefined
  /** The bound ran out on a checkout's pre-ping and the reconnect after it. */
  readonly afterPrePing?: boolean | undefined
}> {
  /** Names the bound that passed. */
  override get message(): string {
    const to = this.target === undefined ? "" : ` to ${this.target}`
    return this.afterPrePing === true
      ? `Pre-ping and reconnect${to} did not finish within ${millisText(this.timeout)} (connectTimeout)`
      : `Connecting${to} timed out after ${millisText(this.timeout)} (connectTimeout)`
  }
}

/**
 * The connection is (or must be treated as) dead. Fail an `onCheckout` hook with it to make the
 * pool invalidate the slot and retry the checkout on a fresh connection (SQLAlchemy's
 * `DisconnectionError`). With `invalidatePool`, every connection older than now is recycled too.
 *
 * @category errors
 * @since 0.1.0
 */
export class DisconnectionError extends Data.TaggedError("DisconnectionError")<{
  /** What showed the connection dead (a ping's error, ...), when known. */
  readonly cause?: unknown
  /** Also recycle every connection made before now (pool-wide invalidation). Default false. */
  readonly invalidatePool?: boolean
}> {
  /** "Disconnected: " and the cause's message. */
  override get message(): string {
    return this.cause === undefined ? "Connection was disconnected" : `Disconnected: ${causeMessage(this.cause)}`
  }
}

/**
 * The connection handle is no longer usable: it was invalidated, or checkout retries were
 * exhausted. Message: "This connection is closed", as SQLAlchemy's.
 *
 * @category errors
 * @since 0.1.0
 */
export class ConnectionInvalidatedError extends Data.TaggedError("ConnectionInvalidatedError")<{
  /** Why the handle was invalidated, when known. */
  readonly cause?: unknown
}> {
  /** "This connection is closed". */
  override get message(): string {
    return "This connection is closed"
  }
}

/**
 * A driver operation other than connect failed in a way that is not a disconnect (for example
 * a pre-ping that returned an unexpected error). The slot was invalidated.
 *
 * @category errors
 * @since 0.1.0
 */
export class DriverError extends Data.TaggedError("DriverError")<{
  /** The driver operation that failed. */
  readonly operation: "ping" | "rollback" | "commit" | "close"
  /** The driver's own error. */
  readonly cause: unknown
}> {
  /** Names the operation and the cause's message. */
  override get message(): string {
    return `Driver ${this.operation} failed: ${causeMessage(this.cause)}`
  }
}

/**
 * The pool was closed (its layer's scope ended) before or while the checkout waited. Permanent:
 * no retry can succeed (`PgSql` makes it a non-retryable `SqlError`).
 *
 * @category errors
 * @since 0.1.0
 */
export class PoolClosedError extends Data.TaggedError("PoolClosedError")<{
  /** The strategy of the closed pool. */
  readonly strategy: string
}> {
  /** "<strategy> is closed". */
  override get message(): string {
    return `${this.strategy} is closed (its layer's scope ended): no checkout can succeed`
  }
}

/**
 * AssertionPool: a second checkout was attempted while the first one is still out. The message
 * names where the first one was checked out (fiber id and the Effect stack frames / spans active
 * at that checkout), as SQLAlchemy's "connection is already checked out at: ...".
 *
 * @category errors
 * @since 0.1.0
 */
export class AssertionPoolError extends Data.TaggedError("AssertionPoolError")<{
  /** The pool's `name`. */
  readonly pool: string
  /** Where the connection now out was checked out: fiber id, `Effect.fn` / span names, source line. */
  readonly checkedOutAt: string
}> {
  /** Names the pool and where the first checkout was made. */
  override get message(): string {
    return `${this.pool}: connection is already checked out at:\n${this.checkedOutAt}`
  }
}

/**
 * An option was invalid. Raised when the layer is built, naming the field and the bad value.
 *
 * @category errors
 * @since 0.1.0
 */
export class PoolConfigError extends Data.TaggedError("PoolConfigError")<{
  /** The option's name, as given (a misspelled name too). */
  readonly field: string
  /** The value given. */
  readonly value: unknown
  /** What is wrong with it ("must be an integer >= 0", "did you mean ...?"). */
  readonly reason: string
}> {
  /** Names the field, its value and the reason. */
  override get message(): string {
    return `Invalid pool option "${this.field}" = ${showValue(this.value)}: ${this.reason}`
  }
}

/**
 * What a checkout can fail with.
 *
 * @category errors
 * @since 0.1.0
 */
export type CheckoutError =
  | PoolTimeoutError
  | ConnectError
  | ConnectTimeoutError
  | ConnectionInvalidatedError
  | DriverError
  | PoolClosedError
  | AssertionPoolError

/**
 * The classes of {@link CheckoutError}, one list: a class of the union missing here, or one here
 * that is not in the union, does not compile.
 */
const checkoutErrors = [
  PoolTimeoutError,
  ConnectError,
  ConnectTimeoutError,
  ConnectionInvalidatedError,
  DriverError,
  PoolClosedError,
  AssertionPoolError
] as const satisfies ReadonlyArray<new(...args: never) => CheckoutError>
const everyCheckoutErrorListed: [Exclude<CheckoutError, InstanceType<(typeof checkoutErrors)[number]>>] extends [never]
  ? true
  : never = true
void everyCheckoutErrorListed

/**
 * Is this a {@link CheckoutError}: one of the errors a checkout fails with? For code that
 * handles a checkout's failure apart from the failures of the work done with the connection.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { ConnectionPool, PoolError } from "effect-db-pool"
 *
 * const program = ConnectionPool.use((conn) => Effect.succeed(conn.slot)).pipe(
 *   Effect.catchIf(PoolError.isCheckoutError, () => Effect.succeed(-1))
 * )
 * ```
 *
 * @category predicates
 * @since 0.2.0
 */
export const isCheckoutError = (u: unknown): u is CheckoutError => checkoutErrors.some((error) => u instanceof error)
