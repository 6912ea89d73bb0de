/**
 * An in-memory `Driver` with scriptable faults and a call log: the analog of SQLAlchemy's
 * MockDBAPI. Use it to test code that uses a pool, deterministically, with no database.
 *
 * Every connection has an id and a log of the calls made on it. Each driver operation
 * (`connect`, `ping`, `rollback`, `commit`, `close`) can be scripted to succeed, fail, be slow
 * (an `Effect.sleep`, so `TestClock` drives it) or hang; the database can be taken down and
 * brought back up; single connections can be killed.
 *
 * @since 0.1.0
 */
import { Context, Data, Duration, Effect, Layer } from "effect"
import { typed } from "../ConnectionPool.ts"
import type { ConnectionPool, Service as PoolService } from "../ConnectionPool.ts"
import { Driver } from "../Driver.ts"
import type { DriverShape } from "../Driver.ts"

/**
 * A driver operation that can be scripted (see {@link MockDriverControl.set}).
 *
 * @category models
 * @since 0.1.0
 */
export type MockOperation = "connect" | "ping" | "rollback" | "commit" | "close"

/**
 * How an operation behaves: `"ok"`, `"fail"` (a `MockDbError`), `"disconnect"` (a `MockDbError`
 * that `isDisconnect` recognises), `"hang"` (never completes), or `{ delay }` (succeeds after it).
 *
 * @category models
 * @since 0.1.0
 */
export type MockBehaviour = "ok" | "fail" | "disconnect" | "hang" | {
  /** Succeed after this long (`"50 millis"`; a bare number is milliseconds). */
  readonly delay: Duration.Input
}

/**
 * One in-memory connection.
 *
 * @category models
 * @since 0.1.0
 */
export interface MockConnection {
  /** 1, 2, 3, ... in the order the connections were made. */
  readonly id: number
  /** Calls made on this connection, in order: "ping", "rollback", "commit", "close". */
  readonly calls: Array<Exclude<MockOperation, "connect">>
  /** `close` was called (even if it then failed or hung). */
  closed: boolean
  /** The server side is gone: pings, rollbacks and commits fail with a disconnect. */
  dead: boolean
}

/**
 * The error every scripted failure raises.
 *
 * @category errors
 * @since 0.1.0
 */
export class MockDbError extends Data.TaggedError("MockDbError")<{
  /** The operation that failed. */
  readonly operation: MockOperation
  /** True for a disconnect (`"disconnect"` behaviour, a dead or closed connection, database down). */
  readonly disconnect: boolean
  /** What failed, e.g. `"ping#1: scripted fail"`. */
  readonly message: string
}> {}

/**
 * The script and the record of what happened.
 *
 * @category models
 * @since 0.1.0
 */
export interface MockDriverControl {
  /** The `Driver` to give the pool (what {@link layer} provides). */
  readonly driver: DriverShape<MockConnection>
  /** Every connection ever made, in order. */
  readonly connections: ReadonlyArray<MockConnection>
  /** Connections made and not closed: what the "server" still holds. */
  readonly open: () => ReadonlyArray<MockConnection>
  /** Driver-level log, e.g. "connect#1", "ping#1", "close#1", "connect:fail". */
  readonly log: Array<string>
  /** Number of connect attempts, successful or not. */
  readonly connectAttempts: () => number
  /** Script an operation for every later call (a function is asked anew at each call). */
  readonly set: (operation: MockOperation, behaviour: MockBehaviour | (() => MockBehaviour)) => void
  /** Script the next `n` calls of an operation (then it returns to its standing behaviour). */
  readonly next: (operation: MockOperation, behaviour: MockBehaviour, n?: number) => void
  /** Database down: connects fail with a disconnect error, every open connection dies. */
  readonly down: () => void
  /** Database up again (open connections stay dead). */
  readonly up: () => void
  /** Kill one connection's server side. */
  readonly kill: (id: number) => void
  /** Back to all "ok", up, log kept. */
  readonly reset: () => void
}

/** A mock driver's state: its connections, its log and its script. */
interface State {
  readonly connections: Array<MockConnection>
  readonly log: Array<string>
  readonly standing: Map<MockOperation, MockBehaviour | (() => MockBehaviour)>
  readonly queued: Map<MockOperation, Array<MockBehaviour>>
  isDown: boolean
  attempts: number
}

/** The behaviour of the next call of an operation: a queued one first, else the standing one. */
const behaviourOf = (state: State, operation: MockOperation): MockBehaviour => {
  const q = state.queued.get(operation)
  if (q !== undefined && q.length > 0) return q.shift()!
  const behaviour = state.standing.get(operation) ?? "ok"
  return typeof behaviour === "function" ? behaviour() : behaviour
}

/** Run one call as scripted: `value` on success, a `MockDbError`, a delay or a hang. */
const run = <A>(state: State, operation: MockOperation, label: string, value: () => A): Effect.Effect<A, MockDbError> =>
  Effect.suspend(() => {
    const behaviour = behaviourOf(state, operation)
    if (behaviour === "ok") return Effect.sync(value)
    if (behaviour === "fail" || behaviour === "disconnect") {
      state.log.push(`${label}:${behaviour}`)
      return Effect.fail(
        new MockDbError({
          operation,
          disconnect: behaviour === "disconnect",
          message: `${label}: scripted ${behaviour}`
        })
      )
    }
    if (behaviour === "hang") {
      state.log.push(`${label}:hang`)
      return Effect.never
    }
    return Effect.andThen(Effect.sleep(behaviour.delay), Effect.sync(value))
  })

/** An operation on an open connection: fails as a disconnect on a closed or dead one. */
const onLive = (state: State, operation: Exclude<MockOperation, "connect" | "close">) => (c: MockConnection) =>
  Effect.suspend(() => {
    c.calls.push(operation)
    state.log.push(`${operation}#${c.id}`)
    if (c.closed) {
      return Effect.fail(new MockDbError({ operation, disconnect: true, message: `connection ${c.id} is closed` }))
    }
    if (c.dead) {
      return Effect.fail(
        new MockDbError({ operation, disconnect: true, message: `server closed connection ${c.id}` })
      )
    }
    return run(state, operation, `${operation}#${c.id}`, () => undefined)
  })

const driverOf = (state: State): DriverShape<MockConnection> => ({
  name: "mock",
  connect: Effect.suspend(() => {
    state.attempts++
    if (state.isDown) {
      state.log.push("connect:down")
      return Effect.fail(new MockDbError({ operation: "connect", disconnect: true, message: "database is down" }))
    }
    // The connection exists only once connect completes: an interrupted connect leaves nothing.
    return run(state, "connect", "connect", () => {
      const c: MockConnection = { id: state.connections.length + 1, calls: [], closed: false, dead: false }
      state.connections.push(c)
      state.log.push(`connect#${c.id}`)
      return c
    })
  }),
  close: (c) =>
    Effect.suspend(() => {
      c.calls.push("close")
      state.log.push(`close#${c.id}`)
      c.closed = true
      return run(state, "close", `close#${c.id}`, () => undefined)
    }),
  rollback: onLive(state, "rollback"),
  commit: onLive(state, "commit"),
  ping: onLive(state, "ping"),
  isDisconnect: (error) => error instanceof MockDbError && error.disconnect
})

/**
 * Make a mock driver and its control.
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = (): MockDriverControl => {
  const state: State = {
    connections: [],
    log: [],
    standing: new Map(),
    queued: new Map(),
    isDown: false,
    attempts: 0
  }
  return {
    driver: driverOf(state),
    connections: state.connections,
    open: () => state.connections.filter((c) => !c.closed),
    log: state.log,
    connectAttempts: () => state.attempts,
    set: (operation, behaviour) => {
      state.standing.set(operation, behaviour)
    },
    next: (operation, behaviour, n = 1) => {
      const q = state.queued.get(operation) ?? []
      for (let i = 0; i < n; i++) q.push(behaviour)
      state.queued.set(operation, q)
    },
    down: () => {
      state.isDown = true
      for (const c of state.connections) c.dead = true
    },
    up: () => {
      state.isDown = false
    },
    kill: (id) => {
      const c = state.connections.find((c) => c.id === id)
      if (c !== undefined) c.dead = true
    },
    reset: () => {
      state.standing.clear()
      state.queued.clear()
      state.isDown = false
    }
  }
}

/**
 * The mock's control, as a service (provided by {@link layer} next to `Driver`).
 *
 * @category services
 * @since 0.1.0
 */
export class MockDriver extends Context.Service<MockDriver, MockDriverControl>()("effect-db-pool/testing/MockDriver") {}

/**
 * The `ConnectionPool` service of a pool built over the mock, with its raw connection typed as
 * a {@link MockConnection}. Same service and requirement as `ConnectionPool.ConnectionPool`.
 *
 * @category services
 * @since 0.1.0
 */
export const Pool: Context.Service<ConnectionPool, PoolService<MockConnection>> = typed<MockConnection>()

/**
 * A fresh mock as a layer: provides `Driver` and `MockDriver` (its control). Each call makes a
 * new mock: call it where you provide it (effect memoizes a layer value by reference, also
 * across nested `Effect.provide`s, so one value would be one mock shared by every stack).
 *
 * @example
 * ```ts
 * import { Effect, Layer } from "effect"
 * import { ConnectionPool, QueuePool } from "effect-db-pool"
 * import { MockDriver } from "effect-db-pool/testing"
 *
 * const Test = QueuePool.layer({ poolSize: 2 }).pipe(Layer.provideMerge(MockDriver.layer()))
 * const program = Effect.gen(function*() {
 *   const mock = yield* MockDriver.MockDriver
 *   mock.next("connect", "fail")
 *   const pool = yield* ConnectionPool.ConnectionPool
 *   return yield* Effect.result(pool.use(() => Effect.void))   // Failure(ConnectError)
 * }).pipe(Effect.provide(Test))
 * ```
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (): Layer.Layer<Driver | MockDriver> =>
  Layer.effectContext(
    Effect.sync(() => {
      const control = make()
      return Context.make(Driver, control.driver as unknown as DriverShape<unknown>).pipe(
        Context.add(MockDriver, control)
      )
    })
  )

/** Re-exported so tests can write delays without importing Duration. @since 0.1.0 */
export const delay = (input: Duration.Input): MockBehaviour => ({ delay: input })
