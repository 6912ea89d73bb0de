/**
 * What a statement's text says about its session, read without a round trip: whether it can
 * leave a transaction open or ends one (so reset on return can be skipped), whether it is
 * transaction control, and what session state it may leave behind. One place decides it
 * ({@link classify}), on tokens of PostgreSQL's own lexical rules (`lexer.ts`), never on patterns
 * a comment or a quote defeats; `sessionReset: "auto"` (connection.ts), `pooler: "transaction"`
 * (pooler.ts) and `PgSql`'s transaction-control bounds all read its {@link Verdict}. `PgDriver`
 * re-exports {@link touchesSessionState}.
 *
 * @internal
 */
import { Lexer } from "./lexer.ts"

/**
 * Session state a statement may leave behind past its transaction (`undefined`: none):
 *
 * - `"set"`: `SET` (also `SET SESSION`, `SET ROLE`, `SET SESSION AUTHORIZATION`, `SET SESSION
 *   CHARACTERISTICS`; not `SET LOCAL` / `SET TRANSACTION` / `SET CONSTRAINTS`), `RESET`,
 *   `set_config(...)` unless its third argument is a literal true, `UPDATE pg_settings`.
 * - `"advisory-lock"`: `pg_advisory_lock`, `pg_advisory_lock_shared`, `pg_try_advisory_lock`,
 *   `pg_try_advisory_lock_shared` (the session-level ones; not the `_xact_` ones).
 * - `"temp-object"`: `CREATE [OR REPLACE] [GLOBAL|LOCAL] TEMP|TEMPORARY ...` (table, view,
 *   sequence; a `TABLE ... ON COMMIT DROP` is not one), `SELECT ... INTO TEMP|TEMPORARY`, any
 *   reference to the `pg_temp` schema.
 * - `"prepare"`: SQL `PREPARE` (not `PREPARE TRANSACTION`) and `DEALLOCATE`.
 * - `"listen"`: `LISTEN`.
 * - `"hold-cursor"`: `DECLARE ... CURSOR WITH HOLD`.
 * - `"discard"`: `DISCARD ...`.
 * - `"routine"`: `DO` and `CALL`: their bodies may do anything.
 */
export type SessionChange =
  | "set"
  | "advisory-lock"
  | "temp-object"
  | "prepare"
  | "listen"
  | "hold-cursor"
  | "discard"
  | "routine"

/** Transaction control, by the first statement's leading keywords. */
export type Control = "begin" | "commit" | "rollback" | "savepoint" | "release"

/** What a statement text (one or several statements) does, as far as its tokens tell. */
export interface Verdict {
  /**
   * Run outside a transaction, it cannot leave one open: no statement at all, or a single
   * `SELECT`/`INSERT`/`UPDATE`/`DELETE`/`WITH`/`VALUES`/`TABLE`/`SHOW` statement.
   */
  readonly autocommitSafe: boolean
  /** Once it succeeds the session is outside any transaction: exactly one `COMMIT`/`ROLLBACK`/`END`/`ABORT` [`WORK`|`TRANSACTION`]. */
  readonly endsTransaction: boolean
  /**
   * The first statement is transaction control: `BEGIN` / `START TRANSACTION` (`"begin"`),
   * `COMMIT` / `END` (also `COMMIT PREPARED`, `AND CHAIN`: `"commit"`), `ROLLBACK` / `ABORT`,
   * `SAVEPOINT`, `RELEASE`.
   */
  readonly control: Control | undefined
  /**
   * Nothing but cleanup: a single `ROLLBACK`/`ABORT` [`WORK`|`TRANSACTION`] [`TO` [`SAVEPOINT`] name]
   * or `RELEASE` [`SAVEPOINT`] name (on a session that died there is nothing left to do).
   */
  readonly cleanup: boolean
  /** A `"begin"` that opens a read-only transaction (`READ ONLY` among its modes). */
  readonly beginsReadOnly: boolean
  /** The session state it may leave (the first found that a transaction-mode pooler refuses, else `"routine"`). */
  readonly sessionChange: SessionChange | undefined
  /** A statement deallocates the server's prepared statements (`DISCARD ALL`, `DEALLOCATE`). */
  readonly dropsStatements: boolean
  /** Exactly `DISCARD ALL` (it cannot run inside a transaction or a function). */
  readonly discardsAll: boolean
}

// ------------------------------------------------------------------------------- tokens

/**
 * A token as the classifier compares it: a word is its folded name (keywords are words); a
 * quoted identifier is `IDENT + name`; punctuation and operators are `PUNCT + text`; a word or
 * identifier without a name (too long, invalid escape) is `IDENT`; anything else `""`.
 */
const IDENT = "\u0001"
const PUNCT = "\u0002"
const OPEN = PUNCT + "("
const CLOSE = PUNCT + ")"
const OPEN_BRACKET = PUNCT + "["
const CLOSE_BRACKET = PUNCT + "]"
const COMMA = PUNCT + ","
const DOT = PUNCT + "."
const SEMICOLON = PUNCT + ";"
/** Punctuation keys, made once (no string built per token). Operators are all `PUNCT`: none is looked at. */
const punctuation = new Map(["(", ")", "[", "]", ",", ";", ".", ":", "::"].map((p) => [p, PUNCT + p]))

const keyOf = (lexer: Lexer): string => {
  switch (lexer.kind) {
    case "word":
      return lexer.name ?? IDENT
    case "ident":
      return IDENT + (lexer.name ?? "")
    case "punct":
      return punctuation.get(lexer.name!) ?? PUNCT
    case "op":
      return PUNCT
    default:
      return ""
  }
}

/** The keys of a name written as a word or as a quoted identifier. */
const spellings = (name: string): ReadonlyArray<string> => [name, IDENT + name]
const pgSettings = new Set(spellings("pg_settings"))
const pgCatalog = new Set(spellings("pg_catalog"))
/** A word or quoted identifier (a name), whatever it spells. */
const isAnyName = (key: string | undefined) => key !== undefined && key !== "" && key[0] !== PUNCT

/** Leading keywords read per statement (enough for `ROLLBACK WORK TO SAVEPOINT name`). */
const leadLength = 6

const autocommitKeywords = new Set(["select", "insert", "update", "delete", "with", "values", "table", "show"])
const endKeywords = new Set(["commit", "rollback", "end", "abort"])
const sessionFunctions = new Set([
  "pg_advisory_lock",
  "pg_advisory_lock_shared",
  "pg_try_advisory_lock",
  "pg_try_advisory_lock_shared"
])
const explainOptions = new Set(["analyze", "analyse", "verbose"])
/** What PostgreSQL's boolean input reads as true (`parse_bool`), trimmed, any case. */
const trueSpellings = new Set(["t", "tr", "tru", "true", "y", "ye", "yes", "on", "1"])

/** The session-level functions, by key (word or quoted identifier) → name. */
const functions = new Map(
  ["set_config", ...sessionFunctions].flatMap((name) => spellings(name).map((key) => [key, name] as const))
)

const isTempSchema = (key: string): boolean => {
  const name = key[0] === IDENT ? key.slice(1) : key
  if (!name.startsWith("pg_temp")) return false
  if (name.length === 7) return true
  // pg_temp_<n>: the backend's own temporary schema, by its real name.
  if (name[7] !== "_" || name.length === 8) return false
  for (let i = 8; i < name.length; i++) if (name.charCodeAt(i) < 48 || name.charCodeAt(i) > 57) return false
  return true
}

/** Is the lexer's current token, the whole third argument of `set_config`, a literal true? */
const isTrueLiteral = (lexer: Lexer, key: string): boolean => {
  if (key === "true") return true
  if (lexer.kind !== "string" || lexer.form === "bit" || lexer.form === "national") return false
  const value = lexer.stringValue(64)
  return value !== undefined && trueSpellings.has(value.trim().toLowerCase())
}

// ------------------------------------------------------------------------------- scan

/** The verdict of one reading of the text, and whether another reading of `'...'` strings could differ. */
interface Reading {
  readonly verdict: Verdict
  readonly backslashInString: boolean
}

/** `CREATE [OR REPLACE] [GLOBAL|LOCAL]` right before a `TEMP` whose previous tokens are `a, b, c, d` (nearest first). */
const createsBefore = (a: string, b: string, c: string, d: string): boolean => {
  if (a === "global" || a === "local") {
    a = b
    b = c
    c = d
  }
  if (a === "replace" && b === "or") a = c
  return a === "create"
}

/**
 * One pass over the tokens. Per statement it keeps its leading keywords, the last four tokens,
 * the bracket depth and a little state for `set_config(...)`, `CREATE TEMP`, `DECLARE`: O(1)
 * memory beyond the lexer's names, O(n) time.
 */
class Reader {
  private change: SessionChange | undefined = undefined
  private drops = false
  private statements = 0
  // The first non-empty statement.
  private firstLead: ReadonlyArray<string> = []
  private firstCount = 0
  private firstReadOnly = false

  // Per statement.
  private count = 0
  private lead: Array<string> = []
  /** Leading keywords after an `EXPLAIN [ANALYZE] [VERBOSE] [(...)]` prefix. */
  private body: Array<string> = []
  /** 0: first token next; 1: among `EXPLAIN`'s options; 2: in its `(...)` list; 3: in the statement. */
  private prefix = 0
  private prefixDepth = 0
  private depth = 0
  /** The last four tokens, nearest first. */
  private p1 = ""
  private p2 = ""
  private p3 = ""
  private p4 = ""
  private readOnly = false
  /** `set_config(`: the depth of its arguments (0: not in one), which argument, the third's tokens. */
  private configDepth = 0
  private configArg = 0
  private configTokens = 0
  private configTrue = false
  /** `CREATE ... TEMP`: 0 none, 1 seen (the next token says what), 2 a temp table, 3 another object. */
  private temp = 0
  private tempAs = false
  private onCommitDrop = false
  private declareFor = false

  private mark(kind: SessionChange): void {
    if (this.change === undefined || this.change === "routine") this.change = kind
  }

  read(lexer: Lexer): Verdict {
    for (let kind = lexer.next(); kind !== "end"; kind = lexer.next()) {
      const key = keyOf(lexer)
      if (key === SEMICOLON) this.endStatement()
      else this.token(lexer, kind, key)
    }
    this.endStatement()
    return this.verdict()
  }

  private token(lexer: Lexer, kind: Lexer["kind"], key: string): void {
    this.count++
    if (this.lead.length < leadLength) this.lead.push(key)
    // EXPLAIN's options, then the statement it runs (EXPLAIN ANALYZE CREATE TABLE AS runs it).
    if (this.prefix === 0) this.prefix = key === "explain" ? 1 : 3
    else if (this.prefix === 1) {
      if (key === OPEN) {
        this.prefix = 2
        this.prefixDepth = 1
      } else if (!explainOptions.has(key)) this.prefix = 3
    } else if (this.prefix === 2) {
      if (key === OPEN) this.prefixDepth++
      else if (key === CLOSE && --this.prefixDepth === 0) this.prefix = 1
    }
    if (this.prefix === 3 && this.body.length < leadLength) this.body.push(key)

    const closing = key === CLOSE || key === CLOSE_BRACKET
    if (key === OPEN || key === OPEN_BRACKET) this.depth++
    else if (closing && this.depth > 0) this.depth--

    // set_config(name, value, is_local): transaction-local only when is_local is a literal true.
    if (this.configDepth > 0) {
      if (closing && this.depth < this.configDepth) {
        if (!(this.configArg === 2 && this.configTokens === 1 && this.configTrue)) this.mark("set")
        this.configDepth = 0
      } else if (key === COMMA && this.depth === this.configDepth) this.configArg++
      else if (this.configArg === 2) {
        this.configTokens++
        this.configTrue = this.configTokens === 1 && isTrueLiteral(lexer, key)
      }
    }

    const wasTemp = this.temp
    if (key === OPEN) {
      // A call: a name (any schema: another schema's function of that name counts too) and `(`.
      const fn = functions.get(this.p1)
      if (fn === "set_config") {
        if (this.configDepth > 0) this.mark("set") // nested in another set_config: not worth reading
        else {
          this.configDepth = this.depth
          this.configArg = this.configTokens = 0
          this.configTrue = false
        }
      } else if (fn !== undefined) this.mark("advisory-lock")
    } else if (kind === "word") this.word(key)
    else if (kind === "ident" && pgSettings.has(key)) this.pgSettings()
    if (kind === "ident" && isTempSchema(key)) this.mark("temp-object")
    // The token after `CREATE ... TEMP` says whether the object is a table (ON COMMIT DROP possible).
    if (wasTemp === 1 && this.temp === 1) this.temp = key === "table" ? 2 : 3

    this.p4 = this.p3
    this.p3 = this.p2
    this.p2 = this.p1
    this.p1 = key
  }

  private word(key: string): void {
    const { p1, p2 } = this
    if (key === "temp" || key === "temporary") {
      // CREATE [OR REPLACE] [GLOBAL|LOCAL] TEMP; SELECT ... INTO TEMP (not INSERT/MERGE INTO a table named temp).
      if (createsBefore(p1, p2, this.p3, this.p4)) {
        this.temp = 1
        this.tempAs = this.onCommitDrop = false
        return
      }
      if (p1 === "into" && p2 !== "insert" && p2 !== "merge") this.mark("temp-object")
    } else if (this.temp === 2 && this.depth === 0) {
      if (key === "as") this.tempAs = true
      else if (key === "drop" && p1 === "commit" && p2 === "on" && !this.tempAs) this.onCommitDrop = true
    }
    if (this.body[0] === "declare" && this.depth === 0) {
      if (key === "for") this.declareFor = true
      else if (key === "hold" && p1 === "with" && !this.declareFor) this.mark("hold-cursor")
    }
    if (key === "only" && p1 === "read") this.readOnly = true
    if (isTempSchema(key)) this.mark("temp-object")
    else if (key === "pg_settings") this.pgSettings()
  }

  /** `UPDATE [ONLY] [pg_catalog.]pg_settings`: `SET` by another name. */
  private pgSettings(): void {
    const { p1, p2, p3, p4 } = this
    const qualified = p1 === DOT
    const before = qualified ? (pgCatalog.has(p2) ? p3 : "") : p1
    const beforeThat = qualified ? p4 : p2
    if (before === "update" || (before === "only" && beforeThat === "update")) this.mark("set")
  }

  private endStatement(): void {
    if (this.count === 0) return
    this.statements++
    if (this.configDepth > 0) this.mark("set") // an unterminated call (the server refuses it)
    if (this.temp !== 0 && !(this.temp === 2 && this.onCommitDrop)) this.mark("temp-object")
    const [k0, k1] = this.body
    if (k0 === "set") {
      if (k1 !== "local" && k1 !== "transaction" && k1 !== "constraints") this.mark("set")
    } else if (k0 === "reset") this.mark("set")
    else if (k0 === "prepare") {
      if (k1 !== "transaction") this.mark("prepare")
    } else if (k0 === "deallocate") {
      this.mark("prepare")
      this.drops = true
    } else if (k0 === "listen") this.mark("listen")
    else if (k0 === "discard") {
      this.mark("discard")
      if (k1 === "all") this.drops = true
    } else if (k0 === "do" || k0 === "call") this.mark("routine")
    if (this.statements === 1) {
      this.firstLead = this.lead
      this.firstCount = this.count
      this.firstReadOnly = this.readOnly
    }
    this.count =
      this.prefix =
      this.prefixDepth =
      this.depth =
        0
    this.lead = []
    this.body = []
    this.p1 =
      this.p2 =
      this.p3 =
      this.p4 =
        ""
    this.configDepth =
      this.configArg =
      this.configTokens =
      this.temp =
        0
    this.readOnly =
      this.configTrue =
      this.tempAs =
      this.onCommitDrop =
      this.declareFor =
        false
  }

  private verdict(): Verdict {
    const first = this.firstLead
    const count = this.firstCount
    const [k0, k1] = first
    const single = this.statements === 1
    const control: Control | undefined = k0 === "begin" || (k0 === "start" && k1 === "transaction")
      ? "begin"
      : k0 === "commit" || k0 === "end"
      ? "commit"
      : k0 === "rollback" || k0 === "abort"
      ? "rollback"
      : k0 === "savepoint"
      ? "savepoint"
      : k0 === "release"
      ? "release"
      : undefined
    return {
      autocommitSafe: this.statements === 0 || (single && k0 !== undefined && autocommitKeywords.has(k0)),
      endsTransaction: single && k0 !== undefined && endKeywords.has(k0) &&
        (count === 1 || (count === 2 && (k1 === "work" || k1 === "transaction"))),
      control,
      cleanup: single && isCleanup(first, count),
      beginsReadOnly: control === "begin" && this.firstReadOnly,
      sessionChange: this.change,
      dropsStatements: this.drops,
      discardsAll: single && count === 2 && k0 === "discard" && k1 === "all"
    }
  }
}

/** One reading of the text (`standardStrings`: how `'...'` strings read). */
const read = (sql: string, standardStrings: boolean): Reading => {
  const lexer = new Lexer(sql, standardStrings)
  const verdict = new Reader().read(lexer)
  return { verdict, backslashInString: lexer.sawBackslashInString }
}

/** `ROLLBACK|ABORT [WORK|TRANSACTION] [TO [SAVEPOINT] name]` or `RELEASE [SAVEPOINT] name`, and nothing else. */
const isCleanup = (lead: ReadonlyArray<string>, count: number): boolean => {
  const k0 = lead[0]
  let i = 1
  if (k0 === "rollback" || k0 === "abort") {
    if (lead[i] === "work" || lead[i] === "transaction") i++
    if (count === i) return true
    if (lead[i] !== "to") return false
    i++
  } else if (k0 !== "release") return false
  if (lead[i] === "savepoint" && count > i + 1) i++
  return count === i + 1 && isAnyName(lead[i])
}

/**
 * The text's verdict, uncached. A `'...'` string with a backslash reads differently when the
 * server's `standard_conforming_strings` is off (a backslash then escapes the quote): such a text
 * is read both ways and the verdicts combined, the safe way (no need to know the setting).
 */
export const scan = (sql: string): Verdict => {
  const on = read(sql, true)
  if (!on.backslashInString) return on.verdict
  const off = read(sql, false).verdict
  const a = on.verdict
  return {
    autocommitSafe: a.autocommitSafe && off.autocommitSafe,
    endsTransaction: a.endsTransaction && off.endsTransaction,
    control: a.control,
    cleanup: a.cleanup && off.cleanup,
    beginsReadOnly: a.beginsReadOnly && off.beginsReadOnly,
    sessionChange: a.sessionChange === undefined || a.sessionChange === "routine"
      ? off.sessionChange ?? a.sessionChange
      : a.sessionChange,
    dropsStatements: a.dropsStatements || off.dropsStatements,
    discardsAll: a.discardsAll && off.discardsAll
  }
}

// ------------------------------------------------------------------------------- cache

/**
 * Verdicts are cached per statement text: texts of at most {@link cachedTextLength} characters,
 * in two generations of at most {@link cacheGeneration} entries each (a full young generation
 * becomes the old one, the old one is dropped; a hit in the old generation moves the entry to
 * the young one). So at most 1,024 texts of at most 4 KiB (≤ 4 MiB of keys, ~100 KiB for typical
 * statements) and a repeated statement costs one `Map` lookup (the same text as the last call:
 * one comparison, e.g. PgSql and the connection reading the same statement).
 */
export const cacheGeneration = 512
export const cachedTextLength = 4096

let young = new Map<string, Verdict>()
let old = new Map<string, Verdict>()
let lastText: string | undefined = undefined
let lastVerdict: Verdict | undefined = undefined

/** What a statement text does (see {@link Verdict}), cached per text. */
export const classify = (sql: string): Verdict => {
  if (sql === lastText) return lastVerdict!
  let verdict: Verdict | undefined
  if (sql.length > cachedTextLength) verdict = scan(sql)
  else {
    verdict = young.get(sql)
    if (verdict === undefined) {
      verdict = old.get(sql) ?? scan(sql)
      if (young.size >= cacheGeneration) {
        old = young
        young = new Map()
      }
      young.set(sql, verdict)
    }
  }
  lastText = sql
  lastVerdict = verdict
  return verdict
}

/** @internal How many verdicts the cache holds (both generations; a text in both counts twice). */
export const cacheSize = (): number => young.size + old.size

/** @internal Empty the cache (tests). */
export const clearCache = (): void => {
  young = new Map()
  old = new Map()
  lastText = lastVerdict = undefined
}

/**
 * May this statement leave state in the session past a return? The test `sessionReset: "auto"`
 * applies to every statement, and the statements `pooler: "transaction"` refuses (all but `DO`
 * / `CALL`). The text is read as PostgreSQL's lexer reads it (comments, nested `/* *\/`, every
 * string and quoted-identifier form with their escapes, dollar quotes, case folding), statement
 * by statement, and flagged for:
 *
 * - leading keywords: `SET` (not `SET LOCAL` / `SET TRANSACTION` / `SET CONSTRAINTS`; so `SET
 *   ROLE`, `SET SESSION AUTHORIZATION`, `SET SESSION CHARACTERISTICS` too), `RESET`, `PREPARE`
 *   (not `PREPARE TRANSACTION`), `DEALLOCATE`, `LISTEN`, `DISCARD`, and `DO` / `CALL` (their
 *   bodies may do anything), also after `EXPLAIN [ANALYZE]`;
 * - `CREATE [OR REPLACE] [GLOBAL|LOCAL] TEMP|TEMPORARY` (a `TABLE ... ON COMMIT DROP` excepted),
 *   `SELECT ... INTO TEMP|TEMPORARY`, `DECLARE ... CURSOR WITH HOLD`, `UPDATE pg_settings`, any
 *   `pg_temp` reference;
 * - calls, by name (unquoted, quoted or `U&`-escaped, any schema): `set_config` unless its third
 *   argument is a literal true (`true`, or a string PostgreSQL reads as true: `'t'`, `'true'`,
 *   `'on'`, `'yes'`, `'1'`...; a parameter, `false`, an expression or a cast count as
 *   session-level), `pg_advisory_lock`, `pg_advisory_lock_shared`, `pg_try_advisory_lock`,
 *   `pg_try_advisory_lock_shared` (not the `_xact_` ones).
 *
 * Several statements: flagged if any one is. Linear time, whatever the text; the verdict is
 * cached per text. Conservative where unsure (a false positive costs one `DISCARD ALL`).
 *
 * What it cannot see: state changed inside a function or procedure body it calls
 * (`select app.set_tenant('a')`, a trigger), dynamic SQL, `nextval` (`currval`/`lastval` are
 * session state, and every serial insert calls it), `LOAD` and dblink connections (which
 * `DISCARD ALL` cannot undo either). `sessionReset: "always"` covers those (but `LOAD`/dblink).
 *
 * @example
 * ```ts
 * import { PgDriver } from "effect-db-pool/pg"
 *
 * PgDriver.touchesSessionState("select set_config('app.tenant', $1, false)") // true
 * PgDriver.touchesSessionState("select set_config('app.tenant', $1, true)") // false: ends with the transaction
 * PgDriver.touchesSessionState("SET/**\/ROLE app_user") // true: a comment is blank space
 * PgDriver.touchesSessionState("update t set x = 1") // false
 * ```
 *
 * @category predicates
 * @since 0.1.0
 */
export const touchesSessionState = (sql: string): boolean => classify(sql).sessionChange !== undefined
