/**
 * What a statement's text says about its session, read without a round trip: whether it can
 * leave a transaction open or ends one (so reset on return can be skipped), and whether it may
 * leave session state behind (`sessionReset: "auto"`). `PgDriver` re-exports
 * {@link touchesSessionState}.
 *
 * @internal
 */

/** Single statements that, run outside a transaction, cannot leave one open. */
export const autocommitSafe = /^\s*(?:select|insert|update|delete|with|values|table|show)\b[^;]*;?\s*$/i
/** Statements that, once they succeed, leave the session outside any transaction. */
export const endsTransaction = /^\s*(?:commit|rollback|end|abort)(?:\s+(?:work|transaction))?\s*;?\s*$/i

/**
 * Session-state detection for `sessionReset: "auto"`, in two steps so the common statement pays
 * one scan for a few literals (`SELECT 1`: ~30 ns, a 140-character select: ~0.2-0.3 µs):
 * {@link mayTouchSession} rules most statements out, {@link touchesSession} decides.
 */
export const mayTouchSession = /set|listen|prepare|discard|dealloc|temp|advisory|hold|characteristics/i
/** Where a statement can start: the text's start, after `;`, a quote or `$` (dynamic SQL, `DO $$`), or a PL/pgSQL keyword; then blanks and comments. */
const statementStart = String.raw`(?:^|[;'$]|\b(?:begin|then|else|loop|execute)\b)(?:\s|/\*[\s\S]*?\*/|--[^\n]*(?:\n|$))*`
/**
 * Statements that may leave state in the session past a return: `SET` (not `SET LOCAL` /
 * `SET TRANSACTION` / `SET CONSTRAINTS`, which end with the transaction; includes `SET ROLE`,
 * `SET SESSION AUTHORIZATION`, `SET SESSION CHARACTERISTICS`), `RESET`, `PREPARE`, `LISTEN`,
 * `DISCARD`, `DEALLOCATE` as statements; `set_config(...)` unless its last argument is a literal
 * `true`; `pg_advisory_lock*` / `pg_try_advisory_lock*` (session-level, not the `_xact_` ones);
 * `CREATE [GLOBAL|LOCAL] TEMP|TEMPORARY`, `INTO TEMP`, `pg_temp`; `WITH HOLD` cursors.
 * Conservative: a false positive costs one `DISCARD ALL`.
 */
export const touchesSession = new RegExp(
  statementStart + String.raw`(?:set\s+(?!local\b|transaction\b|constraints\b)|reset\b|prepare\b|listen\b|discard\b|deallocate\b)` +
    String.raw`|\bset_config\s*\((?![^()]*,\s*true\s*\))` +
    String.raw`|\bpg_(?:try_)?advisory_lock` +
    String.raw`|\b(?:create\s+(?:(?:global|local)\s+)?|into\s+)temp(?:orary)?\b|\bpg_temp` +
    String.raw`|\bwith\s+hold\b|\bsession\s+characteristics\b`,
  "i"
)
/** Statements after which the server no longer holds the driver's prepared statements. */
export const dropsStatements = new RegExp(statementStart + String.raw`(?:discard\s+all|deallocate)\b`, "i")
/** Exactly `DISCARD ALL` (it cannot run inside a transaction or a function). */
export const discardsAll = /^\s*discard\s+all\s*;?\s*$/i

/**
 * May this statement leave state in the session past a return? The test `sessionReset: "auto"`
 * applies to every statement (a cheap, conservative scan of its text: see docs/postgres.md for
 * the list). It cannot see a function or procedure that changes state inside
 * (`select app.set_tenant('a')`), nor `nextval` (`currval`/`lastval` are session state, and every
 * serial insert calls it): `sessionReset: "always"` covers those.
 *
 * @example
 * ```ts
 * import { PgDriver } from "effect-db-pool/pg"
 *
 * PgDriver.touchesSessionState("select set_config('app.tenant', $1, false)") // true
 * PgDriver.touchesSessionState("select set_config('app.tenant', $1, true)") // false: ends with the transaction
 * PgDriver.touchesSessionState("update t set x = 1") // false
 * ```
 *
 * @category predicates
 * @since 0.1.0
 */
export const touchesSessionState = (sql: string): boolean => mayTouchSession.test(sql) && touchesSession.test(sql)
