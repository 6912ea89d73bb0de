/**
 * effect-db-pool: SQLAlchemy-grade connection pooling for Effect.
 *
 * Each strategy is a Layer providing one `ConnectionPool` service over a `Driver`; swap the
 * strategy by swapping the layer.
 *
 * Every layer here that reads services from below (or holds state of its own) is a function:
 * call it where you provide it. effect memoizes layers by reference, also across nested
 * `Effect.provide`s (a provide forks the surrounding `MemoMap` and looks layers up in its
 * parents first), so one layer value provided again inside a program that built it is reused as
 * built, over the outer program's services.
 *
 * @module effect-db-pool
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
/** Metric names and per-pool metrics (OpenTelemetry database-client conventions). @since 0.1.0 */
export * as PoolMetrics from "./PoolMetrics.ts"
/** Options shared by every strategy and their validation. @since 0.1.0 */
export * as PoolOptions from "./PoolOptions.ts"
/** QueuePool: bounded pool with overflow, FIFO waiters (the default). @since 0.1.0 */
export * as QueuePool from "./strategy/QueuePool.ts"
/** NullPool: a new connection per checkout, closed on return (no pooling). @since 0.1.0 */
export * as NullPool from "./strategy/NullPool.ts"
/** StaticPool: one connection shared by every checkout. @since 0.1.0 */
export * as StaticPool from "./strategy/StaticPool.ts"
/** FiberPool: one connection per fiber, reentrant (SingletonThreadPool's heir). @since 0.1.0 */
export * as FiberPool from "./strategy/FiberPool.ts"
/** AssertionPool: at most one checkout at a time; a second one fails naming the first. @since 0.1.0 */
export * as AssertionPool from "./strategy/AssertionPool.ts"
/** PoolManager: one pool per set of connect arguments, built on demand (manage()'s heir). @since 0.1.0 */
export * as PoolManager from "./PoolManager.ts"
