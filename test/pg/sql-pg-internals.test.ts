/**
 * The private parts of `@effect/sql-pg` the driver reads (`src/pg/internal/sql-pg-internals.ts`),
 * on a real session.
 *
 * - Contract: each internal is there and does what the driver relies on. After an upgrade, the
 *   failing test names the internal that moved (and the README table says what falls back).
 * - Fallbacks: the driver's `Connection` over a session with one internal hidden still works,
 *   the documented way (never a crash, never a silently wrong answer).
 */
import { PgConnection } from "@effect/sql-pg"
import { assert, layer } from "@effect/vitest"
import { Cause, Effect, Exit, Fiber, Logger, Scope } from "effect"
import { PgDatabase } from "effect-db-pool/pg/embedded"
import { isSqlError, SqlError, UnknownError } from "effect/sql/SqlError"
import { ConnectionImpl } from "../../src/pg/internal/connection.ts"
import { isDisconnect } from "../../src/pg/internal/errors.ts"
import * as SqlPg from "../../src/pg/internal/sql-pg-internals.ts"
import { admin, appName, Database } from "./fixture.ts"

/** A real session in the test's scope. */
const session = (tag = "internals") =>
  Effect.flatMap(
    Effect.service(PgDatabase.PgDatabase),
    (db) => PgConnection.make({ url: db.url, applicationName: appName(tag), connectTimeout: "5 seconds" })
  )

const failureOf = (exit: Exit.Exit<unknown, unknown>): unknown =>
  Exit.isFailure(exit) ? exit.cause.reasons.find(Cause.isFailReason)?.error : undefined

const serverCode = (error: unknown): unknown =>
  isSqlError(error) ? (error.reason.cause as { readonly code?: unknown } | undefined)?.code : undefined

/** Wait (a few ms at a time, at most 2 s) until `check` holds. */
const eventually = (check: () => boolean, what: string) =>
  Effect.gen(function*() {
    for (let i = 0; i < 200; i++) {
      if (check()) return
      yield* Effect.sleep("10 millis")
    }
    assert.fail(`never: ${what}`)
  })

/** Is `sql` still running on backend `pid` (a cancel that did not land)? */
const running = (conn: PgConnection.PgConnection, pid: number, sql: string) =>
  Effect.map(
    conn.query("select count(*)::int as n from pg_stat_activity where pid = $1 and query = $2 and state = 'active'", [
      pid,
      sql
    ]),
    (r) => r.rows[0]!.n as number
  )

// ------------------------------------------------------------------------- hiding internals

type Hidden = ReadonlyArray<SqlPg.Internal>

/** A view of `target` whose `keys` are absent (`in` is false, reads are undefined); writes go through. */
const without = <A extends object>(target: A, keys: ReadonlyArray<PropertyKey>): A =>
  keys.length === 0 ? target : new Proxy(target, {
    has: (t, key) => !keys.includes(key) && Reflect.has(t, key),
    get: (t, key) => (keys.includes(key) ? undefined : Reflect.get(t, key, t))
  })

/**
 * The session as an `@effect/sql-pg` would be whose `hidden` internals moved: everything else
 * (the statements themselves) is the real session.
 */
const hide = (native: PgConnection.PgConnection, hidden: Hidden): PgConnection.PgConnection => {
  if (hidden.includes("internals")) return without(native, [SqlPg.internalsKey])
  const internals = (native as unknown as Record<string, Record<string, unknown>>)[SqlPg.internalsKey]!
  const base = internals.base as Record<string, unknown>
  const prepared = base.prepared as object | undefined
  const session = base.session as object
  const baseView = without(
    {
      __proto__: base,
      get prepared() {
        return prepared === undefined || !hidden.includes("base.prepared.statements")
          ? prepared
          : without(prepared, ["statements"])
      },
      get session() {
        return hidden.includes("base.session.socket") ? without(session, ["socket"]) : session
      }
    } as unknown as object,
    []
  )
  // Writes to `cancel` must reach the real session (its statements call `this.cancel`).
  const baseProxy = new Proxy(baseView, {
    has: (t, key) => {
      const name = `base.${String(key)}` as SqlPg.Internal
      return !hidden.includes(name) && Reflect.has(t, key)
    },
    get: (t, key) => {
      const name = `base.${String(key)}` as SqlPg.Internal
      if (hidden.includes(name)) return undefined
      if (key === "prepared" || key === "session") return Reflect.get(t, key, t)
      const value = Reflect.get(base, key, base)
      return typeof value === "function" ? (value as (...args: Array<unknown>) => unknown).bind(base) : value
    },
    set: (_t, key, value) => Reflect.set(base, key, value, base)
  })
  const internalsView = without(
    { ...internals, base: baseProxy },
    hidden.filter((h) => h.startsWith("internals.")).map((h) => h.slice("internals.".length))
  )
  return new Proxy(native, {
    get: (t, key) => (key === SqlPg.internalsKey ? internalsView : Reflect.get(t, key, t))
  })
}

/** The driver's `Connection` over the session with `hidden` internals moved. */
const connectionWithout = (native: PgConnection.PgConnection, hidden: Hidden, sessionReset: "auto" | "none" = "auto") =>
  Effect.map(Scope.make(), (scope) => {
    const connection = new ConnectionImpl(hide(native, hidden), scope, false, sessionReset)
    connection.cancelMillis = 50
    return connection
  })

/** `pg_sleep` long enough that only a cancel or a closed socket ends it in a test. */
const sleepSql = "select pg_sleep(5)"

layer(Database, { timeout: "120 seconds", excludeTestServices: true })("@effect/sql-pg internals", (it) => {
  // ---------------------------------------------------------------------------- contract

  it.effect("contract: every internal the driver reads is found on a real session", () =>
    Effect.scoped(Effect.gen(function*() {
      const native = yield* session()
      const found = SqlPg.access(native)
      assert.deepStrictEqual(
        found.missing,
        [],
        `@effect/sql-pg moved: ${found.missing.join(", ")} (see the README table)`
      )
      assert.strictEqual(found.closeFailsWith, "error")
    })))

  it.effect("contract base.dispatch: the hook hears the server's ParameterStatus reports", () =>
    Effect.scoped(Effect.gen(function*() {
      const native = yield* session()
      const found = SqlPg.access(native)
      assert.isDefined(found.onParameterStatus, "base.dispatch is missing")
      const heard: Array<string> = []
      found.onParameterStatus!((name, value) => heard.push(`${name}=${value}`))
      yield* native.query("set application_name = 'dispatch-contract'")
      assert.include(heard, "application_name=dispatch-contract")
    })))

  it.effect("contract internals.deadError: undefined while alive, the session's error once the server ended it", () =>
    Effect.scoped(Effect.gen(function*() {
      const native = yield* session()
      const found = SqlPg.access(native)
      assert.isDefined(found.deadError, "internals.deadError is missing")
      assert.isUndefined(found.deadError!())
      const observer = yield* admin
      yield* observer.query("select pg_terminate_backend($1)", [native.processId])
      yield* eventually(() => found.deadError!() !== undefined, "internals.deadError() reports the terminated session")
      assert.isTrue(isSqlError(found.deadError!()))
    })))

  it.effect("contract internals.retireHooks: the hooks run when the driver retires the session (a cancel of an idle session)", () =>
    Effect.scoped(Effect.gen(function*() {
      const native = yield* session()
      const found = SqlPg.access(native)
      assert.isDefined(found.onRetire, "internals.retireHooks is missing")
      let retired = 0
      found.onRetire!(() => retired++)
      // A cancel with nothing on the wire could land on the next statement: the driver retires the session.
      yield* found.cancel!.original
      assert.strictEqual(retired, 1)
    })))

  it.effect("contract base.prepared.statements: the driver's cache of named statements, cleared by clear()", () =>
    Effect.scoped(Effect.gen(function*() {
      const native = yield* session()
      const found = SqlPg.access(native)
      assert.isDefined(found.preparedStatements(), "base.prepared.statements is missing")
      const cache = found.preparedStatements() as unknown as Map<string, unknown>
      assert.instanceOf(cache, Map, "base.prepared.statements is no longer a Map")
      yield* native.query("select 1 as one")
      assert.isTrue(cache.size >= 1, "a prepared statement is cached")
      // After DISCARD ALL the server has none of them: cleared, the next use parses again (no 26000).
      yield* native.query("DISCARD ALL", [], false)
      found.preparedStatements()!.clear()
      assert.strictEqual(cache.size, 0)
      yield* native.query("begin", [], false)
      const rows = yield* native.query("select 1 as one")
      yield* native.query("commit", [], false)
      assert.strictEqual(rows.rows[0]!.one, 1)
    })))

  it.effect("contract statement names: the driver names its prepared statements effect_<hex>_<n>", () =>
    Effect.scoped(Effect.gen(function*() {
      const native = yield* session()
      yield* native.query("select 2 as two")
      const names = (yield* native.query("select name from pg_prepared_statements", [], false)).rows.map((r) =>
        r.name as string
      )
      assert.isTrue(names.length >= 1, "nothing prepared")
      for (const name of names) {
        assert.match(name, new RegExp(`^${SqlPg.statementName.source}$`), "statement names changed")
      }
    })))

  it.effect("contract base.cancel + base.consumer: a statement is on the wire while it runs; the cancel stops it (57014)", () =>
    Effect.scoped(Effect.gen(function*() {
      const native = yield* session()
      const found = SqlPg.access(native)
      assert.isDefined(found.cancel, "base.cancel or base.consumer is missing")
      assert.isUndefined(found.cancel!.onWire(), "nothing on the wire while idle")
      const fiber = yield* Effect.forkChild(native.query(sleepSql, [], false))
      yield* eventually(() => found.cancel!.onWire() !== undefined, "base.consumer is set while a statement runs")
      yield* found.cancel!.original
      const exit = yield* Fiber.await(fiber)
      assert.strictEqual(serverCode(failureOf(exit)), "57014")
      assert.isUndefined(found.cancel!.onWire())
    })))

  it.effect("contract base.fatal: fails the statement on the wire with the given error and closes the session", () =>
    Effect.scoped(Effect.gen(function*() {
      const native = yield* session()
      const found = SqlPg.access(native)
      assert.isDefined(found.close, "base.fatal (and base.session.socket) are missing")
      assert.strictEqual(found.closeFailsWith, "error", "base.fatal is missing")
      const fiber = yield* Effect.forkChild(native.query(sleepSql, [], false))
      yield* eventually(() => found.cancel?.onWire() !== undefined, "the statement is on the wire")
      const mine = new SqlError({
        reason: new UnknownError({ cause: new Error("closed by the test"), operation: "query" })
      })
      found.close!(mine)
      assert.strictEqual(failureOf(yield* Fiber.await(fiber)), mine)
      assert.strictEqual(found.deadError?.(), mine)
    })))

  it.effect("contract base.session.socket: destroying it fails the statement on the wire (\"Connection closed\")", () =>
    Effect.scoped(Effect.gen(function*() {
      const native = yield* session()
      const found = SqlPg.access(hide(native, ["base.fatal"]))
      assert.deepStrictEqual(found.missing, ["base.fatal"])
      assert.strictEqual(found.closeFailsWith, "closed", "base.session.socket is missing")
      const fiber = yield* Effect.forkChild(native.query(sleepSql, [], false))
      yield* eventually(() => found.cancel?.onWire() !== undefined, "the statement is on the wire")
      found.close!(new SqlError({ reason: new UnknownError({ cause: undefined, operation: "query" }) }))
      const error = failureOf(yield* Fiber.await(fiber))
      assert.isTrue(isSqlError(error) && error.reason._tag === "ConnectionError", String(error))
    })))

  // --------------------------------------------------------------------------- fallbacks

  it.effect("the adapter names each hidden internal", () =>
    Effect.scoped(Effect.gen(function*() {
      const native = yield* session()
      // The catalogue's internals found on a session: all but the container (`internals`, hidden
      // below) and the statement names (the contract test above reads those).
      const all: Hidden = SqlPg.catalogue.map((entry) => entry.internal).filter((internal) =>
        internal !== "internals" && internal !== "statement names"
      )
      assert.isAbove(all.length, 0)
      for (const internal of all) assert.deepStrictEqual(SqlPg.access(hide(native, [internal])).missing, [internal])
      assert.deepStrictEqual(SqlPg.access(hide(native, ["internals"])).missing, ["internals", ...all])
    })))

  it.effect("no internals at all: statements run and track the session as usual", () =>
    Effect.scoped(Effect.gen(function*() {
      const native = yield* session()
      const connection = yield* connectionWithout(native, ["internals"])
      const rows = yield* connection.query("select 1 as one")
      assert.strictEqual(rows.rows[0]!.one, 1)
      assert.isTrue(connection.knownIdle)
      assert.isFalse(connection.isDead)
      yield* connection.query("set application_name = 'edp-moved'")
      assert.isTrue(connection.sessionDirty)
    })))

  it.effect("internals.deadError missing: the retire hooks still tell a session died; without both, its ping fails as a disconnect", () =>
    Effect.scoped(Effect.gen(function*() {
      const native = yield* session()
      const told = yield* connectionWithout(native, ["internals.deadError"])
      const connection = yield* connectionWithout(native, ["internals.deadError", "internals.retireHooks"])
      const observer = yield* admin
      yield* observer.query("select pg_terminate_backend($1)", [native.processId])
      yield* eventually(() => SqlPg.access(native).deadError!() !== undefined, "the session ended")
      assert.isTrue(told.isDead, "the driver retires a session that died: the hook tells")
      assert.isFalse(connection.isDead, "without internals.deadError and retireHooks the driver cannot know")
      const ping = yield* Effect.exit(connection.ping)
      const error = failureOf(ping)
      assert.isTrue(isDisconnect(error), `a disconnect: ${String(error)}`)
    })))

  it.effect("internals.retireHooks missing: a session whose statement was interrupted is retired (with them: kept)", () =>
    Effect.scoped(Effect.gen(function*() {
      const interrupted = (hidden: Hidden) =>
        Effect.gen(function*() {
          const native = yield* session("retire")
          const connection = yield* connectionWithout(native, hidden)
          connection.cancelMillis = 2000 // a healthy server confirms the cancel well within
          const exit = yield* Effect.exit(connection.query(sleepSql, [], false).pipe(Effect.timeout("100 millis")))
          assert.isTrue(Exit.isFailure(exit))
          return connection.isDead
        })
      assert.isFalse(yield* interrupted([]), "a confirmed cancel keeps the session")
      assert.isTrue(yield* interrupted(["internals.retireHooks"]), "without retire hooks the session is retired")
    })))

  it.effect("base.prepared.statements missing: DISCARD ALL is refused (the pool closes the session instead); with it, the session is reset", () =>
    Effect.scoped(Effect.gen(function*() {
      const reset = (hidden: Hidden) =>
        Effect.gen(function*() {
          const native = yield* session("discard")
          const connection = yield* connectionWithout(native, hidden)
          yield* connection.query("set application_name = 'edp-dirty'")
          const exit = yield* Effect.exit(connection.reset("ROLLBACK"))
          const name = (yield* native.query("show application_name", [], false)).rows[0]!.application_name
          return { exit, name }
        })
      const kept = yield* reset([])
      assert.isTrue(Exit.isSuccess(kept.exit))
      assert.notStrictEqual(kept.name, "edp-dirty", "DISCARD ALL ran")
      const moved = yield* reset(["base.prepared.statements"])
      const error = failureOf(moved.exit)
      assert.isTrue(isSqlError(error) && error.reason._tag === "UnknownError", String(error))
      assert.match((error as SqlError).message, /prepared-statement cache.*closing the session instead/)
      assert.strictEqual(moved.name, "edp-dirty", "nothing was sent: the pool closes this session")
    })))

  for (const hidden of [["base.cancel"], ["base.consumer"], ["base.fatal", "base.session.socket"]] as const) {
    it.effect(`${hidden.join(" + ")} missing: an interrupted statement still returns within cancelTimeout, and is cancelled on the server`, () =>
      Effect.scoped(Effect.gen(function*() {
        const native = yield* session("cancel")
        const connection = yield* connectionWithout(native, hidden)
        const started = Date.now()
        const exit = yield* Effect.exit(connection.query(sleepSql, [], false).pipe(Effect.timeout("100 millis")))
        const elapsed = Date.now() - started
        assert.isTrue(Exit.isFailure(exit))
        // 100 ms + cancelTimeout 50 ms, on a busy machine; the statement itself would take 5 s.
        assert.isBelow(elapsed, 2000, `returned after ${elapsed} ms`)
        const observer = yield* admin
        let left = 1
        for (let i = 0; i < 100 && left > 0; i++) {
          left = yield* running(observer, native.processId, sleepSql)
          if (left > 0) yield* Effect.sleep("20 millis")
        }
        assert.strictEqual(left, 0, "the statement was cancelled on the server")
      })))
  }

  it.effect("base.fatal missing: a transaction-control bound closes the socket (the statement fails as a disconnect)", () =>
    Effect.scoped(Effect.gen(function*() {
      const native = yield* session("within")
      const connection = yield* connectionWithout(native, ["base.fatal"])
      const expired = new SqlError({ reason: new UnknownError({ cause: new Error("bound"), operation: "query" }) })
      const started = Date.now()
      const exit = yield* Effect.exit(connection.within(connection.query(sleepSql, [], false), 100, () => expired))
      const elapsed = Date.now() - started
      const error = failureOf(exit)
      assert.isBelow(elapsed, 2000, `returned after ${elapsed} ms`)
      assert.isTrue(isSqlError(error) && error.reason._tag === "ConnectionError", String(error))
      assert.isTrue(connection.isDead)
    })))

  it.effect("base.fatal + base.session.socket missing: the bound still returns on time with its error; the session is marked dead", () =>
    Effect.scoped(Effect.gen(function*() {
      const native = yield* session("within")
      const connection = yield* connectionWithout(native, ["base.fatal", "base.session.socket"])
      const expired = new SqlError({ reason: new UnknownError({ cause: new Error("bound"), operation: "query" }) })
      const started = Date.now()
      const exit = yield* Effect.exit(connection.within(connection.query(sleepSql, [], false), 100, () => expired))
      const elapsed = Date.now() - started
      assert.isBelow(elapsed, 2000, `returned after ${elapsed} ms`)
      assert.strictEqual(failureOf(exit), expired)
      assert.isTrue(connection.isDead)
      assert.strictEqual(connection.deadError, expired)
    })))

  it.effect("the warning at connect names each missing internal and its fallback, once per set", () =>
    Effect.gen(function*() {
      const lines: Array<string> = []
      const capture = Logger.layer([
        Logger.make((o) => void lines.push(Array.isArray(o.message) ? o.message.join(" ") : String(o.message)))
      ])
      const missing: Hidden = ["base.fatal", "base.session.socket"]
      yield* SqlPg.warnMissing(missing).pipe(Effect.provide(capture))
      yield* SqlPg.warnMissing(missing).pipe(Effect.provide(capture))
      yield* SqlPg.warnMissing([]).pipe(Effect.provide(capture))
      assert.strictEqual(lines.length, 1)
      assert.include(lines[0]!, "lacks internals the driver reads (base.fatal,base.session.socket)")
      assert.include(lines[0]!, "base.fatal: the socket is destroyed")
    }))
})
