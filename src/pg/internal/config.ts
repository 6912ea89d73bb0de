/**
 * The rules of `PgDriver`'s settings ({@link Config}, `settings.ts`) and their validation, made
 * when the layer builds: every check `@effect/sql-pg` would only make when connecting. `PgDriver`
 * re-exports {@link PgConfigError}.
 *
 * @internal
 */
import type { PgConnection } from "@effect/sql-pg"
import { Data, Duration, Effect, Redacted, Result } from "effect"
import * as V from "../../internal/validate.ts"
import * as HostList from "./host-list.ts"
import * as PoolerInternal from "./pooler.ts"
import type { Config } from "./settings.ts"

/** Fields whose value is a secret: an error about one keeps "<redacted>" instead (it may be logged or serialised). */
const secretFields: ReadonlySet<string> = new Set(["url", "password", "listenUrl"])

/**
 * A connection option was invalid. Raised when the layer is built; the value of a secret
 * (`url`, `password`) is never kept, so never shown.
 *
 * @category errors
 * @since 0.1.0
 */
export class PgConfigError extends Data.TaggedError("PgConfigError")<{
  /** The setting's name, as given. */
  readonly field: string
  /** The value given (`"<redacted>"` for a secret). */
  readonly value: unknown
  /** What is wrong with it. */
  readonly reason: string
}> {
  constructor(args: { readonly field: string; readonly value: unknown; readonly reason: string }) {
    super({ ...args, value: secretFields.has(args.field) ? "<redacted>" : args.value })
  }
  /** Names the setting, its value (never a secret's) and the reason. */
  override get message(): string {
    const shown = secretFields.has(this.field) || this.value === "<redacted>" ? "<redacted>" : V.showValue(this.value)
    return `Invalid PostgreSQL option "${this.field}" = ${shown}: ${this.reason}`
  }
}

const pg = V.validator((invalid) => new PgConfigError(invalid))

const reservedStartupParameters = new Set(["user", "database", "replication", "options"])

/** The rules of every {@link Config} field (an option of `PgConnection.Config` without one does not compile). */
const configRules = V.rulesFor<Config>()({
  url: V.custom<Redacted.Redacted | undefined>((value) => {
    if (!Redacted.isRedacted(value)) return Result.fail("must be Redacted (Redacted.make(url))")
    // One host or several (`postgres://u@a:1,b:2/db`); never quoted back (it may hold a password).
    const parsed = HostList.parseUrl(String(Redacted.value(value)))
    return typeof parsed === "string" ? Result.fail(parsed) : Result.succeed(value as Redacted.Redacted)
  }, undefined),
  host: V.string({ noNul: true }),
  // One port, or a comma-separated list of ports, one per host (libpq's `port=5432,5433`).
  port: V.custom<number | string | undefined>((value) => {
    if (typeof value !== "number" && typeof value !== "string") {
      return Result.fail("must be an integer between 1 and 65535, or a list \"5432,5433\"")
    }
    const ports = HostList.parsePortList(value)
    return typeof ports === "string" ? Result.fail(ports) : Result.succeed(value)
  }, undefined),
  path: V.string({ noNul: true }),
  ssl: V.custom<PgConnection.Config["ssl"]>(
    (value) =>
      typeof value === "boolean" || (typeof value === "object" && value !== null && !Array.isArray(value))
        ? Result.succeed(value as PgConnection.Config["ssl"])
        : Result.fail("must be true, false or tls.ConnectionOptions"),
    undefined
  ),
  database: V.string({ noNul: true }),
  username: V.string({ noNul: true }),
  password: V.custom<PgConnection.Config["password"]>(
    (value) =>
      Redacted.isRedacted(value) || Effect.isEffect(value)
        ? Result.succeed(value as PgConnection.Config["password"])
        : Result.fail("must be Redacted (Redacted.make(password)) or an Effect of one"),
    undefined
  ),
  connectTimeout: V.duration(undefined, { min: [Duration.nanos(1n), "must be positive (\"Infinity\" waits forever)"] }),
  // @effect/sql-pg truncates it to whole seconds and refuses anything outside [1, 2^31 - 1] s when connecting.
  keepAlive: V.duration(undefined, {
    min: [Duration.seconds(1), "must be between 1 second and 2147483647 seconds"],
    max: [Duration.seconds(2147483647), "must be between 1 second and 2147483647 seconds"]
  }),
  applicationName: V.string({ noNul: true }),
  // @effect/sql-pg refuses these when connecting: refused here, when the layer builds.
  startupParameters: V.record<Readonly<Record<string, string>>>("must be a record of strings", (name, value) => {
    if (typeof value !== "string") return `must be a record of strings ("${name}" is not a string)`
    if (name === "" || name.includes("\0") || value.includes("\0")) {
      return "names must be non-empty, names and values without NUL"
    }
    const key = name.toLowerCase()
    if (reservedStartupParameters.has(key)) return `"${name}" is reserved (use the option of that name)`
    if (key === "client_encoding" && value.toUpperCase() !== "UTF8" && value.toUpperCase() !== "UTF-8") {
      return "client_encoding must be UTF8"
    }
    return undefined
  }),
  startupOptions: V.string({ noNul: true }),
  stream: V.func<NonNullable<PgConnection.Config["stream"]>>("must be a function returning a Duplex"),
  types: V.custom<PgConnection.Config["types"]>(
    (value) =>
      typeof value === "object" && value !== null && typeof (value as { register?: unknown }).register === "function"
        ? Result.succeed(value as PgConnection.Config["types"])
        : Result.fail("must be a PgTypes.Registry"),
    undefined
  ),
  prepare: V.boolean(),
  preparedStatementCacheSize: V.integer({ min: 0 }),
  maxMessageSize: V.integer({ min: 1 }),
  alwaysReset: V.boolean(),
  // The driver sends its cancel request 10 ms after an interrupt: closing the socket before that
  // would leave the statement running on the server (it only notices a gone client when it writes).
  cancelTimeout: V.duration(undefined, {
    min: [Duration.millis(20), "must be at least 20 milliseconds (or \"Infinity\")"]
  }),
  sessionReset: V.literal<Config.SessionReset>(["none", "auto", "always"], "auto"),
  targetSessionAttrs: V.literal<Config.TargetSessionAttrs>(HostList.targetSessionAttrsValues, "any"),
  loadBalanceHosts: V.literal<Config.LoadBalanceHosts>(HostList.loadBalanceHostsValues, "disable"),
  pooler: V.literal<Config.Pooler>(PoolerInternal.poolers, "none"),
  listenUrl: V.custom<Redacted.Redacted | undefined>((value) => {
    if (!Redacted.isRedacted(value)) return Result.fail("must be Redacted (Redacted.make(url))")
    const text = String(Redacted.value(value))
    return /^postgres(?:ql)?:\/\//i.test(text) && URL.canParse(text)
      ? Result.succeed(value as Redacted.Redacted)
      : Result.fail("must be a postgres:// or postgresql:// URL")
  }, undefined)
})

/** `multiplex: false` is accepted (it is what a pooled connection is anyway); see {@link validate}. */
const configKeys: ReadonlyArray<string> = [...V.keysOfRules(configRules), "multiplex"]

/** Names users reach for that mean one of ours. */
const configAliases = {
  user: "username",
  dbname: "database",
  connectionString: "url",
  hostname: "host",
  pass: "password"
}

/**
 * Validate connection settings (types, ranges, URL scheme, `Redacted` secrets, names): every
 * check `@effect/sql-pg` would only make when connecting is made here, when the layer builds.
 */
export const validate = (config: Config): Effect.Effect<Config, PgConfigError> =>
  Effect.gen(function*() {
    yield* pg.check(V.notAnObject(config, "config"))
    const record = config as unknown as Record<string, unknown>
    if (record.multiplex !== undefined && record.multiplex !== false) {
      return yield* pg.fail(
        "multiplex",
        record.multiplex,
        "is not a PgDriver setting: a pooled connection is lent to one borrower at a time; " +
          "to pipeline statements over a few connections use PgSql.layer({ pipeline: { maxInFlight } }) " +
          "(docs/postgres.md \"Pipelined statements\")"
      )
    }
    const unknown = V.unknownKey(config, configKeys, "PgDriver", configAliases)
    // A name that is no option may be a misspelled secret (`pasword`): its value is never kept.
    yield* pg.check(unknown && { ...unknown, value: "<redacted>" })
    yield* pg.decode(configRules, config)
    // The host list as a whole: as many ports as hosts (or one), no `path` / `stream` with several.
    const hostsProblem = HostList.problem(config)
    if (hostsProblem !== undefined) {
      return yield* pg.fail(
        hostsProblem.field,
        (config as Record<string, unknown>)[hostsProblem.field],
        hostsProblem.reason
      )
    }
    // `pooler: "transaction"`: no DISCARD ALL through it, statements unnamed unless asked for.
    const refused = PoolerInternal.refused(config)
    if (refused !== undefined) return yield* pg.fail(...refused)
    const poolerDefaults = PoolerInternal.defaultsFor(config)
    return poolerDefaults === undefined ? config : { ...config, ...poolerDefaults }
  })

/** The settings each driver of `PgDriver.make` was made with, by driver. */
const driverSettings = new WeakMap<object, Config>()

/** Remember the settings `driver` was made with (`PgDriver.make`). */
export const rememberSettings = <D extends object>(driver: D, config: Config): D => {
  driverSettings.set(driver, config)
  return driver
}

/** The settings a `PgDriver.make` driver was made with; `undefined` for any other driver. */
export const settingsOf = (driver: object | undefined): Config | undefined =>
  driver === undefined ? undefined : driverSettings.get(driver)
