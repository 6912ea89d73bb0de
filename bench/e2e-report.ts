/**
 * The end-to-end report: tables and targets from one run's outcome, or from several runs (each
 * figure is then the median across the runs of that run's figure).
 *
 *   - µs per operation (median of the rounds),
 *   - throughput ratios (their µs ÷ ours, > 1 = we are faster): for two subjects of the
 *     interleaved group, the median of the round-by-round ratios (round r of both ran at about the
 *     same time), otherwise the ratio of the medians,
 *   - latency of single operations at c=64 (p50 / p99 / p99.9 of all rounds pooled; the p99
 *     targets compare each round's p99, ours ÷ theirs, and take the median),
 *   - the overload row (checkout wait and timeouts),
 *   - every e2e target with holds / NO.
 *
 * Used by bench/run.ts (one run) and bench/median.ts (several runs' JSON files).
 */
import type { E2eOutcome, E2eResult, OverloadResult } from "./e2e.ts"
import { fmt, median, table } from "./stats.ts"

const ours = "SqlClient over QueuePool (PgSql)"
const oursLifo = "SqlClient over QueuePool lifo (PgSql)"
const pgClient = "@effect/sql-pg PgClient.layer"
const pgPool = "node-postgres pg.Pool"
const pipelined = "SqlClient over QueuePool pipelined (PgSql)"
const multiplex = "@effect/sql-pg PgClient.layer multiplex"
const postgresJs = "postgres.js (max 10)"
const ceiling = "pgbench -M prepared (ceiling)"
const bounced = (s: string) => s.endsWith("via PgBouncer")
const short = (s: string) => s.replace("SqlClient over ", "").replace(" (PgSql)", "")

const keyOf = (r: E2eResult) => `${r.query} c=${r.concurrency}`

export interface Target {
  readonly name: string
  readonly holds: boolean
  /** The figures it was judged on. */
  readonly detail: string
}

/** Their µs ÷ ours for one cell of one run: paired (round by round) when both were interleaved. */
const ratioIn = (results: ReadonlyArray<E2eResult>, mine: string, other: string, key: string): number => {
  const a = results.find((r) => r.subject === mine && keyOf(r) === key)
  const b = results.find((r) => r.subject === other && keyOf(r) === key)
  if (a === undefined || b === undefined) return NaN
  if (a.interleaved === true && b.interleaved === true && a.rounds.length === b.rounds.length && a.rounds.length > 0) {
    return median(a.rounds.map((x, i) => b.rounds[i]! / x))
  }
  return b.medianUs / a.medianUs
}

/**
 * Ours ÷ theirs p99 for one cell of one run: the median of the round-by-round ratios of each
 * round's p99 (`roundP99`), as throughput is compared; NaN without per-round figures.
 */
const p99RatioIn = (results: ReadonlyArray<E2eResult>, mine: string, other: string, key: string): number => {
  const a = results.find((r) => r.subject === mine && keyOf(r) === key)?.roundP99
  const b = results.find((r) => r.subject === other && keyOf(r) === key)?.roundP99
  if (a === undefined || b === undefined || a.length !== b.length || a.length === 0) return NaN
  return median(a.map((x, i) => x / b[i]!))
}

/** The median across runs of `f(run)`, ignoring runs where it is not a number. */
const across = (runs: ReadonlyArray<E2eOutcome>, f: (run: E2eOutcome) => number): number => {
  const xs = runs.map(f).filter((x) => Number.isFinite(x))
  return xs.length === 0 ? NaN : median(xs)
}

const x = (r: number) => `${fmt(r, 2)}×`

export const e2eReport = (
  runs: ReadonlyArray<E2eOutcome>
): { readonly text: string; readonly targets: ReadonlyArray<Target> } => {
  const all = runs.flatMap((run) => run.results)
  if (all.length === 0) return { text: "", targets: [] }
  const keys = [...new Set(all.map(keyOf))]
  const subjects = [...new Set(all.map((r) => r.subject))]
  const of = (run: E2eOutcome, subject: string, key: string) =>
    run.results.find((r) => r.subject === subject && keyOf(r) === key)
  const us = (subject: string, key: string) => across(runs, (run) => of(run, subject, key)?.medianUs ?? NaN)
  const ratio = (mine: string, other: string, key: string) =>
    across(runs, (run) => ratioIn(run.results, mine, other, key))
  const lat = (subject: string, key: string, q: "p50" | "p99" | "p999") =>
    across(runs, (run) => of(run, subject, key)?.latency?.[q] ?? NaN)
  const many = runs.length > 1
  const out: Array<string> = []
  const say = (title: string, body: string) => out.push(`\n${title}\n\n${body}`)

  say(
    `End to end (PostgreSQL): µs per operation (median of the rounds${many ? `; median of ${runs.length} runs` : ""})`,
    table(["subject", ...keys], subjects.map((s) => [s, ...keys.map((k) => fmt(us(s, k), 1))]))
  )

  const cpu = (subject: string, key: string) => across(runs, (run) => of(run, subject, key)?.cpuUs ?? NaN)
  const withCpu = subjects.filter((s) => all.some((r) => r.subject === s && r.cpuUs !== undefined))
  if (withCpu.length > 0) {
    say(
      `Node CPU µs per operation (user + system, median of the rounds${many ? `; median of ${runs.length} runs` : ""})`,
      table(["subject", ...keys], withCpu.map((s) => [s, ...keys.map((k) => fmt(cpu(s, k), 1))]))
    )
  }
  const sessions = (subject: string, key: string) =>
    across(runs, (run) => of(run, subject, key)?.serverConnections ?? NaN)
  const withSessions = subjects.filter((s) => all.some((r) => r.subject === s && r.serverConnections !== undefined))
  if (withSessions.length > 0) {
    say(
      "Server connections used (the most sessions of the subject seen at once in pg_stat_activity, sampled every 20 ms)",
      table(["subject", ...keys], withSessions.map((s) => [s, ...keys.map((k) => fmt(sessions(s, k), 0))]))
    )
  }

  // Throughput ratios against every other direct subject.
  const mine = subjects.filter((s) => s.startsWith("SqlClient over QueuePool") && !bounced(s))
  const others = subjects.filter((s) => !mine.includes(s) && !bounced(s))
  const ratioRows = mine.flatMap((m) =>
    others.map((o) => [`${short(m)} vs ${o}`, ...keys.map((k) => x(ratio(m, o, k)))])
  )
  if (ratioRows.length > 0) {
    say(
      "End-to-end throughput ratio (their µs/op ÷ ours; > 1 = we are faster; the interleaved pools: median of the round-by-round ratios)",
      table(["ratio", ...keys], ratioRows)
    )
  }

  // Through PgBouncer (kept from the PgBouncer rows of run.ts).
  const viaQueue = "SqlClient over QueuePool via PgBouncer"
  const pairs: ReadonlyArray<readonly [string, string, string]> = [
    ["QueuePool via PgBouncer vs NullPool via PgBouncer", "SqlClient over NullPool via PgBouncer", viaQueue],
    ["QueuePool direct vs QueuePool via PgBouncer", viaQueue, ours]
  ]
  const bouncerRows = pairs
    .filter(([, other, first]) => subjects.includes(other) && subjects.includes(first))
    .map(([label, other, first]) => [label, ...keys.map((k) => x(us(other, k) / us(first, k)))])
  if (bouncerRows.length > 0) {
    say(
      "Through PgBouncer (transaction mode): throughput ratio (µs/op of the second ÷ the first; > 1 = the first is faster)",
      table(["ratio", ...keys], bouncerRows)
    )
  }

  // Latency of single operations at c=64.
  const latencyKeys = keys.filter((k) => k.endsWith("c=64"))
  const latencySubjects = [ours, oursLifo, pgClient, pgPool].filter((s) => subjects.includes(s))
  if (latencyKeys.length > 0 && latencySubjects.length > 0) {
    const header = [
      "µs per operation at c=64",
      ...latencyKeys.flatMap((k) => [`${k.replace(" c=64", "")} p50`, "p99", "p99.9"])
    ]
    say(
      `Latency of single operations at 64 workers on 10 connections (every operation of every round${
        many ? `; median of ${runs.length} runs` : ""
      })`,
      table(
        header,
        latencySubjects.map((s) => [
          s,
          ...latencyKeys.flatMap((k) => [fmt(lat(s, k, "p50"), 0), fmt(lat(s, k, "p99"), 0), fmt(lat(s, k, "p999"), 0)])
        ])
      )
    )
  }

  // Overload.
  const overloadSubjects = [...new Set(runs.flatMap((run) => run.overload ?? []).map((o) => o.subject))]
  const over = (subject: string, f: (o: OverloadResult) => number) =>
    across(runs, (run) => {
      const o = run.overload?.find((r) => r.subject === subject)
      return o === undefined ? NaN : f(o)
    })
  const first = runs.flatMap((run) => run.overload ?? [])[0]
  if (first !== undefined) {
    say(
      `Overload: ${first.workers} workers on ${first.connections} connections for ${first.seconds} s, each checkout held by ` +
        `${first.hold}, checkout timeout ${first.timeoutMs} ms where the pool has one${
          many ? `; median of ${runs.length} runs` : ""
        }`,
      table(
        [
          "subject",
          "checkout timeout",
          "checkouts",
          "wait p50 ms",
          "wait p99 ms",
          "wait p99.9 ms",
          "timeouts",
          "other errors"
        ],
        overloadSubjects.map((s) => {
          const timeoutMs = runs.flatMap((run) => run.overload ?? []).find((o) => o.subject === s)?.timeoutMs
          return [
            s,
            timeoutMs === null || timeoutMs === undefined ? "none (effect/Pool)" : `${timeoutMs} ms`,
            fmt(over(s, (o) => o.acquired), 0),
            fmt(over(s, (o) => o.wait.p50 / 1000), 1),
            fmt(over(s, (o) => o.wait.p99 / 1000), 1),
            fmt(over(s, (o) => o.wait.p999 / 1000), 1),
            fmt(over(s, (o) => o.timeouts), 0),
            fmt(over(s, (o) => o.errors), 0)
          ]
        })
      )
    )
  }

  // Targets.
  const targets: Array<Target> = []
  const cells = (m: string, o: string, ks: ReadonlyArray<string>) =>
    ks.map((k) => ({ k, r: ratio(m, o, k) })).filter((c) => Number.isFinite(c.r))
  const judge = (
    name: string,
    list: ReadonlyArray<{ k: string; r: number }>,
    ok: (c: { k: string; r: number }) => boolean
  ) => {
    if (list.length === 0) return
    targets.push({ name, holds: list.every(ok), detail: list.map((c) => `${c.k} ${x(c.r)}`).join(", ") })
  }
  if (subjects.includes(ours) && subjects.includes(pgClient)) {
    judge("SqlClient over QueuePool ≥ 1.0× PgClient.layer, every cell", cells(ours, pgClient, keys), (c) => c.r >= 1)
  }
  if (subjects.includes(ours) && subjects.includes(pgPool)) {
    const tx = keys.filter((k) => k === "transaction c=16" || k === "transaction c=64")
    judge("transaction ≥ 1.0× pg.Pool at c=16 and c=64 (stretch)", cells(ours, pgPool, tx), (c) => c.r >= 1)
    // Half the gap of the issue's run (0.67× at c=16, 0.63× at c=64).
    const half: Record<string, number> = { "transaction c=16": 0.835, "transaction c=64": 0.815 }
    judge(
      "transaction vs pg.Pool: at least half the issue's gap closed (≥ 0.835× at c=16, ≥ 0.815× at c=64)",
      cells(ours, pgPool, tx),
      (c) => c.r >= half[c.k]!
    )
  }
  for (const other of [pgClient, pgPool]) {
    if (!subjects.includes(ours) || !subjects.includes(other) || latencyKeys.length === 0) continue
    const list = latencyKeys
      .map((k) => ({
        k,
        r: across(runs, (run) => p99RatioIn(run.results, ours, other, k)),
        a: lat(ours, k, "p99"),
        b: lat(other, k, "p99")
      }))
      .filter((c) => Number.isFinite(c.r))
    if (list.length === 0) continue
    targets.push({
      name: `p99 latency at c=64 ≤ ${
        other === pgClient ? "PgClient.layer" : "pg.Pool"
      }'s, every operation (ours ÷ theirs, round by round)`,
      holds: list.every((c) => c.r <= 1),
      detail: list.map((c) =>
        `${c.k.replace(" c=64", "")} ${x(c.r)} (all rounds pooled: ${fmt(c.a, 0)} vs ${fmt(c.b, 0)} µs)`
      ).join(", ")
    })
  }
  // Pipelined statements (issue 22): autocommit statements at 16 and 64 fibers, against the
  // clients that pipeline on their own, on no more server connections than they use.
  const pipelinedKeys = keys.filter((k) => /^(SELECT 1|point query) c=(16|64)$/.test(k))
  if (subjects.includes(pipelined)) {
    for (const other of [multiplex, postgresJs]) {
      if (!subjects.includes(other)) continue
      const list = cells(pipelined, other, pipelinedKeys)
      if (list.length === 0) continue
      const fewer = pipelinedKeys.every((k) => !(sessions(pipelined, k) > sessions(other, k)))
      targets.push({
        name: `pipelined ≥ 1.0× ${
          other === multiplex ? "PgClient.layer multiplex" : "postgres.js"
        }, SELECT 1 and point query at 16 and 64 fibers, on no more server connections`,
        holds: fewer && list.every((c) => c.r >= 1),
        detail: list.map((c) =>
          `${c.k} ${x(c.r)} (${fmt(sessions(pipelined, c.k), 0)} vs ${fmt(sessions(other, c.k), 0)} connections)`
        ).join(", ")
      })
    }
    if (subjects.includes(ceiling)) {
      judge(
        "pipelined ≥ 0.8× pgbench, SELECT 1 and point query at 16 and 64 fibers (stretch)",
        cells(pipelined, ceiling, pipelinedKeys),
        (c) => c.r >= 0.8
      )
    }
    if (subjects.includes(pgClient)) {
      const tx = keys.filter((k) => k.startsWith("transaction"))
      judge(
        "pipelined mode: transactions ≥ 1.0× PgClient.layer, every concurrency",
        cells(pipelined, pgClient, tx),
        (c) => c.r >= 1
      )
    }
  }
  if (overloadSubjects.includes(ours)) {
    for (const other of overloadSubjects.filter((s) => s !== ours)) {
      const a = over(ours, (o) => o.wait.p99)
      const b = over(other, (o) => o.wait.p99)
      if (!Number.isFinite(a) || !Number.isFinite(b)) continue
      targets.push({
        name: `overload: p99 checkout wait ≤ ${other === pgClient ? "PgClient.layer" : "pg.Pool"}'s`,
        holds: a <= b,
        detail: `${fmt(a / 1000, 1)} vs ${fmt(b / 1000, 1)} ms; timeouts ${fmt(over(ours, (o) => o.timeouts), 0)} vs ${
          fmt(over(other, (o) => o.timeouts), 0)
        }`
      })
    }
  }
  if (targets.length > 0) {
    say(
      `End-to-end targets${many ? ` (median of ${runs.length} runs)` : ""}: holds / NO, then the figures judged`,
      targets.map((t) => `${t.holds ? "yes" : "NO "}  ${t.name}\n       ${t.detail}`).join("\n")
    )
  }
  const rss = across(runs, (run) => run.rssMiB ?? NaN)
  if (Number.isFinite(rss)) {
    out.push(`\nResident set after the end-to-end part (every subject in one process): ${fmt(rss, 0)} MiB`)
  }
  const placement = runs.map((run) => run.placement).find((p) => p !== undefined)
  if (placement !== undefined) out.push(`\n(${placement})`)
  return { text: out.join("\n"), targets }
}
