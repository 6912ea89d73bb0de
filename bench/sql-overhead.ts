/**
 * CPU per statement / transaction of the layers above the wire: `SqlClient` over a fake native
 * `PgConnection` that answers each statement on the next `setImmediate` (`sync=1`: at once), `c`
 * workers on 10 connections, rounds interleaved, median CPU µs per operation
 * (`process.cpuUsage`). No server needed.
 *
 *   npm run bench -- --sql-overhead op=select|tx c=16 ops=200000 rounds=7 subjects=ours,effpool,floor
 *   (bundled as the rest of the bench: under tsx the effect/Pool subject runs ~50 % slower)
 *
 * Subjects: `ours` (PgSql over QueuePool over PgDriver.Connection, defaults), `inf`
 * (`cancelTimeout: "Infinity"`), `none` (`sessionReset: "none"`), `noctl`
 * (`transactionControlTimeout: "Infinity"`), `bare` (all three), `effpool` (a SqlClient shaped like
 * `PgClient.layer`: effect/Pool, a connection object per borrow), `qp` / `qpbare` (our QueuePool
 * under the same plain connection wrapper as `effpool`, no PgSql / PgDriver; `qpbare` without
 * metrics), `floor` (SqlClient over ten in-memory connections, no pool). Every subject carries
 * PgClient.layer's span attributes. bench/README.md's round-2 "What changed" figures come from here.
 */
import { PgClient } from "@effect/sql-pg"
import { Effect, Layer, ManagedRuntime, Pool, Redacted, Scope } from "effect"
import { ConnectionPool, Driver, QueuePool } from "effect-db-pool"
import { PgDriver, PgSql } from "effect-db-pool/pg"
import * as Reactivity from "effect/reactivity/Reactivity"
import * as SqlClient from "effect/sql/SqlClient"
import type { Connection as SqlConnection } from "effect/sql/SqlConnection"
import { ConnectionImpl } from "../src/pg/internal/connection.ts"

const arg = (k: string, d: string) => process.argv.find((a) => a.startsWith(k + "="))?.slice(k.length + 1) ?? d
const c = Number(arg("c", "16")),
  op = arg("op", "select"),
  ops = Number(arg("ops", "100000")),
  rounds = Number(arg("rounds", "5"))
const names = arg("subjects", "ours,inf,floor,effpool").split(",")
const sync = arg("sync", "0") === "1"

const result = { command: "SELECT", rowCount: 1, oid: null, rows: [{ "?column?": 1 }], fields: [] }
const answer = <A>(a: A) =>
  sync ? Effect.succeed(a) : Effect.callback<A>((resume) => {
    setImmediate(() => resume(Effect.succeed(a)))
  })
const fakeNative = (): any => {
  const query = (sql: string) => answer(sql === "COMMIT" ? { ...result, command: "COMMIT" } : result)
  const base = { cancel: Effect.void, consumer: undefined }
  return {
    ["~@effect/sql-pg/PgConnection/internals"]: { base, deadError: () => undefined, retireHooks: new Set() },
    processId: 1,
    config: {},
    query,
    queryValues: () => answer([[1]]),
    interrupt: Effect.void,
    pin: Effect.die("no"),
    stream: () => {
      throw new Error("no")
    },
    listen: () => Effect.die("no")
  }
}

const fakeDriverLayer = (cfg: PgDriver.Config) => {
  const real = PgDriver.make(cfg)
  const cancel = cfg.cancelTimeout
  const shape = {
    ...real,
    connect: Effect.map(Scope.make(), (scope) => {
      const conn = new ConnectionImpl(fakeNative(), scope)
      if (cancel !== undefined) conn.cancelMillis = Infinity
      return conn
    })
  }
  return Layer.mergeAll(Layer.succeed(Driver.Driver, shape as any), Layer.succeed(PgDriver.PgDriver, { config: cfg }))
}

const ours = (name: string, cfg: Partial<PgDriver.Config> = {}, pool: any = {}, sqlOpts: any = undefined) => ({
  name,
  layer: PgSql.layer(sqlOpts).pipe(
    Layer.provide(QueuePool.layer({ poolSize: 10, maxOverflow: 0, ...pool })),
    Layer.provide(fakeDriverLayer({ url: Redacted.make("postgres://x@h/db"), ...cfg } as any))
  )
})

/** A connection over a fake native session: the statement's rows, nothing else. */
const conn = (n: any): SqlConnection =>
  ({
    execute: (sql: string, params: ReadonlyArray<unknown>) => Effect.map(n.query(sql, params), (r: any) => r.rows),
    executeRaw: (sql: string, params: ReadonlyArray<unknown>) => n.query(sql, params),
    executeUnprepared: (sql: string, params: ReadonlyArray<unknown>) =>
      Effect.map(n.query(sql, params), (r: any) => r.rows),
    executeValues: () => Effect.succeed([]),
    executeValuesUnprepared: () => Effect.succeed([]),
    executeStream: () => {
      throw new Error("not supported")
    }
  }) as unknown as SqlConnection

const clientLayer = (make: Effect.Effect<SqlClient.SqlClient, never, any>) =>
  Layer.effect(SqlClient.SqlClient, make).pipe(Layer.provide(Reactivity.layer))
// The span attributes PgClient.layer (and PgSql) put on every statement.
const spanAttributes: Array<[string, unknown]> = [["db.system.name", "postgresql"], ["db.namespace", "db"], [
  "server.address",
  "h"
], ["server.port", 5432]]
// The floor: one fake connection per call, no pool at all.
const floor = {
  name: "floor",
  layer: clientLayer(Effect.gen(function*() {
    const conns = Array.from({ length: 10 }, () => conn(fakeNative()))
    let i = 0
    return yield* SqlClient.make({
      acquirer: Effect.sync(() => conns[i++ % 10]!),
      borrower: (f) => f(conns[i++ % 10]!),
      compiler: PgClient.makeCompiler(),
      driver: "pg",
      spanAttributes,
      prepareTransactionControls: true
    })
  }))
}
// PgClient.layer's shape: effect/Pool (concurrency 1) + a connection object per borrow.
const effpool = {
  name: "effpool",
  layer: clientLayer(Effect.gen(function*() {
    const pool = yield* Pool.make({ acquire: Effect.sync(fakeNative), size: 10 })
    return yield* SqlClient.make({
      acquirer: Effect.map(Pool.get(pool), (n) => conn(n)),
      borrower: (f) => Pool.use(pool, (n) => f(conn(n))),
      transactionAcquirer: Effect.map(Pool.get(pool), (n) => conn(n)),
      compiler: PgClient.makeCompiler(),
      driver: "pg",
      spanAttributes,
      prepareTransactionControls: true
    })
  }))
}

// Our QueuePool under the same plain connection wrapper as `effpool` (no PgSql, no PgDriver):
// what the pool itself costs a statement, beside effect/Pool.
const qpool = (name: string, pool: any) => ({
  name,
  layer: clientLayer(Effect.gen(function*() {
    const p = yield* ConnectionPool.ConnectionPool
    return yield* SqlClient.make({
      acquirer: Effect.map(Effect.orDie(p.checkout), (h: any) => conn(h.connection)),
      borrower: (f) => Effect.orDie(p.use((h: any) => f(conn(h.connection)))) as any,
      compiler: PgClient.makeCompiler(),
      driver: "pg",
      spanAttributes,
      prepareTransactionControls: true
    })
  })).pipe(
    Layer.provide(QueuePool.layer({ poolSize: 10, maxOverflow: 0, ...pool })),
    Layer.provide(Driver.layer({
      name: "fake",
      connect: Effect.sync(fakeNative),
      close: () => Effect.void,
      rollback: () => Effect.void,
      commit: () => Effect.void,
      ping: () => Effect.void,
      isDisconnect: () => false,
      needsReset: () => false
    }))
  )
})

const all: Record<string, { name: string; layer: Layer.Layer<any, any, any> }> = {
  ours: ours("ours"),
  inf: ours("inf", { cancelTimeout: "Infinity" }),
  none: ours("sr-none", { sessionReset: "none" }),
  noctl: ours("noctl", {}, {}, { transactionControlTimeout: "Infinity" }),
  bare: ours("bare", { cancelTimeout: "Infinity", sessionReset: "none" }, {}, {
    transactionControlTimeout: "Infinity"
  }),
  floor,
  effpool,
  qp: qpool("qp", {}),
  qpbare: qpool("qpbare", { resetOnReturn: "none", metrics: false })
}
const range = (n: number) => Array.from({ length: n }, (_, i) => i)
const loop = <E>(eff: Effect.Effect<unknown, E>, n: number) =>
  Effect.gen(function*() {
    for (let i = 0; i < n; i++) yield* eff
  })
const subjects = [] as Array<{ name: string; run: (n: number) => Promise<void> }>
for (const n of names) {
  const s = all[n]!
  const rt = ManagedRuntime.make(s.layer as Layer.Layer<SqlClient.SqlClient>)
  const sql = await rt.runPromise(Effect.service(SqlClient.SqlClient))
  const eff = op === "select"
    ? sql`SELECT 1`
    : op === "tx"
    ? sql.withTransaction(sql`SELECT 1`)
    : sql.withTransaction(Effect.andThen(sql`SELECT 1`, sql`SELECT 2`))
  subjects.push({
    name: s.name,
    run: (n) => rt.runPromise(Effect.forEach(range(c), () => loop(eff, n), { concurrency: "unbounded", discard: true }))
  })
}
const per = Math.ceil(ops / c)
for (const s of subjects) await s.run(Math.ceil(per / 4))
const cpu = subjects.map(() => [] as number[])
for (let r = 0; r < rounds; r++) {
  for (let k = 0; k < subjects.length; k++) {
    const i = (k + r) % subjects.length
    ;(globalThis as any).gc?.()
    const c0 = process.cpuUsage()
    await subjects[i]!.run(per)
    const d = process.cpuUsage(c0)
    cpu[i]!.push((d.user + d.system) / (per * c))
  }
}
const med = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b)
  return s[s.length >> 1]!
}
for (let i = 0; i < subjects.length; i++) {
  console.log(
    `${subjects[i]!.name.padEnd(8)} ${op} c=${c}${sync ? " sync" : ""}: CPU ${med(cpu[i]!).toFixed(2)} µs/op  (${
      cpu[i]!.map((x) => x.toFixed(1)).join(" ")
    })`
  )
}
process.exit(0)
