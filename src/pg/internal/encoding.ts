/**
 * What the PostgreSQL protocol cannot carry, found before anything is sent. A statement's text
 * and its string parameters go out as UTF-8 strings with no NUL in them: a NUL (U+0000) ends the
 * text early (the server then rejects the message as malformed, SQLSTATE 08P01) or is refused
 * as a parameter (22021), and a lone UTF-16 surrogate has no UTF-8 form (the encoder would
 * silently send U+FFFD instead: a different value). Such a statement fails at once with an
 * {@link EncodingError}; the session is untouched.
 *
 * @internal
 */
import { PgTypes } from "@effect/sql-pg"
import { Data } from "effect"
import { SqlError, UnknownError } from "effect/sql/SqlError"

/**
 * A statement the protocol cannot carry: its text or a string parameter holds a NUL character
 * (U+0000) or a lone UTF-16 surrogate. Nothing was sent; the session is untouched. The cause of
 * a `SqlError` whose reason is `UnknownError` (not retryable: the same statement fails the same
 * way).
 *
 * @category errors
 * @since 0.1.0
 */
export class EncodingError extends Data.TaggedError("PgEncodingError")<{
  /** The statement's text, or its parameter `$parameter` (1-based). */
  readonly part: "statement" | "parameter"
  /** Which parameter (1-based), for `part: "parameter"`. */
  readonly parameter?: number | undefined
  /** What the string holds that the protocol cannot carry. */
  readonly problem: EncodingError.Problem
  /** Where in the string (a UTF-16 index; in an array parameter, within the element). */
  readonly offset: number
}> {
  /** Where the string is, what it holds and that nothing was sent. */
  override get message(): string {
    const where = this.part === "statement" ? "the statement text" : `parameter $${this.parameter}`
    const what = this.problem === "nul"
      ? `contains a NUL character (U+0000) at offset ${this.offset}`
      : `contains a lone UTF-16 surrogate at offset ${this.offset} (it has no UTF-8 form)`
    return `PgDriver: ${where} ${what}; PostgreSQL cannot receive it, nothing was sent`
  }
}

/**
 * The types of {@link EncodingError}'s fields.
 *
 * @since 0.2.0
 */
export declare namespace EncodingError {
  /**
   * What the protocol cannot carry: a NUL character, or a lone UTF-16 surrogate (no UTF-8 form).
   *
   * @category models
   * @since 0.2.0
   */
  export type Problem = "nul" | "lone-surrogate"
}

/** `String.prototype.isWellFormed` (ES2024; Node 20+), else a scan for a lone surrogate. */
const isWellFormed: (this: string) => boolean = (String.prototype as { isWellFormed?: (this: string) => boolean })
  .isWellFormed ?? function(this: string) {
  return loneSurrogate(this) < 0
}

/** The index of the first lone surrogate of `text`, or -1. */
const loneSurrogate = (text: string): number => {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c < 0xd800 || c > 0xdfff) continue
    if (c <= 0xdbff) {
      const next = text.charCodeAt(i + 1)
      if (next >= 0xdc00 && next <= 0xdfff) {
        i++
        continue
      }
    }
    return i
  }
  return -1
}

/** What is wrong with `text` (and where), or `undefined`. Two native scans for the common string. */
const problemOf = (text: string): { readonly problem: EncodingError.Problem; readonly offset: number } | undefined => {
  const nul = text.indexOf("\0")
  if (nul >= 0) return { problem: "nul", offset: nul }
  if (isWellFormed.call(text)) return undefined
  return { problem: "lone-surrogate", offset: loneSurrogate(text) }
}

const encodingError = (error: EncodingError): SqlError =>
  new SqlError({ reason: new UnknownError({ cause: error, message: error.message, operation: "execute" }) })

/** The string a parameter sends as text, if it is one (a string, or a typed parameter holding one). */
const textOf = (value: unknown): unknown => PgTypes.isParameter(value) ? value.value : value

/**
 * What in this statement the protocol cannot carry, as the `SqlError` to fail with; `undefined`
 * when it can be sent. Looks at the text, string parameters, and the strings of an array
 * parameter.
 */
export const unsendable = (sql: string, params: ReadonlyArray<unknown>): SqlError | undefined => {
  const inText = problemOf(sql)
  if (inText !== undefined) return encodingError(new EncodingError({ part: "statement", ...inText }))
  for (let i = 0; i < params.length; i++) {
    const value = textOf(params[i])
    let found: ReturnType<typeof problemOf> = undefined
    if (typeof value === "string") found = problemOf(value)
    else if (Array.isArray(value)) {
      for (const element of value) {
        const text = textOf(element)
        if (typeof text === "string" && (found = problemOf(text)) !== undefined) break
      }
    }
    if (found !== undefined) return encodingError(new EncodingError({ part: "parameter", parameter: i + 1, ...found }))
  }
  return undefined
}
