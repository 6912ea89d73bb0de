/**
 * How one statement of a `PgSql` client gets its connection (the client's `borrower`): the
 * pool's own `use` (no scope); under the pipelined mode a shared connection (a lane) when the
 * statement may share one, else an exclusive checkout, which goes before the lanes. A statement
 * that never left the client (its session was closed under it) is sent again on a fresh session,
 * up to {@link unsentRetries} times: it cannot have run, and it was never interrupted (collateral
 * of another fiber's interrupted statement on a shared session, or of another holder's failure).
 *
 * @internal
 */
import { Effect, Stream } from "effect"
import type { Scope } from "effect"
import type { Acquirer, Borrower, Connection as SqlConnection } from "effect/sql/SqlConnection"
import type { SqlError } from "effect/sql/SqlError"
import type { PooledConnection, Service as PoolService } from "../../ConnectionPool.ts"
import { isCheckoutError } from "../../PoolError.ts"
import type { CheckoutError } from "../../PoolError.ts"
import type { ConnectionImpl } from "./connection.ts"
import { Exclusive } from "./pipeline.ts"
import type { Lanes } from "./pipeline.ts"
import { classify } from "./session.ts"
import { failCheckout, unsentRetries, wasUnsent } from "./sql-errors.ts"

/** What a client's statements are borrowed through. */
export interface Borrowing {
  readonly pool: PoolService<ConnectionImpl>
  /** The pipelined mode's shared connections; `undefined` without the mode. */
  readonly lanes: Lanes | undefined
  /** The pool's checkout; under the pipelined mode an exclusive one (it goes before the lanes). */
  readonly poolCheckout: Effect.Effect<PooledConnection<ConnectionImpl>, CheckoutError, Scope.Scope>
  /** A checkout as the client's `SqlConnection`. */
  readonly connect: (pooled: PooledConnection<ConnectionImpl>) => SqlConnection
  /** The client's `acquirer` (a stream's connection under the pipelined mode). */
  readonly acquirer: Acquirer
  /** `PgSql.Options.onAcquire`, with the services captured when the client was built. */
  readonly onAcquire: Effect.Effect<void> | undefined
}

type Use = <A, E, R>(f: (connection: SqlConnection) => Effect.Effect<A, E, R>) => Effect.Effect<A, E | CheckoutError, R>

/**
 * One statement's connection: the pool's own `use` (no scope), or under the pipelined mode an
 * exclusive checkout (it goes before the lanes).
 */
const useOf = (b: Borrowing): Use =>
  b.lanes === undefined
    ? (f) => b.pool.use((pooled) => f(b.connect(pooled)))
    : (f) => Effect.scoped(Effect.flatMap(b.poolCheckout, (pooled) => f(b.connect(pooled))))

/** `f` on a connection of its own; sent again while it never left the client. */
const borrow = <A, E, R>(
  use: Use,
  f: (connection: SqlConnection) => Effect.Effect<A, E, R>,
  retries: number
): Effect.Effect<A, E | SqlError, R> =>
  // Data-first (not `.pipe(Effect.catchIf(...))`): no pipe function allocated per statement.
  Effect.catchIf(
    use(f),
    (error: unknown) => isCheckoutError(error) || wasUnsent(error),
    (error): Effect.Effect<A, E | SqlError, R> =>
      isCheckoutError(error)
        ? failCheckout(error)
        : retries > 0
        ? borrow(use, f, retries - 1)
        : Effect.fail(error as E)
  ) as Effect.Effect<A, E | SqlError, R>

/** `f` on a shared connection (a lane); sent again while it never left the client. */
const pipelined = <A, E, R>(
  lanes: Lanes,
  f: (connection: SqlConnection) => Effect.Effect<A, E, R>,
  retries: number
): Effect.Effect<A, E | SqlError, R> =>
  Effect.catchIf(
    lanes.run(f),
    (error: unknown) => wasUnsent(error),
    (error): Effect.Effect<A, E | SqlError, R> =>
      retries > 0 ? pipelined(lanes, f, retries - 1) : Effect.fail(error as E)
  ) as Effect.Effect<A, E | SqlError, R>

/**
 * The pipelined mode's `SqlConnection`: each statement on a lane when it may share one (a single
 * autocommit-safe statement that changes no session state, outside {@link Exclusive}), else on a
 * connection of its own; a stream on a checkout of its own.
 */
const router = (b: Borrowing, lanes: Lanes, use: Use): SqlConnection => {
  /** One statement in pipelined mode: on a lane when it may share one, else exclusive. */
  const route = <A>(sql: string, f: (connection: SqlConnection) => Effect.Effect<A, SqlError>) =>
    Effect.withFiber((fiber) => {
      const verdict = classify(sql)
      return verdict.autocommitSafe && verdict.sessionChange === undefined && !fiber.getRef(Exclusive)
        ? pipelined(lanes, f, unsentRetries)
        : borrow(use, f, unsentRetries)
    })
  return {
    execute: (sql, params, transformRows) => route(sql, (c) => c.execute(sql, params, transformRows)),
    executeUnprepared: (sql, params, transformRows) =>
      route(sql, (c) => c.executeUnprepared(sql, params, transformRows)),
    executeRaw: (sql, params) => route(sql, (c) => c.executeRaw(sql, params)),
    executeValues: (sql, params) => route(sql, (c) => c.executeValues(sql, params)),
    executeValuesUnprepared: (sql, params) => route(sql, (c) => c.executeValuesUnprepared(sql, params)),
    executeStream: (sql, params, transformRows) =>
      Stream.unwrap(Effect.map(b.acquirer, (c) => c.executeStream(sql, params, transformRows)))
  }
}

/**
 * The client's `borrower`. With `onAcquire`, each statement is scoped so that the hook's
 * finalizers run when it ends.
 */
export const borrower = (b: Borrowing): Borrower => {
  const onAcquire = b.onAcquire
  const withHook = onAcquire === undefined
    ? <A, E, R>(f: (connection: SqlConnection) => Effect.Effect<A, E, R>) => f
    : <A, E, R>(f: (connection: SqlConnection) => Effect.Effect<A, E, R>) => (connection: SqlConnection) =>
      Effect.scoped(Effect.andThen(onAcquire, f(connection)))
  const use = useOf(b)
  if (b.lanes === undefined) return (f) => borrow(use, withHook(f), unsentRetries)
  const shared = router(b, b.lanes, use)
  return (f) => withHook(f)(shared)
}
