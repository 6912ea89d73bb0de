/**
 * The `ConnectionPool` service of one pool, assembled once from its core and its strategy: the
 * checkout pipeline (shared leases on top where the strategy or `reentrant` asks for them), the
 * suspension gate, status and settings, events, metrics and background upkeep. The pool shuts
 * down when the scope it was built in closes.
 *
 * @internal
 */
import { Duration, Effect, Option } from "effect"
import type { Scope } from "effect"
import type { PooledConnection, PoolSettings, PoolStatus, Service, Sharing } from "../ConnectionPool.ts"
import type { DriverShape } from "../Driver.ts"
import type { CheckoutError } from "../PoolError.ts"
import * as Checkout from "./checkout.ts"
import * as Control from "./control.ts"
import type { PoolCore } from "./core.ts"
import * as Events from "./events.ts"
import * as Housekeeper from "./housekeeper.ts"
import { attachLeakWatch } from "./leaks.ts"
import * as Pipeline from "./pipeline.ts"
import { share } from "./reentrant.ts"
import { withCallSite } from "./site.ts"
import { limitOf } from "./strategy.ts"
import type { Strategy } from "./strategy.ts"

/** Where a pool service keeps the driver it connects with (see {@link driverOf}). */
const driverKey = Symbol.for("effect-db-pool/ConnectionPool/driver")

/** A service assembled here: it carries its driver under {@link driverKey}. */
interface WithDriver {
  readonly [driverKey]?: DriverShape<unknown>
}

/**
 * The driver a pool built here connects with; `undefined` for a service made some other way.
 * Layers above a pool read the driver's settings from the pool itself, not from context: a pool
 * provided on its own (`PoolManager.provide`) keeps its own settings. The key is a non-enumerable
 * property, so a copy of the service made from its property descriptors keeps it.
 * @internal
 */
export const driverOf = (service: Service<unknown>): DriverShape<unknown> | undefined =>
  (service as Service<unknown> & WithDriver)[driverKey]

/** The service's `settings`: the resolved common options and the strategy's own settings now. */
const settingsOf = <C>(
  core: PoolCore<C>,
  strategy: Strategy<C, CheckoutError>,
  sharing: Sharing | undefined
): PoolSettings => {
  const o = core.options
  const own = strategy.settings()
  return {
    name: o.name,
    strategy: core.strategy,
    poolSize: own.poolSize,
    maxOverflow: own.maxOverflow,
    timeout: own.timeout,
    lifo: own.lifo,
    sharing,
    recycle: o.recycle,
    prePing: o.prePing,
    resetOnReturn: o.resetOnReturn,
    resetTimeout: o.resetTimeout,
    connectTimeout: o.connectTimeout,
    reentrant: o.reentrant,
    leakDetectionThreshold: o.leakDetectionThreshold,
    maxUses: o.maxUses,
    maxLifetime: o.maxLifetime
  }
}

/**
 * Assemble the `ConnectionPool` service from a core and a strategy. The pool shuts down when
 * the surrounding scope closes.
 * @internal
 */
export const make = <C>(
  core: PoolCore<C>,
  strategy: Strategy<C, CheckoutError>,
  recreate: Effect.Effect<Service<C>, never, Scope.Scope>
): Effect.Effect<Service<C>, never, Scope.Scope> =>
  Effect.suspend(() => {
    const upkeep = strategy.upkeep
    const tracksIdle = upkeep !== undefined && Housekeeper.isNeeded(core, upkeep.options)
    const pipeline = Pipeline.make(core, strategy, tracksIdle)
    const gate = pipeline.gate
    const sharing = strategy.share ?? (core.options.reentrant ? "fiber" : undefined)
    const direct = {
      checkout: Checkout.checkout(pipeline),
      use: <A, E, R>(f: (c: PooledConnection<C>) => Effect.Effect<A, E, R>) => Checkout.use(pipeline, f)
    }
    const isDead = core.driver.isDead
    const shared = sharing === undefined
      ? direct
      : share(direct, sharing, isDead === undefined ? undefined : (connection: C) => isDead(connection) === true)
    // Where a site will be reported (AssertionPool, leak detection), take the caller's stack
    // when `checkout` is read or `use` called: in the user's frame, the only moment it is there.
    const wantsSite = strategy.wantsSite === true || Duration.isFinite(core.options.leakDetectionThreshold)
    const use = wantsSite
      ? <A, E, R>(f: (c: PooledConnection<C>) => Effect.Effect<A, E, R>) => withCallSite(shared.use(f))
      : shared.use
    // Checkouts waiting at the gate of a suspended pool count as waiting.
    const status = (): PoolStatus => {
      const s = strategy.status()
      return gate.waiting === 0 ? s : { ...s, waiting: s.waiting + gate.waiting }
    }
    const events = Events.make(core)
    const service: Service<C> = {
      name: core.name,
      strategy: core.strategy,
      get checkout() {
        return wantsSite ? withCallSite(shared.checkout) : shared.checkout
      },
      use,
      status: Effect.sync(status),
      stats: Effect.sync(() => {
        const { checkedIn, checkedOut, waiting } = status()
        const { max, min } = strategy.limits()
        return { idle: checkedIn, used: checkedOut, pending: waiting, min, max }
      }),
      dispose: strategy.dispose,
      recreate,
      invalidateAll: core.invalidateAll,
      invalidationTime: Effect.sync(() => Option.fromUndefinedOr(core.invalidationTime)),
      get settings() {
        return settingsOf(core, strategy, sharing)
      },
      resize: (change) => Control.resize(core, strategy, change),
      suspend: gate.suspend,
      resume: gate.resume,
      isSuspended: Effect.sync(() => gate.suspended),
      events: events.stream,
      droppedEvents: Effect.sync(events.dropped)
    }
    Object.defineProperty(service, driverKey, { value: core.driver })
    if (pipeline.armsLeakTimer) attachLeakWatch(service, core)
    const unregister = core.instruments?.register(status, () => gate.suspended, () => limitOf(strategy))
    const housekeeping = tracksIdle
      ? Effect.forkScoped(Housekeeper.run(core, upkeep!.slots, upkeep!.options))
      : Effect.void
    return Effect.as(
      Effect.andThen(
        // Shut the strategy down first: checkouts held at a suspended pool's gate then fail closed.
        Effect.addFinalizer(() =>
          Effect.andThen(Effect.sync(() => unregister?.()), Effect.andThen(strategy.shutdown, gate.close))
        ),
        housekeeping
      ),
      service
    )
  })
