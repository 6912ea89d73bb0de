/**
 * What `PgReplicas` needs from `PgSql`, and the read-only mark both share.
 *
 * - {@link ReadOnly}: work marked read-only (`PgSql.readOnly(effect)`); a routing client sends
 *   it to a replica. A client over one pool ignores it.
 * - {@link optionsKey}: a `PgSql` client keeps the options it built its `SqlClient` with (its
 *   acquirers over its pool, compiler, commit, ...), so a router can build one `SqlClient` over
 *   several pools' acquirers.
 * - {@link SharedTransactionService}: the transaction service a client over one pool uses; a
 *   router gives all of its pools its own, so a transaction opened through the router is the
 *   one each pool's acquirers see.
 *
 * @internal
 */
import { Context, Effect } from "effect"
import type * as SqlClient from "effect/sql/SqlClient"
import { classify } from "./session.ts"

/**
 * Work marked read-only: with `PgReplicas`, its statements, streams, transactions and `reserve`
 * go to a healthy replica. `false` by default.
 */
export const ReadOnly = Context.Reference<boolean>("effect-db-pool/pg/ReadOnly", { defaultValue: () => false })

/** Mark `effect`'s database work read-only (see {@link ReadOnly}). */
export const readOnly = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.provideService(effect, ReadOnly, true)

/**
 * A `BEGIN` / `START TRANSACTION` that opens a read-only transaction (`SqlClient.BeginTransaction`),
 * read on tokens (a `READ ONLY` in a comment does not count).
 */
export const isReadOnlyBegin = (statement: string | undefined): boolean =>
  statement !== undefined && classify(statement).beginsReadOnly

/** The key under which a `PgSql` client keeps its `SqlClient.make` options. */
export const optionsKey = "~effect-db-pool/pg/PgSql/makeOptions"

/** The transaction service a `PgSql` client uses instead of its own (set by a router). */
export const SharedTransactionService = Context.Reference<
  Context.Service<SqlClient.TransactionConnection, SqlClient.TransactionConnection.Service> | undefined
>("effect-db-pool/pg/SharedTransactionService", { defaultValue: () => undefined })
