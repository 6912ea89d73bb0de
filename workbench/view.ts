/**
 * The terminal side of the workbench: a live block per strategy (progress bar, pool occupancy,
 * statements per second, acquire-wait percentiles, errors by type, events; the topology and the
 * failover's steps and figures when there is one; behind replicas, the routing, the replica's lag
 * and the read-backs; in pipelined mode, the shared connections and their statements in flight,
 * the statements pipelined and abandoned, and the shared connections opened and closed by
 * reason), redrawn in place on a terminal and printed as plain periodic lines otherwise, then the
 * summary table.
 */
import type { PoolEvent } from "effect-db-pool"
import { notPipelined, notPipelinedIn, topologyLabels } from "./args.ts"
import type { Failover, Pipeline, Recorder, Replicas, StrategyRun } from "./recorder.ts"
import { laneCloseReasons, totalInvalidations } from "./recorder.ts"

/** Where the view writes. */
export interface Output {
  readonly write: (text: string) => void
  /** Redraw in place with colours (false: plain periodic lines). */
  readonly live: boolean
  readonly columns: number
}

/** An output over a Node stream; live only on a terminal and unless `plain`. */
export const streamOutput = (stream: NodeJS.WriteStream, plain: boolean): Output => ({
  write: (text) => {
    stream.write(text)
  },
  live: stream.isTTY === true && !plain,
  get columns() {
    return stream.columns ?? 100
  }
})

// ------------------------------------------------------------------------------- formatting

/** `1234567` → `1,234,567`. */
export const int = (n: number): string => Math.round(n).toLocaleString("en-US")

/** A duration in ms, readable at every scale. */
export const ms = (v: number): string =>
  v < 1
    ? `${v.toFixed(2)} ms`
    : v < 10
    ? `${v.toFixed(1)} ms`
    : v < 1000
    ? `${v.toFixed(0)} ms`
    : `${(v / 1000).toFixed(2)} s`

const ansi = (code: string) => (live: boolean, text: string) => (live ? `\x1b[${code}m${text}\x1b[0m` : text)
const bold = ansi("1")
const dim = ansi("2")
const red = ansi("31")
const green = ansi("32")
const yellow = ansi("33")
const cyan = ansi("36")
// eslint-disable-next-line no-control-regex
const visible = (text: string) => text.replace(/\x1b\[[0-9;]*[A-Za-z]/g, "")

const bar = (fraction: number, width: number): string => {
  const f = Math.max(0, Math.min(1, fraction))
  const full = Math.floor(f * width)
  const partial = " ▏▎▍▌▋▊▉"[Math.floor((f * width - full) * 8)] ?? ""
  return ("█".repeat(full) + (full < width ? partial : "")).padEnd(width, "·")
}

const shownEvents: ReadonlyArray<PoolEvent.PoolEventType> = [
  "connect",
  "checkout",
  "invalidate",
  "soft_invalidate",
  "close"
]

/** Errors by type, most frequent first: `disconnect 3 · PoolTimeoutError 1`. */
export const errorList = (run: StrategyRun): string =>
  [...run.errors.entries()].sort((a, b) => b[1] - a[1]).map(([type, n]) => `${type} ${int(n)}`).join(" · ")

/** Errors by type of a failover (since the primary stopped). */
export const failoverErrorList = (f: Failover): string =>
  [...f.errors.entries()].sort((a, b) => b[1] - a[1]).map(([type, n]) => `${type} ${int(n)}`).join(" · ")

const seconds = (t: number) => `${(t / 1000).toFixed(2)} s`

/** The failover so far, in one line: what happened when, and the first write after promotion. */
export const failoverStatus = (f: Failover): string => {
  if (f.stopRequestedAt === undefined) return `primary stops at ${seconds(f.plannedAt)}`
  const parts = [
    f.stoppedAt === undefined
      ? `stopping the primary at ${seconds(f.stopRequestedAt)}…`
      : `primary stopped at ${seconds(f.stopRequestedAt)}`
  ]
  if (f.promoteRequestedAt !== undefined) {
    parts.push(f.promotedAt === undefined ? "promoting the standby…" : `standby promoted at ${seconds(f.promotedAt)}`)
    const first = f.firstWriteAfterPromoteMs
    parts.push(
      first === undefined ? "no write since the promotion yet" : `first write after promotion: +${int(first)} ms`
    )
  }
  if (f.failure !== undefined) parts.push(`failed: ${f.failure}`)
  return parts.join(" · ")
}

/** Read-backs of one mode: `0 of 120 stale`. */
const readBackText = (r: Replicas, mode: "eventual" | "read-your-writes"): string => {
  const b = r.readBacks[mode]
  return `${int(b.misses)} of ${int(b.checks)} stale`
}

/** Behind replicas, the routing and the lag now, in one line. */
export const replicasStatus = (r: Replicas): string => {
  const rates = r.rates()
  const s = r.samples[r.samples.length - 1]
  const lag = s?.lagMs === undefined ? "lag ?" : `lag ${ms(s.lagMs)}`
  return `work/s primary ${int(rates.primary)} · standby ${int(rates.replica)} │ standby ${lag} (maxLag ${
    int(r.maxLagMs)
  } ms) ${s?.serving === false ? "out of rotation" : "serving"} │ apply delay ${int(r.applyDelayMs)} ms`
}

/** Behind replicas, the read-backs of each mode and where read-your-writes reads ran. */
export const readBacksStatus = (r: Replicas): string => {
  const y = r.readYourWrites
  return `read-backs: eventual ${readBackText(r, "eventual")} · read-your-writes ${
    readBackText(r, "read-your-writes")
  } (standby ${int(y.replica)}, after a wait ${int(y.waited)}, primary ${int(y.primary)})`
}

/** A finished phase's replicas figures in one line. */
export const replicasFigures = (r: Replicas): string => {
  const maxLag = r.maxLag
  return `${Math.round(r.replicaShare * 100)} % of the work on the standby, max lag ${
    maxLag === undefined ? "–" : ms(maxLag)
  }; ${readBacksStatus(r)}`
}

/** Statements in flight on each shared connection now: `8 · 3` (the first 8 connections), or `none`. */
export const laneInFlight = (p: Pipeline): string => {
  const shown = p.lanes.slice(0, 8).map((lane) => int(lane.inFlight)).join(" · ")
  return p.lanes.length === 0 ? "none" : p.lanes.length > 8 ? `${shown} · …` : shown
}

/** Pipelined mode now, in one line: shared connections, in flight on each, pipelined / abandoned. */
export const pipelineStatusLine = (run: StrategyRun, p: Pipeline): string =>
  `shared ${p.lanes.length}/${p.maxShared} │ in flight ${int(p.inFlight)} (${
    laneInFlight(p)
  }; ≤ ${p.maxInFlight} each) │ pipelined ${int(p.statements)} · abandoned ${int(p.abandoned)} │ exclusive checkouts ${
    int(run.exclusiveCheckouts ?? 0)
  }`

/** Shared connections closed by reason: `idle 35 · exclusive 4` (reasons with none left out), or `none`. */
export const laneCloses = (p: Pipeline): string => {
  const text = laneCloseReasons.filter((r) => p.closed[r] > 0).map((r) => `${r} ${int(p.closed[r])}`).join(" · ")
  return text === "" ? "none" : text
}

/** Shared connections opened and closed so far, in one line. */
export const lanesLine = (p: Pipeline): string =>
  `opened ${int(p.opened)} · closed ${int(p.closes)} (${laneCloses(p)})${
    p.closedInFlight > 0 ? ` · ${int(p.closedInFlight)} statements in flight on those that closed` : ""
  }`

/** A finished phase's pipeline figures in one line. */
export const pipelineFigures = (run: StrategyRun, p: Pipeline): string =>
  `${int(p.statements)} statements pipelined on at most ${p.peakConnections} shared connection${
    p.peakConnections === 1 ? "" : "s"
  } (of ${p.maxShared}; peak ${int(p.peakInFlight)} in flight), ${int(p.abandoned)} abandoned, ${
    int(run.exclusiveCheckouts ?? 0)
  } exclusive checkouts; shared connections ${lanesLine(p)}`

/** Plain view: the pipeline fields of a periodic line. */
const pipelinePlain = (run: StrategyRun, p: Pipeline): string =>
  `shared=${p.lanes.length}/${p.maxShared} in_flight=${
    p.lanes.length === 0 ? "0" : p.lanes.map((lane) => lane.inFlight).join("+")
  } pipelined=${p.statements} abandoned=${p.abandoned} exclusive_checkouts=${
    run.exclusiveCheckouts ?? 0
  } lanes_opened=${p.opened} lanes_closed=${
    p.closes === 0
      ? "0"
      : laneCloseReasons.filter((r) => p.closed[r] > 0).map((r) => `${r.replace(" ", "_")}:${p.closed[r]}`).join(",")
  }`

const overflowText = (run: StrategyRun, overflow: number): string => {
  const max = run.config.maxOverflow
  return typeof max === "number" ? `${Math.max(0, overflow)}/${max === -1 ? "∞" : max}` : `${Math.max(0, overflow)}`
}

// ------------------------------------------------------------------------------------ view

/** The live view and the summary table. */
export class TerminalView {
  private drawn = 0
  private lastPlain = 0
  private notesShown = 0

  constructor(readonly out: Output, readonly recorder: Recorder) {}

  private line(text: string): void {
    this.out.write(`${text}\n`)
  }

  /** Lines of the live block for `run`. */
  block(run: StrategyRun, live: boolean): Array<string> {
    const elapsed = Math.min(run.now(), run.plannedMs)
    const fraction = run.plannedMs > 0 ? elapsed / run.plannedMs : 1
    const s = run.samples[run.samples.length - 1]
    const recent = run.waitPercentiles(2000)
    const errors = errorList(run)
    const events = shownEvents.map((e) => `${e} ${int(run.events.get(e) ?? 0)}`).join(" · ")
    const lines = [
      `${cyan(live, "▶")} ${bold(live, run.label.padEnd(this.labelWidth))} ${cyan(live, bar(fraction, 30))} ${
        String(Math.floor(fraction * 100)).padStart(3)
      }%  ${(elapsed / 1000).toFixed(1)} / ${(run.plannedMs / 1000).toFixed(1)} s  ${
        dim(live, `${run.workers} worker${run.workers === 1 ? "" : "s"}`)
      }`,
      `  ${dim(live, "pool   ")} checked out ${bold(live, String(s?.checkedOut ?? 0).padStart(3))} │ idle ${
        String(s?.idle ?? 0).padStart(3)
      } │ overflow ${overflowText(run, s?.overflow ?? 0).padStart(5)} │ waiting ${
        (s?.waiting ?? 0) > 0 ? yellow(live, String(s?.waiting).padStart(3)) : "  0"
      }`,
      `  ${dim(live, "load   ")} ${bold(live, int(run.rate()).padStart(6))} stmt/s │ acquire wait p50 ${
        ms(recent.p50).padStart(8)
      } · p99 ${ms(recent.p99).padStart(8)} ${dim(live, "(last 2 s)")} │ ${int(run.totalOps)} ops`,
      `  ${dim(live, "errors ")} ${errors.length === 0 ? green(live, "none") : red(live, errors)}${
        run.recovered > 0 ? ` ${dim(live, "·")} ${green(live, `recovered ${int(run.recovered)}`)}` : ""
      }`,
      `  ${dim(live, "events ")} ${events}`
    ]
    if (this.recorder.options.chaos) {
      lines.push(
        `  ${dim(live, "chaos  ")} ${
          yellow(live, `${run.kills.length} backend${run.kills.length === 1 ? "" : "s"} terminated`)
        }`
      )
    }
    if (run.via !== undefined) lines.push(`  ${dim(live, "via    ")} ${run.via}`)
    const p = run.pipeline
    if (p !== undefined) {
      lines.push(`  ${dim(live, "pipe   ")} ${pipelineStatusLine(run, p)}`)
      lines.push(`  ${dim(live, "shared ")} ${(p.closed.broken > 0 ? yellow : green)(live, lanesLine(p))}`)
    }
    const r = run.replicas
    if (r !== undefined) {
      const s = r.samples[r.samples.length - 1]
      lines.push(`  ${dim(live, "routing")} ${(s?.serving === false ? yellow : green)(live, replicasStatus(r))}`)
      const stale = r.readBacks.eventual.misses > 0
      const rywStale = r.readBacks["read-your-writes"].misses > 0
      lines.push(`  ${dim(live, "reads  ")} ${(rywStale ? red : stale ? yellow : green)(live, readBacksStatus(r))}`)
    }
    const f = run.failover
    if (f !== undefined) {
      const done = f.firstWriteAt !== undefined
      lines.push(
        `  ${dim(live, "failover")} ${
          (f.stopRequestedAt === undefined ? dim : done ? green : yellow)(live, failoverStatus(f))
        }`
      )
      if (f.stopRequestedAt !== undefined) {
        const errors = failoverErrorList(f)
        lines.push(
          `  ${dim(live, "        ")} since the stop: ${
            f.errorCount === 0
              ? green(live, "no failed operation")
              : red(live, `${int(f.errorCount)} failed (${errors})`)
          }` +
            (f.promoteRequestedAt !== undefined
              ? ` ${dim(live, "·")} ${int(f.opsAfter)} ok after the promotion (${int(f.writesAfter)} writes)`
              : "")
        )
      }
    }
    return lines
  }

  /** A one-line result for a finished phase. */
  result(run: StrategyRun, live: boolean): string {
    const w = run.waitPercentiles()
    const mark = run.completed ? green(live, "✔") : yellow(live, "■")
    const errors = run.errorCount === 0 ? green(live, "0 errors") : red(live, `${int(run.errorCount)} errors`)
    return `${mark} ${bold(live, run.label.padEnd(this.labelWidth))} ${
      (run.elapsedMs / 1000).toFixed(1).padStart(5)
    } s  ${int(run.totalOps).padStart(7)} ops  ${int(run.throughput).padStart(6)} stmt/s  wait p50 ${ms(w.p50)} p99 ${
      ms(w.p99)
    }  ${errors}` +
      (this.recorder.options.chaos
        ? `  ${run.kills.length} killed, ${totalInvalidations(run.counters)} invalidated, ${run.recovered} recovered`
        : "") +
      (run.failover !== undefined ? `  failover: ${failoverFigures(run.failover)}` : "") +
      (run.replicas !== undefined ? `  replicas: ${replicasFigures(run.replicas)}` : "") +
      (run.completed ? "" : dim(live, "  (stopped early)"))
  }

  /** What is about to run. */
  header(): void {
    const o = this.recorder.options
    const live = this.out.live
    this.line(
      `${bold(live, "effect-db-pool workbench")}  ${
        dim(
          live,
          `seed ${o.seed} · ${o.workers} workers · poolSize ${o.poolSize} · maxOverflow ${o.maxOverflow} · ${o.durationSeconds} s per strategy${
            o.chaos ? " · chaos" : ""
          }`
        )
      }`
    )
    if (o.topology !== "direct") this.line(`${bold(live, "topology")} ${yellow(live, topologyLabels[o.topology])}`)
    if (o.mode !== "exclusive") {
      this.line(
        `${bold(live, "mode")} ${yellow(live, modeLabel(o))}`
      )
      for (const strategy of notPipelinedIn(o)) {
        this.line(
          dim(
            live,
            `${strategy} ${o.mode === "both" ? "runs exclusive only" : "is left out"}: ${notPipelined[strategy]}`
          )
        )
      }
    }
  }

  /** Width of the strategy column: room for `QueuePool pipelined` when some phase pipelines. */
  private get labelWidth(): number {
    return this.recorder.options.mode === "exclusive" ? 13 : 19
  }

  /** Status lines before the workload (server start, ...). */
  note(text: string): void {
    this.line(dim(this.out.live, text))
  }

  phaseStart(run: StrategyRun): void {
    this.drawn = 0
    this.lastPlain = 0
    this.notesShown = 0
    if (this.out.live) {
      this.out.write("\x1b[?25l")
      this.tick(run)
    } else {
      this.line(
        `-- ${run.label}: ${run.workers} workers for ${(run.plannedMs / 1000).toFixed(1)} s (${
          Object.entries(run.config).map(([k, v]) => `${k} ${v}`).join(", ")
        })`
      )
      if (run.via !== undefined) this.line(`   via ${run.via}`)
      for (const note of run.notes) this.line(`   ${note}`)
      if (run.failover !== undefined) this.line(`   failover: ${failoverStatus(run.failover)}`)
    }
  }

  /** Plain view: print the failover's (or the apply delay's) new steps. */
  private failoverNotes(run: StrategyRun): void {
    const what = run.failover !== undefined ? "failover" : "replicas"
    const notes = run.failover?.notes ?? run.replicas?.notes ?? []
    for (; this.notesShown < notes.length; this.notesShown++) {
      const note = notes[this.notesShown]!
      this.line(`   ${what} at ${seconds(note.t)}: ${note.text}`)
    }
  }

  /** Redraw the live block (terminal) or print a plain line every 2 s. */
  tick(run: StrategyRun): void {
    if (this.out.live) {
      this.redraw(this.block(run, true))
      return
    }
    this.failoverNotes(run)
    const now = run.now()
    if (now - this.lastPlain < 2000) return
    this.lastPlain = now
    const s = run.samples[run.samples.length - 1]
    const w = run.waitPercentiles(2000)
    const errors = errorList(run)
    this.line(
      `[${run.label} ${String(Math.min(100, Math.floor((now / run.plannedMs) * 100))).padStart(3)}% ${
        (now / 1000).toFixed(1)
      }s] ` +
        `checked_out=${s?.checkedOut ?? 0} idle=${s?.idle ?? 0} overflow=${Math.max(0, s?.overflow ?? 0)} waiting=${
          s?.waiting ?? 0
        } ` +
        `stmt/s=${Math.round(run.rate())} wait_p50=${ms(w.p50).replace(" ", "")} wait_p99=${
          ms(w.p99).replace(" ", "")
        } ` +
        `errors=${errors.length === 0 ? "none" : errors.replace(/ · /g, ",").replace(/ /g, ":")}` +
        (this.recorder.options.chaos ? ` killed=${run.kills.length}` : "") +
        (run.failover?.stopRequestedAt !== undefined
          ? ` failover_failed=${run.failover.errorCount} ok_after_promotion=${run.failover.opsAfter}`
          : "") +
        (run.replicas !== undefined ? ` ${replicasPlain(run.replicas)}` : "") +
        (run.pipeline !== undefined ? ` ${pipelinePlain(run, run.pipeline)}` : "")
    )
  }

  private redraw(lines: ReadonlyArray<string>): void {
    const width = Math.max(20, this.out.columns - 1)
    let text = this.drawn > 0 ? `\x1b[${this.drawn}F` : ""
    for (const line of lines) {
      // A wrapped line would break the cursor arithmetic: cut it (dropping colours) instead.
      const shown = visible(line).length > width ? visible(line).slice(0, width) : line
      text += `\x1b[2K${shown}\n`
    }
    this.out.write(text)
    this.drawn = lines.length
  }

  phaseEnd(run: StrategyRun): void {
    const live = this.out.live
    // Pipelined: the figures on a line of their own (the live view cuts lines at the terminal's width).
    const pipeline = run.pipeline === undefined
      ? []
      : [`  ${dim(live, "pipeline")} ${pipelineFigures(run, run.pipeline)}`]
    if (live) {
      this.redraw([this.result(run, true), ...pipeline])
      // Leave only the result lines: clear what the block left below them.
      this.out.write("\x1b[0J\x1b[?25h")
      this.drawn = 0
    } else {
      this.failoverNotes(run)
      this.line(this.result(run, false))
      for (const line of pipeline) this.line(line)
    }
  }

  /** Show the cursor again (on exit, whatever happened). */
  restore(): void {
    if (this.out.live) this.out.write("\x1b[?25h")
  }

  /** The summary table of every phase. */
  summary(): void {
    const live = this.out.live
    const runs = this.recorder.runs.filter((r) => r.startedAt > 0)
    if (runs.length === 0) return
    const table = summaryRows(this.recorder)
    const widths = table[0]!.map((_, c) => Math.max(...table.map((row) => row[c]!.length)))
    const render = (row: ReadonlyArray<string>) =>
      row.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join("  ")
    this.line("")
    this.line(
      bold(live, "Summary") +
        dim(
          live,
          `  (${((this.recorder.finishedAt - this.recorder.startedAt) / 1000).toFixed(1)} s total${
            this.recorder.stopped ? `, stopped: ${this.recorder.stopped}` : ""
          })`
        )
    )
    this.line(bold(live, render(table[0]!)))
    this.line(dim(live, widths.map((w) => "─".repeat(w)).join("  ")))
    for (const row of table.slice(1)) this.line(render(row))
    for (const run of runs) {
      if (run.errors.size > 0) this.line(`${dim(live, `${run.label} errors:`)} ${errorList(run)}`)
    }
    for (const run of runs) {
      if (run.pipeline !== undefined) {
        this.line(`${dim(live, `${run.label}:`)} ${pipelineFigures(run, run.pipeline)}`)
      }
    }
    for (const run of runs) {
      if (run.failover !== undefined) {
        this.line(`${dim(live, `${run.strategy} failover:`)} ${failoverFigures(run.failover)}`)
      }
      if (run.replicas !== undefined) {
        this.line(`${dim(live, `${run.strategy} replicas:`)} ${replicasFigures(run.replicas)}`)
      }
    }
    for (const run of runs) {
      for (const note of run.notes) this.line(dim(live, `${run.label}: ${note}`))
    }
  }
}

/** Plain view: the replicas fields of a periodic line. */
const replicasPlain = (r: Replicas): string => {
  const rates = r.rates()
  const s = r.samples[r.samples.length - 1]
  const b = r.readBacks
  return `primary/s=${Math.round(rates.primary)} standby/s=${Math.round(rates.replica)} lag=${
    s?.lagMs === undefined ? "?" : ms(s.lagMs).replace(" ", "")
  } ` +
    `standby=${s?.serving === false ? "out" : "serving"} apply_delay=${r.applyDelayMs}ms ` +
    `stale_eventual=${b.eventual.misses}/${b.eventual.checks} stale_ryw=${b["read-your-writes"].misses}/${
      b["read-your-writes"].checks
    }`
}

/** A finished failover's figures in one line. */
export const failoverFigures = (f: Failover): string => {
  if (f.stopRequestedAt === undefined) return "the primary was not stopped (the run ended first)"
  const first = f.firstWriteAfterPromoteMs
  const outage = f.writeOutageMs
  const errors = failoverErrorList(f)
  return [
    `primary stopped at ${seconds(f.stopRequestedAt)}`,
    f.promotedAt === undefined ? "standby not promoted" : `standby promoted at ${seconds(f.promotedAt)}`,
    first === undefined ? "no write after promotion" : `first write after promotion +${int(first)} ms`,
    ...(outage === undefined ? [] : [`writes unavailable ${ms(outage)}`]),
    `${int(f.errorCount)} failed since the stop${errors === "" ? "" : ` (${errors})`}`,
    `${int(f.opsAfter)} ok after the promotion`,
    ...(f.failure === undefined ? [] : [`step failed: ${f.failure}`])
  ].join(", ")
}

/** The summary table (header row first), shared with the HTML report. */
export const summaryRows = (recorder: Recorder): Array<Array<string>> => {
  const rows = [[
    "strategy",
    "time",
    "workers",
    "ops",
    "stmt/s",
    "wait p50",
    "wait p99",
    "wait max",
    "errors",
    "timeouts",
    "connects",
    "invalidated",
    ...(recorder.options.chaos ? ["killed", "recovered"] : []),
    ...(recorder.options.topology === "failover"
      ? ["first write after promote", "writes unavailable", "failed since stop"]
      : []),
    ...(recorder.options.topology === "replicas"
      ? ["on standby", "max lag", "stale (eventual)", "stale (read-your-writes)"]
      : []),
    ...(recorder.options.mode === "exclusive"
      ? []
      : [
        "mode",
        "pipelined",
        "abandoned",
        "shared (peak/max)",
        "in flight (peak)",
        "exclusive checkouts",
        "shared closed"
      ])
  ]]
  for (const run of recorder.runs.filter((r) => r.startedAt > 0)) {
    const w = run.waitPercentiles()
    rows.push([
      run.strategy + (run.completed ? "" : " *"),
      `${(run.elapsedMs / 1000).toFixed(1)} s`,
      String(run.workers),
      int(run.totalOps),
      int(run.throughput),
      ms(w.p50),
      ms(w.p99),
      ms(w.max),
      int(run.errorCount),
      int(run.counters?.timeouts ?? 0),
      int(run.counters?.connects ?? 0),
      int(totalInvalidations(run.counters)),
      ...(recorder.options.chaos ? [int(run.kills.length), int(run.recovered)] : []),
      ...(recorder.options.topology === "failover"
        ? [
          run.failover?.firstWriteAfterPromoteMs === undefined
            ? "–"
            : `+${int(run.failover.firstWriteAfterPromoteMs)} ms`,
          run.failover?.writeOutageMs === undefined ? "–" : ms(run.failover.writeOutageMs),
          int(run.failover?.errorCount ?? 0)
        ]
        : []),
      ...(recorder.options.topology === "replicas"
        ? [
          run.replicas === undefined ? "–" : `${Math.round(run.replicas.replicaShare * 100)} %`,
          run.replicas?.maxLag === undefined ? "–" : ms(run.replicas.maxLag),
          run.replicas === undefined
            ? "–"
            : `${int(run.replicas.readBacks.eventual.misses)}/${int(run.replicas.readBacks.eventual.checks)}`,
          run.replicas === undefined
            ? "–"
            : `${int(run.replicas.readBacks["read-your-writes"].misses)}/${
              int(run.replicas.readBacks["read-your-writes"].checks)
            }`
        ]
        : []),
      ...(recorder.options.mode === "exclusive" ? [] : modeCells(run))
    ])
  }
  return rows
}

/** The summary's mode cells of `run`: its mode and, pipelined, the pipeline figures (else dashes). */
const modeCells = (run: StrategyRun): Array<string> => {
  const p = run.pipeline
  if (p === undefined) return [run.mode, "–", "–", "–", "–", "–", "–"]
  return [
    run.mode,
    int(p.statements),
    int(p.abandoned),
    `${p.peakConnections}/${p.maxShared}`,
    int(p.peakInFlight),
    int(run.exclusiveCheckouts ?? 0),
    laneCloses(p)
  ]
}

/** How the header and the report name `--mode`. */
export const modeLabel = (o: Pick<Recorder["options"], "mode" | "maxInFlight" | "sharedConnections">): string => {
  const bounds = `maxInFlight ${o.maxInFlight}, shared connections ${
    o.sharedConnections ?? "QueuePool's poolSize / NullPool 1"
  }`
  return o.mode === "both"
    ? `exclusive, then pipelined (PgSql.layer({ pipeline }), ${bounds})`
    : `pipelined (PgSql.layer({ pipeline }), ${bounds})`
}
