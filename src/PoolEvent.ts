/**
 * What happens to connections in a pool, told as events (SQLAlchemy 2.0's pool events).
 *
 * Events reach you two ways: as hooks given when the pool layer is built ({@link PoolHooks},
 * run in the pipeline, in order) and as the pool's `events` stream (for observers).
 *
 * Orders (catalogue): first checkout and return: first_connect, connect, checkout, reset,
 * checkin. Invalidate: invalidate, close, checkin. Detach: detach; returning the detached
 * handle: reset, close_detached. Dispose: close per idle connection.
 *
 * @since 0.1.0
 */
import type { Effect } from "effect"
import type { DisconnectionError } from "./PoolError.ts"

/**
 * What happened: one name per event (SQLAlchemy's event names); each has a hook in
 * {@link PoolHooks} (`connect` → `onConnect`, `close_detached` → `onCloseDetached`, ...).
 *
 * @category models
 * @since 0.1.0
 */
export type PoolEventType =
  | "first_connect"
  | "connect"
  | "checkout"
  | "checkin"
  | "reset"
  | "invalidate"
  | "soft_invalidate"
  | "close"
  | "detach"
  | "close_detached"
  | "suspend"
  | "resume"
  | "resize"

/**
 * A pool slot and the connection it holds, as hooks see it (SQLAlchemy 2.0's
 * `ConnectionPoolEntry`).
 *
 * @category models
 * @since 0.1.0
 */
export interface ConnectionEntry<C = unknown> {
  /** Id of the slot. */
  readonly slot: number
  /** The raw connection the slot holds now, if any. */
  readonly connection: C | undefined
  /** Per-connection data: survives checkin, replaced by a new map when the slot reconnects. */
  readonly info: Map<string, unknown>
  /** Per-slot data: lives as long as the slot. */
  readonly recordInfo: Map<string, unknown>
}

/**
 * One event. `slot` identifies the connection record (the pool slot); `connection` is the raw
 * driver connection the event is about, when there is one.
 *
 * @category models
 * @since 0.1.0
 */
export interface PoolEvent<C = unknown> {
  /** What happened. */
  readonly type: PoolEventType
  /** The pool's name (`name` option). */
  readonly pool: string
  /** Id of the connection record (slot). */
  readonly slot: number
  /** The raw driver connection the event is about; `undefined` for pool-wide events (suspend, resize, ...). */
  readonly connection: C | undefined
  /**
   * The connection record (SQLAlchemy's `connection_record`): hooks stamp its `info` /
   * `recordInfo` (`event.record.info.set("tenant", ...)` in `onConnect`), and the checked-out
   * handle sees the same maps. `undefined` for a detached connection (`close_detached`, the
   * reset of a detached handle).
   */
  readonly record: ConnectionEntry<C> | undefined
  /** Why, for invalidate / soft_invalidate / close after a failure. */
  readonly cause?: unknown
}

/**
 * An event as the `events` stream delivers it: what happened, to which slot, and why. It holds
 * no raw connection and no record, so a slow subscriber's buffer pins no connection.
 *
 * @category models
 * @since 0.1.0
 */
export interface ObservedEvent {
  /** What happened. */
  readonly type: PoolEventType
  /** The pool's name (`name` option). */
  readonly pool: string
  /** Id of the connection record (slot). */
  readonly slot: number
  /** Why, for invalidate / soft_invalidate / close after a failure. */
  readonly cause?: unknown
}

/**
 * A hook: runs inside the pipeline when its event fires. Hooks should be quick; a failing hook
 * is logged and ignored, except where noted on the field.
 *
 * @category models
 * @since 0.1.0
 */
export type Hook<C, E = never> = (event: PoolEvent<C>) => Effect.Effect<void, E>

/**
 * Hooks given at layer build.
 *
 * @category models
 * @since 0.1.0
 */
export interface PoolHooks<C = unknown> {
  /** Once per pool (again after `recreate`), before the first `onConnect`. */
  readonly onFirstConnect?: Hook<C, unknown> | undefined
  /** After each new raw connection. A failure closes it and fails that checkout with `ConnectError`. */
  readonly onConnect?: Hook<C, unknown> | undefined
  /** On each checkout. Fail with `DisconnectionError` to invalidate the slot and retry the checkout. */
  readonly onCheckout?: Hook<C, DisconnectionError> | undefined
  /** On each return, after the reset. */
  readonly onCheckin?: Hook<C, unknown> | undefined
  /** Before the rollback/commit of a return (also with `resetOnReturn: "none"`). A failure invalidates the slot. */
  readonly onReset?: Hook<C, unknown> | undefined
  /** A connection was hard-invalidated (user, disconnect, failed reset, ...), before it is closed; `cause` says why. */
  readonly onInvalidate?: Hook<C, unknown> | undefined
  /** A connection was soft-invalidated: still usable by its holder, recycled at its next checkout. */
  readonly onSoftInvalidate?: Hook<C, unknown> | undefined
  /** A pooled connection is about to be closed (invalidation, recycle, dispose, pool close). */
  readonly onClose?: Hook<C, unknown> | undefined
  /** A checked-out connection was detached from its slot (`detach`): the pool no longer counts it. */
  readonly onDetach?: Hook<C, unknown> | undefined
  /** A detached connection was returned and is about to be closed (slot -1, no record). */
  readonly onCloseDetached?: Hook<C, unknown> | undefined
  /** The pool was suspended (`suspend`): new checkouts wait. Slot -1. */
  readonly onSuspend?: Hook<C, unknown> | undefined
  /** The pool was resumed (`resume`). Slot -1. */
  readonly onResume?: Hook<C, unknown> | undefined
  /** The pool's size changed (`resize`). Slot -1. */
  readonly onResize?: Hook<C, unknown> | undefined
}
