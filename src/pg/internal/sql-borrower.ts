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
import type { Lanes } from "./pipeline.ts"
import type { Ask, Send, TransformRows } from "./pooled-sql.ts"
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

/** `ask` of `connection`: the `SqlConnection` method a statement came through. */
const askOf = (
  connection: SqlConnection,
  sql: string,
  params: ReadonlyArray<unknown>,
  ask: Ask,
  transformRows: TransformRows | undefined
): Effect.Effect<unknown, SqlError> => {
  switch (ask) {
    case "rows":
      return connection.execute(sql, params, transformRows)
    case "rows unprepared":
      return connection.executeUnprepared(sql, params, transformRows)
    case "raw":
      return connection.executeRaw(sql, params)
    case "values":
      return connection.executeValues(sql, params)
    case "values unprepared":
      return connection.executeValuesUnprepared(sql, params)
  }
}

/**
 * The pipelined mode's `SqlConnection`: each statement on a lane when it may share one (a single
 * autocommit-safe statement that changes no session state, outside `PgSql.exclusive`), else on a
 * connection of its own; a stream on a checkout of its own.
 */
const router = (b: Borrowing, lanes: Lanes, use: Use): SqlConnection => {
  /** A statement that may not share a lane: on a connection of its own. */
  const exclusive: Send = (sql, params, ask, transformRows) =>
    borrow(use, (c) => askOf(c, sql, params, ask, transformRows), unsentRetries)
  /** One statement in pipelined mode: on a lane when it may share one, else exclusive. */
  const route = (
    sql: string,
    params: ReadonlyArray<unknown>,
    ask: Ask,
    transformRows: TransformRows | undefined
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- effect/sql's `Connection` types rows as `any`
  ): Effect.Effect<any, SqlError> => lanes.route(sql, params, ask, transformRows, exclusive)
  return {
    execute: (sql, params, transformRows) => route(sql, params, "rows", transformRows),
    executeUnprepared: (sql, params, transformRows) => route(sql, params, "rows unprepared", transformRows),
    executeRaw: (sql, params) => route(sql, params, "raw", undefined),
    executeValues: (sql, params) => route(sql, params, "values", undefined),
    executeValuesUnprepared: (sql, params) => route(sql, params, "values unprepared", undefined),
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
