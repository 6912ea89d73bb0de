/**
 * What `PgReplicas` needs from `PgSql`:
 *
 * - {@link optionsKey}: a `PgSql` client keeps the options it built its `SqlClient` with (its
 *   acquirers over its pool, compiler, commit, ...), so a router can build one `SqlClient` over
 *   several pools' acquirers.
 * - {@link SharedTransactionService}: the transaction service a client over one pool uses; a
 *   router gives all of its pools its own, so a transaction opened through the router is the
 *   one each pool's acquirers see.
 *
 * @internal
 */
import { Context } from "effect"
import type * as SqlClient from "effect/sql/SqlClient"
/** The key under which a `PgSql` client keeps its `SqlClient.make` options. */
export const optionsKey = "~effect-db-pool/pg/PgSql/makeOptions"

/** The transaction service a `PgSql` client uses instead of its own (set by a router). */
export const SharedTransactionService = Context.Reference<
  Context.Service<SqlClient.TransactionConnection, SqlClient.TransactionConnection.Service> | undefined
>("effect-db-pool/pg/SharedTransactionService", { defaultValue: () => undefined })
