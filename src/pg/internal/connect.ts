/**
 * Connect over a host list, as libpq: each host in turn, connect (a failure → the next host),
 * then check the session against `targetSessionAttrs` (a mismatch → close it, the next host).
 * The check reads what the server reported at startup when it can (`startup-parameters.ts`) and
 * asks otherwise (`target-session.ts`). When every host fails, the connect fails with a
 * `SqlError` whose cause is a {@link HostsError} carrying every host's failure. A session
 * accepted as a standby is watched afterwards (`SessionWatch`).
 *
 * @internal
 */
import { PgConnection } from "@effect/sql-pg"
import { Cause, Data, Effect, Exit, Scope } from "effect"
import { ConnectionError, isSqlError, SqlError, UnknownError } from "effect/sql/SqlError"
import type { SqlErrorReason } from "effect/sql/SqlError"
import { connectFailed, connectReason } from "./errors.ts"
import { connectMillis, defaultConnectMillis, resolve, showHost, where } from "./host-list.ts"
import type { ConnectConfig } from "./host-list.ts"
import type { Config } from "./settings.ts"
import { keepAliveMillis, readingSocket } from "./startup-parameters.ts"
import type { Reported } from "./startup-parameters.ts"
import { checkOf, sessionKind, TargetSessionAttrsError, watchSession } from "./target-session.ts"
import type { Check } from "./target-session.ts"

// ----------------------------------------------------------------------------------- errors

/**
 * No host gave an acceptable session: every host's failure, in the order tried. The cause of
 * the `SqlError` a connect fails with when there are several hosts, or one host that did not
 * match `targetSessionAttrs` (a single host's connect error is kept as it is). Its reason is a
 * retryable `ConnectionError` when some host was unreachable, dropped the connection, did not
 * match (a failover may be under way) or had too many connections; when every host refused with a
 * server error, the kind they share (say, authentication), else `UnknownError`: not retryable.
 *
 * @category errors
 * @since 0.1.0
 */
export class HostsError extends Data.TaggedError("PgHostsError")<{
  /** What was asked for. */
  readonly targetSessionAttrs: Config.TargetSessionAttrs
  /** Every host's failure, in the order tried. */
  readonly attempts: ReadonlyArray<HostsError.Attempt>
  /** The failure that decides the classification (`PgDriver.isDisconnect` follows it). */
  readonly cause: unknown
  /** The driver's connect bound, ms (how a timed-out attempt is told). */
  readonly connectMillis?: number | undefined
}> {
  /** Lists every host with its failure. */
  override get message(): string {
    const wanted = this.targetSessionAttrs === "any" ? "a session" : `a ${this.targetSessionAttrs} session`
    const millis = this.connectMillis ?? defaultConnectMillis
    return `PgDriver: no host gave ${wanted} (${
      this.attempts.map((a) => `${showHost(a)}: ${attemptMessage(a.error, millis)}`).join("; ")
    })`
  }
}

/**
 * The types of {@link HostsError}'s fields.
 *
 * @since 0.2.0
 */
export declare namespace HostsError {
  /**
   * One host's failure: the connect's own error (a `SqlError`: refused, timed out,
   * authentication...) or a {@link TargetSessionAttrsError}.
   *
   * @category models
   * @since 0.2.0
   */
  export interface Attempt {
    /** The host tried. */
    readonly host: string
    /** Its port. */
    readonly port: number
    /** Why it was not used. */
    readonly error: SqlError | TargetSessionAttrsError
  }
}

const attemptMessage = (error: SqlError | TargetSessionAttrsError, connectMillis: number): string =>
  error instanceof TargetSessionAttrsError
    ? `${error.session}, not ${error.targetSessionAttrs}`
    : connectReason(error, connectMillis)

// --------------------------------------------------------------------------------- connect

/** A connected session, in a child scope of its own (closed when it is not the one chosen). */
interface Candidate {
  readonly native: PgConnection.PgConnection
  readonly scope: Scope.Closeable
}

/** One host's session: acceptable, or not (its scope still open: the caller closes or keeps it). */
type Outcome =
  | { readonly _tag: "Accepted"; readonly candidate: Candidate }
  | { readonly _tag: "Mismatch"; readonly candidate: Candidate; readonly error: TargetSessionAttrsError }

const shuffled = <A>(items: ReadonlyArray<A>): Array<A> => {
  const out = items.slice()
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1))
    const t = out[i]!
    out[i] = out[j]!
    out[j] = t
  }
  return out
}

/**
 * Is this connect failure one a failover could explain (unreachable, dropped, starting or
 * stopping, not the wanted kind of server), or a refusal for now (53300, too many connections)?
 */
const isReachability = (error: SqlError | TargetSessionAttrsError, isDisconnect: (e: unknown) => boolean): boolean =>
  error instanceof TargetSessionAttrsError || isDisconnect(error) ||
  (error.reason.cause as { readonly code?: unknown } | undefined)?.code === "53300"

/** The `SqlError` of a connect where no host gave an acceptable session. */
const exhausted = (
  target: Config.TargetSessionAttrs,
  attempts: ReadonlyArray<HostsError.Attempt>,
  isDisconnect: (e: unknown) => boolean,
  connectMillis: number
): SqlError => {
  const reachability = attempts.find((a) => isReachability(a.error, isDisconnect))
  const deciding = reachability ?? attempts[0]
  const error = new HostsError({ targetSessionAttrs: target, attempts, cause: deciding?.error, connectMillis })
  const message = error.message
  if (reachability !== undefined || deciding === undefined || !isSqlError(deciding.error)) {
    return new SqlError({ reason: new ConnectionError({ cause: error, message, operation: "connect" }) })
  }
  // Every host refused with a server error: the kind they share (authentication, ...), else an
  // UnknownError; not retryable either way (a retry would meet the same refusals).
  const first = deciding.error.reason
  const sameKind = attempts.every((a) => isSqlError(a.error) && a.error.reason._tag === first._tag)
  const Reason = (sameKind ? first.constructor : UnknownError) as new(fields: {
    readonly cause: unknown
    readonly message: string
    readonly operation: string
  }) => SqlErrorReason
  return new SqlError({ reason: new Reason({ cause: error, message, operation: "connect" }) })
}

/**
 * Connect to the first acceptable host of `config` (see the module doc): the session lives in
 * the current scope. One host with `targetSessionAttrs: "any"` connects exactly as
 * `PgConnection.make(config)`.
 */
export const connector = (
  config: ConnectConfig,
  isDisconnect: (error: unknown) => boolean
): Effect.Effect<PgConnection.PgConnection, SqlError, Scope.Scope> => {
  // A failure names the server's reason, where and as whom (one line, never the password).
  const place = where(config)
  const millis = connectMillis(config)
  return Effect.mapError(connectFirst(config, isDisconnect, millis), (error) => connectFailed(error, place, millis))
}

const connectFirst = (
  config: ConnectConfig,
  isDisconnect: (error: unknown) => boolean,
  connectMillis: number
): Effect.Effect<PgConnection.PgConnection, SqlError, Scope.Scope> => {
  const targets = resolve(config)
  if (!("hosts" in targets)) {
    return Effect.fail(
      new SqlError({
        reason: new ConnectionError({
          cause: new Error(targets.reason),
          message: `PgDriver: invalid "${targets.field}": ${targets.reason}`,
          operation: "connect"
        })
      })
    )
  }
  const { hosts, targetSessionAttrs: target } = targets
  const check = checkOf(target)
  const single = hosts.length === 1 && check === undefined
  if (single && typeof config.port !== "string" && config.url === undefined) {
    // One host, no check, no URL: exactly the driver's own connect (it ignores the fields it does not know).
    return PgConnection.make(config as PgConnection.Config)
  }
  const { port: _port, targetSessionAttrs: _t, loadBalanceHosts: _l, host: _host, url: _url, ...base } = config
  const configs = new Map(hosts.map((host): readonly [Config.Host, PgConnection.Config] => [host, {
    ...base,
    ...(targets.url !== undefined && { url: targets.url }),
    host: host.host,
    port: host.port
  }]))
  if (single) return PgConnection.make(configs.get(hosts[0]!)!)
  return tryHosts({
    hosts,
    target,
    check,
    random: targets.loadBalanceHosts === "random",
    configs,
    // A session accepted as a standby is watched: it, and its host's other sessions, are retired
    // once the server leaves recovery (see SessionWatch).
    hostStates: new Map(hosts.map((host) => [host, { promotions: 0 }] as const)),
    // The startup parameters can be read off a plaintext socket of ours (not the user's stream,
    // not a fixed unix-socket path).
    readable: targets.plaintext && config.stream === undefined && config.path === undefined,
    keepAlive: keepAliveMillis(config),
    isDisconnect,
    connectMillis
  })
}

/** A connect over several hosts (or with a check): what every attempt shares. */
interface Plan {
  readonly hosts: ReadonlyArray<Config.Host>
  readonly target: Config.TargetSessionAttrs
  /** What a session is checked for; `undefined`: any session will do. */
  readonly check: Check | undefined
  /** `loadBalanceHosts: "random"`. */
  readonly random: boolean
  /** The driver's settings for each host. */
  readonly configs: ReadonlyMap<Config.Host, PgConnection.Config>
  /** Per host: how many of its watched sessions saw their server leave recovery. */
  readonly hostStates: ReadonlyMap<Config.Host, { promotions: number }>
  /** The startup parameters can be read off the socket. */
  readonly readable: boolean
  readonly keepAlive: number | undefined
  readonly isDisconnect: (error: unknown) => boolean
  readonly connectMillis: number
}

/** Try each host in turn: the first acceptable session (`prefer-standby`: else the first other one). */
const tryHosts = (plan: Plan): Effect.Effect<PgConnection.PgConnection, SqlError, Scope.Scope> =>
  Effect.gen(function*() {
    const order = plan.random ? shuffled(plan.hosts) : plan.hosts
    const attempts: Array<HostsError.Attempt> = []
    // prefer-standby: the first server that is no standby, kept open in case no host is one.
    let fallback: Candidate | undefined
    for (const host of order) {
      const exit = yield* Effect.exit(attempt(plan, host))
      if (Exit.isFailure(exit)) {
        const failure = exit.cause.reasons.find(Cause.isFailReason)
        // An interrupt or a defect ends the search (the fallback's scope closes with the caller's).
        if (failure === undefined) return yield* Effect.failCause(exit.cause)
        attempts.push({ host: host.host, port: host.port, error: failure.error })
        continue
      }
      const outcome = exit.value
      if (outcome._tag === "Accepted") {
        if (fallback !== undefined) yield* Scope.close(fallback.scope, Exit.void)
        return outcome.candidate.native
      }
      attempts.push({ host: host.host, port: host.port, error: outcome.error })
      if (plan.target === "prefer-standby" && fallback === undefined) fallback = outcome.candidate
      else yield* Scope.close(outcome.candidate.scope, Exit.void)
    }
    if (fallback !== undefined) return fallback.native
    // One host that failed to connect: its own error, as without a host list.
    if (attempts.length === 1 && isSqlError(attempts[0]!.error)) return yield* Effect.fail(attempts[0]!.error)
    return yield* Effect.fail(exhausted(plan.target, attempts, plan.isDisconnect, plan.connectMillis))
  })

/** Connect to one host in a child scope of the current one, and check the session. */
const attempt = (plan: Plan, host: Config.Host): Effect.Effect<Outcome, SqlError, Scope.Scope> =>
  Effect.flatMap(Effect.scope, (parent) =>
    Effect.flatMap(Scope.fork(parent), (scope) => {
      const reported: Reported = {}
      const hostConfig = plan.configs.get(host)!
      const check = plan.check
      const connectConfig = check !== undefined && plan.readable
        ? { ...hostConfig, stream: readingSocket(host, plan.keepAlive, reported) }
        : hostConfig
      return Effect.flatMap(
        Scope.provide(PgConnection.make(connectConfig), scope),
        (native): Effect.Effect<Outcome, SqlError> => {
          const candidate = { native, scope }
          if (check === undefined) return Effect.succeed({ _tag: "Accepted", candidate })
          return Effect.map(sessionKind(native, check, reported), (session): Outcome =>
            session === check
              ? accepted(plan, candidate, host, reported)
              : {
                _tag: "Mismatch",
                candidate,
                error: new TargetSessionAttrsError({
                  host: host.host,
                  port: host.port,
                  targetSessionAttrs: plan.target,
                  session
                })
              })
        }
      ).pipe(Effect.onExit((exit) => (Exit.isFailure(exit) ? Scope.close(scope, exit) : Effect.void)))
    }))

/** An acceptable session; one that may stop matching (a standby) is watched. */
const accepted = (plan: Plan, candidate: Candidate, host: Config.Host, reported: Reported): Outcome => {
  // A read-only session of a server known not to be a standby (default_transaction_read_only) cannot be promoted.
  if (plan.check === "standby" || (plan.check === "read-only" && reported.inHotStandby !== "off")) {
    watchSession(candidate.native, host, plan.target, plan.hostStates.get(host)!, reported.defaultTransactionReadOnly)
  }
  return { _tag: "Accepted", candidate }
}
