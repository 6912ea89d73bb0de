/**
 * Test support for users of effect-db-pool: an in-memory driver with scriptable faults.
 *
 * @module effect-db-pool/testing
 * @since 0.1.0
 */

/** In-memory driver with a call log and fault injection (SQLAlchemy's MockDBAPI). @since 0.1.0 */
export * as MockDriver from "./MockDriver.ts"
