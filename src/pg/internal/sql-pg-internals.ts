/**
 * Every read of `@effect/sql-pg`'s private internals, in one place. The driver needs a few things
 * a `PgConnection` does not offer publicly (whether the session already died, its
 * prepared-statement cache, its cancel, a way to close its socket at once); this module finds
 * them on one native session and says which are missing. Each feature built on one degrades to
 * a documented fallback when an upgrade moves it ({@link catalogue}, the README table and
 * `docs/upstream-sql-pg.md`); `test/pg/sql-pg-internals.test.ts` names the internal that moved.
 *
 * Nothing outside this module reads a private field of `@effect/sql-pg`.
 *
 * @internal
 */
import type { PgConnection } from "@effect/sql-pg"
import { Effect } from "effect"
import type { SqlError } from "effect/sql/SqlError"

/** The property under which `@effect/sql-pg` keeps a session's internals (`internal/connection.ts`). */
export const internalsKey = "~@effect/sql-pg/PgConnection/internals"

/**
 * The private parts of `@effect/sql-pg` read here, by where they live on a session
 * (`internals` = `session["~@effect/sql-pg/PgConnection/internals"]`, `base` = `internals.base`,
 * the unpinned `PgConnectionImpl`).
 */
export type Internal =
  | "internals"
  | "internals.deadError"
  | "internals.retireHooks"
  | "base.prepared.statements"
  | "base.cancel"
  | "base.consumer"
  | "base.fatal"
  | "base.session.socket"
  | "base.dispatch"
  | "base.multiplex"
  | "statement names"

/** One internal: what the driver builds on it, and what happens without it. */
export interface Entry {
  readonly internal: Internal
  readonly feature: string
  readonly fallback: string
}

/**
 * What each internal gives and what happens without it: the one list the README table, the
 * upstream note and the warning logged at connect are made from.
 */
export const catalogue: ReadonlyArray<Entry> = [
  {
    internal: "internals",
    feature: "everything below",
    fallback: "every fallback below at once"
  },
  {
    internal: "internals.deadError",
    feature: "a session that died while idle (server restart, terminated backend, idle_session_timeout) is " +
      "replaced at checkout without a round trip (`isDead`)",
    fallback: "`internals.retireHooks` still tell (the driver retires a session that dies); without both, it is " +
      "noticed when used: `prePing` replaces it at checkout, else the first statement fails as a disconnect " +
      "(retryable) and the pool is invalidated"
  },
  {
    internal: "internals.retireHooks",
    feature: "a session whose cancel request may still arrive (sent after its statement ended) is retired, so the " +
      "cancel cannot hit the next borrower's statement; a statement sent to a session the driver saw die is " +
      "marked never sent (a pipelined one goes to another shared connection)",
    fallback: "every session with an interrupted statement is retired (closed on return): one reconnect per " +
      "interrupt; a statement sent to a dead session fails with the error of those that were on the wire"
  },
  {
    internal: "base.prepared.statements",
    feature: "`DISCARD ALL` on return keeps the session (the driver's prepared-statement cache is cleared with it)",
    fallback: "a session that needs `DISCARD ALL` (`sessionReset`), or ran its own `DISCARD` / `DEALLOCATE`, is " +
      "closed and replaced on return instead (as clean; a reconnect instead of a round trip)"
  },
  {
    internal: "base.cancel",
    feature: "`cancelTimeout` costs a statement nothing (the driver's cancel is bounded in place)",
    fallback: "each statement runs in a fiber of its own, bounded the same way (a fiber per statement)"
  },
  {
    internal: "base.consumer",
    feature: "the `cancelTimeout` timer closes the socket only if the interrupted statement is still on the wire",
    fallback: "as without `base.cancel`"
  },
  {
    internal: "base.fatal",
    feature: "a bound that expires (`cancelTimeout`, `transactionControlTimeout`, an interrupted pre-ping) fails the " +
      "statement in flight with the bound's own error",
    fallback: "the socket is destroyed (`base.session.socket`): the statement fails with \"Connection closed\" " +
      "(a disconnect) instead; without either, the interrupt or bound still returns on time, the session is " +
      "marked dead and closed by the pool, and `cancelTimeout` uses a fiber per statement"
  },
  {
    internal: "base.session.socket",
    feature: "closing a session at once when `base.fatal` is missing",
    fallback: "see `base.fatal`"
  },
  {
    internal: "base.dispatch",
    feature: "a session accepted as a standby (`targetSessionAttrs`) is retired the moment its server reports it " +
      "left recovery (`in_hot_standby = off` in a ParameterStatus, PostgreSQL 14+)",
    fallback: "a promoted server's sessions are noticed at the next connect (and by PgReplicas' role check " +
      "within `healthCheckInterval`), not by the next statement"
  },
  {
    internal: "base.multiplex",
    feature: "`PgSql.layer({ pipeline })` pipelines autocommit statements over a few sessions (the driver's own " +
      "multiplexed mode, switched on while a session serves as a pipeline lane)",
    fallback: "pipelined statements run one at a time on the lane's session (correct, not pipelined)"
  },
  {
    internal: "statement names",
    feature: "a statement the driver prepared and a transaction-mode pooler lost (26000 on `effect_<hex>_<n>`) is " +
      "reported as `TransactionPoolerError` naming the setting",
    fallback: "the server's own 26000 error is passed on as it is"
  }
]

/** The names `@effect/sql-pg` gives the statements it prepares: `effect_<namespace hex>_<n>`. */
export const statementName = /effect_[0-9a-f]+_\d+/

/** The internals that can be checked on a session (statement names are checked by the contract test). */
const checked = catalogue.map((entry) => entry.internal).filter(
  (internal): internal is Exclude<Internal, "statement names"> => internal !== "statement names"
)

/**
 * The session's cancel, replaceable: the driver runs it after an interrupt (a CancelRequest, then
 * a drain). `onWire` is the statement now on the wire (an opaque token, `undefined` when idle).
 */
export interface CancelSite {
  readonly original: Effect.Effect<void>
  readonly replace: (cancel: Effect.Effect<void>) => void
  readonly onWire: () => unknown
}

/** What this package can reach of one native session; `undefined` fields are missing internals. */
export interface Access {
  /** The internals not found, in {@link catalogue} order (empty: all there). */
  readonly missing: ReadonlyArray<Internal>
  /** Why the session is dead, as the driver knows it (`undefined`: alive, as far as it knows). */
  readonly deadError: (() => SqlError | undefined) | undefined
  /** Be told when the driver retires the session (a late cancel may still land on it). */
  readonly onRetire: ((hook: () => void) => void) | undefined
  /**
   * The prepared-statement cache (nothing to clear when the session prepares nothing), looked up
   * at each call (it is needed rarely: after a `DISCARD ALL` / `DEALLOCATE`).
   */
  readonly preparedStatements: () => { readonly clear: () => void } | undefined
  readonly cancel: CancelSite | undefined
  /**
   * Close the socket at once: the statement on the wire fails with `error` (`"error"`) or with
   * the driver's "Connection closed" (`"closed"`); `undefined` when neither is reachable. With
   * `queued`, the statements queued behind it (never written) fail with `queued` instead, where
   * the statement on the wire can be told apart (`base.consumer.onFatal`).
   */
  readonly close: ((error: SqlError, queued?: SqlError) => void) | undefined
  readonly closeFailsWith: "error" | "closed" | undefined
  /** Be told of every ParameterStatus the server sends on this session (name, value). */
  readonly onParameterStatus: ((hook: (name: string, value: string) => void) => void) | undefined
  /**
   * The driver's multiplexed mode, switched per session: `set(true)` pipelines the session's
   * unpinned statements (each with its own `Sync`), `idle` waits until none is on the wire.
   */
  readonly multiplex: {
    readonly set: (on: boolean) => void
    readonly isIdle: () => boolean
    readonly idle: Effect.Effect<void>
  } | undefined
}

type Dispatch = (message: { readonly _tag: string; readonly name?: unknown; readonly value?: unknown }) => void

const fieldOf = (u: unknown, key: string): unknown =>
  (typeof u === "object" || typeof u === "function") && u !== null && key in u
    ? (u as Record<string, unknown>)[key]
    : undefined

const hasField = (u: unknown, key: string): boolean =>
  (typeof u === "object" || typeof u === "function") && u !== null && key in u

const nothingPrepared = { clear: () => {} }

/** `base.prepared.statements`: `prepared` is `undefined` when the session prepares nothing (`prepare: false`, cache size 0). */
const preparedOf = (base: unknown): { readonly clear: () => void } | undefined => {
  if (!hasField(base, "prepared")) return undefined
  const cache = fieldOf(base, "prepared")
  if (cache === undefined) return nothingPrepared
  const statements = fieldOf(cache, "statements")
  return statements instanceof Map ? statements : undefined
}

interface Destroyable {
  destroy(): void
}

/** Read what this package needs off one native session. Cheap (a few property reads); call once per session. */
export const access = (native: PgConnection.PgConnection): Access => {
  const internals = fieldOf(native, internalsKey)
  const missing = new Set<Internal>()
  if (typeof internals !== "object" || internals === null) missing.add("internals")

  const deadErrorFn = fieldOf(internals, "deadError")
  const deadError = typeof deadErrorFn === "function"
    ? () => (deadErrorFn as () => SqlError | undefined).call(internals)
    : undefined
  if (deadError === undefined) missing.add("internals.deadError")

  const hooks = fieldOf(internals, "retireHooks")
  const onRetire = hooks instanceof Set ? (hook: () => void) => void (hooks as Set<() => void>).add(hook) : undefined
  if (onRetire === undefined) missing.add("internals.retireHooks")

  const base = fieldOf(internals, "base")

  const preparedStatements = () => preparedOf(base)
  if (preparedStatements() === undefined) missing.add("base.prepared.statements")

  const original = fieldOf(base, "cancel")
  if (!Effect.isEffect(original)) missing.add("base.cancel")
  if (!hasField(base, "consumer")) missing.add("base.consumer")
  const cancel: CancelSite | undefined = Effect.isEffect(original) && hasField(base, "consumer")
    ? {
      original: original as Effect.Effect<void>,
      replace: (replacement) => {
        ;(base as { cancel: Effect.Effect<void> }).cancel = replacement
      },
      onWire: () => (base as { consumer: unknown }).consumer
    }
    : undefined

  const fatal = fieldOf(base, "fatal")
  if (typeof fatal !== "function") missing.add("base.fatal")
  const socket = fieldOf(fieldOf(base, "session"), "socket")
  const destroyable = typeof fieldOf(socket, "destroy") === "function" ? socket as Destroyable : undefined
  if (destroyable === undefined) missing.add("base.session.socket")
  const close = typeof fatal === "function"
    ? (error: SqlError, queued?: SqlError) => {
      if (queued === undefined) return void (fatal as (error: SqlError) => void).call(base, error)
      // The statement on the wire (if any) gets `error`; `fatal` fails the rest (the queue) with `queued`.
      const onWire = fieldOf(base, "consumer")
      const onFatal = fieldOf(onWire, "onFatal")
      if (hasField(base, "consumer")) (base as { consumer: unknown }).consumer = undefined
      ;(fatal as (error: SqlError) => void).call(base, queued)
      if (typeof onFatal === "function") (onFatal as (error: SqlError) => void).call(onWire, error)
    }
    : destroyable !== undefined
    ? () => destroyable.destroy()
    : undefined

  // The driver reads `dispatch` off the connection for every message it parses.
  const dispatch = fieldOf(base, "dispatch")
  if (typeof dispatch !== "function") missing.add("base.dispatch")
  const onParameterStatus = typeof dispatch === "function"
    ? (hook: (name: string, value: string) => void) => {
      const original = fieldOf(base, "dispatch") as Dispatch
      const watched: Dispatch = (message) => {
        if (
          message._tag === "ParameterStatus" && typeof message.name === "string" && typeof message.value === "string"
        ) {
          hook(message.name, message.value)
        }
        return original.call(base, message)
      }
      ;(base as { dispatch: Dispatch }).dispatch = watched
    }
    : undefined

  const waitIdle = fieldOf(base, "waitPipelineIdle")
  const inFlight = fieldOf(base, "pipelineInFlight")
  const pending = fieldOf(base, "pipelinePending")
  const multiplex = typeof fieldOf(base, "multiplex") === "boolean" && Effect.isEffect(waitIdle) &&
      Array.isArray(inFlight) && Array.isArray(pending)
    ? {
      set: (on: boolean) => {
        ;(base as { multiplex: boolean }).multiplex = on
      },
      isIdle: () =>
        (base as { pipelineInFlight: Array<unknown> }).pipelineInFlight.length -
              ((base as { pipelineHead?: number }).pipelineHead ?? 0) === 0 &&
        (base as { pipelinePending: Array<unknown> }).pipelinePending.length === 0,
      idle: waitIdle as Effect.Effect<void>
    }
    : undefined
  if (multiplex === undefined) missing.add("base.multiplex")

  return {
    missing: checked.filter((name) => missing.has(name)),
    deadError,
    onRetire,
    preparedStatements,
    cancel,
    close,
    closeFailsWith: typeof fatal === "function" ? "error" : destroyable !== undefined ? "closed" : undefined,
    onParameterStatus,
    multiplex
  }
}

/** Sets of missing internals already reported (one warning per set, per process). */
const reported = new Set<string>()

/**
 * Log once (per set of missing internals, per process) which internals this `@effect/sql-pg`
 * lacks and what the driver does instead. `Effect.void` when nothing is missing.
 */
export const warnMissing = (missing: ReadonlyArray<Internal>): Effect.Effect<void> => {
  if (missing.length === 0) return Effect.void
  const key = missing.join(",")
  if (reported.has(key)) return Effect.void
  reported.add(key)
  const lines = catalogue
    .filter((entry) => missing.includes(entry.internal) && entry.internal !== "internals")
    .map((entry) => `${entry.internal}: ${entry.fallback}`)
  return Effect.logWarning(
    `PgDriver: this @effect/sql-pg lacks internals the driver reads (${key}); falling back: ${lines.join("; ")}`
  )
}
