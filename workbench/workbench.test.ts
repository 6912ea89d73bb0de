/**
 * The workbench (`npm start`): its flags, a short end-to-end run on the real server
 * (DATABASE_URL or embedded) with chaos, a short run in pipelined mode, short runs with `--topology pgbouncer` (skipped, with
 * the reason, when `pgbouncer` is not installed outside CI), `--topology failover` and
 * `--topology replicas` (a primary + standby of their own), and the real process's exit codes (bad flags: 2, Ctrl-C: 130
 * with the report still written and the server stopped).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import * as PgBouncer from "../support/pgbouncer.ts"
import { defaults, parse, phases, strategies } from "./args.ts"
import type { Options } from "./args.ts"
import { Pipeline, Recorder, StrategyRun } from "./recorder.ts"
import { run } from "./run.ts"
import { summaryRows } from "./view.ts"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")
const tsx = path.join(root, "node_modules", ".bin", "tsx")
const main = path.join(root, "workbench", "main.ts")
const tempDir = () => fs.mkdtempSync(path.join(os.tmpdir(), "workbench-test-"))

const invalid = (argv: ReadonlyArray<string>) => {
  const parsed = parse(argv)
  expect(parsed._tag).toBe("Invalid")
  return parsed._tag === "Invalid" ? parsed.message : ""
}

describe("flags", () => {
  it("defaults: every strategy, ~10 s each, a random seed", () => {
    const parsed = parse([], () => 1234)
    expect(parsed).toEqual({ _tag: "Run", options: { ...defaults, seed: 1234 } })
    if (parsed._tag === "Run") expect(parsed.options.strategies).toEqual(strategies)
  })

  it("every flag, long and short, = and space forms", () => {
    const parsed = parse([
      "-s",
      "fiber,queue",
      "--workers=8",
      "-p",
      "3",
      "--max-overflow",
      "-1",
      "-d",
      "800ms",
      "--chaos",
      "-t",
      "pgbouncer",
      "-r",
      "x.html",
      "--seed",
      "7",
      "--plain"
    ])
    expect(parsed).toEqual({
      _tag: "Run",
      options: {
        strategies: ["FiberPool", "QueuePool"],
        workers: 8,
        poolSize: 3,
        maxOverflow: -1,
        durationSeconds: 0.8,
        chaos: true,
        topology: "pgbouncer",
        reportPath: "x.html",
        seed: 7,
        plain: true,
        mode: "exclusive",
        maxInFlight: 32,
        sharedConnections: undefined
      }
    })
    const piped = parse(["-m", "pipelined", "--max-in-flight", "8", "--shared-connections=3", "-s", "queue,null"])
    expect(piped._tag === "Run" && [piped.options.mode, piped.options.maxInFlight, piped.options.sharedConnections])
      .toEqual(["pipelined", 8, 3])
    const named = parse(["--strategy", "NullPool, staticpool,AssertionPool", "--duration", "1m", "--", "--seed=0"])
    expect(named._tag === "Run" && named.options.strategies).toEqual(["NullPool", "StaticPool", "AssertionPool"])
    expect(named._tag === "Run" && named.options.durationSeconds).toBe(60)
    expect(named._tag === "Run" && named.options.seed).toBe(0)
  })

  it("--topology: direct (default), pgbouncer, failover, replicas", () => {
    const plain = parse([])
    expect(plain._tag === "Run" && plain.options.topology).toBe("direct")
    for (
      const [argv, topology] of [
        [["--topology", "direct", "--chaos"], "direct"],
        [["--topology=pgbouncer"], "pgbouncer"],
        [["-t", "PgBouncer", "--chaos"], "pgbouncer"],
        [["--topology", "failover", "-d", "2s"], "failover"],
        [["-t", "failover"], "failover"],
        [["--topology", "replicas", "--chaos"], "replicas"]
      ] as const
    ) {
      const parsed = parse(argv)
      expect(parsed._tag === "Run" && parsed.options.topology, argv.join(" ")).toBe(topology)
    }
    const help = parse(["--help"])
    expect(help._tag === "Help" && help.text).toMatch(/--topology <name>[\s\S]*pgbouncer[\s\S]*failover[\s\S]*replicas/)
  })

  it("--topology: bad names and combinations are refused", () => {
    expect(invalid(["--topology", "bouncer"])).toBe(
      "--topology: unknown topology \"bouncer\" (expected direct, pgbouncer, failover, replicas)"
    )
    expect(invalid(["--topology"])).toBe("--topology needs a value")
    expect(invalid(["-t", "direct", "--topology", "failover"])).toBe("--topology given twice")
    expect(invalid(["--topology", "failover", "--chaos"])).toMatch(
      /^--chaos cannot be combined with --topology failover/
    )
    expect(invalid(["--topology", "failover", "-d", "1500ms"])).toMatch(
      /^--topology failover needs --duration 2s or more/
    )
    expect(invalid(["--topology", "replicas", "-d", "1s"])).toMatch(/^--topology replicas needs --duration 2s or more/)
  })

  it("--mode: exclusive (default), pipelined, both; the phases each runs", () => {
    const mode = (argv: ReadonlyArray<string>) => {
      const parsed = parse(argv)
      return parsed._tag === "Run" ? parsed.options : undefined
    }
    expect(mode([])?.mode).toBe("exclusive")
    expect(mode(["--mode", "Pipelined"])?.mode).toBe("pipelined")
    expect(mode(["-m", "both", "-t", "failover", "-d", "2s"])?.mode).toBe("both")
    const all = (m: Options["mode"]) => phases({ strategies, mode: m }).map((p) => `${p.strategy} ${p.mode}`)
    expect(all("exclusive")).toEqual(strategies.map((s) => `${s} exclusive`))
    // `all` in pipelined mode: the strategies that can pipeline.
    expect(all("pipelined")).toEqual(["QueuePool pipelined", "NullPool pipelined"])
    // both: exclusive then pipelined, strategy by strategy; the others exclusive only.
    expect(all("both")).toEqual([
      "QueuePool exclusive",
      "QueuePool pipelined",
      "NullPool exclusive",
      "NullPool pipelined",
      "StaticPool exclusive",
      "FiberPool exclusive",
      "AssertionPool exclusive"
    ])
    const help = parse(["--help"])
    expect(help._tag === "Help" && help.text).toMatch(
      /--mode <mode>[\s\S]*exclusive[\s\S]*pipelined[\s\S]*both[\s\S]*--max-in-flight <n>[\s\S]*--shared-connections <n>/
    )
    expect(help._tag === "Help" && help.text).toContain("Pipelined runs QueuePool and NullPool only")
  })

  it("--mode: bad values and combinations that cannot work are refused", () => {
    expect(invalid(["--mode", "multiplex"])).toBe(
      "--mode: unknown mode \"multiplex\" (expected exclusive, pipelined, both)"
    )
    expect(invalid(["-m"])).toBe("--mode needs a value")
    expect(invalid(["--max-in-flight", "8"])).toBe(
      "--max-in-flight needs --mode pipelined or both (it bounds the pipelined mode)"
    )
    expect(invalid(["-m", "exclusive", "--shared-connections", "2"])).toMatch(/^--shared-connections needs --mode/)
    expect(invalid(["-m", "pipelined", "--max-in-flight", "0"])).toBe(
      "--max-in-flight must be an integer from 1 to 128, got \"0\""
    )
    expect(invalid(["-m", "both", "--max-in-flight", "129"])).toMatch(/^--max-in-flight must be an integer/)
    expect(invalid(["-m", "pipelined", "--shared-connections", "0"])).toMatch(/^--shared-connections must be/)
    // Named strategies that cannot pipeline: refused, with the reason and the way out.
    expect(invalid(["-m", "pipelined", "-s", "queue,static"])).toBe(
      "--mode pipelined cannot run StaticPool: it shares one connection among every borrower, and PgSql refuses to pipeline over it (PgSqlConfigError). Leave it out of --strategy, or use --mode both (it runs exclusive only)"
    )
    expect(invalid(["-m", "pipelined", "-s", "fiber,assertion"])).toMatch(
      /^--mode pipelined cannot run FiberPool: its leases are reentrant, [^;]*; AssertionPool: it runs one worker [\s\S]*Leave them out/
    )
    expect(parse(["-m", "both", "-s", "static,queue"])._tag).toBe("Run")
    expect(parse(["-m", "pipelined", "-s", "all"])._tag).toBe("Run")
    expect(invalid(["-m", "pipelined", "-t", "pgbouncer"])).toMatch(
      /^--mode pipelined cannot be combined with --topology pgbouncer/
    )
    expect(parse(["-m", "both", "-t", "replicas", "-d", "4s"])._tag).toBe("Run")
  })

  it("--help wins over everything else", () => {
    const parsed = parse(["--workers", "3", "-h"])
    expect(parsed._tag).toBe("Help")
    expect(parsed._tag === "Help" && parsed.text).toContain("--max-overflow")
  })

  it("bad flags get a message naming the flag", () => {
    expect(invalid(["--wokers", "3"])).toBe("unknown flag --wokers")
    expect(invalid(["--workers", "0"])).toMatch(/--workers must be an integer from 1 to 500, got "0"/)
    expect(invalid(["--workers", "2.5"])).toMatch(/--workers must be an integer/)
    expect(invalid(["--workers"])).toBe("--workers needs a value")
    expect(invalid(["--workers", "--chaos"])).toBe("--workers needs a value")
    expect(invalid(["--pool-size", "abc"])).toMatch(/--pool-size/)
    expect(invalid(["--max-overflow", "-2"])).toMatch(/--max-overflow must be an integer from -1/)
    expect(invalid(["--duration", "10 parsecs"])).toMatch(/--duration/)
    expect(invalid(["--duration", "50ms"])).toMatch(/--duration/)
    expect(invalid(["--strategy", "queue,lifo"])).toMatch(/unknown strategy "lifo"/)
    expect(invalid(["--seed", "-5"])).toMatch(/--seed/)
    expect(invalid(["--chaos=yes"])).toBe("--chaos takes no value")
    expect(invalid(["--workers", "3", "--workers", "4"])).toBe("--workers given twice")
    expect(invalid(["queue"])).toMatch(/unexpected argument "queue"/)
  })
})

describe("the workbench process", () => {
  it("exits 2 with a clear message on a bad flag", () => {
    const result = spawnSync(tsx, [main, "--workers", "many"], { cwd: root, encoding: "utf8", timeout: 20_000 })
    expect(result.status).toBe(2)
    expect(result.stderr).toContain("workbench: --workers must be an integer from 1 to 500, got \"many\"")
    expect(result.stderr).toContain("--help")
    expect(result.stdout).toBe("")
  })

  it("exits 2 on --chaos with --topology failover, before starting anything", () => {
    const result = spawnSync(tsx, [main, "--topology", "failover", "--chaos"], {
      cwd: root,
      encoding: "utf8",
      timeout: 20_000
    })
    expect(result.status).toBe(2)
    expect(result.stderr).toContain("workbench: --chaos cannot be combined with --topology failover")
    expect(result.stdout).toBe("")
  })

  it("Ctrl-C stops cleanly (exit 130), writes the report of what ran and stops the server", async () => {
    const dir = tempDir()
    const report = path.join(dir, "interrupted.html")
    const child = spawn(tsx, [main, "-s", "queue", "-d", "20s", "-w", "4", "--seed", "5", "--plain", "-r", report], {
      cwd: root,
      stdio: ["ignore", "pipe", "pipe"]
    })
    let stdout = ""
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString()
      // Interrupt once the first periodic line shows the workload running.
      if (/\[QueuePool +\d+%/.test(stdout) && child.signalCode === null && !child.killed) child.kill("SIGINT")
    })
    const code = await new Promise<number | null>((resolve) => child.on("exit", (c) => resolve(c)))
    expect(code).toBe(130)
    expect(stdout).toContain(`Report: ${report}`)
    const html = fs.readFileSync(report, "utf8")
    expect(html).toContain("Stopped early: interrupted")
    expect(html).toContain(`data-strategy="QueuePool"`)
    const port = /embedded, port (\d+)/.exec(stdout)?.[1]
    if (port !== undefined) {
      const refused = await new Promise<boolean>((resolve) => {
        const socket = net.connect(Number(port), "127.0.0.1")
        socket.once("connect", () => {
          socket.destroy()
          resolve(false)
        })
        socket.once("error", () => resolve(true))
      })
      expect(refused).toBe(true)
    }
    fs.rmSync(dir, { recursive: true, force: true })
  }, 30_000)
})

describe("a short run end to end", () => {
  // Shared with the screenshot check below.
  let reportPath: string | undefined
  it.live(
    "every strategy runs, with chaos; the report has one non-empty timeline per strategy",
    () =>
      Effect.gen(function*() {
        const dir = tempDir()
        const options: Options = {
          strategies,
          workers: 8,
          poolSize: 3,
          maxOverflow: 2,
          durationSeconds: 1.2,
          chaos: true,
          topology: "direct",
          reportPath: path.join(dir, "report.html"),
          seed: 11,
          plain: false,
          mode: "exclusive",
          maxInFlight: 32,
          sharedConnections: undefined
        }
        let printed = ""
        const result = yield* Effect.scoped(
          run(options, { write: (t) => void (printed += t), live: false, columns: 120 })
        )
        // The report is written when the run's scope closes.
        expect(result.reportPath).toBe(options.reportPath)
        const runs = result.recorder.runs
        expect(runs.map((r) => r.strategy)).toEqual([...strategies])
        for (const r of runs) {
          expect(r.completed).toBe(true)
          expect(r.samples.length).toBeGreaterThan(5)
          expect(r.waits.length).toBeGreaterThan(0)
          expect(r.totalOps).toBeGreaterThan(0)
          expect(r.events.get("checkout") ?? 0).toBeGreaterThan(0)
          expect(r.counters?.checkouts ?? 0).toBeGreaterThan(0)
        }
        expect(runs.find((r) => r.strategy === "AssertionPool")?.workers).toBe(1)
        expect(runs.reduce((n, r) => n + r.kills.length, 0)).toBeGreaterThan(0)

        const html = fs.readFileSync(options.reportPath, "utf8")
        expect(html).not.toMatch(/<script|<link|https?:\/\/(?!www\.w3\.org)/)
        const sections = [
          ...html.matchAll(
            /<section id="s\d+" class="strategy" data-strategy="(\w+)" data-mode="exclusive" data-samples="(\d+)" data-waits="(\d+)">([\s\S]*?)<\/section>/g
          )
        ]
        expect(sections.map((m) => m[1])).toEqual([...strategies])
        for (const m of sections) {
          expect(Number(m[2])).toBeGreaterThan(5)
          expect(Number(m[3])).toBeGreaterThan(0)
          const timeline = /<div class="chart timeline"><svg[\s\S]*?<\/svg>/.exec(m[4]!)?.[0] ?? ""
          // Four series, each a path with at least one point.
          expect(timeline.match(/<path d="M[\d.]+,[\d.]+/g)?.length).toBe(4)
          expect(m[4]).toContain("Acquire-wait distribution")
          expect(m[4]).toContain("Pool events")
        }
        expect(printed).toContain("Summary")
        expect(printed).toMatch(/QueuePool +\d/)
        expect(printed).toContain(`Report: ${options.reportPath}`)
        reportPath = options.reportPath
      }),
    60_000
  )

  it.skipIf(!fs.existsSync("/usr/bin/chromium"))(
    "the report renders in headless Chromium (scripts/screenshot-report.sh)",
    () => {
      expect(reportPath).toBeDefined()
      const png = path.join(path.dirname(reportPath!), "report.png")
      const result = spawnSync(path.join(root, "scripts", "screenshot-report.sh"), [reportPath!, png, "1000,1400"], {
        encoding: "utf8",
        timeout: 20_000
      })
      expect(result.status).toBe(0)
      expect(fs.statSync(png).size).toBeGreaterThan(20_000)
      fs.rmSync(path.dirname(reportPath!), { recursive: true, force: true })
    },
    25_000
  )
})

describe("pipelined mode", () => {
  it.live(
    "point queries and reports pipeline over at most maxConnections shared connections, transfers and slow statements go exclusive; status, metrics and events in the view and the report",
    () =>
      Effect.gen(function*() {
        const dir = tempDir()
        const options: Options = {
          ...defaults,
          // `all`: the strategies that can pipeline (QueuePool, NullPool); the others are left out.
          strategies,
          workers: 16,
          poolSize: 3,
          maxOverflow: 2,
          // Past 2 s: the plain view prints a periodic line.
          durationSeconds: 2.2,
          mode: "pipelined",
          maxInFlight: 4,
          sharedConnections: 2,
          reportPath: path.join(dir, "report.html"),
          seed: 13,
          plain: true
        }
        let printed = ""
        const result = yield* Effect.scoped(
          run(options, { write: (t) => void (printed += t), live: false, columns: 200 })
        )
        const runs = result.recorder.runs
        expect(runs.map((r) => r.label)).toEqual(["QueuePool pipelined", "NullPool pipelined"])
        for (const r of runs) {
          const p = r.pipeline!
          expect(r.completed, r.label).toBe(true)
          expect(r.errorCount, r.label).toBe(0)
          expect([p.maxInFlight, p.maxConnections]).toEqual([4, 2])
          expect(r.config).toMatchObject({ mode: "pipelined", maxInFlight: 4, sharedConnections: 2 })
          // Every point query and report was pipelined (metric); transfers and slow statements were not.
          expect(r.ops.query + r.ops.report).toBeGreaterThan(0)
          expect(p.statements, r.label).toBe(r.ops.query + r.ops.report)
          expect(p.abandoned).toBe(0)
          // Never more shared connections than maxConnections, nor statements in flight than allowed.
          expect(p.samples.length).toBeGreaterThan(10)
          // The peak counts every open and close (events), not only what a sample happened to see.
          expect(p.peakConnections).toBeGreaterThanOrEqual(1)
          expect(p.peakConnections).toBeLessThanOrEqual(2)
          for (const sample of p.samples) {
            expect(sample.connections).toBeLessThanOrEqual(2)
            expect(sample.inFlight).toBeLessThanOrEqual(2 * 4)
          }
          // Shared connections opened and closed (events); the exclusive path ran the transfers.
          expect(p.opened).toBeGreaterThan(0)
          expect(p.closes).toBeGreaterThan(0)
          expect(p.closes).toBeLessThanOrEqual(p.opened)
          expect(p.closed.broken).toBe(0)
          expect(r.ops.transaction).toBeGreaterThan(0)
          expect(r.exclusiveCheckouts).toBeGreaterThanOrEqual(r.ops.transaction + r.ops.slow)
        }
        expect(printed).toContain("mode pipelined (PgSql.layer({ pipeline }), maxInFlight 4, shared connections 2)")
        expect(printed).toContain("StaticPool is left out: it shares one connection among every borrower")
        expect(printed).toMatch(
          /-- QueuePool pipelined: 16 workers for 2\.2 s \(mode pipelined, maxInFlight 4, sharedConnections 2,/
        )
        expect(printed).toMatch(
          /\[QueuePool pipelined +\d+% [\d.]+s\] .* shared=[0-2]\/2 in_flight=[\d+]+ pipelined=\d+ abandoned=0 exclusive_checkouts=\d+ lanes_opened=\d+ lanes_closed=/
        )
        expect(printed).toMatch(
          /✔ QueuePool pipelined .*\n {2}pipeline [\d,]+ statements pipelined on at most [12] shared/
        )
        expect(printed).toMatch(
          /NullPool pipelined: [\d,]+ statements pipelined on at most [12] shared connections? \(of 2;/
        )
        expect(printed).toMatch(/mode +pipelined +abandoned +shared \(peak\/max\)/)

        const html = fs.readFileSync(options.reportPath, "utf8")
        expect(html).toContain("--mode pipelined --max-in-flight 4 --shared-connections 2")
        expect(html).toContain(`data-mode="pipelined"><p><b>Mode: pipelined`)
        const sections = sectionsOf(html)
        expect(sections.map((s) => s.strategy)).toEqual(["QueuePool", "NullPool"])
        sections.forEach(({ body }, i) => {
          const r = runs[i]!
          const p = r.pipeline!
          const block =
            /<div class="pipeline" data-pipelined="(\d+)" data-abandoned="(\d+)" data-peak-shared="(\d+)" data-max-shared="(\d+)" data-opened="(\d+)" data-closed="(\d+)" data-exclusive="(\d+)">/
              .exec(body)
          expect(block?.slice(1).map(Number)).toEqual([
            p.statements,
            0,
            p.peakConnections,
            2,
            p.opened,
            p.closes,
            r.exclusiveCheckouts
          ])
          const chart = /<div class="chart pipe"><svg[\s\S]*?<\/svg>/.exec(body)?.[0] ?? ""
          expect(chart).toMatch(/<path d="M[\d.]+,[\d.]+[^"]*" [^>]*class="pipe-connections"/)
          expect(chart).toMatch(/<path d="M[\d.]+,[\d.]+[^"]*" [^>]*class="pipe-inFlight"/)
          expect(chart).toContain("maxConnections 2")
          expect(body).toContain("Shared connections closed, by reason (PgSql.pipelineEvents)")
        })
        fs.rmSync(dir, { recursive: true, force: true })
      }),
    60_000
  )

  it("--mode both: the summary gives each phase its mode, the pipelined figures for the pipelined ones", () => {
    const options: Options = { ...defaults, strategies: ["QueuePool", "StaticPool"], mode: "both", seed: 1 }
    const recorder = new Recorder(options)
    for (const { mode, strategy } of phases(options)) {
      const pool = `p-${strategy}-${mode}`
      const r = new StrategyRun(strategy, pool, 4, 1000, {}, [], mode)
      r.startedAt = 1
      r.elapsedMs = 1000
      r.completed = true
      if (mode === "pipelined") {
        r.pipeline = new Pipeline(32, 5, [pool])
        r.pipeline.sample(100, [{ processId: 1, inFlight: 3, statements: 9 }], 1234, 2)
        r.pipeline.recordEvent({ type: "open", pool, processId: 1 })
        r.pipeline.recordEvent({
          type: "close",
          pool,
          processId: 1,
          statements: 9,
          inFlight: 0,
          reason: "exclusive"
        })
        r.recordEvent("checkout")
        r.recordEvent("checkout")
        r.recordEvent("checkout")
      }
      recorder.runs.push(r)
    }
    const rows = summaryRows(recorder)
    const at = (name: string) => rows[0]!.indexOf(name)
    const cells = (row: ReadonlyArray<string>) =>
      [
        "mode",
        "pipelined",
        "abandoned",
        "shared (peak/max)",
        "in flight (peak)",
        "exclusive checkouts",
        "shared closed"
      ].map((h) => row[at(h)])
    expect(rows.map((row) => row[0])).toEqual(["strategy", "QueuePool", "QueuePool", "StaticPool"])
    expect(cells(rows[1]!)).toEqual(["exclusive", "–", "–", "–", "–", "–", "–"])
    expect(cells(rows[2]!)).toEqual(["pipelined", "1,234", "2", "1/5", "3", "2", "exclusive 1"])
    expect(cells(rows[3]!)).toEqual(["exclusive", "–", "–", "–", "–", "–", "–"])
    // Exclusive mode: the table as before, no mode columns.
    expect(summaryRows(new Recorder({ ...defaults, seed: 1 }))[0]).not.toContain("mode")
  })
})

/** The `<section>` of each strategy in a report: name and body. */
const sectionsOf = (html: string) =>
  [...html.matchAll(/<section id="s\d+" class="strategy" data-strategy="(\w+)"[^>]*>([\s\S]*?)<\/section>/g)].map((
    m
  ) => ({ strategy: m[1]!, body: m[2]! }))

const pgbouncer = PgBouncer.availability()
if (pgbouncer.skip !== undefined) console.warn(`[workbench.test] ${pgbouncer.skip}`)

describe("--topology", () => {
  const printedRun = (options: Options) =>
    Effect.gen(function*() {
      let printed = ""
      const result = yield* Effect.scoped(
        run(options, { write: (t) => void (printed += t), live: false, columns: 160 })
      )
      return { result, printed, html: fs.readFileSync(options.reportPath, "utf8") }
    })

  /** QueuePool and NullPool, 4 workers on 2 (+1) connections, through `topology`, the report in `dir`. */
  const twoPools = (topology: Options["topology"], durationSeconds: number, seed: number, dir: string): Options => ({
    ...defaults,
    strategies: ["QueuePool", "NullPool"],
    workers: 4,
    poolSize: 2,
    maxOverflow: 1,
    durationSeconds,
    topology,
    reportPath: path.join(dir, "report.html"),
    seed
  })

  it.live.skipIf(pgbouncer.skip !== undefined)(
    "pgbouncer: the pools go through PgBouncer in transaction mode, said in the view and the report",
    () =>
      Effect.gen(function*() {
        const dir = tempDir()
        const options = twoPools("pgbouncer", 1.2, 3, dir)
        const { html, printed, result } = yield* printedRun(options)
        const runs = result.recorder.runs
        expect(runs.map((r) => r.strategy)).toEqual(["QueuePool", "NullPool"])
        const port = /PgBouncer [\d.]+ ready on 127\.0\.0\.1:(\d+)/.exec(printed)?.[1]
        expect(port).toBeDefined()
        for (const r of runs) {
          expect(r.completed).toBe(true)
          expect(r.totalOps).toBeGreaterThan(0)
          expect(r.errorCount).toBe(0)
          expect(r.config.pooler).toBe("transaction")
          expect(r.via).toContain(`PgBouncer`)
          expect(r.via).toContain(`(transaction mode) on 127.0.0.1:${port}`)
        }
        expect(result.recorder.topologyDetail.join(" ")).toContain("pooler: \"transaction\"")
        expect(printed).toContain("topology through PgBouncer (transaction mode)")
        expect(printed).toContain(`   via PgBouncer`)
        expect(html).toContain(`data-topology="pgbouncer"`)
        expect(html).toContain("Topology: through PgBouncer (transaction mode)")
        expect(html).toContain("--topology pgbouncer")
        for (const section of sectionsOf(html)) expect(section.body).toContain(`127.0.0.1:${port}`)
        expect(html).not.toContain(`class="failover"`)
        fs.rmSync(dir, { recursive: true, force: true })
      }),
    60_000
  )

  it.live(
    "failover: the primary stopped and the standby promoted halfway through each strategy; the workload recovers; figures in the view and the report",
    () =>
      Effect.gen(function*() {
        const dir = tempDir()
        const options = twoPools("failover", 4, 5, dir)
        const { html, printed, result } = yield* printedRun(options)
        const runs = result.recorder.runs
        expect(runs.map((r) => r.strategy)).toEqual(["QueuePool", "NullPool"])
        for (const r of runs) {
          const f = r.failover!
          expect(r.completed).toBe(true)
          expect(r.config.targetSessionAttrs).toBe("read-write")
          expect(f.failure).toBeUndefined()
          // Halfway: 2 s into the 4 s run.
          expect(f.stopRequestedAt).toBeGreaterThanOrEqual(1900)
          expect(f.stopRequestedAt).toBeLessThan(2500)
          expect(f.stoppedAt).toBeGreaterThanOrEqual(f.stopRequestedAt!)
          expect(f.promoteRequestedAt).toBeGreaterThanOrEqual(f.stoppedAt!)
          expect(f.promotedAt).toBeGreaterThanOrEqual(f.promoteRequestedAt!)
          // Writes went on before the stop and came back after the promotion.
          expect(f.lastWriteBeforeAt).toBeLessThanOrEqual(f.stopRequestedAt!)
          expect(f.firstWriteAfterPromoteMs).toBeGreaterThanOrEqual(0)
          expect(f.firstWriteAfterPromoteMs).toBeLessThan(1500)
          expect(f.writesAfter).toBeGreaterThan(0)
          expect(f.opsAfter).toBeGreaterThan(f.writesAfter)
          // Every failed operation since the stop is counted, by type, in the phase's errors too.
          expect([...f.errors.values()].reduce((a, b) => a + b, 0)).toBe(f.errorCount)
          for (const [type, n] of f.errors) expect(r.errors.get(type)).toBeGreaterThanOrEqual(n)
          expect(f.notes.map((n) => n.text).join("\n")).toMatch(
            /primary stopped[\s\S]*standby promoted|first write after promotion/
          )
        }
        expect(printed).toContain("topology failover: primary + standby")
        expect(printed).toMatch(/failover at [\d.]+ s: primary stopped/)
        expect(printed).toMatch(/failover at [\d.]+ s: standby promoted/)
        expect(printed).toMatch(/failover at [\d.]+ s: first write after promotion: \+\d+ ms/)
        expect(printed).toMatch(
          /QueuePool failover: primary stopped at [\d.]+ s, standby promoted at [\d.]+ s, first write after promotion \+\d+ ms/
        )

        expect(html).toContain(`data-topology="failover"`)
        expect(html).toContain("--topology failover")
        expect(html).toContain("first write after promote")
        const sections = sectionsOf(html)
        expect(sections.map((s) => s.strategy)).toEqual(["QueuePool", "NullPool"])
        sections.forEach(({ body }, i) => {
          const f = runs[i]!.failover!
          const block = /<div class="failover" data-first-write-ms="(\d+)" data-failed="(\d+)" data-ok-after="(\d+)">/
            .exec(body)
          expect(block?.slice(1).map(Number)).toEqual([
            Math.round(f.firstWriteAfterPromoteMs!),
            f.errorCount,
            f.opsAfter
          ])
          expect(body).toContain("first write after promotion")
          expect(body).toContain("Failed operations since the stop, by type")
          // The failover marked on the occupancy timeline (labelled) and the throughput chart.
          const timeline = /<div class="chart timeline"><svg[\s\S]*?<\/svg>/.exec(body)?.[0] ?? ""
          expect(timeline).toContain(`class="outage"`)
          for (const mark of ["fo-stop", "fo-promote", "fo-write"]) {
            expect(timeline).toMatch(new RegExp(`<line [^>]*class="${mark}"`))
          }
          expect(timeline).toMatch(/primary stopped [\d.]+ s<\/text>/)
          expect(timeline).toMatch(/standby promoted [\d.]+ s<\/text>/)
          expect(timeline).toMatch(/first write [\d.]+ s<\/text>/)
          expect(body.match(/class="fo-stop"/g)?.length).toBe(2)
        })
        fs.rmSync(dir, { recursive: true, force: true })
      }),
    60_000
  )

  it.live(
    "replicas: reads on the standby behind PgReplicas, out of rotation while it lags beyond maxLag; read-your-writes never stale; routing, lag and read-backs in the view and the report",
    () =>
      Effect.gen(function*() {
        const dir = tempDir()
        const options = twoPools("replicas", 4, 9, dir)
        const { html, printed, result } = yield* printedRun(options)
        const runs = result.recorder.runs
        expect(runs.map((r) => r.strategy)).toEqual(["QueuePool", "NullPool"])
        for (const r of runs) {
          const replicas = r.replicas!
          expect(r.completed).toBe(true)
          expect(r.errorCount).toBe(0)
          expect(r.config.maxLag).toBe("150 millis")
          expect(replicas.samples.length).toBeGreaterThan(10)
          // The apply delay went 50 ms, 400 ms, none, in that order, each noted.
          expect(replicas.notes.map((n) => n.text)).toEqual([
            "standby apply delay 50 ms",
            "standby apply delay 400 ms",
            "standby apply delay lifted"
          ])
          // Beyond maxLag the standby is out of rotation.
          expect(replicas.samples.some((s) => s.applyDelayMs === 400 && !s.serving)).toBe(true)
          // Every read-back was counted; the read-your-writes ones never missed their row.
          const ryw = replicas.readBacks["read-your-writes"]
          expect(ryw.checks).toBeGreaterThan(0)
          expect(ryw.misses).toBe(0)
          expect(replicas.readBacks.eventual.checks).toBeGreaterThan(0)
          expect(replicas.readYourWrites.replica + replicas.readYourWrites.waited + replicas.readYourWrites.primary)
            .toBeGreaterThan(0)
        }
        // Work reached the standby (while it was within maxLag).
        expect(runs.some((r) => r.replicas!.samples.some((s) => s.replicaRouted > 0))).toBe(true)
        expect(printed).toContain("topology replicas: primary + standby behind PgReplicas")
        expect(printed).toMatch(/replicas at [\d.]+ s: standby apply delay 400 ms/)
        expect(printed).toMatch(/primary\/s=\d+ standby\/s=\d+ lag=/)
        expect(printed).toMatch(
          /QueuePool replicas: \d+ % of the work on the standby, max lag [\d.]+ m?s; read-backs: eventual \d+ of \d+ stale · read-your-writes 0 of \d+ stale/
        )
        expect(printed).toMatch(/on standby +max lag +stale \(eventual\) +stale \(read-your-writes\)/)

        expect(html).toContain(`data-topology="replicas"`)
        expect(html).toContain("--topology replicas")
        const sections = sectionsOf(html)
        expect(sections.map((s) => s.strategy)).toEqual(["QueuePool", "NullPool"])
        sections.forEach(({ body }, i) => {
          const replicas = runs[i]!.replicas!
          const ryw = replicas.readBacks["read-your-writes"]
          const e = replicas.readBacks.eventual
          const block =
            /<div class="replicas" data-standby-share="(\d+)" data-stale-eventual="(\d+\/\d+)" data-stale-ryw="(\d+\/\d+)"/
              .exec(body)
          expect(block?.slice(2)).toEqual([`${e.misses}/${e.checks}`, `0/${ryw.checks}`])
          // Work per node (two series) and the lag (with maxLag), the delay periods shaded.
          const routing = /<div class="chart routing"><svg[\s\S]*?<\/svg>/.exec(body)?.[0] ?? ""
          expect(routing).toMatch(/class="route-primary"/)
          expect(routing).toMatch(/class="route-replica"/)
          expect(routing).toContain("apply delay 400 ms")
          const lag = /<div class="chart lag"><svg[\s\S]*?<\/svg>/.exec(body)?.[0] ?? ""
          expect(lag).toMatch(/<path d="M[\d.]+,[\d.]+[^"]*" [^>]*class="lag"/)
          expect(lag).toContain(`class="maxlag"`)
          expect(lag).toContain(`class="delay-high"`)
        })
        fs.rmSync(dir, { recursive: true, force: true })
      }),
    90_000
  )

  it.live(
    "replicas, pipelined: the primary's and the standby's pools each pipeline; both in the view and the report",
    () =>
      Effect.gen(function*() {
        const dir = tempDir()
        const options: Options = {
          ...twoPools("replicas", 2, 21, dir),
          strategies: ["QueuePool"],
          workers: 16,
          poolSize: 3,
          mode: "pipelined",
          maxInFlight: 4,
          sharedConnections: 2,
          plain: true
        }
        const { html, printed, result } = yield* printedRun(options)
        const [r] = result.recorder.runs
        const p = r!.pipeline!
        expect(r!.completed).toBe(true)
        expect(r!.errorCount).toBe(0)
        expect(p.pools).toEqual([r!.poolName, `${r!.poolName}-standby`])
        expect(p.maxShared).toBe(4)
        // Every point query, report and transfer read-back was pipelined, on whichever pool the
        // router sent it to (so were the router's own: health checks, replay positions).
        const readBacks = r!.replicas!.readBacks
        expect(r!.ops.query + r!.ops.report).toBeGreaterThan(0)
        expect(p.statements).toBeGreaterThanOrEqual(
          r!.ops.query + r!.ops.report + readBacks.eventual.checks + readBacks["read-your-writes"].checks
        )
        expect(p.abandoned).toBe(0)
        // Shared connections on both pools (reads on the standby while it is within maxLag).
        expect(p.openedBy(r!.poolName)).toBeGreaterThan(0)
        expect(p.openedBy(`${r!.poolName}-standby`)).toBeGreaterThan(0)
        expect(p.peakConnections).toBeLessThanOrEqual(4)
        for (const sample of p.samples) {
          expect(sample.connections).toBeLessThanOrEqual(4)
          expect(sample.inFlight).toBeLessThanOrEqual(4 * 4)
        }
        // Exclusive checkouts: the primary pool's checkouts that were not its shared connections.
        expect(r!.exclusiveCheckouts).toBeGreaterThanOrEqual(r!.ops.transaction)
        expect(r!.replicas!.samples.some((s) => s.replicaRouted > 0)).toBe(true)
        expect(printed).toMatch(/shared=[0-4]\/4 in_flight=/)
        const [section] = sectionsOf(html)
        expect(section!.body).toContain("maxConnections 2 × 2 pools")
        expect(section!.body).toMatch(/data-max-shared="4"/)
        fs.rmSync(dir, { recursive: true, force: true })
      }),
    90_000
  )
})
