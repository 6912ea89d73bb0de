import { Effect, Layer } from "effect"
import type { Scope } from "effect"
import type { ConnectionPool } from "effect-db-pool"
import { PoolEvent, QueuePool } from "effect-db-pool"
import { MockDriver } from "effect-db-pool/testing"
import { Driver } from "../src/Driver.ts"

/** Hooks for every event type that append "type" (or "type#slot") to `log`. */
export const recordingHooks = (
  log: Array<string>,
  withSlot = false
): PoolEvent.PoolHooks<MockDriver.MockConnection> => {
  const hooks: Record<string, PoolEvent.Hook<MockDriver.MockConnection, never>> = {}
  for (const [type, name] of Object.entries(PoolEvent.hookName)) {
    hooks[name] = (event) =>
      Effect.sync(() => {
        log.push(withSlot ? `${type}#${event.slot}` : type)
      })
  }
  return hooks as PoolEvent.PoolHooks<MockDriver.MockConnection>
}

/** Recording hooks, each followed by the user's hook of the same name when given. */
export const withRecording = (
  log: Array<string>,
  withSlot: boolean,
  user: PoolEvent.PoolHooks<MockDriver.MockConnection> = {}
): PoolEvent.PoolHooks<MockDriver.MockConnection> => {
  const recording = recordingHooks(log, withSlot) as Record<string, PoolEvent.Hook<MockDriver.MockConnection, any>>
  const merged: Record<string, PoolEvent.Hook<MockDriver.MockConnection, any>> = {}
  for (const [name, hook] of Object.entries(recording)) {
    const own = (user as Record<string, PoolEvent.Hook<MockDriver.MockConnection, any> | undefined>)[name]
    merged[name] = own === undefined ? hook : (event) => Effect.andThen(hook(event), own(event))
  }
  return merged as PoolEvent.PoolHooks<MockDriver.MockConnection>
}

export interface Fixture {
  readonly pool: ConnectionPool.Service<MockDriver.MockConnection>
  readonly mock: MockDriver.MockDriverControl
  readonly events: Array<string>
}

/** A QueuePool over a fresh MockDriver in the current scope, with every event recorded. */
export const queuePool = (
  options: QueuePool.Options<MockDriver.MockConnection> = {},
  withSlot = false
): Effect.Effect<Fixture, never, Scope.Scope> =>
  Effect.gen(function*() {
    const mock = MockDriver.make()
    const events: Array<string> = []
    const pool = yield* QueuePool.make<MockDriver.MockConnection>({
      ...options,
      hooks: withRecording(events, withSlot, options.hooks)
    }).pipe(Effect.provide(Layer.succeed(Driver, mock.driver)), Effect.orDie)
    return { pool, mock, events }
  })

/** [size, checkedIn, overflow, checkedOut] */
export const counts = (pool: ConnectionPool.Service<any>) =>
  Effect.map(pool.status, (s) => [s.size, s.checkedIn, s.overflow, s.checkedOut])
