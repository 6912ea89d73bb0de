/**
 * The hosts a `PgDriver` config names and which server it accepts, as libpq reads them.
 *
 * - The host list: `host: "a,b"` (and `port: "5432,5433"` or one port for all), or a URL with
 *   several hosts (`postgres://u@a:5432,b:5433/db`, or `?host=a,b&port=1,2`). An explicit field
 *   wins over the URL's query parameter, which wins over the URL's authority (libpq's order).
 * - `targetSessionAttrs` (or the URL's `target_session_attrs`): which server is acceptable:
 *   `any` (default), `read-write`, `read-only`, `primary`, `standby`, `prefer-standby`.
 * - `loadBalanceHosts` (or the URL's `load_balance_hosts`): `disable` (default, hosts in order)
 *   or `random` (a fresh random order for every connect).
 *
 * Also what a config says for messages and spans: {@link where}, {@link describe}.
 *
 * @internal
 */
import type { PgConnection } from "@effect/sql-pg"
import { Duration, Option, Redacted } from "effect"
import type { Config } from "./settings.ts"

/** Every `targetSessionAttrs`, in libpq's order. */
export const targetSessionAttrsValues: ReadonlyArray<Config.TargetSessionAttrs> = [
  "any",
  "read-write",
  "read-only",
  "primary",
  "standby",
  "prefer-standby"
]

/** Every `loadBalanceHosts`. */
export const loadBalanceHostsValues: ReadonlyArray<Config.LoadBalanceHosts> = ["disable", "random"]

/** The connection settings this module reads (the driver's `Config` is one). */
export type ConnectConfig = Omit<PgConnection.Config, "port" | "multiplex"> & {
  readonly port?: number | string | undefined
  readonly targetSessionAttrs?: Config.TargetSessionAttrs | undefined
  readonly loadBalanceHosts?: Config.LoadBalanceHosts | undefined
}

/** `host:port`, `[v6]:port`, or a unix socket's path. */
export const showHost = (host: Config.Host): string =>
  host.host.startsWith("/")
    ? `${host.host}/.s.PGSQL.${host.port}`
    : host.host.includes(":")
    ? `[${host.host}]:${host.port}`
    : `${host.host}:${host.port}`

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
  readonly hosts: ReadonlyArray<Config.Host>
  readonly targetSessionAttrs: Config.TargetSessionAttrs
  readonly loadBalanceHosts: Config.LoadBalanceHosts
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
  const target = config.targetSessionAttrs ?? (url?.targetSessionAttrs as Config.TargetSessionAttrs | undefined) ??
    "any"
  const balance = config.loadBalanceHosts ?? (url?.loadBalanceHosts as Config.LoadBalanceHosts | undefined) ?? "disable"
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
export const defaultConnectMillis = 5000

/** The driver's connect bound of a config, ms: `connectTimeout`, else the URL's `connect_timeout` (s), else 5 s. */
export const connectMillis = (config: ConnectConfig): number => {
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
