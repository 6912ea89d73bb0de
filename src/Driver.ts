/**
 * The database seen from the pool: how to open, close, reset and probe one raw connection, and
 * how to recognise an error that means "this connection is dead".
 *
 * It replaces SQLAlchemy's `creator` + dialect. The pool is generic over it and knows nothing
 * of databases. Implementations: `PgDriver` (`effect-db-pool/pg`) and `MockDriver`
 * (`effect-db-pool/testing`).
 *
 * @since 0.1.0
 */
import { Context, Layer } from "effect"
import type { Effect } from "effect"

/**
 * The driver contract. Every operation may fail with the driver's own error; the pool wraps it
 * (a failed `connect` becomes `ConnectError`, a failed `rollback` invalidates the slot, ...).
 *
 * Contract for implementers: an interrupted `connect` leaves no connection open, and `close`
 * releases everything the connection holds even when it fails.
 *
 * @category models
 * @since 0.1.0
 */
export interface DriverShape<C> {
  /** Short name used in logs and spans, e.g. `"postgresql"`. */
  readonly name: string
  /**
   * Optional: where connections go, for error messages (`ConnectTimeoutError`), e.g.
   * `127.0.0.1:5432 (database "app", user "app")`. Never a secret: it may be logged.
   */
  readonly target?: string | undefined
  /** Open one raw connection. */
  readonly connect: Effect.Effect<C, unknown>
  /** Close a raw connection. */
  readonly close: (connection: C) => Effect.Effect<void, unknown>
  /** Roll back whatever the connection holds open (reset on return). */
  readonly rollback: (connection: C) => Effect.Effect<void, unknown>
  /** Commit whatever the connection holds open (reset on return with `"commit"`). */
  readonly commit: (connection: C) => Effect.Effect<void, unknown>
  /** The cheapest round trip that proves the connection is alive (pre-ping, keepalive). */
  readonly ping: (connection: C) => Effect.Effect<void, unknown>
  /** Does this error mean the connection is gone (SQLAlchemy's `is_disconnect`)? */
  readonly isDisconnect: (error: unknown) => boolean
  /**
   * Optional, synchronous: `false` when the driver knows the reset would do nothing (no
   * transaction open, no session state to discard), so the reset round trip on return can be
   * skipped. Absent = always reset.
   */
  readonly needsReset?: ((connection: C) => boolean) | undefined
  /**
   * Optional, synchronous, no round trip: `true` when the driver already knows the connection is
   * dead (its socket closed, the server ended the session while it was idle, ...). Checked at
   * every checkout of an idle connection, so it must be cheap (a flag read); a dead one is
   * invalidated (reason `"disconnect"`) and the checkout goes on with a new connection, with no
   * error for the user. Absent = never known dead (only `prePing` finds out).
   */
  readonly isDead?: ((connection: C) => boolean) | undefined
}

/**
 * The `Driver` service a pool layer requires. Its connection type is `unknown` here (one tag
 * serves every driver); a pool reads it back typed through the driver's pool tag (see
 * `ConnectionPool.typed`).
 *
 * @example
 * ```ts
 * import { Effect, Layer } from "effect"
 * import { Driver } from "effect-db-pool"
 *
 * const Echo = Driver.layer<{ id: number }>({
 *   name: "echo",
 *   connect: Effect.succeed({ id: 1 }),
 *   close: () => Effect.void,
 *   rollback: () => Effect.void,
 *   commit: () => Effect.void,
 *   ping: () => Effect.void,
 *   isDisconnect: () => false
 * })
 * ```
 *
 * @category services
 * @since 0.1.0
 */
export class Driver extends Context.Service<Driver, DriverShape<unknown>>()("effect-db-pool/Driver") {}

/**
 * Provide a driver implementation as a layer.
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = <C>(driver: DriverShape<C>): Layer.Layer<Driver> =>
  Layer.succeed(Driver, driver as unknown as DriverShape<unknown>)
