/**
 * A PostgreSQL lexer: statement text as the server's scanner (`scan.l`) splits it into tokens,
 * in one pass and linear time, for deciding what a statement does without a round trip (see
 * `session.ts`). It skips whitespace and comments and yields words, quoted identifiers, strings,
 * numbers, parameters, operators and punctuation, with names normalised as the server does.
 *
 * The rules followed:
 *
 * - Whitespace: space, `\t`, `\n`, `\r`, `\f`, `\v`. `--` comments end at `\n` or `\r`; `/* *\/`
 *   comments nest; an unterminated comment, string or identifier runs to the end of the text
 *   (the server rejects the whole text then, so nothing after it runs).
 * - Words (unquoted identifiers and keywords): a letter, `_` or any non-ASCII character, then
 *   those, digits or `$`. Their name is folded to lower case (ASCII only, as the server does for
 *   UTF-8).
 * - Quoted identifiers `"..."` (`""` is a quote) and `U&"..."` (`\XXXX`, `\+XXXXXX`, `\\`, with an
 *   optional `UESCAPE 'c'` after it, comments allowed in between): their name is the decoded text,
 *   not folded. A name longer than 63 bytes (`NAMEDATALEN - 1`: the server truncates it) or one
 *   with an invalid escape has no name (`undefined`): it never equals a short name.
 * - Strings: `'...'` (`''` is a quote; with `standard_conforming_strings` off a backslash escapes
 *   too), `E'...'` (backslash escapes and `''`), `U&'...'` (as `'...'`, Unicode escapes decoded on
 *   demand, `UESCAPE` as above), `B'...'` / `X'...'` (no escapes), `N'...'`, and dollar quotes
 *   `$$...$$` / `$tag$...$tag$` (the tag: a letter, `_` or non-ASCII, then those or digits). Only
 *   the value of a short string is ever decoded ({@link Lexer.stringValue}).
 * - `$1` is a parameter; `$` inside a word belongs to the word (`a$b`, `x$$`).
 * - Numbers: digits, `_`, one `.`, an exponent, `0x`/`0o`/`0b` prefixes. Letters right after a
 *   number start a word (the server rejects such text, PostgreSQL 15+, or reads two tokens).
 * - Operators: runs of `+ - * / < > = ~ ! @ # % ^ & | \` ?`, cut before a `--` or `/*` inside.
 *   Punctuation: `( ) [ ] , ; . :` and `::`.
 *
 * Linear: every character is read a bounded number of times (a failed `UESCAPE` look-ahead
 * re-reads the blanks and comments after a `U&` token once; a `$` that fails to close a dollar
 * quote is re-read once, as the server's `dolqfailed` rule does). No regular expression.
 *
 * @internal
 */

/** What a token is. */
export type Kind =
  | "end"
  /** An unquoted identifier or keyword; `name` is its folded text. */
  | "word"
  /** A quoted identifier (`"..."`, `U&"..."`); `name` is its decoded text. */
  | "ident"
  /** A string constant of any form ({@link Lexer.stringValue}). */
  | "string"
  | "number"
  /** `$1` */
  | "param"
  /** An operator; `name` is its text when short. */
  | "op"
  /** `(`, `)`, `[`, `]`, `,`, `;`, `.`, `:`, `::`; `name` is its text. */
  | "punct"
  /** Any other character (`name` is it). */
  | "other"

/** How a string token is written: what its escapes are. */
export type StringForm = "standard" | "escape" | "unicode" | "dollar" | "bit" | "national"

/** Longest name the server keeps (`NAMEDATALEN - 1` bytes). */
const maxNameBytes = 63
/** Raw length past which a quoted identifier cannot decode to a name of at most 63 bytes (8 per escaped code point). */
const maxNameSource = maxNameBytes * 8 + 16
/** Operators are named up to this length (longer runs: `name` is `undefined`). */
const maxOperatorName = 4

// Character classes, by code unit. Non-ASCII (>= 0x80) counts as a letter, as the server's
// `ident_start` / `ident_cont` (`\200-\377`) do for every byte of a multi-byte character.
const isSpace = (c: number) => c === 32 || (c >= 9 && c <= 13)
const isDigit = (c: number) => c >= 48 && c <= 57
const isLetter = (c: number) => (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c === 95 || c >= 128
const isIdentCont = (c: number) => isLetter(c) || isDigit(c) || c === 36
const isTagCont = (c: number) => isLetter(c) || isDigit(c)
const isHex = (c: number) => isDigit(c) || (c >= 97 && c <= 102) || (c >= 65 && c <= 70)
/** `+ - * / < > = ~ ! @ # % ^ & | \` ?`, by code unit. */
const operatorTable = new Uint8Array(128)
for (const ch of "+-*/<>=~!@#%^&|`?") operatorTable[ch.charCodeAt(0)] = 1
const isOperatorChar = (c: number) => c < 128 && operatorTable[c] === 1

const QUOTE = 39 // '
const DQUOTE = 34 // "
const BACKSLASH = 92
const DOLLAR = 36
const DASH = 45
const SLASH = 47
const STAR = 42
const DOT = 46
const COLON = 58
const AMPERSAND = 38
const NL = 10
const CR = 13

/** ASCII lower case (the server folds unquoted identifiers this way in UTF-8). */
const foldAscii = (text: string): string => {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c >= 65 && c <= 90) return asciiLower(text)
  }
  return text
}

const asciiLower = (text: string): string => {
  let out = ""
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    out += c >= 65 && c <= 90 ? String.fromCharCode(c + 32) : text[i]
  }
  return out
}

/** UTF-8 length of `text` (UTF-16 code units in, bytes out). */
const utf8Length = (text: string): number => {
  let bytes = 0
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c < 0x80) bytes += 1
    else if (c < 0x800) bytes += 2
    else if (c >= 0xd800 && c <= 0xdbff) {
      bytes += 4
      i++
    } else bytes += 3
  }
  return bytes
}

/**
 * Decode PostgreSQL Unicode escapes (`U&` forms) in `body` with escape character `escape`:
 * `cc` is `c`, `cXXXX` a code point (4 hex digits), `c+XXXXXX` one of 6; surrogate pairs
 * combine. `undefined` on an invalid escape (the server rejects it).
 */
export const decodeUnicode = (body: string, escape: number): string | undefined => {
  let out = ""
  let high = -1
  for (let i = 0; i < body.length; i++) {
    const c = body.charCodeAt(i)
    if (c !== escape) {
      if (high >= 0) return undefined
      out += body[i]
      continue
    }
    if (body.charCodeAt(i + 1) === escape) {
      if (high >= 0) return undefined
      out += body[i]
      i++
      continue
    }
    let digits = 4
    let from = i + 1
    if (body.charCodeAt(from) === 43) { // +
      digits = 6
      from++
    }
    let code = 0
    for (let k = 0; k < digits; k++) {
      const h = body.charCodeAt(from + k)
      if (!isHex(h)) return undefined
      code = code * 16 + parseInt(body[from + k]!, 16)
    }
    i = from + digits - 1
    if (code >= 0xd800 && code <= 0xdbff) {
      if (high >= 0) return undefined
      high = code
      continue
    }
    if (code >= 0xdc00 && code <= 0xdfff) {
      if (high < 0) return undefined
      code = 0x10000 + ((high - 0xd800) << 10) + (code - 0xdc00)
      high = -1
    } else if (high >= 0) return undefined
    if (code === 0 || code > 0x10ffff) return undefined
    out += String.fromCodePoint(code)
  }
  return high >= 0 ? undefined : out
}

/** Is `c` acceptable as a `UESCAPE` character (not a hex digit, `+`, a quote or whitespace)? */
const validEscape = (c: number) => !isHex(c) && c !== 43 && c !== QUOTE && c !== DQUOTE && !isSpace(c)

/**
 * A cursor over one statement text: {@link Lexer.next} moves to the next token and sets
 * `kind`, `start`, `end` and `name`. No allocation per token beyond the names it keeps.
 */
export class Lexer {
  kind: Kind = "end"
  /** Where the current token starts and ends (`text.slice(start, end)`). */
  start = 0
  end = 0
  /** The normalised name of a word or quoted identifier, or the text of punctuation and short operators. */
  name: string | undefined = undefined
  /** For a string token: its form, and where its body (between the delimiters) starts and ends. */
  form: StringForm = "standard"
  private bodyStart = 0
  private bodyEnd = 0
  /** The escape character of the current `U&` token (`\` unless `UESCAPE` says otherwise). */
  private escape = BACKSLASH
  /** A backslash was seen inside a `'...'` string (its reading depends on `standard_conforming_strings`). */
  sawBackslashInString = false
  private pos = 0
  readonly text: string
  /** `standard_conforming_strings` (on by default since PostgreSQL 9.1): backslashes in `'...'` are plain. */
  readonly standardStrings: boolean

  constructor(text: string, standardStrings = true) {
    this.text = text
    this.standardStrings = standardStrings
  }

  /** Skip whitespace and comments from `pos`; the position after them. */
  private skipBlank(pos: number): number {
    const text = this.text
    const n = text.length
    while (pos < n) {
      const c = text.charCodeAt(pos)
      if (isSpace(c)) {
        pos++
      } else if (c === DASH && text.charCodeAt(pos + 1) === DASH) {
        pos += 2
        while (pos < n) {
          const d = text.charCodeAt(pos)
          if (d === NL || d === CR) break
          pos++
        }
      } else if (c === SLASH && text.charCodeAt(pos + 1) === STAR) {
        let depth = 1
        pos += 2
        while (pos < n && depth > 0) {
          const d = text.charCodeAt(pos)
          if (d === SLASH && text.charCodeAt(pos + 1) === STAR) {
            depth++
            pos += 2
          } else if (d === STAR && text.charCodeAt(pos + 1) === SLASH) {
            depth--
            pos += 2
          } else pos++
        }
      } else break
    }
    return pos
  }

  /** Move to the next token; its kind (`"end"` at the end of the text). */
  next(): Kind {
    const text = this.text
    const n = text.length
    const pos = this.skipBlank(this.pos)
    this.start = pos
    this.name = undefined
    if (pos >= n) {
      this.pos = n
      this.end = n
      return (this.kind = "end")
    }
    const c = text.charCodeAt(pos)
    const c1 = text.charCodeAt(pos + 1)
    // Prefixed strings and identifiers: E'', B'', X'', N'', U&'', U&"".
    if (c1 === QUOTE) {
      if (c === 101 || c === 69) return this.quoted(pos + 2, "escape", true)
      if (c === 98 || c === 66 || c === 120 || c === 88) return this.bitString(pos + 2)
      if (c === 110 || c === 78) return this.quoted(pos + 2, "national", !this.standardStrings)
    }
    if ((c === 117 || c === 85) && c1 === AMPERSAND) {
      const c2 = text.charCodeAt(pos + 2)
      if (c2 === QUOTE) return this.unicodeEscape(this.quoted(pos + 3, "unicode", false))
      if (c2 === DQUOTE) return this.unicodeEscape(this.quotedIdent(pos + 3, true))
    }
    if (isLetter(c)) {
      // Note upper case (to fold) and non-ASCII (more than one byte each) on the way.
      let flags = c >= 128 ? 2 : c <= 90 ? 1 : 0
      let end = pos + 1
      while (end < n) {
        const d = text.charCodeAt(end)
        if (d >= 97 && d <= 122) end++
        else if (isIdentCont(d)) {
          if (d >= 128) flags |= 2
          else if (d >= 65 && d <= 90) flags |= 1
          end++
        } else break
      }
      this.pos = this.end = end
      if (end - pos <= maxNameBytes) {
        const raw = text.slice(pos, end)
        this.name = (flags & 2) !== 0 && utf8Length(raw) > maxNameBytes
          ? undefined
          : (flags & 1) !== 0
          ? asciiLower(raw)
          : raw
      }
      return (this.kind = "word")
    }
    if (c === QUOTE) return this.quoted(pos + 1, "standard", !this.standardStrings)
    if (c === DQUOTE) return this.quotedIdent(pos + 1, false)
    if (c === DOLLAR) return this.dollar(pos)
    if (isDigit(c) || (c === DOT && isDigit(c1))) return this.number(pos)
    if (c === COLON && c1 === COLON) return this.punct(pos, 2)
    if (c === 40 || c === 41 || c === 91 || c === 93 || c === 44 || c === 59 || c === DOT || c === COLON) {
      return this.punct(pos, 1)
    }
    if (isOperatorChar(c)) {
      let end = pos + 1
      while (end < n && isOperatorChar(text.charCodeAt(end))) {
        const d = text.charCodeAt(end)
        const d1 = text.charCodeAt(end + 1)
        if ((d === DASH && d1 === DASH) || (d === SLASH && d1 === STAR)) break
        end++
      }
      this.pos = this.end = end
      this.name = end - pos <= maxOperatorName ? text.slice(pos, end) : undefined
      return (this.kind = "op")
    }
    this.pos = this.end = pos + 1
    this.name = text[pos]
    return (this.kind = "other")
  }

  private punct(pos: number, length: number): Kind {
    this.pos = this.end = pos + length
    // One-character strings are V8's shared single-character strings: nothing is allocated.
    this.name = length === 1 ? this.text[pos] : "::"
    return (this.kind = "punct")
  }

  /**
   * A string whose body starts at `from`: `''` is a quote; with `backslashes`, a backslash
   * escapes the next character.
   */
  private quoted(from: number, form: StringForm, backslashes: boolean): Kind {
    const text = this.text
    const n = text.length
    let pos = from
    while (pos < n) {
      const c = text.charCodeAt(pos)
      if (c === QUOTE) {
        if (text.charCodeAt(pos + 1) === QUOTE) {
          pos += 2
          continue
        }
        break
      }
      if (c === BACKSLASH) {
        if (form === "standard" || form === "national") this.sawBackslashInString = true
        if (backslashes) {
          pos += 2
          continue
        }
      }
      pos++
    }
    this.form = form
    this.bodyStart = from
    this.bodyEnd = Math.min(pos, n)
    this.pos = this.end = Math.min(pos + 1, n)
    this.escape = BACKSLASH
    return (this.kind = "string")
  }

  /** `B'...'` / `X'...'`: no escapes at all. */
  private bitString(from: number): Kind {
    const text = this.text
    let pos = text.indexOf("'", from)
    if (pos < 0) pos = text.length
    this.form = "bit"
    this.bodyStart = from
    this.bodyEnd = pos
    this.pos = this.end = Math.min(pos + 1, text.length)
    return (this.kind = "string")
  }

  /** A quoted identifier whose body starts at `from` (`""` is a quote). */
  private quotedIdent(from: number, unicode: boolean): Kind {
    const text = this.text
    const n = text.length
    let pos = from
    while (pos < n) {
      if (text.charCodeAt(pos) === DQUOTE) {
        if (text.charCodeAt(pos + 1) === DQUOTE) {
          pos += 2
          continue
        }
        break
      }
      pos++
    }
    this.bodyStart = from
    this.bodyEnd = Math.min(pos, n)
    this.pos = this.end = Math.min(pos + 1, n)
    this.escape = BACKSLASH
    // The name, unless it is too long to be kept whole (decoded later for U&, after UESCAPE).
    const length = this.bodyEnd - from
    this.name = !unicode && length <= maxNameSource ? this.identName(text.slice(from, this.bodyEnd)) : undefined
    return (this.kind = "ident")
  }

  private identName(raw: string): string | undefined {
    const name = raw.includes("\"\"") ? raw.split("\"\"").join("\"") : raw
    return name.length === 0 || utf8Length(name) > maxNameBytes ? undefined : name
  }

  /**
   * After a `U&` token: an optional `UESCAPE` and a one-character string constant (`'c'`,
   * `E'c'`, `$$c$$`; blanks and comments around), consumed with the token; then the identifier's
   * name decoded with that escape character. A `UESCAPE` the server would refuse leaves no
   * escape character (no name, no string value: the server rejects the text).
   */
  private unicodeEscape(kind: Kind): Kind {
    const text = this.text
    const bodyStart = this.bodyStart
    const bodyEnd = this.bodyEnd
    const form = this.form
    let escape = BACKSLASH
    let end = this.pos
    const after = this.skipBlank(end)
    if (
      after + 7 <= text.length && foldAscii(text.slice(after, after + 7)) === "uescape" &&
      !isIdentCont(text.charCodeAt(after + 7))
    ) {
      escape = -1
      const at = this.skipBlank(after + 7)
      const c = text.charCodeAt(at)
      const string = c === QUOTE
        ? this.quoted(at + 1, "standard", !this.standardStrings)
        : (c === 101 || c === 69) && text.charCodeAt(at + 1) === QUOTE
        ? this.quoted(at + 2, "escape", true)
        : c === DOLLAR
        ? this.dollar(at)
        : "end"
      if (string === "string") {
        const value = this.stringValue(8)
        if (value !== undefined && value.length === 1 && validEscape(value.charCodeAt(0))) escape = value.charCodeAt(0)
        end = this.pos
      } else {
        // Not a string constant: the server rejects the text; read on after `UESCAPE`.
        end = after + 7
      }
    }
    this.kind = kind
    this.form = form
    this.bodyStart = bodyStart
    this.bodyEnd = bodyEnd
    this.escape = escape
    this.pos = this.end = end
    this.name = undefined
    if (kind === "ident" && escape >= 0 && bodyEnd - bodyStart <= maxNameSource) {
      const decoded = decodeUnicode(text.slice(bodyStart, bodyEnd).split("\"\"").join("\""), escape)
      this.name = decoded === undefined || decoded.length === 0 || utf8Length(decoded) > maxNameBytes
        ? undefined
        : decoded
    }
    return kind
  }

  /** `$1`, a dollar quote, or a lone `$`. */
  private dollar(pos: number): Kind {
    const text = this.text
    const n = text.length
    if (isDigit(text.charCodeAt(pos + 1))) {
      let end = pos + 1
      while (end < n && isDigit(text.charCodeAt(end))) end++
      this.pos = this.end = end
      return (this.kind = "param")
    }
    // `$tag$`: the tag is empty or a letter/`_`/non-ASCII, then those or digits.
    let tagEnd = pos + 1
    if (tagEnd < n && isLetter(text.charCodeAt(tagEnd))) {
      tagEnd++
      while (tagEnd < n && isTagCont(text.charCodeAt(tagEnd))) tagEnd++
    }
    if (text.charCodeAt(tagEnd) !== DOLLAR) {
      // `dolqfailed`: the `$` alone; the rest is read again as what it is.
      this.pos = this.end = pos + 1
      this.name = "$"
      return (this.kind = "other")
    }
    const tag = text.slice(pos + 1, tagEnd)
    const bodyStart = tagEnd + 1
    // The body ends at the next `$tag$`. At each `$`, read the tag-like run after it: a match ends
    // the quote; otherwise the run is body, and a `$` that ends it is read again (it may open the
    // delimiter): every character is read at most twice.
    let at = bodyStart
    let close = -1
    while (at < n) {
      const found = text.indexOf("$", at)
      if (found < 0) break
      let run = found + 1
      if (run < n && isLetter(text.charCodeAt(run))) {
        run++
        while (run < n && isTagCont(text.charCodeAt(run))) run++
      }
      if (text.charCodeAt(run) === DOLLAR && run - found - 1 === tag.length && text.startsWith(tag, found + 1)) {
        close = found
        break
      }
      at = run > found + 1 ? run : found + 1
    }
    this.form = "dollar"
    this.bodyStart = bodyStart
    if (close < 0) {
      this.bodyEnd = n
      this.pos = this.end = n
    } else {
      this.bodyEnd = close
      this.pos = this.end = close + tag.length + 2
    }
    return (this.kind = "string")
  }

  private number(pos: number): Kind {
    const text = this.text
    const n = text.length
    let end = pos
    const c1 = text.charCodeAt(pos + 1)
    if (text.charCodeAt(pos) === 48 && (c1 === 120 || c1 === 88 || c1 === 111 || c1 === 79 || c1 === 98 || c1 === 66)) {
      // 0x1F, 0o17, 0b101 (PostgreSQL 16+), with `_` separators.
      end = pos + 2
      while (end < n && (isHex(text.charCodeAt(end)) || text.charCodeAt(end) === 95)) end++
    } else {
      let dot = false
      while (end < n) {
        const c = text.charCodeAt(end)
        if (isDigit(c) || c === 95) end++
        else if (c === DOT && !dot && text.charCodeAt(end + 1) !== DOT) {
          dot = true
          end++
        } else break
      }
      const e = text.charCodeAt(end)
      if (e === 101 || e === 69) {
        let exp = end + 1
        const sign = text.charCodeAt(exp)
        if (sign === 43 || sign === DASH) exp++
        if (isDigit(text.charCodeAt(exp))) {
          end = exp
          while (end < n && (isDigit(text.charCodeAt(end)) || text.charCodeAt(end) === 95)) end++
        }
      }
    }
    this.pos = this.end = end
    return (this.kind = "number")
  }

  /**
   * The value of the current string token when its body is at most `max` characters long
   * (`undefined` otherwise, or for an invalid escape): escapes decoded as its form says.
   */
  stringValue(max: number): string | undefined {
    if (this.kind !== "string" || this.bodyEnd - this.bodyStart > max) return undefined
    const body = this.text.slice(this.bodyStart, this.bodyEnd)
    switch (this.form) {
      case "dollar":
      case "bit":
        return body
      case "unicode":
        return this.escape < 0 ? undefined : decodeUnicode(body.split("''").join("'"), this.escape)
      case "escape":
        return decodeBackslashes(body)
      case "standard":
      case "national":
        return this.standardStrings ? body.split("''").join("'") : decodeBackslashes(body)
    }
  }
}

/** The body of an `E'...'` string: `''` and backslash escapes (`\n`, `\t`, octal, hex, `\u`...). */
const decodeBackslashes = (body: string): string | undefined => {
  let out = ""
  for (let i = 0; i < body.length; i++) {
    const c = body[i]!
    if (c === "'" && body[i + 1] === "'") {
      out += "'"
      i++
      continue
    }
    if (c !== "\\" || i + 1 >= body.length) {
      out += c
      continue
    }
    const e = body[++i]!
    switch (e) {
      case "b":
        out += "\b"
        break
      case "f":
        out += "\f"
        break
      case "n":
        out += "\n"
        break
      case "r":
        out += "\r"
        break
      case "t":
        out += "\t"
        break
      case "x": {
        let k = 0
        let code = 0
        while (k < 2 && isHex(body.charCodeAt(i + 1))) {
          code = code * 16 + parseInt(body[++i]!, 16)
          k++
        }
        if (k === 0) out += "x"
        else out += String.fromCharCode(code)
        break
      }
      case "u":
      case "U": {
        const digits = e === "u" ? 4 : 8
        let code = 0
        for (let k = 0; k < digits; k++) {
          if (!isHex(body.charCodeAt(i + 1))) return undefined
          code = code * 16 + parseInt(body[++i]!, 16)
        }
        if (code === 0 || code > 0x10ffff) return undefined
        out += String.fromCodePoint(code)
        break
      }
      default:
        if (e >= "0" && e <= "7") {
          let code = e.charCodeAt(0) - 48
          for (let k = 0; k < 2 && body[i + 1]! >= "0" && body[i + 1]! <= "7"; k++) {
            code = code * 8 + body.charCodeAt(++i) - 48
          }
          out += String.fromCharCode(code & 0xff)
        } else out += e
    }
  }
  return out
}
