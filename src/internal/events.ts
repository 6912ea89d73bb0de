/**
 * The `events` stream of a pool: each subscriber gets its own bounded buffer, fed synchronously
 * by the pool's event fan-out (`PoolCore.listeners`). A subscriber that falls behind loses the
 * newest events (counted), never slows the pool nor grows its memory; an event it receives
 * keeps neither the raw connection nor the record.
 *
 * @internal
 */
import { Effect, Queue, Stream } from "effect"
import { eventBufferSize } from "../ConnectionPool.ts"
import type { ObservedEvent, PoolEvent } from "../PoolEvent.ts"
import type { PoolCore } from "./core.ts"

/** A pool's event stream and the count of events its subscribers dropped. @internal */
export interface Events {
  readonly stream: Stream.Stream<ObservedEvent>
  readonly dropped: () => number
}

/** @internal */
export const make = <C>(core: PoolCore<C>): Events => {
  let dropped = 0
  const stream = Stream.callback<ObservedEvent>((queue) =>
    Effect.acquireRelease(
      Effect.sync(() => {
        const listener = (event: PoolEvent<C>) => {
          const observed: ObservedEvent = event.cause === undefined
            ? { type: event.type, pool: event.pool, slot: event.slot }
            : { type: event.type, pool: event.pool, slot: event.slot, cause: event.cause }
          if (!Queue.offerUnsafe(queue, observed)) dropped++
        }
        core.listeners.add(listener)
        return listener
      }),
      (listener) => Effect.sync(() => core.listeners.delete(listener))
    ), { bufferSize: eventBufferSize, strategy: "dropping" })
  return { stream, dropped: () => dropped }
}
