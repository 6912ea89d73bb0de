/**
 * Work marked read-only (`PgSql.readOnly(effect)`), the mark a routing client (`PgReplicas`)
 * sends to a replica; a client over one pool ignores it. A transaction begun read-only counts
 * too ({@link isReadOnlyBegin}).
 *
 * @internal
 */
import { Context, Effect } from "effect"
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
