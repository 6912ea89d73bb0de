/**
 * Does a session match `targetSessionAttrs`? The check when it connects ({@link sessionKind}:
 * from the startup parameters, else libpq's queries), and the watch afterwards of a session
 * accepted as a standby ({@link SessionWatch}): once its server is promoted it no longer matches.
 *
 * @internal
 */
import type { PgConnection } from "@effect/sql-pg"
import { Data, Effect } from "effect"
import type { SqlError } from "effect/sql/SqlError"
import { showHost } from "./host-list.ts"
import type { Config } from "./settings.ts"
import * as SqlPg from "./sql-pg-internals.ts"
import type { Reported } from "./startup-parameters.ts"

/**
 * A server accepted the connection but is not what `targetSessionAttrs` asks for: the session
 * was closed and the next host tried. Found among a {@link HostsError}'s attempts.
 *
 * @category errors
 * @since 0.1.0
 */
export class TargetSessionAttrsError extends Data.TaggedError("TargetSessionAttrsError")<{
  /** The host that accepted the connection. */
  readonly host: string
  /** Its port. */
  readonly port: number
  /** What was asked for. */
  readonly targetSessionAttrs: Config.TargetSessionAttrs
  /** What the session was: `"read-only"` / `"read-write"` (read-write / read-only targets), `"standby"` / `"primary"`. */
  readonly session: "read-only" | "read-write" | "standby" | "primary"
}> {
  /** "host:port is <session>, not <targetSessionAttrs>". */
  override get message(): string {
    return `${showHost(this)} is ${this.session}, not ${this.targetSessionAttrs}`
  }
}

// ------------------------------------------------------------------------------- the check

/** What a check asks of a session. */
export type Check = "read-write" | "read-only" | "primary" | "standby"

/** The check a target makes (`prefer-standby`'s first pass looks for a standby). */
export const checkOf = (target: Config.TargetSessionAttrs): Check | undefined =>
  target === "any" ? undefined : target === "prefer-standby" ? "standby" : target

/** What the session is, for a check: read-only or not / in recovery or not. */
export const sessionKind = (
  native: PgConnection.PgConnection,
  check: Check,
  reported: Reported
): Effect.Effect<TargetSessionAttrsError["session"], SqlError> => {
  const hotStandby = reported.inHotStandby
  if (check === "read-write" || check === "read-only") {
    const readOnlyDefault = reported.defaultTransactionReadOnly
    if (hotStandby !== undefined && readOnlyDefault !== undefined) {
      return Effect.succeed(hotStandby === "on" || readOnlyDefault === "on" ? "read-only" : "read-write")
    }
    return Effect.map(
      native.query("SHOW transaction_read_only", [], false),
      (result) => (result.rows[0]?.transaction_read_only === "on" ? "read-only" : "read-write")
    )
  }
  if (hotStandby !== undefined) return Effect.succeed(hotStandby === "on" ? "standby" : "primary")
  return Effect.map(
    native.query("SELECT pg_catalog.pg_is_in_recovery() AS in_recovery", [], false),
    (result) => (result.rows[0]?.in_recovery === true ? "standby" : "primary")
  )
}

// ------------------------------------------------------------------------ watching a standby

/**
 * A session accepted as a standby (`targetSessionAttrs` `"standby"`, `"read-only"` on a hot
 * standby, `"prefer-standby"`'s first choice) stops matching when its server leaves recovery (a
 * promotion). PostgreSQL 14+ then tells every session: a ParameterStatus `in_hot_standby = off`
 * before the ReadyForQuery of the session's next statement. The watch reads the session's
 * messages as the driver dispatches them (plaintext or TLS alike; one call and a tag compare per
 * message, on watched sessions only) and, at that report, marks the session and every other
 * session of its host (they were connected while it was a standby) as no longer matching:
 * `PgDriver`'s connection is then dead to the pool (replaced at its next checkout, its reconnect
 * checks the hosts again), and with `"standby"` / `"read-only"` the statement whose reply
 * carried the report fails (it may have run on a primary). Older servers send no such report;
 * neither does a driver whose internals are not as expected: then nothing is watched.
 */
export class SessionWatch {
  /** This session saw its server leave recovery. */
  private promoted = false
  /** `default_transaction_read_only` as last reported (`"read-only"` targets: still read-only after a promotion?). */
  readOnlyDefault: string | undefined

  constructor(
    readonly host: Config.Host,
    readonly target: Config.TargetSessionAttrs,
    private readonly hostState: { promotions: number },
    private readonly promotionsAtConnect: number,
    readOnlyDefault: string | undefined
  ) {
    this.readOnlyDefault = readOnlyDefault
  }

  /** @internal The server reported a parameter. */
  reported(name: string, value: string): void {
    if (name === "default_transaction_read_only") this.readOnlyDefault = value
    else if (name === "in_hot_standby" && value === "off" && !this.promoted) {
      this.promoted = true
      this.hostState.promotions++
    }
  }

  /** A statement that reads a changed session fails (`"prefer-standby"`: a primary is acceptable, the session is only retired). */
  get failsStatements(): boolean {
    return this.target !== "prefer-standby"
  }

  /** Why the session no longer matches its target, once it does not; `undefined` while it does. */
  get mismatch(): TargetSessionAttrsError | undefined {
    if (!this.promoted && this.hostState.promotions === this.promotionsAtConnect) return undefined
    if (this.target === "read-only" && this.readOnlyDefault === "on") return undefined
    return new TargetSessionAttrsError({
      host: this.host.host,
      port: this.host.port,
      targetSessionAttrs: this.target,
      session: this.target === "read-only" ? "read-write" : "primary"
    })
  }
}

const watches = new WeakMap<PgConnection.PgConnection, SessionWatch>()

/** The watch of a session this module connected, if it is watched (see {@link SessionWatch}). */
export const watchOf = (native: PgConnection.PgConnection): SessionWatch | undefined => watches.get(native)

/** Watch a session accepted as a standby: see {@link SessionWatch} (without `base.dispatch`: not watched). */
export const watchSession = (
  native: PgConnection.PgConnection,
  host: Config.Host,
  target: Config.TargetSessionAttrs,
  hostState: { promotions: number },
  readOnlyDefault: string | undefined
): void => {
  const onParameterStatus = SqlPg.access(native).onParameterStatus
  if (onParameterStatus === undefined) return
  const watch = new SessionWatch(host, target, hostState, hostState.promotions, readOnlyDefault)
  onParameterStatus((name, value) => watch.reported(name, value))
  watches.set(native, watch)
}
