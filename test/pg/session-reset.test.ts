/**
 * Session state between borrowers (`PgDriver.layer({ sessionReset })`), on a real server:
 *
 * - what survives a return under `"none"`, `"auto"` (default) and `"always"`: `SET ROLE`,
 *   `set_config(..., false)`, `search_path`, `statement_timeout`, session characteristics, a temp
 *   table and its rows, `PREPARE`, `LISTEN`, a session advisory lock — on a pool of 1, so the next
 *   borrower gets the same session (same `pg_backend_pid()`);
 * - the spellings that leaked past the old regular-expression scanner (comments, quoted and `U&`
 *   names, `\r`-ended comments, strings holding `, true)`, `DO`, `CALL`...: issue 19): each
 *   changes the session under `"none"`, and under the default the next borrower sees none of it;
 * - the prepared-statement cache after a `DISCARD ALL` (the pool's, or the PgBouncer-style one in
 *   an `onReset` hook): the following transactions all work;
 * - `"auto"` leaves the common path alone (no reset, the driver's prepared statements kept);
 * - advisory locks: 8 fibers on a pool of 3 through `sql.reserve` / a scoped checkout are
 *   exclusive; through plain `sql` the lock lasts one statement's checkout, and none leaks.
 */
import { assert, describe, it, layer } from "@effect/vitest"
import { Effect, Layer, Ref } from "effect"
import type { Scope } from "effect"
import { QueuePool } from "effect-db-pool"
import type { PoolEvent } from "effect-db-pool"
import { PgDriver, PgSql } from "effect-db-pool/pg"
import { PgDatabase } from "effect-db-pool/pg/embedded"
import { SqlClient } from "effect/sql"
import type { SqlError } from "effect/sql/SqlError"
import { admin, appName, Database } from "./fixture.ts"

type Setting = "none" | "auto" | "always"

/** The driver option under test (one place: `undefined` = the default). */
const resetOption = (setting: Setting | undefined): Partial<PgDriver.Config> =>
  setting === undefined ? {} : { sessionReset: setting }

const driverLayer = (applicationName: string, setting: Setting | undefined) =>
  Layer.unwrap(
    Effect.map(Effect.service(PgDatabase.PgDatabase), (db) =>
      PgDriver.layer({ url: db.url, applicationName, connectTimeout: "5 seconds", ...resetOption(setting) }))
  )

const sqlLayer = (
  setting: Setting | undefined,
  applicationName: string,
  pool: QueuePool.Options = { poolSize: 1, maxOverflow: 0 }
) =>
  PgSql.layer().pipe(
    Layer.provideMerge(QueuePool.layer(pool)),
    Layer.provideMerge(driverLayer(applicationName, setting))
  )

const pidOf = Effect.flatMap(
  Effect.service(SqlClient.SqlClient),
  (sql) => Effect.map(sql<{ pid: number }>`select pg_backend_pid() as pid`, (rows) => rows[0]!.pid)
)

const one = <A>(rows: ReadonlyArray<A>): A => rows[0]!

// ------------------------------------------------------------------------- what survives

const role = `edp_sr_role_${process.pid}_${Math.random().toString(36).slice(2, 8)}`

interface Probe {
  readonly name: string
  /** Change the session's state (run as the borrower before). */
  readonly set: Effect.Effect<void, SqlError, SqlClient.SqlClient>
  /** Is the state still there (run as the next borrower)? */
  readonly present: Effect.Effect<boolean, SqlError, SqlClient.SqlClient>
  /** Put the session back (under "none" the state is still there). */
  readonly cleanup: string
}

const statement = (text: string) =>
  Effect.flatMap(Effect.service(SqlClient.SqlClient), (sql) => Effect.asVoid(sql.unsafe(text)))
const flag = (text: string) =>
  Effect.flatMap(
    Effect.service(SqlClient.SqlClient),
    (sql) => Effect.map(sql.unsafe<{ v: boolean }>(text), (rows) => one(rows).v)
  )

const probes: ReadonlyArray<Probe> = [
  {
    name: "SET ROLE",
    set: statement(`set role ${role}`),
    present: flag(`select current_user = '${role}' as v`),
    cleanup: "reset role"
  },
  {
    name: "set_config(..., false)",
    set: statement("select set_config('app.tenant', 'a', false)"),
    present: flag("select coalesce(current_setting('app.tenant', true), '') = 'a' as v"),
    cleanup: "reset app.tenant"
  },
  {
    name: "search_path",
    set: statement("set search_path to edp_sr_nowhere, public"),
    present: flag("select current_setting('search_path') like '%edp_sr_nowhere%' as v"),
    cleanup: "reset search_path"
  },
  {
    name: "statement_timeout",
    set: statement("set statement_timeout = '4321ms'"),
    present: flag("select current_setting('statement_timeout') = '4321ms' as v"),
    cleanup: "reset statement_timeout"
  },
  {
    name: "SESSION CHARACTERISTICS (read only, serializable)",
    set: statement("set session characteristics as transaction read only, isolation level serializable"),
    present: flag(
      "select current_setting('default_transaction_read_only') = 'on' and current_setting('default_transaction_isolation') = 'serializable' as v"
    ),
    cleanup: "set session characteristics as transaction read write, isolation level read committed"
  },
  {
    name: "temp table and its rows",
    // One checkout: under "auto" a temp table lives as long as the checkout that made it.
    set: Effect.scoped(Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const conn = yield* sql.reserve
      yield* conn.executeRaw("create temp table edp_sr_tmp (v int)", [])
      yield* conn.executeRaw("insert into edp_sr_tmp values (1)", [])
    })),
    present: Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const exists = one(yield* sql<{ v: boolean }>`select to_regclass('pg_temp.edp_sr_tmp') is not null as v`).v
      if (!exists) return false
      return one(yield* sql<{ n: number }>`select count(*)::int as n from pg_temp.edp_sr_tmp`).n === 1
    }),
    cleanup: "drop table if exists pg_temp.edp_sr_tmp"
  },
  {
    name: "PREPARE",
    set: statement("prepare edp_sr_p as select 1"),
    present: flag("select count(*) = 1 as v from pg_prepared_statements where name = 'edp_sr_p'"),
    cleanup: "deallocate edp_sr_p"
  },
  {
    name: "LISTEN",
    set: statement("listen edp_sr_chan"),
    present: flag("select 'edp_sr_chan' = any(array(select pg_listening_channels())) as v"),
    cleanup: "unlisten *"
  },
  {
    name: "pg_advisory_lock",
    set: statement("select pg_advisory_lock(4242)"),
    present: flag(
      "select count(*) = 1 as v from pg_locks where locktype = 'advisory' and pid = pg_backend_pid() and objid = 4242 and granted"
    ),
    cleanup: "select pg_advisory_unlock_all()"
  }
]

/** For each probe: change the state as one borrower, look as the next; the same session both times. */
const survivorsOf = (probes: ReadonlyArray<Probe>) =>
  Effect.gen(function*() {
    const survived: Record<string, boolean> = {}
    for (const probe of probes) {
      const before = yield* pidOf
      yield* probe.set
      const present = yield* probe.present
      const after = yield* pidOf
      assert.strictEqual(after, before, `${probe.name}: the pool of 1 handed out another session`)
      survived[probe.name] = present
      if (present) yield* statement(probe.cleanup)
    }
    return survived
  })

const survivors = survivorsOf(probes)

const everything = (value: boolean, of: ReadonlyArray<Probe> = probes) =>
  Object.fromEntries(of.map((p) => [p.name, value]))

// --------------------------------------------- spellings the old scanner missed (issue 19)

const suffix = `${process.pid}_${Math.random().toString(36).slice(2, 8)}`
/** A table with two tenants' rows; a temp view of the same name shadows it for the session. */
const orders = `edp_sr_orders_${suffix}`
/** A procedure that sets a session-level GUC inside (what `CALL` can do). */
const procedure = `edp_sr_proc_${suffix}`
const leakKey = 400_000 + Math.floor(Math.random() * 100_000)

const roleIsSet = flag(`select current_user = '${role}' as v`)
const pathIsSet = flag("select current_setting('search_path') like '%edp_sr_nowhere%' as v")
const gucIsSet = flag("select coalesce(current_setting('app.edp_sr', true), '') <> '' as v")
const tempExists = (name: string) => flag(`select to_regclass('pg_temp.${name}') is not null as v`)

/** `[statement, what is still there if it leaked]`: the examples, then variants. */
const leaks: ReadonlyArray<readonly [string, Effect.Effect<boolean, SqlError, SqlClient.SqlClient>]> = [
  [
    `CREATE OR REPLACE TEMP VIEW ${orders} AS SELECT * FROM public.${orders} WHERE tenant='A'`,
    flag(`select count(*) <> 2 as v from ${orders}`)
  ],
  [`SET/**/ROLE ${role}`, roleIsSet],
  [`SET"search_path"=edp_sr_nowhere, public`, pathIsSet],
  [`-- note\rSET ROLE ${role}`, roleIsSet],
  [`select "set_config"('app.edp_sr', 'a', false)`, gucIsSet],
  [`select set_config/**/('app.edp_sr', 'a', false)`, gucIsSet],
  [`select set_config('app.edp_sr', 'x, true)', false)`, gucIsSet],
  [`select U&"\\0073et_config"('app.edp_sr', 'a', false)`, gucIsSet],
  [`CREATE /**/ TEMP TABLE edp_sr_t1 (v int)`, tempExists("edp_sr_t1")],
  [`CREATE -- c\n TEMP TABLE edp_sr_t2 (v int)`, tempExists("edp_sr_t2")],
  [`SELECT 1 AS v INTO /**/ TEMP edp_sr_t3`, tempExists("edp_sr_t3")],
  [
    `DECLARE edp_sr_c CURSOR WITH/**/HOLD FOR SELECT 1`,
    flag("select count(*) > 0 as v from pg_cursors where name = 'edp_sr_c'")
  ],
  [
    `select U&"pg_advisory_\\006Cock"(${leakKey})`,
    flag(
      `select count(*) > 0 as v from pg_locks where locktype = 'advisory' and pid = pg_backend_pid() and objid = ${leakKey}`
    )
  ],
  [`DO $$ BEGIN EXECUTE 'SE'||'T search_path = edp_sr_nowhere, public'; END $$`, pathIsSet],
  // variants
  [`/* a /* nested */ still a comment */ SET ROLE ${role}`, roleIsSet],
  [
    `/* a /* b */ c */ LISTEN edp_sr_chan2`,
    flag("select 'edp_sr_chan2' = any(array(select pg_listening_channels())) as v")
  ],
  [
    `-- x\rPREPARE edp_sr_p2 AS SELECT 1`,
    flag("select count(*) > 0 as v from pg_prepared_statements where name = 'edp_sr_p2'")
  ],
  [`select set_config('app.edp_sr', E'x\\', true)', false)`, gucIsSet],
  [`select set_config('app.edp_sr', $q$x, true)$q$, false)`, gucIsSet],
  [`select U&"!0073et_config" UESCAPE '!' ('app.edp_sr', 'a', false)`, gucIsSet],
  [`select pg_catalog . "set_config" ('app.edp_sr', 'a', false)`, gucIsSet],
  [`CREATE/**/GLOBAL TEMPORARY TABLE edp_sr_t4 (v int)`, tempExists("edp_sr_t4")],
  [`SELECT 1 AS v INTO /* c */ TEMPORARY TABLE edp_sr_t5`, tempExists("edp_sr_t5")],
  [`EXPLAIN ANALYZE CREATE TEMP TABLE edp_sr_t6 AS SELECT 1`, tempExists("edp_sr_t6")],
  [`UPDATE pg_settings SET setting = 'edp_sr_nowhere, public' WHERE name = 'search_path'`, pathIsSet],
  [`CALL public.${procedure}()`, gucIsSet]
]

const leakProbes: ReadonlyArray<Probe> = leaks.map(([text, present]) => ({
  name: text,
  set: statement(text),
  present,
  cleanup: "DISCARD ALL"
}))

/** The table the temp view shadows and the procedure `CALL` runs, dropped when the test's scope closes. */
const withLeakFixtures = Effect.acquireRelease(
  Effect.scoped(Effect.flatMap(admin, (a) =>
    Effect.forEach([
      `create table public.${orders} (tenant text)`,
      `insert into public.${orders} values ('A'), ('B')`,
      `create procedure public.${procedure}() language plpgsql as $$ begin perform set_config('app.edp_sr', 'leaked', false); end $$`
    ], (text) =>
      a.query(text), { discard: true }))),
  () =>
    Effect.orDie(Effect.scoped(Effect.flatMap(admin, (a) =>
      Effect.forEach(
        [`drop table if exists public.${orders}`, `drop procedure if exists public.${procedure}()`],
        (text) => a.query(text),
        { discard: true }
      ))))
)

/** A role to `SET ROLE` to, dropped when the test's scope closes. */
const withRole = Effect.acquireRelease(
  Effect.scoped(Effect.flatMap(admin, (a) => a.query(`create role ${role}`))),
  () => Effect.orDie(Effect.scoped(Effect.flatMap(admin, (a) => a.query(`drop role if exists ${role}`))))
)

// ------------------------------------------------------------------------- helpers

/** A transaction of statements the session has prepared before. */
const transaction = Effect.flatMap(
  Effect.service(SqlClient.SqlClient),
  (sql) =>
    sql.withTransaction(Effect.gen(function*() {
      const [a] = yield* sql<{ a: number }>`select 1 as a`
      const [b] = yield* sql<{ b: number }>`select ${2}::int as b`
      return a!.a + b!.b
    }))
)

const fiveTransactions = Effect.map(
  Effect.forEach([1, 2, 3, 4, 5], () => Effect.exit(transaction)),
  (exits) => exits.filter((exit) => exit._tag === "Success").length
)

/** Advisory locks of key `key` held by sessions of `name`. */
const advisoryHeld = (key: number, name: string) =>
  Effect.scoped(Effect.flatMap(admin, (a) =>
    Effect.map(
      a.query(
        "select count(*)::int as n from pg_locks l join pg_stat_activity s using (pid) where l.locktype = 'advisory' and l.objid = $1 and l.granted and s.application_name = $2",
        [key, name]
      ),
      (r) => r.rows[0]!.n as number
    )))

/** 8 fibers through `section` (which takes the lock, runs `inside`, and maybe releases it); the most inside at once. */
const contend = <E, R>(
  section: (inside: Effect.Effect<void>) => Effect.Effect<void, E, R | Scope.Scope>
) =>
  Effect.gen(function*() {
    const now = yield* Ref.make(0)
    const most = yield* Ref.make(0)
    const inside = Effect.gen(function*() {
      const n = yield* Ref.updateAndGet(now, (x) => x + 1)
      yield* Ref.update(most, (m) => Math.max(m, n))
      yield* Effect.sleep("40 millis")
      yield* Ref.update(now, (x) => x - 1)
    })
    yield* Effect.forEach([1, 2, 3, 4, 5, 6, 7, 8], () => Effect.scoped(section(inside)), {
      concurrency: "unbounded",
      discard: true
    })
    return yield* Ref.get(most)
  }).pipe(Effect.timeout("20 seconds"))

// ------------------------------------------------------------------------- tests

describe("PgDriver.touchesSessionState (what sessionReset: \"auto\" detects)", () => {
  it("flags statements that may leave session state, not the ones that cannot", () => {
    const cases: ReadonlyArray<readonly [string, boolean]> = [
      ["SET ROLE x", true],
      ["set search_path = a", true],
      ["SET SESSION AUTHORIZATION x", true],
      ["SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY", true],
      ["/* note */ SET statement_timeout = 0", true],
      ["-- note\nset x.y = 1", true],
      ["RESET ALL", true],
      ["select set_config('app.tenant', 'a', false)", true],
      ["select set_config('app.tenant', $1, $2)", true],
      ["select set_config('a', current_setting('b'), true)", false], // the third argument is `true`, read on tokens
      ["SET/**/ROLE x", true],
      ["-- note\rSET ROLE x", true],
      ["select \"set_config\"('a', 'b', false)", true],
      ["do $$ begin perform 1; end $$", true], // DO / CALL may do anything
      ["call p()", true],
      ["create temp table t (x int)", true],
      ["CREATE GLOBAL TEMPORARY TABLE t (x int)", true],
      ["select * into temp t from x", true],
      ["create table pg_temp.t (x int)", true],
      ["PREPARE p AS select 1", true],
      ["LISTEN chan", true],
      ["select pg_advisory_lock(42)", true],
      ["select pg_try_advisory_lock_shared(1, 2)", true],
      ["DECLARE c CURSOR WITH HOLD FOR select 1", true],
      ["DISCARD ALL", true],
      ["deallocate all", true],
      ["do $$ begin set search_path = a; end $$", true],
      ["do $$ begin execute 'set role x'; end $$", true],
      ["select 'set role x'", false], // inside a string
      ["select 1 -- set role x", false],
      // transaction-scoped or no state at all
      ["SET LOCAL statement_timeout = 1", false],
      ["SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", false],
      ["set constraints all deferred", false],
      ["select set_config('app.tenant', $1, true)", false],
      ["select pg_advisory_xact_lock(42)", false],
      ["select pg_advisory_unlock(42)", false],
      ["update t set x = 1", false],
      ["insert into t values (1) on conflict (id) do update set x = excluded.x", false],
      ["with x as (select 1) update t set a = 1 from x", false],
      ["alter table t alter column c set default 1", false],
      ["select temperature, offset_ms from weather", false],
      ["select current_setting('search_path')", false],
      ["BEGIN", false],
      ["COMMIT", false],
      ["SELECT 1", false]
    ]
    const wrong = cases.filter(([sql, expected]) => PgDriver.touchesSessionState(sql) !== expected)
    assert.deepStrictEqual(wrong, [])
  })
})

layer(Database, { timeout: "90 seconds", excludeTestServices: true })("session state between borrowers", (it) => {
  describe("what survives a return (pool of 1: the next borrower gets the same session)", () => {
    it.layer(sqlLayer("none", appName("sr-none")))("sessionReset: \"none\"", (it) => {
      it.effect("everything survives", () =>
        Effect.gen(function*() {
          yield* withRole
          assert.deepStrictEqual(yield* survivors, everything(true))
        }))
    })

    it.layer(sqlLayer("auto", appName("sr-auto")))("sessionReset: \"auto\"", (it) => {
      it.effect("nothing survives", () =>
        Effect.gen(function*() {
          yield* withRole
          assert.deepStrictEqual(yield* survivors, everything(false))
        }))
    })

    it.layer(sqlLayer("always", appName("sr-always")))("sessionReset: \"always\"", (it) => {
      it.effect("nothing survives", () =>
        Effect.gen(function*() {
          yield* withRole
          assert.deepStrictEqual(yield* survivors, everything(false))
        }))
    })

    it.layer(sqlLayer(undefined, appName("sr-default")))("the default", (it) => {
      it.effect("is \"auto\": nothing survives", () =>
        Effect.gen(function*() {
          yield* withRole
          assert.deepStrictEqual(yield* survivors, everything(false))
        }))
    })
  })

  describe("spellings the old scanner missed (pool of 1: the next borrower gets the same session)", () => {
    it.layer(sqlLayer("none", appName("sr-leak-none")))("sessionReset: \"none\"", (it) => {
      it.effect("each of them changes the session (the next borrower sees it)", () =>
        Effect.gen(function*() {
          yield* withRole
          yield* withLeakFixtures
          assert.deepStrictEqual(yield* survivorsOf(leakProbes), everything(true, leakProbes))
        }))
    })

    it.layer(sqlLayer(undefined, appName("sr-leak-default")))("the default (\"auto\")", (it) => {
      it.effect("each is reset: the next borrower sees a clean session", () =>
        Effect.gen(function*() {
          yield* withRole
          yield* withLeakFixtures
          assert.deepStrictEqual(yield* survivorsOf(leakProbes), everything(false, leakProbes))
        }))
    })
  })

  describe("the prepared-statement cache after DISCARD ALL", () => {
    for (const setting of ["auto", "always"] as const) {
      it.layer(sqlLayer(setting, appName(`sr-cache-${setting}`)))(`sessionReset: "${setting}"`, (it) => {
        it.effect("after a reset, 5 of 5 transactions over already-prepared statements work", () =>
          Effect.gen(function*() {
            const sql = yield* SqlClient.SqlClient
            assert.strictEqual(yield* transaction, 3) // prepares BEGIN, both selects, COMMIT
            const pid = yield* pidOf
            yield* sql`set search_path to public` // dirty: DISCARD ALL on return
            assert.strictEqual(
              one(yield* sql<{ p: string }>`select current_setting('search_path') as p`).p,
              "\"$user\", public"
            )
            assert.strictEqual(yield* fiveTransactions, 5)
            assert.strictEqual(yield* pidOf, pid, "discarded, not replaced")
          }))
      })
    }

    const hookName = appName("sr-hook")
    const discardOnReset = {
      poolSize: 1,
      maxOverflow: 0,
      hooks: {
        // The PgBouncer answer (server_reset_query), as a hook: DISCARD ALL on every return.
        onReset: (event: PoolEvent.PoolEvent<unknown>) => (event.connection as PgDriver.Connection).query("DISCARD ALL")
      }
    }
    it.layer(sqlLayer("none", hookName, discardOnReset))("DISCARD ALL in onReset", (it) => {
      it.effect("5 of 5 following transactions work (the driver forgets its statements with the server)", () =>
        Effect.gen(function*() {
          assert.strictEqual(yield* transaction, 3)
          assert.strictEqual(yield* fiveTransactions, 5)
        }))
    })
  })

  describe("when the driver's statement cache cannot be found (another @effect/sql-pg)", () => {
    it.layer(sqlLayer("auto", appName("sr-fallback")))("sessionReset: \"auto\"", (it) => {
      it.effect("a dirty session is closed instead of discarded: the next borrower gets a new, clean one", () =>
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const pool = yield* PgDriver.Pool
          const pid = yield* pool.use((pooled) =>
            Effect.gen(function*() {
              // What a cache under another name looks like to the driver.
              delete (pooled.connection.pg as unknown as { prepared?: unknown }).prepared
              yield* pooled.connection.query("set search_path to edp_sr_nowhere")
              return pooled.connection.processId
            })
          )
          assert.notStrictEqual(yield* pidOf, pid)
          assert.strictEqual(
            one(yield* sql<{ p: string }>`select current_setting('search_path') as p`).p,
            "\"$user\", public"
          )
        }))
    })
  })

  describe("\"auto\" leaves the common path alone", () => {
    it.layer(sqlLayer("auto", appName("sr-cheap")))("sessionReset: \"auto\"", (it) => {
      it.effect("no reset after plain statements: the session's prepared statements survive the return", () =>
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const pool = yield* PgDriver.Pool
          const states = yield* pool.use((pooled) =>
            Effect.gen(function*() {
              const c = pooled.connection
              yield* c.query("select 1 as edp_warm")
              const afterSelect = c.sessionDirty
              yield* c.query("select set_config('app.x', '1', true)") // transaction-local: not dirty
              return [afterSelect, c.sessionDirty, c.needsDiscard]
            })
          )
          assert.deepStrictEqual(states, [false, false, false])
          const kept = one(
            yield* sql<
              { n: number }
            >`select count(*)::int as n from pg_prepared_statements where statement = 'select 1 as edp_warm'`
          ).n
          assert.strictEqual(kept, 1, "the driver's named statement is still prepared")
          const dirty = yield* pool.use((pooled) =>
            Effect.map(pooled.connection.query("set statement_timeout = 0"), () => pooled.connection.needsDiscard)
          )
          assert.isTrue(dirty)
          assert.isFalse(
            yield* pool.use((pooled) => Effect.succeed(pooled.connection.sessionDirty)),
            "clean after the reset"
          )
        }))
    })

    it.layer(sqlLayer("always", appName("sr-always-cost")))("sessionReset: \"always\"", (it) => {
      it.effect("discards on every return: nothing stays prepared", () =>
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          yield* sql`select 1 as edp_warm`
          const kept = one(
            yield* sql<
              { n: number }
            >`select count(*)::int as n from pg_prepared_statements where statement = 'select 1 as edp_warm'`
          ).n
          assert.strictEqual(kept, 0)
        }))
    })
  })

  describe("advisory locks: 8 fibers, pool of 3, the default setting", () => {
    const key = 100_000 + Math.floor(Math.random() * 1_000_000)
    const pool3 = { poolSize: 3, maxOverflow: 0 }

    const reserveName = appName("sr-lock-reserve")
    it.layer(sqlLayer(undefined, reserveName, pool3))("sql.reserve", (it) => {
      it.effect("lock, section, unlock on one reserved session: at most 1 inside", () =>
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const most = yield* contend((inside) =>
            Effect.gen(function*() {
              const conn = yield* sql.reserve
              yield* conn.executeRaw(`select pg_advisory_lock(${key})`, [])
              yield* inside
              yield* conn.executeRaw(`select pg_advisory_unlock(${key})`, [])
            })
          )
          assert.strictEqual(most, 1)
          assert.strictEqual(yield* advisoryHeld(key, reserveName), 0)
        }))
    })

    const checkoutName = appName("sr-lock-checkout")
    it.layer(sqlLayer(undefined, checkoutName, pool3))("a scoped checkout", (it) => {
      it.effect("the lock is released when the checkout returns, even without an unlock: at most 1 inside", () =>
        Effect.gen(function*() {
          const pool = yield* PgDriver.Pool
          const most = yield* contend((inside) =>
            Effect.gen(function*() {
              const pooled = yield* pool.checkout
              yield* pooled.connection.query(`select pg_advisory_lock(${key + 1})`)
              yield* inside
            })
          )
          assert.strictEqual(most, 1)
          assert.strictEqual(yield* advisoryHeld(key + 1, checkoutName), 0)
        }))
    })

    const plainName = appName("sr-lock-plain")
    it.layer(sqlLayer(undefined, plainName, pool3))("plain sql", (it) => {
      it.effect("each statement borrows its own checkout: the lock ends with it (no exclusion), and none leaks", () =>
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const most = yield* contend((inside) =>
            Effect.gen(function*() {
              yield* sql.unsafe(`select pg_advisory_lock(${key + 2})`)
              yield* inside
              yield* sql.unsafe(`select pg_advisory_unlock(${key + 2})`) // another checkout: false, with a warning
            })
          )
          // Documented behaviour, not a guarantee to rely on: the lock was released when the
          // statement that took it returned its session, so the section excluded nothing.
          assert.isAbove(most, 1)
          assert.strictEqual(yield* advisoryHeld(key + 2, plainName), 0, "no lock left behind in a pooled session")
        }))
    })
  })
})
