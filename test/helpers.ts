import { Cause, Effect, Logger, References, Scope, Tracer } from "effect"
import type { ConnectionPool } from "effect-db-pool"
import { Driver, PoolEvent, PoolOptions, QueuePool } from "effect-db-pool"
import { MockDriver } from "effect-db-pool/testing"
import { hookNames } from "../src/internal/hooks.ts"

/**
 * Hooks for every hook of the pool's own list that append the event's type (or "type#slot") to
 * `log`. The list is the pool's (`src/internal/core.ts`, which option validation also reads);
 * test/events.test.ts checks that each hook in it fires with an event type of its own.
 */
export const recordingHooks = (
  log: Array<string>,
  withSlot = false
): PoolEvent.PoolHooks<MockDriver.MockConnection> => {
  const hooks: Record<string, PoolEvent.Hook<MockDriver.MockConnection, never>> = {}
  for (const name of hookNames) {
    hooks[name] = (event) =>
      Effect.sync(() => {
        log.push(withSlot ? `${event.type}#${event.slot}` : event.type)
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
    }).pipe(Effect.provide(Driver.layer(mock.driver)), Effect.orDie)
    return { pool, mock, events }
  })

/** Check out from `pool` for the life of `scope` (a checkout held across steps of a test). */
export const checkoutIn = <C>(pool: ConnectionPool.Service<C>, scope: Scope.Scope) =>
  pool.checkout.pipe(Scope.provide(scope))

/** [size, checkedIn, overflow, checkedOut] */
export const counts = (pool: ConnectionPool.Service<any>) =>
  Effect.map(pool.status, (s) => [s.size, s.checkedIn, s.overflow, s.checkedOut])

export interface LogLine {
  readonly level: string
  readonly message: string
  readonly annotations: Readonly<Record<string, unknown>>
  readonly cause: string
}

/** A logger layer that records every log line (message, level, annotations, cause). */
export const captureLogs = (lines: Array<LogLine>) =>
  Logger.layer([
    Logger.make((options) => {
      const message = Array.isArray(options.message) ? options.message.map(String).join(" ") : String(options.message)
      lines.push({
        level: options.logLevel,
        message,
        annotations: options.fiber.getRef(References.CurrentLogAnnotations),
        cause: Cause.pretty(options.cause)
      })
    })
  ])

/** Any strategy's `make`, as the fixtures below take it. */
export type MakePool = (
  options: any
) => Effect.Effect<ConnectionPool.Service<any>, unknown, Driver.Driver | Scope.Scope>

/** A pool of any strategy over a fresh MockDriver in the current scope, with every event recorded. */
export const strategyPool = (
  make: MakePool,
  options: Record<string, unknown> = {},
  withSlot = false
): Effect.Effect<Fixture, never, Scope.Scope> =>
  Effect.gen(function*() {
    const mock = MockDriver.make()
    const events: Array<string> = []
    const pool = yield* make({ hooks: recordingHooks(events, withSlot), ...options }).pipe(
      Effect.provide(Driver.layer(mock.driver)),
      Effect.orDie
    )
    return { pool, mock, events }
  })

/** A tracer that records every span it makes, in order. */
export const recordingTracer = (spans: Array<Tracer.Span>): Tracer.Tracer =>
  Tracer.make({
    span: (options) => {
      const span = new Tracer.NativeSpan(options)
      spans.push(span)
      return span
    }
  })

/**
 * A row per strategy, in the order of the library's own list (`PoolOptions.strategyNames`). The
 * rows are keyed by strategy name: a strategy added to the library without its row here does
 * not compile, so a test over every strategy never silently skips one.
 */
export const everyStrategy = <A>(
  rows: { readonly [K in PoolOptions.StrategyName]: A }
): ReadonlyArray<readonly [PoolOptions.StrategyName, A]> =>
  PoolOptions.strategyNames.map((name) => [name, rows[name]] as const)
