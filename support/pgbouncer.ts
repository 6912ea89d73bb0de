/**
 * A PgBouncer of our own, in transaction mode, in front of a PostgreSQL server: Debian's
 * `pgbouncer` binary started as a child process on a free loopback port, with its config, auth
 * file, log and pid file in a temporary directory (0700) that is removed when it stops.
 *
 * - As root, PgBouncer refuses to run: the child runs as OS user `postgres` (Node's `spawn`
 *   `uid`/`gid`; the directory is handed to that user).
 * - Clients log in without a password (`auth_type = trust`, the user listed in the auth file);
 *   PgBouncer logs in to the server as the target URL's user, with its password (kept in the
 *   0600 config file, never logged).
 * - `pool_mode = transaction`: a server session belongs to a client for one transaction (or one
 *   autocommit statement), then goes back to PgBouncer's pool.
 *
 * Dev support (not part of the package): used by test/pg/pgbouncer.test.ts, bench/e2e-pg.ts and the
 * workbench (`npm start -- --topology pgbouncer`). {@link start} is plain Node (no Effect);
 * {@link layer} wraps it for tests. No test-runner API here.
 * {@link availability} says whether it can run here: a test file skips (with the reason) only
 * when `pgbouncer` is not installed and neither `CI` nor `PGBOUNCER_REQUIRED` is set (`.ci/run`
 * sets the latter); otherwise it must run, and a missing binary fails the tests.
 */
import { Context, Effect, Layer, Redacted } from "effect"
import { PgDatabase } from "effect-db-pool/pg/embedded"
import { spawn, spawnSync } from "node:child_process"
import type { ChildProcess } from "node:child_process"
import { chmodSync, chownSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { createConnection } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { freePort } from "./net.ts"

/** Where Debian puts the binary (not always on a non-root PATH). */
const candidates = [
  "/usr/sbin/pgbouncer",
  "/usr/bin/pgbouncer",
  "/usr/local/sbin/pgbouncer",
  "/usr/local/bin/pgbouncer"
]

/** The `pgbouncer` binary, or `undefined` when it is not installed. */
export const findBinary = (): string | undefined => {
  const which = spawnSync("sh", ["-c", "command -v pgbouncer"], { encoding: "utf8" })
  const found = which.status === 0 ? which.stdout.trim() : ""
  if (found !== "") return found
  return candidates.find((path) => existsSync(path))
}

/** `"1.18.0"` from `pgbouncer --version`, or `undefined`. */
export const versionOf = (binary: string): string | undefined => {
  const out = spawnSync(binary, ["--version"], { encoding: "utf8" })
  return /PgBouncer\s+(\d+\.\d+(?:\.\d+)?)/i.exec(`${out.stdout ?? ""}${out.stderr ?? ""}`)?.[1]
}

/** Does this PgBouncer track protocol-level prepared statements (1.21+, `max_prepared_statements`)? */
export const tracksPreparedStatements = (version: string | undefined): boolean => {
  const [major = 0, minor = 0] = (version ?? "0.0").split(".").map(Number)
  return major > 1 || (major === 1 && minor >= 21)
}

export interface Availability {
  /** The binary, when it can run. */
  readonly binary: string | undefined
  readonly version: string | undefined
  /** Why the PgBouncer tests are skipped (`undefined`: they run). */
  readonly skip: string | undefined
}

/**
 * Can the fixture run here? Not installed and not in CI: skip, with the reason. In CI
 * (`CI=true`, or `PGBOUNCER_REQUIRED=1`) a missing binary is not a reason to skip: {@link start}
 * then fails, and so do the tests.
 */
export const availability = (): Availability => {
  const binary = findBinary()
  const set = (name: string) => {
    const value = process.env[name]
    return value !== undefined && value !== "" && value !== "0" && value.toLowerCase() !== "false"
  }
  // `.ci/run` sets PGBOUNCER_REQUIRED=1 once it has installed it.
  const inCi = set("CI") || set("PGBOUNCER_REQUIRED")
  if (binary === undefined) {
    return {
      binary,
      version: undefined,
      skip: inCi ? undefined : "pgbouncer is not installed (apt-get install -y pgbouncer): PgBouncer tests skipped"
    }
  }
  return { binary, version: versionOf(binary), skip: undefined }
}

export interface StartOptions {
  /** The PostgreSQL server PgBouncer pools for: `postgres://user:password@host:port/database`. */
  readonly target: string
  /** `pool_mode` (default `"transaction"`). */
  readonly poolMode?: "transaction" | "session" | "statement" | undefined
  /** Server sessions per database/user pair (`default_pool_size`, default 20). */
  readonly poolSize?: number | undefined
  /** Extra `[pgbouncer]` settings, `key = value`. */
  readonly settings?: Readonly<Record<string, string | number>> | undefined
}

export interface PgBouncer {
  /** `postgres://user@127.0.0.1:port/database`: the target's user and database, through PgBouncer. */
  readonly url: string
  readonly port: number
  readonly version: string | undefined
  readonly poolMode: string
  /** PgBouncer's log so far (for a failure message). */
  readonly logs: () => string
  readonly stop: () => Promise<void>
}

const accepts = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const socket = createConnection({ host: "127.0.0.1", port })
    socket.once("connect", () => {
      socket.destroy()
      resolve(true)
    })
    socket.once("error", () => resolve(false))
  })

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** uid/gid of OS user `postgres`, for running the child when we are root. */
const postgresUser = (): { readonly uid: number; readonly gid: number } => {
  const line = readFileSync("/etc/passwd", "utf8").split("\n").find((l) => l.startsWith("postgres:"))
  const fields = line?.split(":")
  if (fields === undefined || fields.length < 4) {
    throw new Error("pgbouncer refuses to run as root, and there is no OS user \"postgres\" to run it as")
  }
  return { uid: Number(fields[2]), gid: Number(fields[3]) }
}

/** A libpq-style connstring value, single-quoted (PgBouncer's `[databases]` syntax). */
const quote = (value: string) => `'${value.replaceAll("\\", "\\\\").replaceAll("'", "\\'")}'`

/** `"user"` in PgBouncer's auth file syntax (a double quote doubled). */
const authName = (value: string) => `"${value.replaceAll("\"", "\"\"")}"`

const iniFor = (
  dir: string,
  port: number,
  target: URL,
  options: StartOptions
): { readonly ini: string; readonly user: string; readonly database: string } => {
  const user = decodeURIComponent(target.username) || "postgres"
  const database = decodeURIComponent(target.pathname.slice(1)) || user
  const server = [
    `host=${quote(target.hostname.replace(/^\[|\]$/g, "") || "127.0.0.1")}`,
    `port=${target.port || "5432"}`,
    `dbname=${quote(database)}`,
    `user=${quote(user)}`,
    ...(target.password !== "" ? [`password=${quote(decodeURIComponent(target.password))}`] : [])
  ].join(" ")
  const settings: Record<string, string | number> = {
    listen_addr: "127.0.0.1",
    listen_port: port,
    // No unix socket (another PgBouncer, e.g. Debian's service on 6432, may own /tmp's).
    unix_socket_dir: "",
    auth_type: "trust",
    auth_file: join(dir, "userlist.txt"),
    pool_mode: options.poolMode ?? "transaction",
    default_pool_size: options.poolSize ?? 20,
    max_client_conn: 1000,
    // Sent by some clients; PgBouncer refuses a startup parameter it does not know otherwise.
    ignore_startup_parameters: "extra_float_digits",
    logfile: join(dir, "pgbouncer.log"),
    pidfile: join(dir, "pgbouncer.pid"),
    admin_users: user,
    stats_users: user,
    log_connections: 0,
    log_disconnections: 0,
    ...options.settings
  }
  const ini = [
    "[databases]",
    `${database} = ${server}`,
    "",
    "[pgbouncer]",
    ...Object.entries(settings).map(([key, value]) => `${key} = ${value}`),
    ""
  ].join("\n")
  return { ini, user, database }
}

/**
 * Start PgBouncer in front of `options.target`; resolves once it accepts connections. Rejects
 * with PgBouncer's own log when it does not start (a port taken meanwhile is retried).
 */
export const start = async (options: StartOptions): Promise<PgBouncer> => {
  const binary = findBinary()
  if (binary === undefined) {
    throw new Error("pgbouncer is not installed (apt-get install -y pgbouncer)")
  }
  const version = versionOf(binary)
  const target = new URL(options.target)
  const asRoot = process.getuid?.() === 0
  const owner = asRoot ? postgresUser() : undefined
  let lastError: unknown = undefined
  for (let attempt = 0; attempt < 3; attempt++) {
    const dir = mkdtempSync(join(tmpdir(), "edp-pgbouncer-"))
    chmodSync(dir, 0o700)
    const port = await freePort()
    const { database, ini, user } = iniFor(dir, port, target, options)
    const files: ReadonlyArray<readonly [string, string]> = [
      ["pgbouncer.ini", ini],
      ["userlist.txt", `${authName(user)} ""\n`]
    ]
    for (const [name, text] of files) writeFileSync(join(dir, name), text, { mode: 0o600 })
    if (owner !== undefined) {
      chownSync(dir, owner.uid, owner.gid)
      for (const [name] of files) chownSync(join(dir, name), owner.uid, owner.gid)
    }
    const logs = () => {
      try {
        return readFileSync(join(dir, "pgbouncer.log"), "utf8")
      } catch {
        return ""
      }
    }
    let output = ""
    const child: ChildProcess = spawn(binary, [join(dir, "pgbouncer.ini")], {
      stdio: ["ignore", "pipe", "pipe"],
      ...(owner !== undefined ? { uid: owner.uid, gid: owner.gid } : {})
    })
    child.stdout?.on("data", (chunk) => (output += String(chunk)))
    child.stderr?.on("data", (chunk) => (output += String(chunk)))
    let exited = false
    const exit = new Promise<void>((resolve) => {
      child.once("exit", () => {
        exited = true
        resolve()
      })
      child.once("error", (error) => {
        output += String(error)
        exited = true
        resolve()
      })
    })
    // If the process ends without stop() (a worker torn down), do not leave PgBouncer behind.
    const onExit = () => {
      if (!exited) child.kill("SIGKILL")
      rmSync(dir, { recursive: true, force: true })
    }
    process.once("exit", onExit)
    const stop = async () => {
      process.removeListener("exit", onExit)
      if (!exited) {
        child.kill("SIGTERM")
        const done = await Promise.race([exit.then(() => true), sleep(5_000).then(() => false)])
        if (!done) {
          child.kill("SIGKILL")
          await exit
        }
      }
      rmSync(dir, { recursive: true, force: true })
    }
    const deadline = Date.now() + 10_000
    let up = false
    while (!exited && Date.now() < deadline) {
      if (await accepts(port)) {
        up = true
        break
      }
      await sleep(25)
    }
    if (up) {
      return {
        url: `postgres://${encodeURIComponent(user)}@127.0.0.1:${port}/${encodeURIComponent(database)}`,
        port,
        version,
        poolMode: options.poolMode ?? "transaction",
        logs,
        stop
      }
    }
    const log = `${output}${logs()}`.trim()
    await stop()
    lastError = new Error(
      `pgbouncer${version === undefined ? "" : ` ${version}`} did not start on 127.0.0.1:${port}` +
        (log === "" ? "" : `:\n${log}`)
    )
    // Someone took the port between our probe and PgBouncer's bind: try another one.
    if (!/address already in use|bind/i.test(log)) break
  }
  throw lastError
}

// -------------------------------------------------------------------------------- as a layer

/** The running PgBouncer, for tests. */
export class PgBouncerService extends Context.Service<PgBouncerService, {
  readonly url: Redacted.Redacted<string>
  readonly port: number
  readonly version: string | undefined
  readonly logs: () => string
}>()("support/PgBouncer") {}

/**
 * Start PgBouncer in front of the database in context (`DATABASE_URL` or the embedded server);
 * stopped when the layer's scope closes.
 */
export const layer = (options: Omit<StartOptions, "target"> = {}) =>
  Layer.effect(
    PgBouncerService,
    Effect.gen(function*() {
      const { url } = yield* Effect.service(PgDatabase.PgDatabase)
      const bouncer = yield* Effect.acquireRelease(
        Effect.tryPromise({
          try: () => start({ ...options, target: Redacted.value(url) }),
          catch: (cause) => cause instanceof Error ? cause : new Error(String(cause))
        }).pipe(Effect.orDie),
        (bouncer) => Effect.promise(() => bouncer.stop())
      )
      return {
        url: Redacted.make(bouncer.url),
        port: bouncer.port,
        version: bouncer.version,
        logs: bouncer.logs
      }
    })
  )
