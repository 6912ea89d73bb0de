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
import { PgClient } from "@effect/sql-pg"
import { Effect, Stream } from "effect"
import type { Layer, Scope } from "effect"
import type * as Reactivity from "effect/reactivity/Reactivity"
import * as SqlClient from "effect/sql/SqlClient"
import type { ConnectionPool } from "../ConnectionPool.ts"
import { Exclusive } from "./internal/pipeline.ts"
import type { LaneEvent, LaneStatus } from "./internal/pipeline.ts"
import { readOnly as markReadOnly } from "./internal/read-only.ts"
import { makeClient, pipelineOf } from "./internal/sql-client.ts"
import type { PgSqlConfigError } from "./internal/sql-options.ts"
import type { Options } from "./internal/sql-options.ts"

export {
  checkoutError,
  CommitOutcomeUnknownError,
  isCommitOutcomeUnknown,
  isSelfDeadlock,
  SelfDeadlockError
} from "./internal/sql-errors.ts"
export { PgSqlConfigError } from "./internal/sql-options.ts"
export type { Options, PipelineOptions } from "./internal/sql-options.ts"

// ------------------------------------------------------------------------------ pipelined mode

/** The pipeline of the client in context (`undefined`: it does not pipeline). */
const pipelineInContext = Effect.map(SqlClient.SqlClient, pipelineOf)

/**
 * Pipelined work on one shared connection ({@link pipelineStatus}).
 *
 * @category models
 * @since 0.2.0
 */
export interface PipelineConnectionStatus extends LaneStatus {}

export type { LaneEvent as PipelineEvent } from "./internal/pipeline.ts"

/**
 * The pipelined mode's events of the `SqlClient` in context (`PgSql.layer({ pipeline })`): each
 * shared connection's `open` and `close` ({@link PipelineEvent}); an empty stream when the client
 * does not pipeline. Under `PgReplicas` (`sql: { pipeline }`), every pool's, merged. Each subscriber
 * has a buffer of 1,024 events; past it the newest are dropped. The pool's own `events` see each
 * shared connection as one checkout and checkin.
 *
 * @category getters
 * @since 0.2.0
 */
export const pipelineEvents: Stream.Stream<LaneEvent, never, SqlClient.SqlClient> = Stream.unwrap(
  Effect.map(pipelineInContext, (pipeline) => pipeline === undefined ? Stream.empty : pipeline.events)
)

/**
 * The shared connections of the `SqlClient` in context in pipelined mode
 * (`PgSql.layer({ pipeline })`), each with its backend process id and its statements in flight
 * (sent or queued, whose callers still wait); `undefined` when the client does not pipeline. A
 * connection that ended its last statement is back in the pool and not listed. Under `PgReplicas`
 * (`sql: { pipeline }`): every pool's (`PgReplicas.status` gives each pool's own, `pipeline`).
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
> = Effect.map(pipelineInContext, (pipeline) => pipeline?.status())

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

// ------------------------------------------------------------------------------- layers

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
> => Effect.map(makeClient(options, undefined), ({ client }) => client)

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
