/**
 * Several hosts and `target_session_attrs`, as libpq: where `PgDriver` connects.
 *
 * - The host list: `host: "a,b"` (and `port: "5432,5433"` or one port for all), or a URL with
 *   several hosts (`postgres://u@a:5432,b:5433/db`, or `?host=a,b&port=1,2`). An explicit field
 *   wins over the URL's query parameter, which wins over the URL's authority (libpq's order).
 * - `targetSessionAttrs` (or the URL's `target_session_attrs`): which server is acceptable:
 *   `any` (default), `read-write`, `read-only`, `primary`, `standby`, `prefer-standby`.
 * - `loadBalanceHosts` (or the URL's `load_balance_hosts`): `disable` (default, hosts in order)
 *   or `random` (a fresh random order for every connect).
 *
 * Each host in turn: connect (a failure → the next host), then check the session against the
 * target (a mismatch → close it, the next host). The check reads what the server reports at
 * startup (`in_hot_standby`, `default_transaction_read_only`, ParameterStatus messages of
 * PostgreSQL 14+: no round trip) and falls back to libpq's queries (`SHOW transaction_read_only`,
 * `SELECT pg_catalog.pg_is_in_recovery()`) when they were not seen (an older server, TLS, a
 * `stream` of the user's). When every host fails, the connect fails with a `SqlError` whose
 * cause is a {@link HostsError} carrying every host's failure.
 *
 * A session accepted as a standby is watched afterwards ({@link SessionWatch}): once its server
 * is promoted it no longer matches, and it (with its host's other sessions) is retired.
 *
 * @internal
 */
import { PgConnection } from "@effect/sql-pg"
import { Cause, Data, Duration, Effect, Exit, Option, Redacted, Scope } from "effect"
import { ConnectionError, isSqlError, SqlError, UnknownError } from "effect/sql/SqlError"
import type { SqlErrorReason } from "effect/sql/SqlError"
import * as Net from "node:net"
import type { Duplex } from "node:stream"
import { connectFailed, connectReason } from "./errors.ts"
import * as SqlPg from "./sql-pg-internals.ts"

// ------------------------------------------------------------------------------------ types

/**
 * Which server a connection accepts (libpq's `target_session_attrs`):
 *
 * - `"any"` (default): the first host that accepts the connection;
 * - `"read-write"`: a session that accepts writes (not a hot standby, and
 *   `default_transaction_read_only` off);
 * - `"read-only"`: the opposite (a standby, or a server whose sessions default to read-only);
 * - `"primary"`: a server not in recovery; `"standby"`: a server in recovery;
 * - `"prefer-standby"`: a standby if any host has one, else any server.
 *
 * @category models
 * @since 0.1.0
 */
export type TargetSessionAttrs = "any" | "read-write" | "read-only" | "primary" | "standby" | "prefer-standby"

/** Every {@link TargetSessionAttrs}, in libpq's order. */
export const targetSessionAttrsValues: ReadonlyArray<TargetSessionAttrs> = [
  "any",
  "read-write",
  "read-only",
  "primary",
  "standby",
  "prefer-standby"
]

/**
 * The order hosts are tried in (libpq's `load_balance_hosts`): `"disable"` (default) in the
 * order given; `"random"`: a fresh random order for every connect, spreading connections over
 * the hosts.
 *
 * @category models
 * @since 0.1.0
 */
export type LoadBalanceHosts = "disable" | "random"

export const loadBalanceHostsValues: ReadonlyArray<LoadBalanceHosts> = ["disable", "random"]

/**
 * One host of the list: a name or address, or a unix-socket directory (a `host` starting with
 * `/`), and its port.
 *
 * @category models
 * @since 0.1.0
 */
export interface Host {
  /** Name, address, or unix-socket directory (starts with `/`). */
  readonly host: string
  /** TCP port (5432 when not given). */
  readonly port: number
}

/** The connection settings this module reads (the driver's `Config` is one). */
export type ConnectConfig = Omit<PgConnection.Config, "port" | "multiplex"> & {
  readonly port?: number | string | undefined
  readonly targetSessionAttrs?: TargetSessionAttrs | undefined
  readonly loadBalanceHosts?: LoadBalanceHosts | undefined
}

// ----------------------------------------------------------------------------------- errors

/**
 * A server accepted the connection but is not what `targetSessionAttrs` asks for: the session
 * was closed and the next host tried. Found among a {@link HostsError}'s attempts.
 *
 * @category errors
 * @since 0.1.0
 */
export class TargetSessionAttrsError extends Data.TaggedError("TargetSessionAttrsError")<{
  /** The host that accepted the connection. */
  readonly host: string
  /** Its port. */
  readonly port: number
  /** What was asked for. */
  readonly targetSessionAttrs: TargetSessionAttrs
  /** What the session was: `"read-only"` / `"read-write"` (read-write / read-only targets), `"standby"` / `"primary"`. */
  readonly session: "read-only" | "read-write" | "standby" | "primary"
}> {
  /** "host:port is <session>, not <targetSessionAttrs>". */
  override get message(): string {
    return `${showHost(this)} is ${this.session}, not ${this.targetSessionAttrs}`
  }
}

/**
 * One host's failure: the connect's own error (a `SqlError`: refused, timed out,
 * authentication...) or a {@link TargetSessionAttrsError}.
 *
 * @category models
 * @since 0.1.0
 */
export interface HostAttempt {
  /** The host tried. */
  readonly host: string
  /** Its port. */
  readonly port: number
  /** Why it was not used. */
  readonly error: SqlError | TargetSessionAttrsError
}

/**
 * No host gave an acceptable session: every host's failure, in the order tried. The cause of
 * the `SqlError` a connect fails with when there are several hosts, or one host that did not
 * match `targetSessionAttrs` (a single host's connect error is kept as it is). Its reason is a
 * retryable `ConnectionError` when some host was unreachable, dropped the connection, did not
 * match (a failover may be under way) or had too many connections; when every host refused with a
 * server error, the kind they share (say, authentication), else `UnknownError`: not retryable.
 *
 * @category errors
 * @since 0.1.0
 */
export class HostsError extends Data.TaggedError("PgHostsError")<{
  /** What was asked for. */
  readonly targetSessionAttrs: TargetSessionAttrs
  /** Every host's failure, in the order tried. */
  readonly attempts: ReadonlyArray<HostAttempt>
  /** The failure that decides the classification (`PgDriver.isDisconnect` follows it). */
  readonly cause: unknown
  /** The driver's connect bound, ms (how a timed-out attempt is told). */
  readonly connectMillis?: number | undefined
}> {
  /** Lists every host with its failure. */
  override get message(): string {
    const wanted = this.targetSessionAttrs === "any" ? "a session" : `a ${this.targetSessionAttrs} session`
    const millis = this.connectMillis ?? defaultConnectMillis
    return `PgDriver: no host gave ${wanted} (${
      this.attempts.map((a) => `${showHost(a)}: ${attemptMessage(a.error, millis)}`).join("; ")
    })`
  }
}

const showHost = (host: Host): string =>
  host.host.startsWith("/")
    ? `${host.host}/.s.PGSQL.${host.port}`
    : host.host.includes(":")
    ? `[${host.host}]:${host.port}`
    : `${host.host}:${host.port}`

const attemptMessage = (error: SqlError | TargetSessionAttrsError, connectMillis: number): string =>
  error instanceof TargetSessionAttrsError
    ? `${error.session}, not ${error.targetSessionAttrs}`
    : connectReason(error, connectMillis)

// ------------------------------------------------------------------------------ host lists

/** What a URL says about hosts and targets; `sanitized` is the URL with one host, for the driver. */
export interface ParsedUrl {
  readonly hosts: ReadonlyArray<string> | undefined
  readonly ports: ReadonlyArray<number | undefined> | undefined
  readonly queryHost: string | undefined
  readonly queryPort: string | undefined
  readonly targetSessionAttrs: string | undefined
  readonly loadBalanceHosts: string | undefined
  readonly sslmode: string | undefined
  /** The URL with its host list replaced by one placeholder host (the driver's host and port are explicit) and the list parameters removed. */
  readonly sanitized: string
}

const urlShape = /^(postgres(?:ql)?:)\/\/([^/?#]*)([^?#]*)(\?[^#]*)?(#.*)?$/i
/** Query parameters this module reads (the driver ignores the last two; the first two may be lists). */
const listParameters = ["host", "port", "target_session_attrs", "load_balance_hosts"]

const notAUrl = "must be a postgres:// or postgresql:// URL"
const badUrl = (detail: string) => `${notAUrl} (${detail})`

const parsePortText = (text: string): number | undefined | "invalid" => {
  if (text === "") return undefined
  if (!/^\d{1,5}$/.test(text)) return "invalid"
  const port = Number(text)
  return port >= 1 && port <= 65535 ? port : "invalid"
}

/**
 * Parse a `postgres://` / `postgresql://` URL with one or several hosts. A string: why it is
 * not one (no part of the URL is quoted: it may hold a password).
 */
export const parseUrl = (raw: string): ParsedUrl | string => {
  const match = urlShape.exec(raw)
  if (match === null) return notAUrl
  const [, protocol, authority, path, query = "", fragment = ""] = match
  const at = authority!.lastIndexOf("@")
  const userinfo = at >= 0 ? authority!.slice(0, at + 1) : ""
  const hostPart = at >= 0 ? authority!.slice(at + 1) : authority!
  let hosts: Array<string> | undefined
  let ports: Array<number | undefined> | undefined
  if (hostPart !== "") {
    hosts = []
    ports = []
    for (const entry of splitHosts(hostPart)) {
      const bracket = /^\[([^\]]*)\](?::(.*))?$/.exec(entry)
      let name: string
      let portText: string
      if (bracket !== null) {
        name = bracket[1]!
        portText = bracket[2] ?? ""
      } else {
        const colon = entry.lastIndexOf(":")
        name = colon >= 0 ? entry.slice(0, colon) : entry
        portText = colon >= 0 ? entry.slice(colon + 1) : ""
        if (name.includes(":")) return badUrl("an IPv6 host without brackets")
      }
      const port = parsePortText(portText)
      if (port === "invalid") return badUrl("an invalid port in its host list")
      let decoded: string
      try {
        decoded = decodeURIComponent(name)
      } catch {
        return badUrl("an invalid percent-encoding in its host list")
      }
      if (decoded.includes("\0")) return badUrl("a NUL in its host list")
      hosts.push(decoded)
      ports.push(port)
    }
  }
  const params = new URLSearchParams(query.startsWith("?") ? query.slice(1) : query)
  const queryHost = params.get("host") ?? undefined
  const queryPort = params.get("port") ?? undefined
  const targetSessionAttrs = params.get("target_session_attrs") ?? undefined
  const loadBalanceHosts = params.get("load_balance_hosts") ?? undefined
  const sslmode = params.get("sslmode") ?? undefined
  for (const name of listParameters) params.delete(name)
  const rest = params.toString()
  // The driver is always given the host and port: the URL keeps a placeholder (libpq accepts
  // `postgres://u@/db?host=...`, which a WHATWG URL parser refuses).
  const sanitized = `${protocol}//${userinfo}localhost${path}${rest === "" ? "" : `?${rest}`}${fragment}`
  try {
    // The driver parses the URL again when connecting: what it would refuse is refused here.
    const parsed = new URL(sanitized)
    if (parsed.protocol !== "postgres:" && parsed.protocol !== "postgresql:") return notAUrl
  } catch {
    return notAUrl
  }
  if (
    targetSessionAttrs !== undefined &&
    !(targetSessionAttrsValues as ReadonlyArray<string>).includes(targetSessionAttrs)
  ) {
    return badUrl(`an invalid target_session_attrs: expected one of ${targetSessionAttrsValues.join(", ")}`)
  }
  if (loadBalanceHosts !== undefined && !(loadBalanceHostsValues as ReadonlyArray<string>).includes(loadBalanceHosts)) {
    return badUrl("an invalid load_balance_hosts: expected disable or random")
  }
  return { hosts, ports, queryHost, queryPort, targetSessionAttrs, loadBalanceHosts, sslmode, sanitized }
}

/** Split a host list at commas outside brackets (`[::1]:5432,b:5433`). */
const splitHosts = (list: string): Array<string> => {
  const entries: Array<string> = []
  let depth = 0
  let start = 0
  for (let i = 0; i < list.length; i++) {
    const c = list[i]
    if (c === "[") depth++
    else if (c === "]") depth = Math.max(0, depth - 1)
    else if (c === "," && depth === 0) {
      entries.push(list.slice(start, i))
      start = i + 1
    }
  }
  entries.push(list.slice(start))
  return entries
}

/** A `port` option or `port=` parameter: one port or a comma list (an empty entry: 5432). */
export const parsePortList = (value: number | string): ReadonlyArray<number | undefined> | string => {
  if (typeof value === "number") {
    return Number.isInteger(value) && value >= 1 && value <= 65535 ? [value] : "must be an integer between 1 and 65535"
  }
  const ports: Array<number | undefined> = []
  for (const entry of value.split(",")) {
    const port = parsePortText(entry.trim())
    if (port === "invalid") return "must be a port (1 to 65535) or a comma-separated list of ports (\"5432,5433\")"
    ports.push(port)
  }
  return ports
}

/** The hosts and target of a config, resolved. */
export interface Targets {
  readonly hosts: ReadonlyArray<Host>
  readonly targetSessionAttrs: TargetSessionAttrs
  readonly loadBalanceHosts: LoadBalanceHosts
  /** The URL without its host list, or the original one. */
  readonly url: Redacted.Redacted | undefined
  /** Is the session in plaintext (`ssl` false, the default)? Then the startup messages can be read. */
  readonly plaintext: boolean
}

/** What is wrong with a config's hosts (the field to blame). */
export interface HostsProblem {
  readonly field: "url" | "host" | "port" | "path" | "stream"
  readonly reason: string
}

const defaultPort = 5432

/**
 * The host list of a config (several hosts: `host: "a,b"`, a URL with several hosts, or `?host=`),
 * each with its port, and the target. A problem: which field, and why.
 */
export const resolve = (config: ConnectConfig): Targets | HostsProblem => {
  let url: ParsedUrl | undefined
  if (config.url !== undefined) {
    const parsed = parseUrl(String(Redacted.value(config.url)))
    if (typeof parsed === "string") return { field: "url", reason: parsed }
    url = parsed
  }
  const hostText = config.host ?? url?.queryHost
  const hostNames: ReadonlyArray<string> = hostText !== undefined
    ? hostText.split(",").map((h) => h.trim())
    : url?.hosts ?? ["localhost"]
  const hostField = config.host !== undefined ? "host" : "url"
  const names = hostNames.map((h) => (h === "" ? "localhost" : h))
  let ports: ReadonlyArray<number | undefined>
  let portField: "port" | "url" = "port"
  if (config.port !== undefined) {
    const parsed = parsePortList(config.port)
    if (typeof parsed === "string") return { field: "port", reason: parsed }
    ports = parsed
  } else if (url?.queryPort !== undefined) {
    const parsed = parsePortList(url.queryPort)
    if (typeof parsed === "string") return { field: "url", reason: badUrl("an invalid port parameter") }
    ports = parsed
    portField = "url"
  } else if (url?.ports !== undefined && hostText === undefined) {
    ports = url.ports
    portField = "url"
  } else if (url?.ports !== undefined && url.ports.some((p) => p !== undefined)) {
    // Hosts from elsewhere, ports from the URL's authority (libpq keeps them: `port` is its own parameter).
    ports = url.ports
    portField = "url"
  } else {
    ports = [undefined]
  }
  if (ports.length !== 1 && ports.length !== names.length) {
    return {
      field: portField === "port" ? "port" : hostField,
      reason: `${ports.length} ports for ${names.length} hosts (give one port for all, or one per host)`
    }
  }
  const hosts = names.map((host, i) => ({ host, port: (ports.length === 1 ? ports[0] : ports[i]) ?? defaultPort }))
  const target = config.targetSessionAttrs ?? (url?.targetSessionAttrs as TargetSessionAttrs | undefined) ?? "any"
  const balance = config.loadBalanceHosts ?? (url?.loadBalanceHosts as LoadBalanceHosts | undefined) ?? "disable"
  const sslmode = url?.sslmode
  const plaintext = config.ssl === false ||
    (config.ssl === undefined && (sslmode === undefined || sslmode === "disable"))
  return {
    hosts,
    targetSessionAttrs: target,
    loadBalanceHosts: balance,
    url: url === undefined ? undefined : Redacted.make(url.sanitized),
    plaintext
  }
}

/**
 * What is wrong with a config's hosts, for validation: several hosts with `path` or `stream`
 * (those name one server) are refused too.
 */
export const problem = (config: ConnectConfig): HostsProblem | undefined => {
  const targets = resolve(config)
  if (!("hosts" in targets)) return targets
  if (targets.hosts.length > 1 && (config.path !== undefined || config.stream !== undefined)) {
    return {
      field: config.path !== undefined ? "path" : "stream",
      reason: "cannot be combined with several hosts (it names one server)"
    }
  }
  return undefined
}

/**
 * The first host, port and database of a config (span attributes: `server.address`,
 * `server.port`, `db.namespace`), and the user, as `@effect/sql-pg` resolves them (the user
 * defaults to `$USER`, the database to the user).
 */
export const describe = (config: ConnectConfig): { host: string; port: number; database: string; user: string } => {
  const targets = resolve(config)
  const first = "hosts" in targets ? targets.hosts[0] : undefined
  let database: string | undefined = config.database
  let username: string | undefined = config.username
  if ((database === undefined || username === undefined) && config.url !== undefined) {
    const parsed = parseUrl(String(Redacted.value(config.url)))
    if (typeof parsed !== "string") {
      try {
        const url = new URL(parsed.sanitized)
        database ??= url.searchParams.get("dbname") ?? (decodeURIComponent(url.pathname.slice(1)) || undefined)
        username ??= url.searchParams.get("user") ?? (decodeURIComponent(url.username) || undefined)
      } catch {
        // described as best we can
      }
    }
  }
  const user = username ?? process.env.USER ?? process.env.USERNAME ?? "postgres"
  return { host: first?.host ?? "localhost", port: first?.port ?? defaultPort, database: database ?? user, user }
}

/** `@effect/sql-pg`'s own connect bound when none is set. */
const defaultConnectMillis = 5000

/** The driver's connect bound of a config, ms: `connectTimeout`, else the URL's `connect_timeout` (s), else 5 s. */
const connectMillis = (config: ConnectConfig): number => {
  if (config.connectTimeout !== undefined) {
    const duration = Duration.fromInput(config.connectTimeout)
    return Option.isSome(duration) ? Duration.toMillis(duration.value) : defaultConnectMillis
  }
  if (config.url !== undefined) {
    const parsed = parseUrl(String(Redacted.value(config.url)))
    const seconds = typeof parsed === "string"
      ? null
      : new URLSearchParams(parsed.sanitized.split("?")[1] ?? "").get("connect_timeout")
    if (seconds !== null && /^\d+$/.test(seconds)) return Number(seconds) === 0 ? Infinity : Number(seconds) * 1000
  }
  return defaultConnectMillis
}

/**
 * Where a config connects, for messages: the hosts with their ports, the database and the user
 * (never the password): `127.0.0.1:5432 (database "app", user "app")`.
 */
export const where = (config: ConnectConfig): string => {
  const targets = resolve(config)
  const { database, user } = describe(config)
  const hosts = "hosts" in targets ? targets.hosts.map(showHost).join(", ") : "(invalid host list)"
  return `${hosts} (database ${JSON.stringify(database)}, user ${JSON.stringify(user)})`
}

// --------------------------------------------------------------------------------- connect

/** What the server reported at startup (ParameterStatus), read off the socket. */
interface Reported {
  inHotStandby?: string
  defaultTransactionReadOnly?: string
}

/**
 * Read the ParameterStatus messages a plaintext startup carries, until ReadyForQuery (or an
 * error). Only reads: the driver's own listener gets the same chunks. Stops at 64 KiB.
 */
const readStartupParameters = (socket: Duplex, reported: Reported): void => {
  let buffer: Buffer = Buffer.alloc(0)
  const stop = () => {
    socket.off("data", onData)
    socket.off("close", stop)
  }
  const onData = (chunk: Buffer | string) => {
    const bytes = typeof chunk === "string" ? Buffer.from(chunk) : chunk
    buffer = buffer.length === 0 ? bytes : Buffer.concat([buffer, bytes])
    let offset = 0
    while (buffer.length - offset >= 5) {
      const type = buffer[offset]!
      const length = buffer.readUInt32BE(offset + 1)
      if (length < 4) return stop()
      if (buffer.length - offset < 1 + length) break
      if (type === 0x53 /* S: ParameterStatus */) {
        const payload = buffer.subarray(offset + 5, offset + 1 + length)
        const nul = payload.indexOf(0)
        if (nul > 0) {
          const name = payload.subarray(0, nul).toString("utf8")
          const end = payload.indexOf(0, nul + 1)
          const value = payload.subarray(nul + 1, end < 0 ? payload.length : end).toString("utf8")
          if (name === "in_hot_standby") reported.inHotStandby = value
          else if (name === "default_transaction_read_only") reported.defaultTransactionReadOnly = value
        }
      } else if (type === 0x5a /* Z: ReadyForQuery */ || type === 0x45 /* E: ErrorResponse */) {
        return stop()
      }
      offset += 1 + length
    }
    buffer = buffer.subarray(offset)
    if (buffer.length > 65536) stop()
  }
  socket.on("data", onData)
  socket.on("close", stop)
}

/** A socket to one host whose startup parameters are read (the first call only: later calls are cancel requests). */
const readingSocket = (host: Host, keepAlive: number | undefined, reported: Reported): () => Duplex => {
  let first = true
  return () => {
    const socket = host.host.startsWith("/")
      ? Net.connect({ path: `${host.host}/.s.PGSQL.${host.port}` })
      : Net.connect({
        host: host.host,
        port: host.port,
        noDelay: true,
        ...(keepAlive !== undefined && { keepAlive: true, keepAliveInitialDelay: keepAlive })
      })
    if (first) {
      first = false
      readStartupParameters(socket, reported)
    }
    return socket
  }
}

const keepAliveMillis = (config: ConnectConfig): number | undefined => {
  if (config.keepAlive === undefined) return undefined
  // Validated: between 1 s and 2^31 - 1 s; the driver truncates to whole seconds.
  const duration = Duration.fromInput(config.keepAlive)
  if (Option.isNone(duration) || !Duration.isFinite(duration.value)) return undefined
  const seconds = Math.floor(Duration.toSeconds(duration.value))
  return seconds >= 1 && seconds <= 0x7fffffff ? seconds * 1000 : undefined
}

type Check = "read-write" | "read-only" | "primary" | "standby"

/** The check a target makes (`prefer-standby`'s first pass looks for a standby). */
const checkOf = (target: TargetSessionAttrs): Check | undefined =>
  target === "any" ? undefined : target === "prefer-standby" ? "standby" : target

/** How many checks asked the server (a round trip) instead of reading its startup parameters (for tests). */
export const checkQueries = { count: 0 }

/** What the session is, for a check: read-only or not / in recovery or not. */
const sessionKind = (
  native: PgConnection.PgConnection,
  check: Check,
  reported: Reported
): Effect.Effect<TargetSessionAttrsError["session"], SqlError> => {
  const hotStandby = reported.inHotStandby
  if (check === "read-write" || check === "read-only") {
    const readOnlyDefault = reported.defaultTransactionReadOnly
    if (hotStandby !== undefined && readOnlyDefault !== undefined) {
      return Effect.succeed(hotStandby === "on" || readOnlyDefault === "on" ? "read-only" : "read-write")
    }
    checkQueries.count++
    return Effect.map(
      native.query("SHOW transaction_read_only", [], false),
      (result) => (result.rows[0]?.transaction_read_only === "on" ? "read-only" : "read-write")
    )
  }
  if (hotStandby !== undefined) return Effect.succeed(hotStandby === "on" ? "standby" : "primary")
  checkQueries.count++
  return Effect.map(
    native.query("SELECT pg_catalog.pg_is_in_recovery() AS in_recovery", [], false),
    (result) => (result.rows[0]?.in_recovery === true ? "standby" : "primary")
  )
}

// ------------------------------------------------------------------------ watching a standby

/**
 * A session accepted as a standby (`targetSessionAttrs` `"standby"`, `"read-only"` on a hot
 * standby, `"prefer-standby"`'s first choice) stops matching when its server leaves recovery (a
 * promotion). PostgreSQL 14+ then tells every session: a ParameterStatus `in_hot_standby = off`
 * before the ReadyForQuery of the session's next statement. The watch reads the session's
 * messages as the driver dispatches them (plaintext or TLS alike; one call and a tag compare per
 * message, on watched sessions only) and, at that report, marks the session and every other
 * session of its host (they were connected while it was a standby) as no longer matching:
 * `PgDriver`'s connection is then dead to the pool (replaced at its next checkout, its reconnect
 * checks the hosts again), and with `"standby"` / `"read-only"` the statement whose reply
 * carried the report fails (it may have run on a primary). Older servers send no such report;
 * neither does a driver whose internals are not as expected: then nothing is watched.
 */
export class SessionWatch {
  /** This session saw its server leave recovery. */
  private promoted = false
  /** `default_transaction_read_only` as last reported (`"read-only"` targets: still read-only after a promotion?). */
  readOnlyDefault: string | undefined

  constructor(
    readonly host: Host,
    readonly target: TargetSessionAttrs,
    private readonly hostState: { promotions: number },
    private readonly promotionsAtConnect: number,
    readOnlyDefault: string | undefined
  ) {
    this.readOnlyDefault = readOnlyDefault
  }

  /** @internal The server reported a parameter. */
  reported(name: string, value: string): void {
    if (name === "default_transaction_read_only") this.readOnlyDefault = value
    else if (name === "in_hot_standby" && value === "off" && !this.promoted) {
      this.promoted = true
      this.hostState.promotions++
    }
  }

  /** A statement that reads a changed session fails (`"prefer-standby"`: a primary is acceptable, the session is only retired). */
  get failsStatements(): boolean {
    return this.target !== "prefer-standby"
  }

  /** Why the session no longer matches its target, once it does not; `undefined` while it does. */
  get mismatch(): TargetSessionAttrsError | undefined {
    if (!this.promoted && this.hostState.promotions === this.promotionsAtConnect) return undefined
    if (this.target === "read-only" && this.readOnlyDefault === "on") return undefined
    return new TargetSessionAttrsError({
      host: this.host.host,
      port: this.host.port,
      targetSessionAttrs: this.target,
      session: this.target === "read-only" ? "read-write" : "primary"
    })
  }
}

const watches = new WeakMap<PgConnection.PgConnection, SessionWatch>()

/** The watch of a session this module connected, if it is watched (see {@link SessionWatch}). */
export const watchOf = (native: PgConnection.PgConnection): SessionWatch | undefined => watches.get(native)

/** Watch a session accepted as a standby: see {@link SessionWatch} (without `base.dispatch`: not watched). */
const watchSession = (
  native: PgConnection.PgConnection,
  host: Host,
  target: TargetSessionAttrs,
  hostState: { promotions: number },
  readOnlyDefault: string | undefined
): void => {
  const onParameterStatus = SqlPg.access(native).onParameterStatus
  if (onParameterStatus === undefined) return
  const watch = new SessionWatch(host, target, hostState, hostState.promotions, readOnlyDefault)
  onParameterStatus((name, value) => watch.reported(name, value))
  watches.set(native, watch)
}

/** A connected session, in a child scope of its own (closed when it is not the one chosen). */
interface Candidate {
  readonly native: PgConnection.PgConnection
  readonly scope: Scope.Closeable
}

/** One host's session: acceptable, or not (its scope still open: the caller closes or keeps it). */
type Outcome =
  | { readonly _tag: "Accepted"; readonly candidate: Candidate }
  | { readonly _tag: "Mismatch"; readonly candidate: Candidate; readonly error: TargetSessionAttrsError }

const shuffled = <A>(items: ReadonlyArray<A>): Array<A> => {
  const out = items.slice()
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1))
    const t = out[i]!
    out[i] = out[j]!
    out[j] = t
  }
  return out
}

/**
 * Is this connect failure one a failover could explain (unreachable, dropped, starting or
 * stopping, not the wanted kind of server), or a refusal for now (53300, too many connections)?
 */
const isReachability = (error: SqlError | TargetSessionAttrsError, isDisconnect: (e: unknown) => boolean): boolean =>
  error instanceof TargetSessionAttrsError || isDisconnect(error) ||
  (error.reason.cause as { readonly code?: unknown } | undefined)?.code === "53300"

/** The `SqlError` of a connect where no host gave an acceptable session. */
const exhausted = (
  target: TargetSessionAttrs,
  attempts: ReadonlyArray<HostAttempt>,
  isDisconnect: (e: unknown) => boolean,
  connectMillis: number
): SqlError => {
  const reachability = attempts.find((a) => isReachability(a.error, isDisconnect))
  const deciding = reachability ?? attempts[0]
  const error = new HostsError({ targetSessionAttrs: target, attempts, cause: deciding?.error, connectMillis })
  const message = error.message
  if (reachability !== undefined || deciding === undefined || !isSqlError(deciding.error)) {
    return new SqlError({ reason: new ConnectionError({ cause: error, message, operation: "connect" }) })
  }
  // Every host refused with a server error: the kind they share (authentication, ...), else an
  // UnknownError; not retryable either way (a retry would meet the same refusals).
  const first = deciding.error.reason
  const sameKind = attempts.every((a) => isSqlError(a.error) && a.error.reason._tag === first._tag)
  const Reason = (sameKind ? first.constructor : UnknownError) as new(fields: {
    readonly cause: unknown
    readonly message: string
    readonly operation: string
  }) => SqlErrorReason
  return new SqlError({ reason: new Reason({ cause: error, message, operation: "connect" }) })
}

/**
 * Connect to the first acceptable host of `config` (see the module doc): the session lives in
 * the current scope. One host with `targetSessionAttrs: "any"` connects exactly as
 * `PgConnection.make(config)`.
 */
export const connector = (
  config: ConnectConfig,
  isDisconnect: (error: unknown) => boolean
): Effect.Effect<PgConnection.PgConnection, SqlError, Scope.Scope> => {
  // A failure names the server's reason, where and as whom (one line, never the password).
  const place = where(config)
  const millis = connectMillis(config)
  return Effect.mapError(connectFirst(config, isDisconnect, millis), (error) => connectFailed(error, place, millis))
}

const connectFirst = (
  config: ConnectConfig,
  isDisconnect: (error: unknown) => boolean,
  connectMillis: number
): Effect.Effect<PgConnection.PgConnection, SqlError, Scope.Scope> => {
  const targets = resolve(config)
  if (!("hosts" in targets)) {
    return Effect.fail(
      new SqlError({
        reason: new ConnectionError({
          cause: new Error(targets.reason),
          message: `PgDriver: invalid "${targets.field}": ${targets.reason}`,
          operation: "connect"
        })
      })
    )
  }
  const { port: _port, targetSessionAttrs: _t, loadBalanceHosts: _l, host: _host, url: _url, ...rest } = config
  const base: PgConnection.Config = rest
  const { hosts, targetSessionAttrs: target, loadBalanceHosts } = targets
  const check = checkOf(target)
  const single = hosts.length === 1 && check === undefined
  if (single && typeof config.port !== "string" && config.url === undefined) {
    // One host, no check, no URL: exactly the driver's own connect (it ignores the fields it does not know).
    return PgConnection.make(config as PgConnection.Config)
  }
  const withHost = (host: Host): PgConnection.Config => ({
    ...base,
    ...(targets.url !== undefined && { url: targets.url }),
    host: host.host,
    port: host.port
  })
  const configs = new Map(hosts.map((host) => [host, withHost(host)] as const))
  if (single) return PgConnection.make(configs.get(hosts[0]!)!)

  // A session accepted as a standby is watched: it, and its host's other sessions, are retired
  // once the server leaves recovery (see SessionWatch).
  const hostStates = new Map(hosts.map((host) => [host, { promotions: 0 }] as const))
  const accepted = (candidate: Candidate, host: Host, reported: Reported): Outcome => {
    // A read-only session of a server known not to be a standby (default_transaction_read_only) cannot be promoted.
    if (check === "standby" || (check === "read-only" && reported.inHotStandby !== "off")) {
      watchSession(candidate.native, host, target, hostStates.get(host)!, reported.defaultTransactionReadOnly)
    }
    return { _tag: "Accepted", candidate }
  }

  // The startup parameters can be read off a plaintext socket of ours (not the user's stream,
  // not a fixed unix-socket path).
  const readable = targets.plaintext && config.stream === undefined && config.path === undefined
  const keepAlive = keepAliveMillis(config)

  const attempt = (host: Host): Effect.Effect<Outcome, SqlError, Scope.Scope> =>
    Effect.flatMap(Effect.scope, (parent) =>
      Effect.flatMap(Scope.fork(parent), (scope) => {
        const reported: Reported = {}
        const hostConfig = configs.get(host)!
        const connectConfig = check !== undefined && readable
          ? { ...hostConfig, stream: readingSocket(host, keepAlive, reported) }
          : hostConfig
        return Effect.flatMap(
          Scope.provide(PgConnection.make(connectConfig), scope),
          (native): Effect.Effect<Outcome, SqlError> => {
            const candidate = { native, scope }
            if (check === undefined) return Effect.succeed({ _tag: "Accepted", candidate })
            return Effect.map(sessionKind(native, check, reported), (session): Outcome =>
              session === check
                ? accepted(candidate, host, reported)
                : {
                  _tag: "Mismatch",
                  candidate,
                  error: new TargetSessionAttrsError({
                    host: host.host,
                    port: host.port,
                    targetSessionAttrs: target,
                    session
                  })
                })
          }
        ).pipe(Effect.onExit((exit) => (Exit.isFailure(exit) ? Scope.close(scope, exit) : Effect.void)))
      }))

  return Effect.gen(function*() {
    const order = loadBalanceHosts === "random" ? shuffled(hosts) : hosts
    const attempts: Array<HostAttempt> = []
    // prefer-standby: the first server that is no standby, kept open in case no host is one.
    let fallback: Candidate | undefined
    for (const host of order) {
      const exit = yield* Effect.exit(attempt(host))
      if (Exit.isFailure(exit)) {
        const failure = exit.cause.reasons.find(Cause.isFailReason)
        // An interrupt or a defect ends the search (the fallback's scope closes with the caller's).
        if (failure === undefined) return yield* Effect.failCause(exit.cause)
        attempts.push({ host: host.host, port: host.port, error: failure.error })
        continue
      }
      const outcome = exit.value
      if (outcome._tag === "Accepted") {
        if (fallback !== undefined) yield* Scope.close(fallback.scope, Exit.void)
        return outcome.candidate.native
      }
      attempts.push({ host: host.host, port: host.port, error: outcome.error })
      if (target === "prefer-standby" && fallback === undefined) fallback = outcome.candidate
      else yield* Scope.close(outcome.candidate.scope, Exit.void)
    }
    if (fallback !== undefined) return fallback.native
    // One host that failed to connect: its own error, as without a host list.
    if (attempts.length === 1 && isSqlError(attempts[0]!.error)) return yield* Effect.fail(attempts[0]!.error)
    return yield* Effect.fail(exhausted(target, attempts, isDisconnect, connectMillis))
  })
}
