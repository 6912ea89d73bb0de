/**
 * The PostgreSQL `Driver`: raw connections are `@effect/sql-pg`'s native `PgConnection`s, one
 * per child scope (closing the connection = closing that scope).
 *
 * Besides opening and closing, the driver knows what the pool needs: whether an error means the
 * session is dead ({@link isDisconnect}), whether a connection is already known dead (checked
 * at checkout, no round trip: {@link Connection.isDead}), and whether a connection is known to be
 * outside a transaction, so that reset on return can skip its `ROLLBACK` round trip
 * ({@link Connection}). It also bounds what would wait on an unresponsive server: an interrupted
 * statement ({@link Config.cancelTimeout}) or pre-ping closes the socket and returns.
 *
 * @since 0.1.0
 */
import { Config as EffectConfig, Context, Duration, Effect, Exit, Layer, Scope } from "effect"
import { typed } from "../ConnectionPool.ts"
import type { ConnectionPool, Service as PoolService } from "../ConnectionPool.ts"
import { Driver } from "../Driver.ts"
import type { DriverShape } from "../Driver.ts"
import { PgConfigError, rememberSettings, validate } from "./internal/config.ts"
import { connector } from "./internal/connect.ts"
import { ConnectionImpl, defaultCancelMillis } from "./internal/connection.ts"
import type { Connection } from "./internal/connection.ts"
import { isDisconnect } from "./internal/errors.ts"
import * as HostList from "./internal/host-list.ts"
import * as PoolerInternal from "./internal/pooler.ts"
import { PgDriver } from "./internal/settings.ts"
import type { Config } from "./internal/settings.ts"
import * as SqlPg from "./internal/sql-pg-internals.ts"

export { PgConfigError } from "./internal/config.ts"
export { HostsError } from "./internal/connect.ts"
export { Connection } from "./internal/connection.ts"
export { EncodingError } from "./internal/encoding.ts"
export { isDisconnect } from "./internal/errors.ts"
export { isTransactionPoolerError, TransactionPoolerError } from "./internal/pooler.ts"
export { touchesSessionState } from "./internal/session.ts"
export { PgDriver } from "./internal/settings.ts"
export type { Config } from "./internal/settings.ts"
export { TargetSessionAttrsError } from "./internal/target-session.ts"

// ------------------------------------------------------------------------------------ config

/**
 * The hosts a config names, in order, each with its port (`host: "a,b"`, `port: "1,2"`, a URL
 * with several hosts...), or why they cannot be read.
 *
 * @example
 * ```ts
 * import { Redacted } from "effect"
 * import { PgDriver } from "effect-db-pool/pg"
 *
 * PgDriver.hostsOf({ url: Redacted.make("postgres://u@a:5432,b:5433/db") })
 * // [{ host: "a", port: 5432 }, { host: "b", port: 5433 }]
 * PgDriver.hostsOf({ host: "a,b", port: "5432,5433" }) // the same
 * ```
 *
 * @category utils
 * @since 0.1.0
 */
export const hostsOf = (config: Config): ReadonlyArray<Config.Host> | PgConfigError => {
  const targets = HostList.resolve(config)
  return "hosts" in targets
    ? targets.hosts
    : new PgConfigError({
      field: targets.field,
      value: (config as Record<string, unknown>)[targets.field],
      reason: targets.reason
    })
}

// ----------------------------------------------------------------------------- driver/layer

/**
 * The `ConnectionPool` service of a pool built over this driver, with its raw connection typed
 * as a {@link Connection}: `yield* PgDriver.Pool` where `yield* ConnectionPool.ConnectionPool`
 * would give an `unknown` connection. Same service, same requirement.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { PgDriver } from "effect-db-pool/pg"
 *
 * const knownIdle = Effect.gen(function*() {
 *   const pool = yield* PgDriver.Pool
 *   return yield* pool.use((conn) => Effect.succeed(conn.connection.knownIdle))
 * })
 * ```
 *
 * @category services
 * @since 0.1.0
 */
export const Pool: Context.Service<ConnectionPool, PoolService<Connection>> = typed<Connection>()

/**
 * The driver for already validated settings.
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = (config: Config): DriverShape<Connection> => {
  // `pooler: "transaction"` implies `prepare: false` and `sessionReset: "none"` (see `Config.pooler`).
  const {
    alwaysReset = false,
    sessionReset = "auto",
    cancelTimeout,
    pooler,
    listenUrl: _listenUrl,
    ...connectionConfig
  } = {
    ...config,
    ...PoolerInternal.defaultsFor(config)
  }
  const cancelMillis = cancelTimeout === undefined
    ? defaultCancelMillis
    : Duration.toMillis(Duration.fromInputUnsafe(cancelTimeout))
  // The first acceptable host (several hosts, targetSessionAttrs); one host: PgConnection.make.
  const connectNative = connector(connectionConfig, isDisconnect)
  // Layers above the pool (`PgSql`) read these settings from the pool's driver.
  const driver: DriverShape<ConnectionImpl> = {
    name: "postgresql",
    target: HostList.where(connectionConfig),
    connect: Effect.uninterruptibleMask((restore) =>
      Effect.flatMap(Scope.make(), (scope) =>
        restore(Scope.provide(connectNative, scope)).pipe(
          Effect.onExit((exit) => Exit.isFailure(exit) ? Scope.close(scope, exit) : Effect.void),
          Effect.flatMap((native) => {
            const connection = new ConnectionImpl(native, scope, alwaysReset, sessionReset, pooler === "transaction")
            connection.cancelMillis = cancelMillis
            // Once per process: what this @effect/sql-pg lacks and what the driver does instead.
            return Effect.as(SqlPg.warnMissing(connection.missingInternals), connection)
          })
        ))
    ),
    close: (connection) =>
      Effect.suspend(() => {
        connection.disarm()
        return Scope.close(connection.scope, Exit.void)
      }),
    rollback: (connection) => connection.reset("ROLLBACK"),
    commit: (connection) => connection.reset("COMMIT"),
    ping: (connection) => connection.ping,
    isDisconnect,
    // The session died while idle (idle_session_timeout, a terminated backend, a socket error,
    // a bound this driver enforced): the checkout replaces it without handing it out.
    isDead: (connection) => connection.isDead,
    // Known outside a transaction, no session state to discard and not known dead: the pool
    // skips the reset round trip.
    needsReset: (connection) =>
      connection.alwaysReset || !connection.knownIdle || connection.needsDiscard || connection.isDead
  }
  // Every connection this driver is handed back is one it made (a `ConnectionImpl`).
  return rememberSettings(driver as unknown as DriverShape<Connection>, config)
}

/**
 * Provide the pool's `Driver` (raw connections are {@link Connection}s) and the {@link PgDriver}
 * settings. Settings are validated when the layer builds.
 *
 * @example
 * ```ts
 * import { Layer, Redacted } from "effect"
 * import { QueuePool } from "effect-db-pool"
 * import { PgDriver, PgSql } from "effect-db-pool/pg"
 *
 * const Sql = PgSql.layer().pipe(
 *   Layer.provide(QueuePool.layer({ poolSize: 5, prePing: true })),
 *   Layer.provide(PgDriver.layer({ url: Redacted.make("postgres://postgres@127.0.0.1:5432/test") }))
 * )
 * ```
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (config: Config): Layer.Layer<Driver | PgDriver, PgConfigError> =>
  Layer.effectContext(
    Effect.map(validate(config), (valid) =>
      Context.make(Driver, make(valid) as unknown as DriverShape<unknown>).pipe(
        Context.add(PgDriver, { config: valid })
      ))
  )

/**
 * As {@link layer}, with settings read from `Config`.
 *
 * @example
 * ```ts
 * import { Config } from "effect"
 * import { PgDriver } from "effect-db-pool/pg"
 *
 * const Driver = PgDriver.layerConfig({
 *   url: Config.Redacted("DATABASE_URL"),
 *   applicationName: Config.succeed("my-app")
 * })
 * ```
 *
 * @category layers
 * @since 0.1.0
 */
export const layerConfig = (
  config: EffectConfig.Wrap<Config>
): Layer.Layer<Driver | PgDriver, PgConfigError | EffectConfig.ConfigError> =>
  Layer.unwrap(Effect.map(EffectConfig.unwrap(config), layer))
