/**
 * The HTML report: one self-contained file (inline CSS and SVG, no script, nothing fetched)
 * with the topology, the summary table and, per strategy, the occupancy timeline (checked out /
 * idle / overflow / waiting over time, chaos kills and a failover marked), statements per
 * second, the failover figures (`--topology failover`), the routing, lag and read-backs behind
 * replicas (`--topology replicas`), in pipelined mode (`--mode`) the shared connections and
 * their statements in flight over time with the pipelined, abandoned and exclusive counts and
 * the shared connections closed by reason, the acquire-wait distribution, and the event,
 * invalidation and error counts.
 */
import type { PoolMetrics } from "effect-db-pool"
import * as fs from "node:fs"
import * as path from "node:path"
import { notPipelined, notPipelinedIn, topologyLabels } from "./args.ts"
import type { Recorder, Sample, StrategyRun } from "./recorder.ts"
import { laneCloseReasons, sampleEveryMs, totalInvalidations } from "./recorder.ts"
import { int, modeLabel, ms, summaryRows } from "./view.ts"

const esc = (text: string): string =>
  text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", "\"": "&quot;", "'": "&#39;" })[c]!)

const num = (n: number) => (Number.isInteger(n) ? String(n) : n.toFixed(1))

/** A "nice" axis for values up to `peak`: a 1-2-5 step giving 3 to 5 gridlines, and the max. */
const niceScale = (peak: number, integer = true): { readonly max: number; readonly step: number } => {
  const raw = Math.max(peak, integer ? 4 : 1) / 4
  const p = 10 ** Math.floor(Math.log10(raw))
  let step = [1, 2, 5, 10].map((m) => m * p).find((v) => v >= raw) ?? 10 * p
  if (integer) step = Math.max(1, Math.round(step))
  return { max: Math.max(step, Math.ceil(peak / step) * step), step }
}

/** Series of the occupancy timeline. */
export const series: ReadonlyArray<
  { readonly key: "checkedOut" | "idle" | "overflow" | "waiting"; readonly label: string; readonly color: string }
> = [
  { key: "checkedOut", label: "checked out", color: "#2563eb" },
  { key: "idle", label: "idle", color: "#16a34a" },
  { key: "overflow", label: "overflow", color: "#f59e0b" },
  { key: "waiting", label: "waiting", color: "#dc2626" }
]

const valueOf = (
  s: Sample,
  key: "checkedOut" | "idle" | "overflow" | "waiting"
) => (key === "overflow" ? Math.max(0, s.overflow) : s[key])

interface Frame {
  readonly width: number
  readonly height: number
  readonly left: number
  readonly right: number
  readonly top: number
  readonly bottom: number
}

const frame: Frame = { width: 960, height: 250, left: 48, right: 16, top: 14, bottom: 30 }

/** Axes, grid, and the x (seconds) / y labels of a chart. */
const axes = (
  f: Frame,
  xMaxMs: number,
  y: { readonly max: number; readonly step: number },
  yLabel: (v: number) => string
): string => {
  const w = f.width - f.left - f.right
  const h = f.height - f.top - f.bottom
  let out = ""
  for (let v = 0; v <= y.max + 1e-9; v += y.step) {
    const yy = f.top + h - (h * v) / y.max
    out += `<line x1="${f.left}" x2="${f.left + w}" y1="${yy}" y2="${yy}" class="grid"/>`
    out += `<text x="${f.left - 6}" y="${yy + 4}" text-anchor="end" class="tick">${esc(yLabel(v))}</text>`
  }
  const seconds = xMaxMs / 1000
  const step = seconds <= 2
    ? 0.25
    : seconds <= 5
    ? 0.5
    : seconds <= 12
    ? 1
    : seconds <= 30
    ? 2
    : seconds <= 60
    ? 5
    : seconds <= 300
    ? 30
    : 60
  for (let s = 0; s <= seconds + 1e-9; s += step) {
    const x = f.left + (w * s * 1000) / xMaxMs
    out += `<line x1="${x}" x2="${x}" y1="${f.top + h}" y2="${f.top + h + 4}" class="axis"/>`
    out += `<text x="${x}" y="${f.top + h + 17}" text-anchor="middle" class="tick">${num(s)} s</text>`
  }
  out += `<line x1="${f.left}" x2="${f.left + w}" y1="${f.top + h}" y2="${f.top + h}" class="axis"/>`
  out += `<line x1="${f.left}" x2="${f.left}" y1="${f.top}" y2="${f.top + h}" class="axis"/>`
  return out
}

/** Chaos kills as dashed vertical lines. */
const killMarks = (f: Frame, run: StrategyRun, xMaxMs: number): string => {
  const w = f.width - f.left - f.right
  const h = f.height - f.top - f.bottom
  return run.kills.map((t) => {
    const x = f.left + (w * t) / xMaxMs
    return `<line x1="${x}" x2="${x}" y1="${f.top}" y2="${f.top + h}" class="kill"><title>backend terminated at ${
      (t / 1000).toFixed(2)
    } s</title></line>` +
      `<text x="${x}" y="${f.top + 9}" text-anchor="middle" class="killmark">✕</text>`
  }).join("")
}

/**
 * `--topology failover`: the span from the primary's stop to the first write after the
 * promotion shaded, and a labelled line at the stop, the promotion and that first write.
 */
const failoverMarks = (
  f: Frame,
  run: StrategyRun,
  xMaxMs: number
): { readonly marks: string; readonly labels: string } => {
  const fo = run.failover
  if (fo === undefined || fo.stopRequestedAt === undefined) return { marks: "", labels: "" }
  const w = f.width - f.left - f.right
  const h = f.height - f.top - f.bottom
  const x = (t: number) => f.left + (w * Math.min(t, xMaxMs)) / xMaxMs
  const end = fo.firstWriteAt ?? run.elapsedMs
  let out = `<rect x="${x(fo.stopRequestedAt).toFixed(1)}" y="${f.top}" width="${
    Math.max(1, x(end) - x(fo.stopRequestedAt)).toFixed(1)
  }" height="${h}" class="outage"><title>no successful write: ${
    esc(ms(end - fo.stopRequestedAt))
  } from the stop</title></rect>`
  const marks: Array<readonly [number | undefined, string, string]> = [
    [fo.stopRequestedAt, "primary stopped", "fo-stop"],
    [fo.promotedAt, "standby promoted", "fo-promote"],
    [fo.firstWriteAt, "first write", "fo-write"]
  ]
  const shown = marks.filter((m): m is readonly [number, string, string] => m[0] !== undefined)
  for (const [t, label, cls] of shown) {
    const xx = x(t).toFixed(1)
    out += `<line x1="${xx}" x2="${xx}" y1="${f.top}" y2="${f.top + h}" class="${cls}"><title>${esc(label)} at ${
      (t / 1000).toFixed(3)
    } s</title></line>`
  }
  let labels = ""
  if (shown.length > 0) {
    // One stacked legend beside the marks (they are often a few pixels apart): right of the
    // last one, or left of the first one near the right edge. Drawn over the series.
    const xs = shown.map(([t]) => x(t))
    const right = Math.max(...xs) < f.left + w * 0.75
    const lx = right ? Math.max(...xs) + 6 : Math.min(...xs) - 6
    shown.forEach(([t, label, cls], i) => {
      labels += `<text x="${lx.toFixed(1)}" y="${f.top + 11 + i * 13}" text-anchor="${
        right ? "start" : "end"
      }" class="fomark ${cls}" paint-order="stroke" stroke="#fff" stroke-width="3">${esc(label)} ${
        (t / 1000).toFixed(2)
      } s</text>`
    })
  }
  return { marks: out, labels }
}

const xMax = (run: StrategyRun) =>
  Math.max(run.plannedMs, run.elapsedMs, run.samples[run.samples.length - 1]?.t ?? 0, 1)

/** Occupancy over time: one step line per series. */
export const timelineSvg = (run: StrategyRun): string => {
  const f = frame
  const w = f.width - f.left - f.right
  const h = f.height - f.top - f.bottom
  const xm = xMax(run)
  let peak = 1
  for (const s of run.samples) for (const { key } of series) peak = Math.max(peak, valueOf(s, key))
  const scale = niceScale(peak)
  const ym = scale.max
  const x = (t: number) => (f.left + (w * t) / xm).toFixed(1)
  const y = (v: number) => (f.top + h - (h * v) / ym).toFixed(1)
  const lines = series.map(({ color, key, label }, i) => {
    if (run.samples.length === 0) return ""
    let d = ""
    let prev: number | undefined
    for (const s of run.samples) {
      const v = valueOf(s, key)
      d += d === "" ? `M${x(s.t)},${y(v)}` : `${prev !== v ? `H${x(s.t)}V${y(v)}` : ""}`
      prev = v
    }
    d += `H${x(run.samples[run.samples.length - 1]!.t)}`
    // Offset each series by a hair so overlapping lines stay visible.
    return `<path d="${d}" fill="none" stroke="${color}" stroke-width="2" transform="translate(0,${
      (i - 1.5) * 0.8
    })"><title>${esc(label)}</title></path>`
  }).join("")
  const failover = failoverMarks(f, run, xm)
  return `<svg viewBox="0 0 ${f.width} ${f.height}" width="100%" role="img" aria-label="occupancy timeline of ${
    esc(run.strategy)
  }">` +
    axes(f, xm, scale, (v) => num(v)) + killMarks(f, run, xm) + failover.marks + lines + failover.labels + `</svg>`
}

/** Statements per second (500 ms buckets) and failed operations over time. */
export const throughputSvg = (run: StrategyRun): string => {
  const f: Frame = { ...frame, height: 150 }
  const w = f.width - f.left - f.right
  const h = f.height - f.top - f.bottom
  const xm = xMax(run)
  const bucket = 500
  const points: Array<{ t: number; rate: number; errors: number }> = []
  let last: Sample | undefined
  for (const s of run.samples) {
    if (last === undefined) {
      last = s
      continue
    }
    if (s.t - last.t >= bucket - sampleEveryMs / 2) {
      points.push({
        t: s.t,
        rate: ((s.statements - last.statements) * 1000) / (s.t - last.t),
        errors: s.errors - last.errors
      })
      last = s
    }
  }
  const scale = niceScale(Math.max(1, ...points.map((p) => p.rate)))
  const ym = scale.max
  const x = (t: number) => (f.left + (w * t) / xm).toFixed(1)
  const y = (v: number) => (f.top + h - (h * v) / ym).toFixed(1)
  // Each bucket drawn as a step over its own interval.
  let stepPath = ""
  let from = 0
  for (const p of points) {
    stepPath += `${stepPath === "" ? `M${x(0)},${y(0)} ` : ""}L${x(from)},${y(p.rate)} L${x(p.t)},${y(p.rate)} `
    from = p.t
  }
  const area = points.length === 0
    ? ""
    : `<path d="${stepPath}L${x(from)},${
      y(0)
    } Z" fill="#93c5fd" fill-opacity="0.5" stroke="#2563eb" stroke-width="1.5"/>`
  const errs = points.filter((p) => p.errors > 0).map((p) =>
    `<circle cx="${x(p.t)}" cy="${(f.top + 6).toFixed(1)}" r="${
      Math.min(7, 2.5 + Math.log2(1 + p.errors))
    }" fill="#dc2626"><title>${p.errors} failed operation${p.errors === 1 ? "" : "s"}</title></circle>`
  ).join("")
  return `<svg viewBox="0 0 ${f.width} ${f.height}" width="100%" role="img" aria-label="statements per second of ${
    esc(run.strategy)
  }">` +
    axes(f, xm, scale, (v) => int(v)) + killMarks(f, run, xm) + failoverMarks(f, run, xm).marks + area + errs + `</svg>`
}

/** Bin edges (ms) of the acquire-wait distribution: log-spaced, 1-2-5. */
export const waitBins: ReadonlyArray<number> = [
  0,
  0.05,
  0.1,
  0.2,
  0.5,
  1,
  2,
  5,
  10,
  20,
  50,
  100,
  200,
  500,
  1000,
  2000,
  5000,
  10000
]

const binLabel = (i: number): string => {
  const lo = waitBins[i]!
  const hi = waitBins[i + 1]
  const fmt = (v: number) => (v >= 1000 ? `${v / 1000}s` : `${v}`)
  return hi === undefined ? `≥${fmt(lo)}` : i === 0 ? `<${fmt(hi)}` : `${fmt(lo)}–${fmt(hi)}`
}

/** Counts of waits per bin. */
export const histogram = (waits: ReadonlyArray<number>): Array<number> => {
  const counts = waitBins.map(() => 0)
  for (const v of waits) {
    let i = waitBins.length - 1
    while (i > 0 && v < waitBins[i]!) i--
    counts[i]!++
  }
  return counts
}

/** The acquire-wait distribution: bars per log-spaced bin (log-scaled heights), p50/p99 marked. */
export const waitSvg = (run: StrategyRun): string => {
  const f: Frame = { width: 960, height: 240, left: 48, right: 16, top: 44, bottom: 40 }
  const w = f.width - f.left - f.right
  const h = f.height - f.top - f.bottom
  const counts = histogram(run.waits)
  const peak = Math.max(1, ...counts)
  const bw = w / counts.length
  const scale = (c: number) => (c === 0 ? 0 : (h * Math.log10(1 + c)) / Math.log10(1 + peak))
  const stats = run.waitPercentiles()
  // Position of a value along the x axis (log interpolation inside its bin).
  const xOf = (v: number) => {
    let i = waitBins.length - 1
    while (i > 0 && v < waitBins[i]!) i--
    const lo = waitBins[i]!
    const hi = waitBins[i + 1] ?? lo * 2.5
    const frac = i === 0 ? v / hi : Math.min(1, Math.log(v / lo) / Math.log(hi / lo))
    return f.left + bw * (i + Math.max(0, frac))
  }
  let out = ""
  counts.forEach((c, i) => {
    const bh = scale(c)
    const x = f.left + bw * i
    if (c > 0) {
      out += `<rect x="${(x + 2).toFixed(1)}" y="${(f.top + h - bh).toFixed(1)}" width="${
        (bw - 4).toFixed(1)
      }" height="${bh.toFixed(1)}" fill="#6366f1"><title>${esc(binLabel(i))} ms: ${int(c)}</title></rect>`
      out += `<text x="${(x + bw / 2).toFixed(1)}" y="${
        (f.top + h - bh - 4).toFixed(1)
      }" text-anchor="middle" class="tick">${int(c)}</text>`
    }
    out += `<text x="${(x + bw / 2).toFixed(1)}" y="${f.top + h + 15}" text-anchor="middle" class="tick">${
      esc(binLabel(i))
    }</text>`
  })
  out += `<line x1="${f.left}" x2="${f.left + w}" y1="${f.top + h}" y2="${f.top + h}" class="axis"/>`
  out += `<text x="${f.left + w / 2}" y="${
    f.top + h + 33
  }" text-anchor="middle" class="tick">acquire wait (ms; bar height on a log scale)</text>`
  if (stats.count > 0) {
    for (const [label, v, color] of [["p50", stats.p50, "#059669"], ["p99", stats.p99, "#dc2626"]] as const) {
      const x = xOf(v).toFixed(1)
      out += `<line x1="${x}" x2="${x}" y1="${label === "p50" ? 6 : 20}" y2="${
        f.top + h
      }" stroke="${color}" stroke-dasharray="4 3" stroke-width="1.5"/>`
      out += `<text x="${x}" y="${
        label === "p50" ? 12 : 26
      }" dx="4" text-anchor="start" class="mark" fill="${color}" paint-order="stroke" stroke="#fff" stroke-width="3">${label} ${
        esc(ms(v))
      }</text>`
    }
  }
  return `<svg viewBox="0 0 ${f.width} ${f.height}" width="100%" role="img" aria-label="acquire-wait distribution of ${
    esc(run.strategy)
  }">${out}</svg>`
}

const countTable = (title: string, entries: ReadonlyArray<readonly [string, number]>, color: string): string => {
  const max = Math.max(1, ...entries.map(([, n]) => n))
  const rows = entries.length === 0
    ? `<tr><td colspan="2" class="none">none</td></tr>`
    : entries.map(([name, n]) =>
      `<tr><td>${esc(name)}</td><td class="n"><span class="bar" style="width:${
        Math.max(n > 0 ? 2 : 0, (120 * n) / max).toFixed(0)
      }px;background:${color}"></span>${int(n)}</td></tr>`
    ).join("")
  return `<table class="counts"><caption>${esc(title)}</caption>${rows}</table>`
}

const eventOrder = [
  "first_connect",
  "connect",
  "checkout",
  "reset",
  "checkin",
  "invalidate",
  "soft_invalidate",
  "close",
  "detach",
  "close_detached"
] as const
const reasonLabel: Record<PoolMetrics.InvalidationReason, string> = {
  user: "user: invalidate() (PgSql: session died)",
  disconnect: "disconnect (pre-ping)",
  reset: "reset failed",
  checkout: "checkout failed",
  keepalive: "keepalive",
  statement: "statement (session died)"
}

/** `--topology replicas`: the apply-delay periods as shaded bands, labelled. */
const delayBands = (f: Frame, run: StrategyRun, xMaxMs: number): string => {
  const r = run.replicas
  if (r === undefined) return ""
  const w = f.width - f.left - f.right
  const h = f.height - f.top - f.bottom
  const x = (t: number) => f.left + (w * Math.min(t, xMaxMs)) / xMaxMs
  let out = ""
  const samples = r.samples
  let i = 0
  while (i < samples.length) {
    const delay = samples[i]!.applyDelayMs
    let j = i
    while (j + 1 < samples.length && samples[j + 1]!.applyDelayMs === delay) j++
    if (delay > 0) {
      const from = x(samples[i]!.t)
      const to = x(samples[Math.min(j + 1, samples.length - 1)]!.t)
      out += `<rect x="${from.toFixed(1)}" y="${f.top}" width="${
        Math.max(1, to - from).toFixed(1)
      }" height="${h}" class="${
        delay > r.maxLagMs ? "delay-high" : "delay"
      }"><title>standby apply delay ${delay} ms</title></rect>`
      out += `<text x="${(from + 4).toFixed(1)}" y="${f.top + 11}" class="delaymark">apply delay ${delay} ms</text>`
    }
    i = j + 1
  }
  return out
}

/** `--topology replicas`: work per second to the primary and to the standby (500 ms buckets). */
export const routingSvg = (run: StrategyRun): string => {
  const r = run.replicas
  if (r === undefined) return ""
  const f: Frame = { ...frame, height: 190 }
  const w = f.width - f.left - f.right
  const h = f.height - f.top - f.bottom
  const xm = xMax(run)
  const points: Array<{ t: number; primary: number; replica: number }> = []
  let last = r.samples[0]
  for (const s of r.samples.slice(1)) {
    if (s.t - last!.t >= 500 - sampleEveryMs / 2) {
      const dt = s.t - last!.t
      points.push({
        t: s.t,
        primary: ((s.primaryRouted - last!.primaryRouted) * 1000) / dt,
        replica: ((s.replicaRouted - last!.replicaRouted) * 1000) / dt
      })
      last = s
    }
  }
  const scale = niceScale(Math.max(1, ...points.map((p) => Math.max(p.primary, p.replica))))
  const x = (t: number) => (f.left + (w * t) / xm).toFixed(1)
  const y = (v: number) => (f.top + h - (h * v) / scale.max).toFixed(1)
  const path = (key: "primary" | "replica", color: string, label: string) => {
    let d = ""
    let from = 0
    for (const p of points) {
      d += `${d === "" ? "M" : "L"}${x(from)},${y(p[key])} L${x(p.t)},${y(p[key])} `
      from = p.t
    }
    return d === ""
      ? ""
      : `<path d="${d}" fill="none" stroke="${color}" stroke-width="2" class="route-${key}"><title>${
        esc(label)
      }</title></path>`
  }
  return `<svg viewBox="0 0 ${f.width} ${f.height}" width="100%" role="img" aria-label="work per node of ${
    esc(run.strategy)
  }">` +
    axes(f, xm, scale, (v) => int(v)) + delayBands(f, run, xm) + path("primary", "#2563eb", "primary") +
    path("replica", "#16a34a", "standby") + `</svg>`
}

/** `--topology replicas`: the standby's lag at each health check, maxLag dashed, out of rotation marked. */
export const lagSvg = (run: StrategyRun): string => {
  const r = run.replicas
  if (r === undefined) return ""
  const f: Frame = { ...frame, height: 170 }
  const w = f.width - f.left - f.right
  const h = f.height - f.top - f.bottom
  const xm = xMax(run)
  const scale = niceScale(Math.max(r.maxLagMs * 1.5, ...r.samples.map((s) => s.lagMs ?? 0)), true)
  const x = (t: number) => (f.left + (w * t) / xm).toFixed(1)
  const y = (v: number) => (f.top + h - (h * Math.min(v, scale.max)) / scale.max).toFixed(1)
  let d = ""
  let out = ""
  for (const s of r.samples) {
    if (s.lagMs === undefined) continue
    d += `${d === "" ? "M" : "L"}${x(s.t)},${y(s.lagMs)} `
    if (!s.serving) {
      out += `<circle cx="${x(s.t)}" cy="${y(s.lagMs)}" r="2.5" class="out"><title>out of rotation at ${
        (s.t / 1000).toFixed(1)
      } s (lag ${esc(ms(s.lagMs))})</title></circle>`
    }
  }
  const limit =
    `<line x1="${f.left}" x2="${f.left + w}" y1="${y(r.maxLagMs)}" y2="${
      y(r.maxLagMs)
    }" class="maxlag"><title>maxLag ${r.maxLagMs} ms</title></line>` +
    `<text x="${f.left + w - 4}" y="${Number(y(r.maxLagMs)) - 4}" text-anchor="end" class="maxlagmark">maxLag ${
      int(r.maxLagMs)
    } ms</text>`
  return `<svg viewBox="0 0 ${f.width} ${f.height}" width="100%" role="img" aria-label="standby lag of ${
    esc(run.strategy)
  }">` +
    axes(f, xm, scale, (v) => `${int(v)}`) + delayBands(f, run, xm) + limit +
    (d === ""
      ? ""
      : `<path d="${d}" fill="none" stroke="#7c3aed" stroke-width="1.8" class="lag"><title>standby lag (ms)</title></path>`) +
    out + `</svg>`
}

/** Pipelined mode: shared connections and statements in flight over time (step lines), `maxConnections` dashed. */
export const pipelineSvg = (run: StrategyRun): string => {
  const p = run.pipeline
  if (p === undefined) return ""
  const f: Frame = { ...frame, height: 190 }
  const w = f.width - f.left - f.right
  const h = f.height - f.top - f.bottom
  const xm = xMax(run)
  const scale = niceScale(Math.max(p.maxShared, ...p.samples.map((s) => s.inFlight)))
  const x = (t: number) => (f.left + (w * t) / xm).toFixed(1)
  const y = (v: number) => (f.top + h - (h * v) / scale.max).toFixed(1)
  const line = (key: "connections" | "inFlight", color: string, label: string) => {
    let d = ""
    let prev: number | undefined
    for (const s of p.samples) {
      const v = s[key]
      d += d === "" ? `M${x(s.t)},${y(v)}` : prev !== v ? `H${x(s.t)}V${y(v)}` : ""
      prev = v
    }
    const last = p.samples[p.samples.length - 1]
    if (last !== undefined) d += `H${x(last.t)}`
    return d === ""
      ? ""
      : `<path d="${d}" fill="none" stroke="${color}" stroke-width="2" class="pipe-${key}"><title>${
        esc(label)
      }</title></path>`
  }
  const limit =
    `<line x1="${f.left}" x2="${f.left + w}" y1="${y(p.maxShared)}" y2="${
      y(p.maxShared)
    }" class="maxconn"><title>${p.maxLabel}</title></line>` +
    `<text x="${f.left + w - 4}" y="${
      Number(y(p.maxShared)) - 4
    }" text-anchor="end" class="maxconnmark">${p.maxLabel}</text>`
  return `<svg viewBox="0 0 ${f.width} ${f.height}" width="100%" role="img" aria-label="pipelined work of ${
    esc(run.label)
  }">` +
    axes(f, xm, scale, (v) => int(v)) + killMarks(f, run, xm) + limit +
    line("inFlight", "#0891b2", "statements in flight") + line("connections", "#c026d3", "shared connections") +
    `</svg>`
}

/** Pipelined mode: what the shared connections carried, and how they opened and closed. */
const pipelineBlock = (run: StrategyRun): string => {
  const p = run.pipeline
  if (p === undefined) return ""
  const exclusive = run.exclusiveCheckouts ?? 0
  const closes = laneCloseReasons.map((r) => [r, p.closed[r]] as const)
  const lanes = p.lanes.map((lane) => [`pid ${lane.processId}`, lane.inFlight] as const)
  return `<div class="pipeline" data-pipelined="${p.statements}" data-abandoned="${p.abandoned}" data-peak-shared="${p.peakConnections}" data-max-shared="${p.maxShared}" data-opened="${p.opened}" data-closed="${p.closes}" data-exclusive="${exclusive}">
<h3>Pipeline <small>PgSql.layer({ pipeline: { maxInFlight: ${p.maxInFlight}, maxConnections: ${p.maxConnections} } })${
    p.pools.length > 1 ? ` on each of ${p.pools.length} pools` : ""
  }</small></h3>
<div class="kpis">
<div><b>${int(p.statements)}</b><span>statements pipelined (of ${int(run.statements)} in all)</span></div>
<div><b>${p.peakConnections} / ${p.maxShared}</b><span>shared connections, peak / max</span></div>
<div><b>${int(p.peakInFlight)}</b><span>statements in flight, peak (≤ ${p.maxInFlight} per connection)</span></div>
<div><b>${int(exclusive)}</b><span>exclusive checkouts (transactions, slow statements${
    p.pools.length > 1 ? "; the primary's" : ""
  })</span></div>
<div class="${p.abandoned > 0 ? "bad" : "good"}"><b>${
    int(p.abandoned)
  }</b><span>abandoned (caller interrupted)</span></div>
<div><b>${int(p.opened)} / ${int(p.closes)}</b><span>shared connections opened / closed</span></div>
</div>
<p class="legend"><span><i style="background:#c026d3"></i>shared connections</span><span><i style="background:#0891b2"></i>statements in flight</span><span class="hint">sampled every ${sampleEveryMs} ms (PgSql.pipelineStatus)</span></p>
<div class="chart pipe">${pipelineSvg(run)}</div>
<div class="tables">
${countTable("Shared connections closed, by reason (PgSql.pipelineEvents)", closes, "#c026d3")}
${countTable("In flight per shared connection at the end", lanes, "#0891b2")}
</div>
</div>`
}

/** `--topology replicas`: routing, lag and read-backs of one strategy. */
const replicasBlock = (run: StrategyRun): string => {
  const r = run.replicas
  if (r === undefined) return ""
  const e = r.readBacks.eventual
  const y = r.readBacks["read-your-writes"]
  const maxLag = r.maxLag
  const share = Math.round(r.replicaShare * 100)
  return `<div class="replicas" data-standby-share="${share}" data-stale-eventual="${e.misses}/${e.checks}" data-stale-ryw="${y.misses}/${y.checks}" data-max-lag-ms="${
    maxLag === undefined ? "" : Math.round(maxLag)
  }">
<h3>Replicas <small>PgReplicas, maxLag ${int(r.maxLagMs)} ms</small></h3>
<div class="kpis">
<div><b>${share} %</b><span>of the work on the standby</span></div>
<div><b>${maxLag === undefined ? "–" : esc(ms(maxLag))}</b><span>highest standby lag seen</span></div>
<div class="${e.misses > 0 ? "bad" : "good"}"><b>${int(e.misses)} / ${
    int(e.checks)
  }</b><span>eventual read-backs stale</span></div>
<div class="${y.misses > 0 ? "bad" : "good"}"><b>${int(y.misses)} / ${
    int(y.checks)
  }</b><span>read-your-writes read-backs stale</span></div>
<div><b>${int(r.readYourWrites.replica)} · ${int(r.readYourWrites.waited)} · ${
    int(r.readYourWrites.primary)
  }</b><span>read-your-writes reads: standby · standby after a wait · primary</span></div>
</div>
<p class="legend"><span><i style="background:#2563eb"></i>work/s to the primary</span><span><i style="background:#16a34a"></i>work/s to the standby</span><span><i class="d"></i>apply delay within maxLag</span><span><i class="dh"></i>apply delay beyond maxLag</span></p>
<div class="chart routing">${routingSvg(run)}</div>
<p class="legend"><span><i style="background:#7c3aed"></i>standby lag at each health check (ms)</span><span><i style="background:#dc2626;border-radius:50%"></i>out of rotation</span><span class="hint">reads go to the primary while the lag exceeds maxLag</span></p>
<div class="chart lag">${lagSvg(run)}</div>
</div>`
}

/** `--topology failover`: the figures of one strategy's failover. */
const failoverBlock = (run: StrategyRun): string => {
  const f = run.failover
  if (f === undefined) return ""
  if (f.stopRequestedAt === undefined) {
    return `<div class="failover"><h3>Failover</h3><p class="warn">The primary was not stopped: the run ended first.</p></div>`
  }
  const first = f.firstWriteAfterPromoteMs
  const outage = f.writeOutageMs
  const errors = [...f.errors.entries()].sort((a, b) => b[1] - a[1])
  const at = (t: number | undefined) => (t === undefined ? "–" : `${(t / 1000).toFixed(2)} s`)
  const rows: ReadonlyArray<readonly [string, string]> = [
    ["primary stopped (pg_ctl stop -m immediate issued)", at(f.stopRequestedAt)],
    [
      "primary down (pg_ctl returned)",
      f.stoppedAt === undefined ? "–" : `${at(f.stoppedAt)} (+${ms(f.stoppedAt - f.stopRequestedAt)})`
    ],
    ["standby promotion issued (pg_ctl promote -w)", at(f.promoteRequestedAt)],
    [
      "standby promoted (pg_ctl returned)",
      f.promotedAt === undefined || f.promoteRequestedAt === undefined
        ? "–"
        : `${at(f.promotedAt)} (+${ms(f.promotedAt - f.promoteRequestedAt)})`
    ],
    [
      "first successful write after the promotion was issued",
      first === undefined ? "none" : `${at(f.firstWriteAt)} (+${int(first)} ms)`
    ],
    [
      "first successful operation (any kind) after it",
      f.firstOpAt === undefined || f.promoteRequestedAt === undefined
        ? "none"
        : `${at(f.firstOpAt)} (+${int(f.firstOpAt - f.promoteRequestedAt)} ms)`
    ],
    ["last successful write before the stop", at(f.lastWriteBeforeAt)],
    ["successful operations after the promotion was issued", `${int(f.opsAfter)} (${int(f.writesAfter)} writes)`]
  ]
  return `<div class="failover" data-first-write-ms="${
    first === undefined ? "" : Math.round(first)
  }" data-failed="${f.errorCount}" data-ok-after="${f.opsAfter}">
<h3>Failover</h3>
<div class="kpis">
<div class="${first === undefined ? "bad" : "good"}"><b>${
    first === undefined ? "none" : `+${int(first)} ms`
  }</b><span>first write after promotion</span></div>
<div><b>${
    outage === undefined ? "–" : esc(ms(outage))
  }</b><span>writes unavailable (last before the stop → first after)</span></div>
<div class="${f.errorCount > 0 ? "bad" : "good"}"><b>${
    int(f.errorCount)
  }</b><span>failed operations since the stop</span></div>
<div class="${f.opsAfter > 0 ? "good" : "bad"}"><b>${
    int(f.opsAfter)
  }</b><span>successful operations after the promotion</span></div>
</div>
${f.failure === undefined ? "" : `<p class="warn">A failover step failed: ${esc(f.failure)}</p>`}
<div class="tables">
<table class="counts"><caption>Timeline (since the strategy started)</caption>${
    rows.map(([k, v]) => `<tr><td>${esc(k)}</td><td class="n">${esc(v)}</td></tr>`).join("")
  }</table>
${countTable("Failed operations since the stop, by type", errors, "#dc2626")}
</div>
</div>`
}

const section = (recorder: Recorder, run: StrategyRun, index: number): string => {
  const w = run.waitPercentiles()
  const c = run.counters
  const events = eventOrder.map((e) => [e, run.events.get(e) ?? 0] as const).filter(([, n]) => n > 0)
  const invalidations = c === undefined ?
    [] :
    (Object.entries(c.invalidations) as Array<[PoolMetrics.InvalidationReason, number]>)
      .filter(([, n]) => n > 0).map(([r, n]) => [reasonLabel[r], n] as const)
  const errors = [...run.errors.entries()].sort((a, b) => b[1] - a[1])
  const pool = [
    ["connects", c?.connects ?? 0],
    ["connect failures", c?.connectFailures ?? 0],
    ["checkouts", c?.checkouts ?? 0],
    ["failed checkouts", run.failedCheckouts],
    ["timeouts", c?.timeouts ?? 0],
    ["recycles", c?.recycles ?? 0],
    ...(recorder.options.chaos
      ? [["backends killed (chaos)", run.kills.length] as const, ["recovered by retry", run.recovered] as const]
      : [])
  ] as const
  const config = Object.entries(run.config).map(([k, v]) => `${esc(k)} <b>${esc(String(v))}</b>`).join(" · ")
  const ops = (["query", "transaction", "report", "slow"] as const).map((k) => `${k} ${int(run.ops[k])}`).join(" · ")
  return `<section id="s${index}" class="strategy" data-strategy="${
    esc(run.strategy)
  }" data-mode="${run.mode}" data-samples="${run.samples.length}" data-waits="${run.waits.length}">
<h2>${esc(run.strategy)}${run.mode === "pipelined" ? ` <small>pipelined</small>` : ""}${
    run.completed ? "" : ` <span class="warn">stopped after ${(run.elapsedMs / 1000).toFixed(1)} s</span>`
  }</h2>
<p class="meta">${run.workers} worker${run.workers === 1 ? "" : "s"} · ${
    (run.elapsedMs / 1000).toFixed(1)
  } s · ${config}</p>
${
    run.via === undefined
      ? ""
      : `<p class="meta">via ${esc(run.via)}${
        run.setupMs === undefined ? "" : ` (started in ${(run.setupMs / 1000).toFixed(1)} s)`
      }</p>`
  }
${run.notes.map((n) => `<p class="note">${esc(n)}</p>`).join("")}
<div class="kpis">
<div><b>${int(run.throughput)}</b><span>statements/s</span></div>
<div><b>${int(run.totalOps)}</b><span>operations</span></div>
<div><b>${esc(ms(w.p50))}</b><span>acquire wait p50</span></div>
<div><b>${esc(ms(w.p99))}</b><span>acquire wait p99</span></div>
<div><b>${esc(ms(w.max))}</b><span>acquire wait max</span></div>
<div class="${run.errorCount > 0 ? "bad" : "good"}"><b>${int(run.errorCount)}</b><span>failed operations</span></div>
</div>
<p class="ops">Operations: ${ops}</p>
<h3>Occupancy</h3>
<p class="legend">${series.map((s) => `<span><i style="background:${s.color}"></i>${esc(s.label)}</span>`).join("")}${
    recorder.options.chaos ? `<span><i class="k"></i>backend terminated</span>` : ""
  }${
    run.failover === undefined ? "" : `<span><i class="o"></i>failover: no successful write</span>`
  }<span class="hint">sampled every ${sampleEveryMs} ms; overflow = connections beyond the pool size</span></p>
<div class="chart timeline">${timelineSvg(run)}</div>
<h3>Throughput</h3>
<p class="legend"><span><i style="background:#2563eb"></i>statements/s (500 ms buckets)</span><span><i style="background:#dc2626;border-radius:50%"></i>failed operations</span></p>
<div class="chart">${throughputSvg(run)}</div>
${pipelineBlock(run)}
${failoverBlock(run)}
${replicasBlock(run)}
<h3>Acquire-wait distribution <small>${int(w.count)} checkouts · p50 ${esc(ms(w.p50))} · p90 ${esc(ms(w.p90))} · p99 ${
    esc(ms(w.p99))
  } · max ${esc(ms(w.max))} · mean ${esc(ms(w.mean))}</small></h3>
<div class="chart">${waitSvg(run)}</div>
<div class="tables">
${countTable("Pool events", events, "#0ea5e9")}
${countTable("Pool counters (metrics)", pool, "#64748b")}
${countTable("Invalidations by reason", invalidations, "#f59e0b")}
${countTable("Errors by type", errors, "#dc2626")}
</div>
</section>`
}

const css = `
*{box-sizing:border-box}body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;background:#f8fafc;color:#0f172a}
main{max-width:1100px;margin:0 auto;padding:24px}h1{font-size:24px;margin:0 0 4px}h2{font-size:20px;margin:0 0 4px}
h3{font-size:15px;margin:18px 0 6px}h3 small{font-weight:normal;color:#475569;margin-left:8px}
.meta,.ops,.note{color:#475569;margin:2px 0}.note{font-style:italic}.warn{color:#b45309;font-size:14px;font-weight:normal}
.strategy{background:#fff;border:1px solid #e2e8f0;border-radius:10px;padding:18px 20px;margin:20px 0}
table.summary{border-collapse:collapse;width:100%;background:#fff;font-variant-numeric:tabular-nums}
table.summary th,table.summary td{padding:6px 7px;border-bottom:1px solid #e2e8f0;text-align:right;white-space:nowrap}
table.summary th:first-child,table.summary td:first-child{text-align:left}table.summary th{background:#f1f5f9;font-weight:600;white-space:normal;vertical-align:bottom}
table.summary{font-size:13px}
table.summary a{color:#1d4ed8;text-decoration:none}
.kpis{display:flex;gap:10px;flex-wrap:wrap;margin:12px 0}.kpis div{flex:1 1 120px;background:#f1f5f9;border-radius:8px;padding:8px 10px}
.kpis b{display:block;font-size:20px;font-variant-numeric:tabular-nums}.kpis span{color:#475569;font-size:12px}
.kpis .bad b{color:#dc2626}.kpis .good b{color:#16a34a}
.legend{margin:0 0 4px;color:#334155;font-size:13px}.legend span{margin-right:14px;white-space:nowrap}
.legend i{display:inline-block;width:12px;height:12px;border-radius:2px;margin-right:5px;vertical-align:-1px}
.legend i.k{border-left:2px dashed #7c3aed;border-radius:0;width:2px}.legend .hint{color:#64748b}
.chart svg{display:block;background:#fff}.grid{stroke:#e2e8f0}.axis{stroke:#94a3b8}
.tick{font-size:11px;fill:#475569}.mark{font-size:12px;font-weight:600}.kill{stroke:#7c3aed;stroke-dasharray:3 3;stroke-width:1.2}
.killmark{font-size:10px;fill:#7c3aed}
.outage{fill:#fecaca;fill-opacity:.45}.legend i.o{background:#fecaca}.fomark{font-size:11px;font-weight:600}
.fo-stop{stroke:#dc2626;stroke-width:1.5}.fo-promote{stroke:#d97706;stroke-width:1.5;stroke-dasharray:5 3}.fo-write{stroke:#059669;stroke-width:1.5;stroke-dasharray:2 2}
text.fo-stop{fill:#dc2626;stroke:#fff}text.fo-promote{fill:#b45309;stroke:#fff}text.fo-write{fill:#047857;stroke:#fff}
.failover,.replicas,.pipeline{border-top:1px solid #e2e8f0;margin-top:14px}h2 small{font-weight:normal;color:#7e22ce}
.maxconn{stroke:#c026d3;stroke-dasharray:5 4;stroke-width:1.2}.maxconnmark{font-size:10px;fill:#a21caf}
.delay{fill:#fde68a;fill-opacity:.35}.delay-high{fill:#fca5a5;fill-opacity:.35}.legend i.d{background:#fde68a}.legend i.dh{background:#fca5a5}
.delaymark{font-size:10px;fill:#92400e}.maxlag{stroke:#dc2626;stroke-dasharray:5 4;stroke-width:1.2}.maxlagmark{font-size:10px;fill:#dc2626}.out{fill:#dc2626}.topology{background:#fff7ed;border:1px solid #fed7aa;border-radius:8px;padding:8px 12px;margin:10px 0}.topology p{margin:3px 0}
.tables{display:grid;grid-template-columns:1fr 1fr;gap:16px 40px;margin-top:14px;align-items:start}
table.counts{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums;font-size:13px}
table.counts caption{text-align:left;font-weight:600;padding-bottom:4px}
table.counts td{padding:2px 4px;border-bottom:1px solid #f1f5f9;white-space:nowrap}table.counts td.n{text-align:right;white-space:nowrap}
table.counts .bar{display:inline-block;height:9px;border-radius:2px;margin-right:6px;vertical-align:0}
table.counts td.none{color:#94a3b8}
footer{color:#64748b;font-size:12px;margin-top:24px}
`

/** The report as one HTML document. */
export const render = (recorder: Recorder): string => {
  const o = recorder.options
  const runs = recorder.runs.filter((r) => r.startedAt > 0)
  const rows = summaryRows(recorder)
  const started = new Date(recorder.startedAt)
  const total = ((recorder.finishedAt || Date.now()) - recorder.startedAt) / 1000
  const head = rows[0]!.map((h) => `<th>${esc(h)}</th>`).join("")
  const body = rows.slice(1).map((row, i) =>
    `<tr>${row.map((cell, c) => `<td>${c === 0 ? `<a href="#s${i}">${esc(cell)}</a>` : esc(cell)}</td>`).join("")}</tr>`
  ).join("")
  const flags = `--strategy ${
    o.strategies.join(",")
  } --workers ${o.workers} --pool-size ${o.poolSize} --max-overflow ${o.maxOverflow} --duration ${o.durationSeconds}s --seed ${o.seed}${
    o.chaos ? " --chaos" : ""
  }${o.topology === "direct" ? "" : ` --topology ${o.topology}`}${
    o.mode === "exclusive"
      ? ""
      : ` --mode ${o.mode} --max-in-flight ${o.maxInFlight}${
        o.sharedConnections === undefined ? "" : ` --shared-connections ${o.sharedConnections}`
      }`
  }`
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>effect-db-pool workbench report</title><style>${css}</style></head>
<body><main>
<h1>effect-db-pool workbench</h1>
<p class="meta">${esc(started.toISOString().replace("T", " ").slice(0, 19))} UTC · ${
    total.toFixed(1)
  } s total · PostgreSQL ${esc(recorder.serverVersion || "?")} (${esc(recorder.database)}) · seed ${o.seed}${
    o.chaos ? " · <b>chaos</b>: random backends of the workbench terminated" : ""
  }</p>
<p class="meta"><code>${esc(flags)}</code></p>
${
    o.topology === "direct"
      ? ""
      : `<div class="topology" data-topology="${o.topology}"><p><b>Topology: ${
        esc(topologyLabels[o.topology])
      }</b></p>${recorder.topologyDetail.map((d) => `<p>${d}</p>`).join("")}</div>`
  }
${
    o.mode === "exclusive"
      ? ""
      : `<div class="topology" data-mode="${o.mode}"><p><b>Mode: ${
        esc(modeLabel(o))
      }</b></p><p>Point queries and reports, lone autocommit statements, are pipelined over the shared connections; transfers (transactions) and slow statements (<code>PgSql.exclusive</code>) take a connection of their own from the same pool. A shared connection is one checkout of the pool: it returns when its last statement ends.</p>${
        notPipelinedIn(o).map((s) =>
          `<p>${esc(s)} ${o.mode === "both" ? "runs exclusive only" : "is left out"}: ${
            esc(notPipelined[s] ?? "")
          }.</p>`
        ).join("")
      }</div>`
  }
${recorder.stopped ? `<p class="warn">Stopped early: ${esc(recorder.stopped)}. The report shows what ran.</p>` : ""}
<p class="meta">Workload per worker: 72% point queries, 20% transfer transactions (6 statements), 6% small reports, 2% slow statements (pg_sleep 0.15–0.6 s), 1–5 ms think time. A statement that fails because its session died is retried once. Acquire wait = time of the pool's checkout (waiting for a slot, connecting, pre-ping).</p>
<table class="summary"><thead><tr>${head}</tr></thead><tbody>${body}</tbody></table>
${runs.some((r) => !r.completed) ? `<p class="meta">* stopped before its full duration</p>` : ""}
${runs.map((run, i) => section(recorder, run, i)).join("\n")}
<footer>Generated by <code>npm start</code> (workbench/). Self-contained: no scripts, no network. Invalidations total ${
    int(runs.reduce((n, r) => n + totalInvalidations(r.counters), 0))
  }.</footer>
</main></body></html>
`
}

/** Write the report to `file` (directories created) and return its absolute path. */
export const write = (recorder: Recorder, file: string): string => {
  const absolute = path.resolve(file)
  fs.mkdirSync(path.dirname(absolute), { recursive: true })
  fs.writeFileSync(absolute, render(recorder))
  return absolute
}
