/**
 * Command-line flags of the workbench: parsing, validation and the `--help` text.
 *
 * Pure and synchronous so that `main.ts` can reject bad flags (exit code 2) before anything
 * starts, and tests can call it directly.
 */

/** The pool strategies the workbench can drive, in the order they run. */
export const strategies = ["QueuePool", "NullPool", "StaticPool", "FiberPool", "AssertionPool"] as const

/** One strategy name. */
export type StrategyName = typeof strategies[number]

/** Where the pools connect: see {@link usage}. */
export const topologies = ["direct", "pgbouncer", "failover", "replicas"] as const

/** One topology name. */
export type TopologyName = typeof topologies[number]

/** How the view and the report name each topology. */
export const topologyLabels: Record<TopologyName, string> = {
  direct: "direct",
  pgbouncer: "through PgBouncer (transaction mode)",
  failover: "failover: primary + standby, the primary stopped halfway through each strategy",
  replicas: "replicas: primary + standby behind PgReplicas, reads on the standby, its apply delay varied"
}

/**
 * How the SQL client runs statements (`--mode`): `exclusive`, a connection per statement as
 * without the pipelined mode; `pipelined`, `PgSql.layer({ pipeline })`; `both`, each strategy that
 * can pipeline twice, exclusive then pipelined.
 */
export const modes = ["exclusive", "pipelined", "both"] as const

/** One `--mode`. */
export type ModeName = typeof modes[number]

/** How one phase runs its statements. */
export type PhaseMode = "exclusive" | "pipelined"

/** The strategies `PgSql.layer({ pipeline })` runs over in the workbench. */
export const pipelinable: ReadonlyArray<StrategyName> = ["QueuePool", "NullPool"]

/** Why the other strategies run exclusive only (said in `--help`, the header and refusals). */
export const notPipelined: Readonly<Record<StrategyName, string | undefined>> = {
  QueuePool: undefined,
  NullPool: undefined,
  StaticPool: "it shares one connection among every borrower, and PgSql refuses to pipeline over it (PgSqlConfigError)",
  FiberPool: "its leases are reentrant, and PgSql refuses to pipeline over them (PgSqlConfigError)",
  AssertionPool: "it runs one worker with one checkout at a time, so there is nothing to share"
}

/** Validated workbench settings. */
export interface Options {
  readonly strategies: ReadonlyArray<StrategyName>
  /** Concurrent worker fibers (AssertionPool always runs one: it allows one checkout at a time). */
  readonly workers: number
  /** QueuePool `poolSize`, FiberPool `poolSize`. */
  readonly poolSize: number
  /** QueuePool `maxOverflow` (-1 = unlimited). */
  readonly maxOverflow: number
  /** Seconds of workload per strategy. */
  readonly durationSeconds: number
  /** Terminate random backends of the workbench during the run. */
  readonly chaos: boolean
  /**
   * `direct`: the pools connect to the database; `pgbouncer`: through a PgBouncer in transaction
   * mode started in front of it; `failover`: to a fresh primary + standby per strategy, the
   * primary stopped and the standby promoted in the middle of the run; `replicas`: a primary +
   * streaming standby behind `PgReplicas` (reads on the standby), its apply delay varied.
   */
  readonly topology: TopologyName
  /** Where the HTML report is written. */
  readonly reportPath: string
  /** Seed of the workload's and chaos's random choices. */
  readonly seed: number
  /** Plain periodic lines even on a terminal. */
  readonly plain: boolean
  /** Exclusive, pipelined (`PgSql.layer({ pipeline })`) or both: see {@link phases}. */
  readonly mode: ModeName
  /** Pipelined mode: `maxInFlight`, statements in flight per shared connection. */
  readonly maxInFlight: number
  /** Pipelined mode: `maxConnections`; `undefined`: QueuePool's poolSize, NullPool 1 (the library's default). */
  readonly sharedConnections: number | undefined
}

/** One phase of a run: a strategy in a mode. */
export interface Phase {
  readonly strategy: StrategyName
  readonly mode: PhaseMode
}

/**
 * The phases of a run, in order: each strategy once in its mode; with `--mode both` the
 * strategies that can pipeline run exclusive then pipelined. With `--mode pipelined` the others
 * are left out (`parse` refuses them when named in `--strategy`; `all` means all that can).
 */
export const phases = (options: Pick<Options, "strategies" | "mode">): ReadonlyArray<Phase> =>
  options.strategies.flatMap((strategy): Array<Phase> => {
    const can = pipelinable.includes(strategy)
    switch (options.mode) {
      case "exclusive":
        return [{ strategy, mode: "exclusive" }]
      case "pipelined":
        return can ? [{ strategy, mode: "pipelined" }] : []
      case "both":
        return can
          ? [{ strategy, mode: "exclusive" }, { strategy, mode: "pipelined" }]
          : [{ strategy, mode: "exclusive" }]
    }
  })

/** The strategies of `options` that run exclusive only although pipelining was asked for. */
export const notPipelinedIn = (options: Pick<Options, "strategies" | "mode">): ReadonlyArray<StrategyName> =>
  options.mode === "exclusive" ? [] : options.strategies.filter((s) => !pipelinable.includes(s))

/** `--max-in-flight` when not given (as `PgSql`'s own default). */
export const defaultMaxInFlight = 32

/** Shortest `--duration` with `--topology failover`. */
export const minFailoverSeconds = 2

/** Shortest `--duration` with `--topology replicas` (four quarters of apply delay). */
export const minReplicasSeconds = 2

/** Defaults: about 10 s per strategy, so a full run takes about a minute. */
export const defaults: Omit<Options, "seed"> = {
  strategies,
  workers: 32,
  poolSize: 5,
  maxOverflow: 10,
  durationSeconds: 10,
  chaos: false,
  topology: "direct",
  reportPath: "tmp/workbench-report.html",
  plain: false,
  mode: "exclusive",
  maxInFlight: defaultMaxInFlight,
  sharedConnections: undefined
}

/** What the command line asked for. */
export type Parsed =
  | { readonly _tag: "Run"; readonly options: Options }
  | { readonly _tag: "Help"; readonly text: string }
  | { readonly _tag: "Invalid"; readonly message: string }

const aliases: Record<string, StrategyName> = {
  queue: "QueuePool",
  queuepool: "QueuePool",
  null: "NullPool",
  nullpool: "NullPool",
  static: "StaticPool",
  staticpool: "StaticPool",
  fiber: "FiberPool",
  fiberpool: "FiberPool",
  assertion: "AssertionPool",
  assertionpool: "AssertionPool"
}

/** The `--help` text. */
export const usage = `effect-db-pool workbench: drive a mixed PostgreSQL workload through each pool strategy,
watch it live, and get a summary table and an HTML report.

Usage: npm start -- [flags]        (or: npx tsx workbench/main.ts [flags])

Flags:
  -s, --strategy <list>     all, or a comma list of queue,null,static,fiber,assertion
                            (or the class names: QueuePool,...). Default: all, in that order
  -w, --workers <n>         concurrent worker fibers, 1..500. Default: ${defaults.workers}
                            (AssertionPool always runs 1: it allows one checkout at a time)
  -p, --pool-size <n>       QueuePool/FiberPool poolSize, 1..200. Default: ${defaults.poolSize}
  -o, --max-overflow <n>    QueuePool maxOverflow, -1 (unlimited)..500. Default: ${defaults.maxOverflow}
  -d, --duration <time>     workload per strategy: 10, 10s, 1.5s, 800ms, 1m. Default: ${defaults.durationSeconds}s
      --chaos               terminate random backends of the workbench (its own application_name
                            only) while it runs, to show invalidation, pre-ping and recovery
  -t, --topology <name>     where the pools connect (default: ${defaults.topology}):
                              direct     straight to the database
                              pgbouncer  through a PgBouncer in transaction mode (Debian's pgbouncer,
                                         started in front of the database; PgDriver pooler
                                         "transaction"); schema set-up and chaos stay direct
                              failover   a fresh primary + streaming standby per strategy (embedded
                                         binaries; DATABASE_URL is ignored), the driver given both
                                         hosts with targetSessionAttrs "read-write"; halfway through
                                         each strategy the primary is stopped (immediate) and the
                                         standby promoted. Not with --chaos; --duration ≥ ${minFailoverSeconds}s
                              replicas   a primary + streaming standby (embedded binaries, shared by
                                         the strategies; DATABASE_URL is ignored) behind PgReplicas:
                                         reads marked read-only go to the standby (maxLag 150 ms);
                                         each transfer is read back, by half the workers with
                                         read-your-writes, by the other half eventual. The standby's
                                         apply delay: none, 50 ms, 400 ms, none (a quarter each).
                                         --duration ≥ ${minReplicasSeconds}s
  -m, --mode <mode>         how the SQL client runs statements (default: ${defaults.mode}):
                              exclusive  a connection of the pool per statement (PgSql.layer())
                              pipelined  PgSql.layer({ pipeline }): point queries and reports from
                                         every worker pipeline over a few shared connections;
                                         transfers (transactions) and slow statements
                                         (PgSql.exclusive) take a connection of their own
                              both       each strategy that can pipeline runs exclusive, then
                                         pipelined
                            Pipelined runs QueuePool and NullPool only: StaticPool shares one
                            connection among every borrower and FiberPool's leases are reentrant
                            (PgSql refuses both), AssertionPool runs one worker (nothing to share).
                            With --strategy all they are left out (with both: run exclusive only);
                            named with --mode pipelined they are refused. Not with --topology
                            pgbouncer; with replicas both pools pipeline (sql: { pipeline })
      --max-in-flight <n>   pipelined: statements in flight per shared connection (maxInFlight),
                            1..128. Default: ${defaultMaxInFlight}
      --shared-connections <n>
                            pipelined: shared connections at most (maxConnections), 1..200; the
                            pool's own bounds still hold. Default: QueuePool's poolSize, NullPool 1
  -r, --report <path>       HTML report path. Default: ${defaults.reportPath}
      --seed <n>            seed of the random workload and chaos (integer). Default: random, printed
      --plain               plain periodic lines instead of the live view (automatic when stdout
                            is not a terminal)
  -h, --help                this text

The database is DATABASE_URL when set, otherwise an embedded PostgreSQL started in a temporary
directory (stopped and removed at the end, also on Ctrl-C, which still writes the report).
--topology failover and replicas always start servers of their own (never DATABASE_URL's).

Examples:
  npm start
  npm start -- --chaos
  npm start -- --topology pgbouncer -s queue,null
  npm start -- --topology failover -s queue -d 10s
  npm start -- --topology replicas -s queue -d 8s
  npm start -- --mode both -s queue,null
  npm start -- --mode pipelined -w 64 --max-in-flight 8 --shared-connections 4
  npm start -- -s queue -w 64 -p 10 -o 20 -d 30s --seed 7
`

const parseDuration = (text: string): number | undefined => {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|sec|seconds?|m|min|minutes?)?\s*$/i.exec(text)
  if (m === null) return undefined
  const n = Number(m[1])
  const unit = (m[2] ?? "s").toLowerCase()
  const seconds = unit === "ms" ? n / 1000 : unit.startsWith("m") && unit !== "ms" ? n * 60 : n
  return Number.isFinite(seconds) ? seconds : undefined
}

const parseInteger = (text: string): number | undefined => (/^-?\d+$/.test(text.trim()) ? Number(text) : undefined)

const flagNames: Record<string, string> = {
  "-s": "--strategy",
  "-w": "--workers",
  "-p": "--pool-size",
  "-o": "--max-overflow",
  "-d": "--duration",
  "-r": "--report",
  "-t": "--topology",
  "-m": "--mode",
  "-h": "--help"
}
const valued = new Set([
  "--strategy",
  "--workers",
  "--pool-size",
  "--max-overflow",
  "--duration",
  "--report",
  "--seed",
  "--topology",
  "--mode",
  "--max-in-flight",
  "--shared-connections"
])
const booleans = new Set(["--chaos", "--plain", "--help"])

/**
 * Parse the command line (without `node` and the script). `randomSeed` is used when no
 * `--seed` is given.
 */
export const parse = (
  argv: ReadonlyArray<string>,
  randomSeed: () => number = () => Math.floor(Math.random() * 1_000_000)
): Parsed => {
  const invalid = (message: string): Parsed => ({ _tag: "Invalid", message })
  const values = new Map<string, string>()
  const flags = new Set<string>()
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === "--") continue
    if (!arg.startsWith("-") || arg === "-") {
      return invalid(`unexpected argument ${JSON.stringify(arg)} (flags start with --)`)
    }
    const eq = arg.indexOf("=")
    const rawName = eq > 0 ? arg.slice(0, eq) : arg
    const name = flagNames[rawName] ?? rawName
    if (valued.has(name)) {
      let value: string | undefined
      if (eq > 0) value = arg.slice(eq + 1)
      else {
        value = argv[i + 1]
        // A following flag is not a value ("-1" is: --max-overflow -1).
        if (value !== undefined && value.startsWith("-") && !/^-\d/.test(value)) value = undefined
        if (value !== undefined) i++
      }
      if (value === undefined || value.length === 0) return invalid(`${name} needs a value`)
      if (values.has(name)) return invalid(`${name} given twice`)
      values.set(name, value)
    } else if (booleans.has(name)) {
      if (eq > 0) return invalid(`${name} takes no value`)
      flags.add(name)
    } else {
      return invalid(`unknown flag ${rawName}`)
    }
  }
  if (flags.has("--help")) return { _tag: "Help", text: usage }

  let chosen: ReadonlyArray<StrategyName> = defaults.strategies
  const strategyText = values.get("--strategy")
  const named = strategyText !== undefined && strategyText.trim().toLowerCase() !== "all"
  if (named) {
    const picked: Array<StrategyName> = []
    for (const part of strategyText.split(",").map((s) => s.trim()).filter((s) => s.length > 0)) {
      const name = aliases[part.toLowerCase()]
      if (name === undefined) {
        return invalid(
          `--strategy: unknown strategy ${JSON.stringify(part)} (expected all or queue, null, static, fiber, assertion)`
        )
      }
      if (!picked.includes(name)) picked.push(name)
    }
    if (picked.length === 0) return invalid("--strategy needs at least one strategy")
    chosen = picked
  }

  const intFlag = (name: string, fallback: number, min: number, max: number): number | string => {
    const text = values.get(name)
    if (text === undefined) return fallback
    const n = parseInteger(text)
    if (n === undefined || n < min || n > max) {
      return `${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(text)}`
    }
    return n
  }
  const workers = intFlag("--workers", defaults.workers, 1, 500)
  if (typeof workers === "string") return invalid(workers)
  const poolSize = intFlag("--pool-size", defaults.poolSize, 1, 200)
  if (typeof poolSize === "string") return invalid(poolSize)
  const maxOverflow = intFlag("--max-overflow", defaults.maxOverflow, -1, 500)
  if (typeof maxOverflow === "string") return invalid(maxOverflow)
  const seed = intFlag("--seed", -1, 0, 2 ** 31 - 1)
  if (typeof seed === "string") return invalid(seed)

  let durationSeconds = defaults.durationSeconds
  const durationText = values.get("--duration")
  if (durationText !== undefined) {
    const d = parseDuration(durationText)
    if (d === undefined || d < 0.2 || d > 3600) {
      return invalid(
        `--duration must be a time from 200ms to 1h such as 10, 10s, 800ms or 1m, got ${JSON.stringify(durationText)}`
      )
    }
    durationSeconds = d
  }
  const reportPath = values.get("--report") ?? defaults.reportPath

  let topology: TopologyName = defaults.topology
  const topologyText = values.get("--topology")
  if (topologyText !== undefined) {
    const name = topologies.find((t) => t === topologyText.trim().toLowerCase())
    if (name === undefined) {
      return invalid(`--topology: unknown topology ${JSON.stringify(topologyText)} (expected ${topologies.join(", ")})`)
    }
    topology = name
  }
  const chaos = flags.has("--chaos")
  if (chaos && topology === "failover") {
    return invalid(
      "--chaos cannot be combined with --topology failover (both cut the sessions; the failover figures would mean nothing): run them separately"
    )
  }
  if (topology === "replicas" && durationSeconds < minReplicasSeconds) {
    return invalid(
      `--topology replicas needs --duration ${minReplicasSeconds}s or more (the standby's apply delay changes every quarter), got ${
        JSON.stringify(durationText)
      }`
    )
  }
  let mode: ModeName = defaults.mode
  const modeText = values.get("--mode")
  if (modeText !== undefined) {
    const name = modes.find((m) => m === modeText.trim().toLowerCase())
    if (name === undefined) {
      return invalid(`--mode: unknown mode ${JSON.stringify(modeText)} (expected ${modes.join(", ")})`)
    }
    mode = name
  }
  const maxInFlight = intFlag("--max-in-flight", defaults.maxInFlight, 1, 128)
  if (typeof maxInFlight === "string") return invalid(maxInFlight)
  const sharedConnections = intFlag("--shared-connections", -1, 1, 200)
  if (typeof sharedConnections === "string") return invalid(sharedConnections)
  if (mode === "exclusive") {
    for (const name of ["--max-in-flight", "--shared-connections"]) {
      if (values.has(name)) return invalid(`${name} needs --mode pipelined or both (it bounds the pipelined mode)`)
    }
  } else {
    if (topology === "pgbouncer") {
      return invalid(
        `--mode ${mode} cannot be combined with --topology pgbouncer (the workbench does not pipeline through a transaction-mode pooler: how PgBouncer handles pipelined statements in that mode varies by version): run them separately`
      )
    }
    const refused = chosen.filter((s) => !pipelinable.includes(s))
    if (mode === "pipelined" && named && refused.length > 0) {
      return invalid(
        `--mode pipelined cannot run ${refused.map((s) => `${s}: ${notPipelined[s]}`).join("; ")}. Leave ${
          refused.length === 1 ? "it" : "them"
        } out of --strategy, or use --mode both (${refused.length === 1 ? "it runs" : "they run"} exclusive only)`
      )
    }
  }
  if (topology === "failover" && durationSeconds < minFailoverSeconds) {
    return invalid(
      `--topology failover needs --duration ${minFailoverSeconds}s or more (the primary stops halfway; the standby needs time to take over), got ${
        JSON.stringify(durationText)
      }`
    )
  }

  return {
    _tag: "Run",
    options: {
      strategies: chosen,
      workers,
      poolSize,
      maxOverflow,
      durationSeconds,
      chaos,
      topology,
      reportPath,
      seed: seed === -1 ? randomSeed() : seed,
      plain: flags.has("--plain"),
      mode,
      maxInFlight,
      sharedConnections: sharedConnections === -1 ? undefined : sharedConnections
    }
  }
}
