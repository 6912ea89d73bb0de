/**
 * The statement lexer (src/pg/internal/lexer.ts) and the classifier over its tokens
 * (src/pg/internal/session.ts), without a server:
 *
 * - tokens as PostgreSQL's scanner reads them: both comment forms (`--` ends at `\n` or `\r`,
 *   nested `/* *\/`), every string form (`''`, `E''`, `U&''`, `B''`/`X''`, `N''`, dollar quotes),
 *   quoted and `U&` identifiers with their escapes and `UESCAPE`, case folding, `$` in words;
 * - the verdict: session changes (the spellings that leaked past the old regular expressions,
 *   and variants), what must stay clean, transaction control, and several statements;
 * - the cache: a repeated text is one lookup, bounded in entries and text length;
 * - linear time: 1 MB texts built to be pathological finish within a bound (the old scanner did
 *   not finish 24 comment blocks in 5 s), run in a worker so a scanner that hangs can be stopped.
 *
 * The same spellings are run against a real server in test/pg/session-reset.test.ts (the next
 * borrower sees a clean session) and through PgBouncer in test/pg/pgbouncer.test.ts.
 */
import { assert, describe, it } from "@effect/vitest"
import { once } from "node:events"
import { Worker } from "node:worker_threads"
import { Lexer } from "../../src/pg/internal/lexer.ts"
import type { Kind } from "../../src/pg/internal/lexer.ts"
import * as Session from "../../src/pg/internal/session.ts"

/** The tokens of `sql`: `[kind, name or string value or text]`. */
const tokens = (sql: string, standardStrings = true): Array<[Kind, string | undefined]> => {
  const lexer = new Lexer(sql, standardStrings)
  const out: Array<[Kind, string | undefined]> = []
  for (let kind = lexer.next(); kind !== "end"; kind = lexer.next()) {
    out.push([
      kind,
      kind === "string" ?
        lexer.stringValue(1_000) :
        kind === "word" || kind === "ident" || kind === "punct" || kind === "op"
        ? lexer.name
        : sql.slice(lexer.start, lexer.end)
    ])
  }
  return out
}

const change = (sql: string) => Session.classify(sql).sessionChange

describe("Lexer: tokens as PostgreSQL reads them", () => {
  it("comments are blank space: -- ends at \\n or \\r, /* */ nests", () => {
    assert.deepStrictEqual(tokens("a -- x\rb -- y\nc /* d /* e */ f */ g"), [["word", "a"], ["word", "b"], [
      "word",
      "c"
    ], [
      "word",
      "g"
    ]])
    assert.deepStrictEqual(tokens("SET/**/ROLE"), [["word", "set"], ["word", "role"]])
    // unterminated: the rest is comment (the server rejects the text)
    assert.deepStrictEqual(tokens("a /* /* */ set role x"), [["word", "a"]])
    // an operator stops before a comment inside it
    assert.deepStrictEqual(tokens("a+--c\nb */ c"), [["word", "a"], ["op", "+"], ["word", "b"], ["op", "*/"], [
      "word",
      "c"
    ]])
  })

  it("words fold to lower case (ASCII); quoted identifiers keep theirs; $ belongs to a word", () => {
    assert.deepStrictEqual(tokens("SeLeCt \"MiXed\" \"a\"\"b\" a$b x$$ _y Ünï"), [
      ["word", "select"],
      ["ident", "MiXed"],
      ["ident", "a\"b"],
      ["word", "a$b"],
      ["word", "x$$"],
      ["word", "_y"],
      ["word", "Ünï"]
    ])
  })

  it("U& identifiers: \\XXXX, \\+XXXXXX, \\\\, and UESCAPE (comments around it, any string form)", () => {
    assert.deepStrictEqual(tokens("U&\"\\0073et_config\" u&\"\\+000041\\\\\""), [["ident", "set_config"], [
      "ident",
      "A\\"
    ]])
    assert.deepStrictEqual(tokens("U&\"!0073et!!\" UESCAPE '!' x"), [["ident", "set!"], ["word", "x"]])
    assert.deepStrictEqual(tokens("U&\"!0073et\" /* c */ uescape -- d\n E'!' x"), [["ident", "set"], ["word", "x"]])
    // an invalid escape or escape character: no name (the server rejects the text)
    assert.deepStrictEqual(tokens("U&\"\\00zz\" U&\"a\" UESCAPE '+'"), [["ident", undefined], ["ident", undefined]])
    // not a U& identifier: U & "..."
    assert.deepStrictEqual(tokens("U &\"a\""), [["word", "u"], ["op", "&"], ["ident", "a"]])
  })

  it("strings: '' escapes, E'' backslashes, U&'', B''/X'', N'', dollar quotes", () => {
    assert.deepStrictEqual(tokens("'it''s' E'a\\'b\\n' e'\\x41\\101\\u0041' U&'\\0041!' B'01' X'1F' N'n'"), [
      ["string", "it's"],
      ["string", "a'b\n"],
      ["string", "AAA"],
      ["string", "A!"],
      ["string", "01"],
      ["string", "1F"],
      ["string", "n"]
    ])
    // a backslash is plain in '' (standard_conforming_strings on), an escape when it is off
    assert.deepStrictEqual(tokens("'a\\' x"), [["string", "a\\"], ["word", "x"]])
    assert.deepStrictEqual(tokens("'a\\'b' x", false), [["string", "a'b"], ["word", "x"]])
    // nothing inside a string is a token: quotes, comments, semicolons
    assert.deepStrictEqual(tokens("'-- /* ; \"' x"), [["string", "-- /* ; \""], ["word", "x"]])
  })

  it("dollar quotes: $$, $tag$, a near-miss tag is body; $1 is a parameter; a lone $ is itself", () => {
    assert.deepStrictEqual(tokens("$$a'b$$ $t$x $tt$ $t $T$ y$t$ z"), [
      ["string", "a'b"],
      ["string", "x $tt$ $t $T$ y"],
      [
        "word",
        "z"
      ]
    ])
    assert.deepStrictEqual(tokens("$a$x$a$$b$"), [["string", "x"], ["string", ""]])
    assert.deepStrictEqual(tokens("$1 $12::int"), [["param", "$1"], ["param", "$12"], ["punct", "::"], ["word", "int"]])
    assert.deepStrictEqual(tokens("$ 1"), [["other", "$"], ["number", "1"]])
    // unterminated: the rest of the text is the body
    assert.deepStrictEqual(tokens("$q$ set role x; $Q$"), [["string", " set role x; $Q$"]])
  })

  it("numbers, operators and punctuation", () => {
    assert.deepStrictEqual(tokens("1.5e10 .5 0x1F 1_000 1.a"), [
      ["number", "1.5e10"],
      ["number", ".5"],
      ["number", "0x1F"],
      ["number", "1_000"],
      ["number", "1."],
      ["word", "a"]
    ])
    assert.deepStrictEqual(tokens("f(a, b[1]) => c; x.y"), [
      ["word", "f"],
      ["punct", "("],
      ["word", "a"],
      ["punct", ","],
      ["word", "b"],
      ["punct", "["],
      ["number", "1"],
      ["punct", "]"],
      ["punct", ")"],
      ["op", "=>"],
      ["word", "c"],
      ["punct", ";"],
      ["word", "x"],
      ["punct", "."],
      ["word", "y"]
    ])
  })

  it("names longer than 63 bytes have none (the server truncates them: they never equal a short name)", () => {
    const long = "set_config" + "x".repeat(60)
    assert.deepStrictEqual(tokens(`${long} "${long}" ${"é".repeat(32)}`), [["word", undefined], ["ident", undefined], [
      "word",
      undefined
    ]])
    assert.deepStrictEqual(tokens("x".repeat(63)), [["word", "x".repeat(63)]])
  })
})

describe("classify: the session state a statement may leave", () => {
  it("every spelling that leaked past the old scanner is caught (issue 19)", () => {
    const cases: ReadonlyArray<readonly [string, Session.SessionChange]> = [
      ["CREATE OR REPLACE TEMP VIEW orders AS SELECT * FROM public.orders WHERE tenant='A'", "temp-object"],
      ["SET/**/ROLE x", "set"],
      ["SET\"search_path\"=edp, public", "set"],
      ["-- note\rSET ROLE x", "set"],
      ["select \"set_config\"('app.t', 'a', false)", "set"],
      ["select set_config/**/('app.t', 'a', false)", "set"],
      ["select set_config('k', 'x, true)', false)", "set"],
      ["select U&\"\\0073et_config\"('app.t', 'a', false)", "set"],
      ["CREATE /**/ TEMP TABLE t (x int)", "temp-object"],
      ["CREATE -- c\n TEMP TABLE t (x int)", "temp-object"],
      ["SELECT 1 AS v INTO /**/ TEMP t", "temp-object"],
      ["DECLARE c CURSOR WITH/**/HOLD FOR SELECT 1", "hold-cursor"],
      ["select U&\"pg_advisory_\\006Cock\"(42)", "advisory-lock"],
      ["DO $$ BEGIN EXECUTE 'SE'||'T role x'; END $$", "routine"]
    ]
    assert.deepStrictEqual(cases.filter(([sql, kind]) => change(sql) !== kind), [])
  })

  it("variants: nested comments, escapes, dollar tags, UESCAPE, qualified names, other spellings", () => {
    const cases: ReadonlyArray<readonly [string, Session.SessionChange]> = [
      ["/* a /* b */ still a comment */ SET ROLE x", "set"],
      ["/* a /* b */ c */ LISTEN chan", "listen"],
      ["select set_config('k', E'x\\', true)', false)", "set"],
      ["select set_config('k', $q$x, true)$q$, false)", "set"],
      ["select set_config('k', $$x$$, $$false$$)", "set"],
      ["select set_config('k', 'v', $3)", "set"],
      ["select set_config('k', 'v', not false)", "set"],
      ["select set_config('k', 'v', true::boolean)", "set"],
      ["select set_config('k', 'v', (true))", "set"],
      ["select set_config('k', 'v')", "set"],
      ["select set_config('k', set_config('j', 'w', false), true)", "set"],
      ["select U&\"!0073et_config\" UESCAPE '!' ('k', 'v', false)", "set"],
      ["select U&\"!0073et_config\" /* c */ UESCAPE E'!' ('k', 'v', false)", "set"],
      ["select pg_catalog.set_config('k', 'v', false)", "set"],
      ["select \"pg_catalog\" . \"set_config\" ('k', 'v', false)", "set"],
      ["select * from set_config('k', 'v', false)", "set"],
      ["SET SESSION AUTHORIZATION x", "set"],
      ["set session characteristics as transaction read only", "set"],
      ["reset all", "set"],
      ["UPDATE pg_settings SET setting = 'x' WHERE name = 'search_path'", "set"],
      ["update only pg_catalog.\"pg_settings\" set setting = 'x'", "set"],
      ["select 1; set role x", "set"],
      ["explain (analyze, buffers) create temp table t as select 1", "temp-object"],
      ["CREATE/**/GLOBAL TEMPORARY TABLE t (x int)", "temp-object"],
      ["create local temp sequence s", "temp-object"],
      ["create or replace global temp view v as select 1", "temp-object"],
      ["create temp table t (x int) on commit delete rows", "temp-object"],
      ["create temp table t as select 1 as on, 2 as commit", "temp-object"],
      ["create temp view v as select 1 on commit drop", "temp-object"],
      ["SELECT 1 AS v INTO TEMPORARY TABLE t", "temp-object"],
      ["with x as (select 1) select * into temp t from x", "temp-object"],
      ["create table pg_temp.t (x int)", "temp-object"],
      ["create function \"pg_temp\".f() returns int language sql as 'select 1'", "temp-object"],
      ["insert into pg_temp_3.t values (1)", "temp-object"],
      ["declare c binary insensitive scroll cursor with hold for select 1", "hold-cursor"],
      ["select pg_try_advisory_lock_shared(1, 2)", "advisory-lock"],
      ["select \"pg_advisory_lock\" (1)", "advisory-lock"],
      ["select pg_catalog.pg_advisory_lock_shared/**/(1)", "advisory-lock"],
      ["PREPARE p AS select 1", "prepare"],
      ["deallocate all", "prepare"],
      ["discard temp", "discard"],
      ["CALL app.do_it()", "routine"],
      ["call p(); set role x", "set"], // the refusable kind wins over "routine"
      // with standard_conforming_strings off this SET is outside any string: read both ways
      ["select '\\'' ; set role x; select '\\''", "set"]
    ]
    assert.deepStrictEqual(cases.filter(([sql, kind]) => change(sql) !== kind), [])
  })

  it("what leaves no session state stays clean", () => {
    const clean: ReadonlyArray<string> = [
      "SELECT 1",
      "select 'set role x; set_config(''a'', ''b'', false)'",
      "select 1 -- set role x",
      "select 1 /* set role x */",
      "select $$ set role x $$, $t$ listen x $t$",
      "select \"set\", \"temp\" from t",
      "select E'\\' set role x'",
      "SET LOCAL statement_timeout = 1",
      "set local role x",
      "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",
      "set constraints all deferred",
      "select set_config('k', $1, true)",
      "select set_config('k', current_setting('j'), true)",
      "select set_config('k', 'v', TRUE)",
      "select set_config('k', 'v', 'on'), set_config('j', 'w', E' T '), set_config('i', 'u', $$yes$$)",
      "select pg_advisory_xact_lock(42)",
      "select pg_try_advisory_xact_lock_shared(42)",
      "select pg_advisory_unlock(42), pg_advisory_unlock_all()",
      "select pg_advisory_lock",
      "update t set x = 1",
      "insert into t values (1) on conflict (id) do update set x = excluded.x",
      "with x as (select 1) update t set a = 1 from x",
      "alter table t alter column c set default 1",
      "create function f() returns void language sql set search_path = a as 'select 1'",
      "insert into temp values (1)",
      "merge into temp t using s on true when matched then do nothing",
      "create table temp (x int)",
      "create temp table t (x int) on commit drop",
      "CREATE TEMPORARY TABLE t ON COMMIT DROP AS SELECT 1",
      "with hold as (select 1) select * from hold",
      "declare c cursor for with hold as (select 1) select * from hold",
      "select * from pg_settings where name = 'search_path'",
      "update t set x = (select setting from pg_settings limit 1)",
      "select temperature, offset_ms from weather",
      "prepare transaction 'gid'",
      "unlisten *",
      "select x$$ from t",
      "BEGIN",
      "COMMIT",
      ""
    ]
    assert.deepStrictEqual(clean.filter((sql) => change(sql) !== undefined), [])
  })

  it("transaction state: autocommit-safe, ends a transaction, control, cleanup, read-only begin", () => {
    const v = Session.classify
    // autocommit-safe: one SELECT/INSERT/UPDATE/DELETE/WITH/VALUES/TABLE/SHOW, comments allowed
    for (
      const sql of ["select 1", "/* c */ select 1;", "-- c\nINSERT INTO t VALUES (';')", "show x", "table t", "", ";"]
    ) {
      assert.isTrue(v(sql).autocommitSafe, sql)
    }
    for (
      const sql of [
        "select 1; begin",
        "begin",
        "(select 1)",
        "explain select 1",
        "do $$ begin end $$",
        "select 1; select 2"
      ]
    ) {
      assert.isFalse(v(sql).autocommitSafe, sql)
    }
    // ends a transaction: exactly COMMIT / ROLLBACK / END / ABORT [WORK | TRANSACTION]
    for (const sql of ["commit", "/* c */ ROLLBACK;", "end work", "abort transaction"]) {
      assert.isTrue(v(sql).endsTransaction, sql)
    }
    for (
      const sql of ["commit and chain", "rollback to savepoint s", "commit; begin", "commit prepared 'x'", "-- commit"]
    ) {
      assert.isFalse(v(sql).endsTransaction, sql)
    }
    // control: the first statement's leading keywords
    const control = (sql: string) => v(sql).control
    assert.deepStrictEqual(
      [
        "BEGIN",
        "start transaction read only",
        "/* c */ COMMIT",
        "END",
        "commit prepared 'x'",
        "rollback",
        "abort",
        "savepoint s",
        "release s",
        "select 1",
        "-- commit\nselect 1"
      ].map(control),
      [
        "begin",
        "begin",
        "commit",
        "commit",
        "commit",
        "rollback",
        "rollback",
        "savepoint",
        "release",
        undefined,
        undefined
      ]
    )
    // cleanup: a rollback or release, alone
    for (
      const sql of [
        "ROLLBACK",
        "rollback work to savepoint \"s 1\"",
        "ABORT",
        "release savepoint s",
        "release s",
        "rollback to s"
      ]
    ) {
      assert.isTrue(v(sql).cleanup, sql)
    }
    for (const sql of ["rollback prepared 'x'", "rollback; select 1", "release", "rollback and chain", "commit"]) {
      assert.isFalse(v(sql).cleanup, sql)
    }
    // read-only begin: READ ONLY among the modes, not in a comment
    assert.isTrue(v("BEGIN ISOLATION LEVEL SERIALIZABLE, READ ONLY, DEFERRABLE").beginsReadOnly)
    assert.isTrue(v("start transaction read /* c */ only").beginsReadOnly)
    assert.isFalse(v("begin -- read only").beginsReadOnly)
    assert.isFalse(v("begin read write").beginsReadOnly)
    // DISCARD ALL / DEALLOCATE drop the server's prepared statements; only DISCARD ALL alone is a full reset
    assert.deepStrictEqual([v("discard all").dropsStatements, v("discard all").discardsAll], [true, true])
    assert.deepStrictEqual([v("select 1; discard all").dropsStatements, v("select 1; discard all").discardsAll], [
      true,
      false
    ])
    assert.deepStrictEqual([v("deallocate p").dropsStatements, v("discard plans").dropsStatements], [true, false])
    assert.isFalse(v("select 'discard all'").dropsStatements)
  })
})

describe("classify: cache", () => {
  it("a repeated text is one lookup: the same verdict object, without reading the text again", () => {
    Session.clearCache()
    const first = Session.classify("select 1 as cached")
    Session.classify("select 2") // not the last text any more
    assert.strictEqual(Session.classify(["select 1", "as cached"].join(" ")), first)
    assert.notStrictEqual(Session.scan("select 1 as cached"), first)
  })

  it("bounded: at most two generations of entries, and only texts up to the length limit", () => {
    Session.clearCache()
    for (let i = 0; i < Session.cacheGeneration * 5; i++) Session.classify(`select ${i}`)
    assert.isAtMost(Session.cacheSize(), 2 * Session.cacheGeneration)
    // a text still in use survives generations (a hit moves it to the young one)
    Session.clearCache()
    const hot = Session.classify("select 'hot'")
    for (let i = 0; i < Session.cacheGeneration * 5; i++) {
      Session.classify(`select ${i}`)
      Session.classify("select 'hot'")
    }
    assert.strictEqual(Session.classify("select 'hot'"), hot)
    Session.clearCache()
    const long = `select '${"x".repeat(Session.cachedTextLength)}'`
    Session.classify(long)
    assert.strictEqual(Session.cacheSize(), 0)
  })
})

describe("classify: linear time", () => {
  const MB = 1 << 20
  /** Whole units, about `size` characters. */
  const fill = (unit: string, size = MB) => unit.repeat(Math.ceil(size / unit.length))
  /** Pathological 1 MB texts, and whether each may leave session state. */
  const texts: ReadonlyArray<readonly [string, string, boolean]> = [
    // The old scanner: 24 such blocks took 5.3 s, x4 per 2 more; this is 262,144.
    ["comment blocks at a statement start + a trigger word", fill("/**/") + " select 'set'", false],
    ["comment blocks, then SET", fill("/* c */") + "SET ROLE x", true],
    ["nested comment opens", "select 1 /*" + fill("/*"), false],
    ["-- comments ended by \\r", fill("-- set role x\r") + "select 1", false],
    ["one string literal", "select '" + fill("set role x'' ") + "'", false],
    ["E'' backslash escapes", "select E'" + fill("\\' set ") + "'", false],
    ["'' with backslashes (read both ways)", "select '" + fill("\\ set role x ") + "'", false],
    ["one quoted identifier", "select \"" + fill("set\"\" ") + "\"", false],
    ["one U& identifier", "select U&\"" + fill("\\0073") + "\"", false],
    ["a dollar quote full of near-miss tags", "select $aaaa$" + fill("$aaa$aaaaa$") + "$aaaa$", false],
    ["open parentheses in set_config", "select set_config('k', 'v', " + fill("(") + "true", true],
    ["many statements", fill("select 1;") + "set role x", true]
  ]

  const run = async (worker: Worker, which: ReadonlyArray<number>, boundMs: number) => {
    const answer = once(worker, "message")
    let timer: ReturnType<typeof setTimeout> | undefined
    const late = new Promise<"late">((resolve) => (timer = setTimeout(() => resolve("late"), boundMs)))
    worker.postMessage(which)
    const result = await Promise.race([answer.then(([verdicts]) => verdicts as ReadonlyArray<boolean>), late])
    clearTimeout(timer)
    return result
  }

  it("1 MB pathological texts finish within a bound far above linear time (old scanner: never)", async () => {
    const worker = new Worker(new URL("./lexer-worker.ts", import.meta.url), {
      workerData: texts.map(([, sql]) => sql)
    })
    try {
      await once(worker, "message") // ready: module loaded
      // The pattern that froze the old scanner: ~3 ms here; the bound is 150x that.
      const first = await run(worker, [0], 500)
      assert.notStrictEqual(first, "late", "262,144 comment blocks + a trigger word: not classified within 500 ms")
      assert.deepStrictEqual(first, [false])
      // All twelve (12 MB): ~0.1-0.4 s on a loaded 2-core machine; the bound is 5 s.
      const all = await run(worker, texts.map((_, i) => i), 5_000)
      assert.notStrictEqual(all, "late", "12 MB of pathological texts: not classified within 5 s")
      assert.deepStrictEqual(
        texts.map(([name], i) => [name, (all as ReadonlyArray<boolean>)[i]]),
        texts.map(([name, , dirty]) => [name, dirty])
      )
    } finally {
      await worker.terminate()
    }
  }, 20_000)
})
