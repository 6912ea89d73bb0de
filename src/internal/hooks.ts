/**
 * The hook of each pool event type: the one list of hooks. The pool core fires them by it, and
 * option validation takes the hook names from it.
 *
 * @internal
 */
import type { PoolEventType, PoolHooks } from "../PoolEvent.ts"

/** The hook of each event type. */
export const hookName = {
  first_connect: "onFirstConnect",
  connect: "onConnect",
  checkout: "onCheckout",
  checkin: "onCheckin",
  reset: "onReset",
  invalidate: "onInvalidate",
  soft_invalidate: "onSoftInvalidate",
  close: "onClose",
  detach: "onDetach",
  close_detached: "onCloseDetached",
  suspend: "onSuspend",
  resume: "onResume",
  resize: "onResize"
} as const satisfies { readonly [K in PoolEventType]: keyof PoolHooks }

/** Every event type, in the order of {@link hookName}. */
export const eventTypes = Object.keys(hookName) as ReadonlyArray<PoolEventType>

/** Every hook name (a hook of `PoolHooks` with no event type above does not compile). */
export const hookNames: ReadonlyArray<keyof PoolHooks & string> = Object.values(hookName)
const everyHookHasAnEvent: [Exclude<keyof PoolHooks, (typeof hookName)[PoolEventType]>] extends [never] ? true : never =
  true
void everyHookHasAnEvent
