/**
 * effect-db-pool: SQLAlchemy-grade connection pooling for Effect.
 *
 * Each strategy is a Layer providing one `ConnectionPool` service over a `Driver`; swap the
 * strategy by swapping the layer.
 *
 * @since 0.1.0
 */

/** The pool service, its models and accessors. @since 0.1.0 */
export * as ConnectionPool from "./ConnectionPool.ts"
/** The driver contract (connect, close, rollback, commit, ping, isDisconnect). @since 0.1.0 */
export * as Driver from "./Driver.ts"
/** Tagged errors. @since 0.1.0 */
export * as PoolError from "./PoolError.ts"
/** Pool events and hooks. @since 0.1.0 */
export * as PoolEvent from "./PoolEvent.ts"
/** Options shared by every strategy and their validation. @since 0.1.0 */
export * as PoolOptions from "./PoolOptions.ts"
/** QueuePool: bounded pool with overflow, FIFO waiters (the default). @since 0.1.0 */
export * as QueuePool from "./strategy/QueuePool.ts"
