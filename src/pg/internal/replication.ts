/**
 * What `PgReplicas` reads from PostgreSQL's streaming replication, and how it reasons about it:
 * WAL positions (LSNs), the health-check queries, a replica's lag, and the sessions of
 * read-your-writes.
 *
 * - {@link Lsn}: a WAL position as a `bigint` (the byte offset `pg_lsn - '0/0'`), shown as
 *   PostgreSQL's `X/Y`.
 * - {@link primaryCheck} / {@link replicaCheck} / {@link commitPosition}: the statements, and
 *   what their rows mean ({@link readPrimary}, {@link readReplica}).
 * - {@link LagEstimator}: a replica's staleness from the router's own samples of the primary's
 *   position (no clock of another server needed) and the replica's last replayed commit time.
 * - {@link Sessions}: where read-your-writes keeps each session's last write (per fiber, per
 *   `PgReplicas.consistency` scope, per user key), bounded.
 *
 * @internal
 */

// ------------------------------------------------------------------------------------ LSNs

/** A WAL position: the byte offset `pg_lsn - '0/0'` (PostgreSQL's LSNs are 64-bit). */
export type Lsn = bigint

/** `0/0`: no position (nothing written, or not known). */
export const zero: Lsn = 0n

/** The `numeric` text of `pg_lsn - '0/0'` (digits only), else `undefined`. */
export const parse = (text: unknown): Lsn | undefined =>
  typeof text === "string" && /^[0-9]{1,20}$/.test(text) ? BigInt(text) : undefined

/** PostgreSQL's notation, `16/B374D848`. */
export const format = (lsn: Lsn): string =>
  `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffffffffn).toString(16).toUpperCase()}`

/** `MAXALIGN(sizeof(XLogPageHeaderData))` and `MAXALIGN(sizeof(XLogLongPageHeaderData))` (64-bit builds). */
const shortHeader = 24n
const longHeader = 40n

/**
 * The position a replica must have replayed to hold everything written before `insert` was read
 * (`pg_current_wal_insert_lsn()`). The insert position of a page just begun points past the page
 * header, while a replica's replay position (`pg_last_wal_replay_lsn()`, the end of the last
 * record replayed) stops at the page boundary: the boundary is enough then. Without the
 * correction a commit that ended a page would wait for the next record (on an idle primary: for
 * ever, up to the read's bound).
 */
export const covering = (insert: Lsn, blockSize: bigint, segmentSize: bigint): Lsn => {
  if (blockSize <= 0n || segmentSize <= 0n) return insert
  const inSegment = insert % segmentSize
  // A segment's first page has the long header; every other page the short one.
  if (inSegment === longHeader) return insert - longHeader
  if (inSegment >= blockSize && insert % blockSize === shortHeader) return insert - shortHeader
  return insert
}

// ------------------------------------------------------------------------------ statements

/**
 * Run on the primary every health check: its role, its WAL insert position (the one a commit
 * that returned is covered by, even with `synchronous_commit = off`), and its clock. On a server
 * in recovery the WAL functions are not called (they would fail).
 */
export const primaryCheck = `SELECT pg_catalog.pg_is_in_recovery() AS recovery,
  CASE WHEN pg_catalog.pg_is_in_recovery() THEN NULL
    ELSE (pg_catalog.pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::text END AS lsn,
  pg_catalog.current_setting('wal_block_size')::int8::text AS block_size,
  pg_catalog.pg_size_bytes(pg_catalog.current_setting('wal_segment_size'))::text AS segment_size,
  (extract(epoch FROM pg_catalog.clock_timestamp()) * 1000)::float8 AS now_ms`

/**
 * Read-your-writes: the primary's position after a session's commits (one round trip on a
 * primary session; a primary turned standby fails it, and the read goes to the primary).
 */
export const commitPosition = `SELECT (pg_catalog.pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::text AS lsn,
  pg_catalog.current_setting('wal_block_size')::int8::text AS block_size,
  pg_catalog.pg_size_bytes(pg_catalog.current_setting('wal_segment_size'))::text AS segment_size`

/**
 * Run on a replica every health check (and while read-your-writes reads wait for it): its
 * role, how far it has replayed, and when the last transaction it replayed committed (on the
 * primary's clock).
 */
export const replicaCheck = `SELECT pg_catalog.pg_is_in_recovery() AS recovery,
  (pg_catalog.pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::text AS lsn,
  (extract(epoch FROM pg_catalog.pg_last_xact_replay_timestamp()) * 1000)::float8 AS replayed_at_ms`

/**
 * A server's role as the last health check saw it: `"primary"` (not in recovery) or
 * `"standby"` (in recovery: a hot standby). Re-exported as `PgReplicas.Role`.
 *
 * @category models
 * @since 0.1.0
 */
export type Role = "primary" | "standby"

/** What {@link primaryCheck} found. */
export interface PrimaryReading {
  readonly role: Role
  /** The covering insert position (primary only). */
  readonly lsn: Lsn | undefined
  /** The primary's clock, ms since the epoch. */
  readonly nowMs: number | undefined
}

/** What {@link replicaCheck} found. */
export interface ReplicaReading {
  readonly role: Role
  /** Replayed up to (`undefined`: nothing replayed yet, or not a standby). */
  readonly lsn: Lsn | undefined
  /** Commit time of the last transaction replayed, on the primary's clock (ms since the epoch). */
  readonly replayedAtMs: number | undefined
}

const rowOf = (result: unknown): Record<string, unknown> | undefined => {
  const rows = (result as { readonly rows?: unknown } | undefined)?.rows
  return Array.isArray(rows) && typeof rows[0] === "object" && rows[0] !== null
    ? rows[0] as Record<string, unknown>
    : undefined
}

const finite = (value: unknown): number | undefined =>
  typeof value === "number" && Number.isFinite(value) ? value : undefined

const coveringOf = (row: Record<string, unknown>): Lsn | undefined => {
  const lsn = parse(row.lsn)
  if (lsn === undefined) return undefined
  return covering(lsn, parse(row.block_size) ?? 0n, parse(row.segment_size) ?? 0n)
}

/** {@link primaryCheck}'s row (an `executeRaw` result); `undefined`: not a row of it. */
export const readPrimary = (result: unknown): PrimaryReading | undefined => {
  const row = rowOf(result)
  if (row === undefined || typeof row.recovery !== "boolean") return undefined
  return { role: row.recovery ? "standby" : "primary", lsn: coveringOf(row), nowMs: finite(row.now_ms) }
}

/** {@link commitPosition}'s row. */
export const readCommitPosition = (result: unknown): Lsn | undefined => {
  const row = rowOf(result)
  return row === undefined ? undefined : coveringOf(row)
}

/** {@link replicaCheck}'s row. */
export const readReplica = (result: unknown): ReplicaReading | undefined => {
  const row = rowOf(result)
  if (row === undefined || typeof row.recovery !== "boolean") return undefined
  return { role: row.recovery ? "standby" : "primary", lsn: parse(row.lsn), replayedAtMs: finite(row.replayed_at_ms) }
}

// ------------------------------------------------------------------------------------- lag

/** One sample of the primary: its position at a time of the router's clock. */
interface Sample {
  readonly at: number
  readonly lsn: Lsn
  /** The primary's own clock then (ms since the epoch), when known. */
  readonly primaryNowMs: number | undefined
}

/** How many primary samples are kept (one per health check: a minute at the default interval). */
const samplesKept = 64

/**
 * A replica's staleness: how long ago the primary last held nothing the replica lacks. Two upper
 * bounds, the smaller one wins:
 *
 * - positions: the replica has replayed at least what the primary had at the latest sample whose
 *   position it has passed; its staleness is at most the time since that sample (router clock:
 *   a sample is timed when the primary's check was sent, the replica's reading when its answer
 *   came), 0 when that sample was taken after the replica was read (the health check reads the
 *   replicas first). An idle primary does not move, so a replica that replayed everything stays
 *   caught up however long nothing is written; a primary that stops answering leaves the newest
 *   sample to age, and the bound with it.
 * - commit time: everything committed up to the last transaction the replica replayed is there,
 *   so its staleness is at most the primary's clock now minus that commit time (both the
 *   primary's clock). Only used while the replica is behind: on an idle primary it would grow
 *   with nothing missing.
 */
export class LagEstimator {
  private readonly samples: Array<Sample> = []

  /** Record the primary's position (`at`: the router's clock, ms). */
  sample(at: number, lsn: Lsn, primaryNowMs: number | undefined): void {
    const last = this.samples[this.samples.length - 1]
    // Positions never go back; a lower one means another primary (failover): start over.
    if (last !== undefined && lsn < last.lsn) this.samples.length = 0
    this.samples.push({ at, lsn, primaryNowMs })
    if (this.samples.length > samplesKept) this.samples.shift()
  }

  /** The newest sample's position, if any. */
  get primaryLsn(): Lsn | undefined {
    return this.samples[this.samples.length - 1]?.lsn
  }

  /**
   * The staleness (ms) of a replica that had replayed `replayed` by `at` (router clock: when its
   * answer came), its last replayed commit at `replayedAtMs` (primary clock); `undefined` when
   * there is no sample yet. A sample taken after `at` whose position the replica had reached
   * makes it 0.
   */
  lag(at: number, replayed: Lsn, replayedAtMs: number | undefined): number | undefined {
    const samples = this.samples
    const newest = samples[samples.length - 1]
    if (newest === undefined) return undefined
    let bound = Infinity
    for (let i = samples.length - 1; i >= 0; i--) {
      if (samples[i]!.lsn <= replayed) {
        bound = at - samples[i]!.at
        break
      }
    }
    if (replayed < newest.lsn && replayedAtMs !== undefined && newest.primaryNowMs !== undefined) {
      // The primary's clock at `at`: its reading at the newest sample, moved by the time between.
      bound = Math.min(bound, newest.primaryNowMs + (at - newest.at) - replayedAtMs)
    }
    // Behind, with no bound at all (older than every sample, no commit time): as old as the oldest sample.
    if (bound === Infinity) bound = at - samples[0]!.at
    return Math.max(0, bound)
  }
}

// -------------------------------------------------------------------------------- sessions

/**
 * One read-your-writes session: the end of its last write on the primary (as a count of the
 * router's writes), and a WAL position known to cover its writes up to `resolvedWrite`.
 */
export interface Session {
  /** The router's write counter when this session's last write ended (0: none). */
  lastWrite: number
  /** Writes up to this count are covered by {@link Session.lsn}. */
  resolvedWrite: number
  lsn: Lsn
}

const newSession = (): Session => ({ lastWrite: 0, resolvedWrite: 0, lsn: zero })

/** Is a position still to be read for `session` (it wrote since its position was last read)? */
export const unresolved = (session: Session): boolean => session.lastWrite > session.resolvedWrite

/**
 * The sessions of one router. A fiber's (the default) and a `PgReplicas.consistency` scope's are
 * held weakly, by the fiber or the scope's token: they go with it. A user key's (`PgReplicas.session`)
 * are kept in a map of at most `maxKeys`, the least recently written first out; what leaves the
 * map (evicted, or pruned once every replica has replayed past it) is folded into one floor
 * session that keys not in the map read through, so forgetting a key never loses a write.
 */
export class Sessions {
  private readonly weak = new WeakMap<object, Session>()
  private readonly keyed = new Map<string, Session>()
  /** What keys no longer in the map had written. */
  private readonly floor: Session = newSession()

  constructor(private readonly maxKeys: number) {}

  /** The session of a fiber or scope token, made on a write. */
  ofObject(owner: object, create: boolean): Session | undefined {
    let session = this.weak.get(owner)
    if (session === undefined && create) {
      session = newSession()
      this.weak.set(owner, session)
    }
    return session
  }

  /** The session of a user key: made on a write (most recent last); a read of a key not kept reads the floor. */
  ofKey(key: string, create: boolean): Session {
    const session = this.keyed.get(key)
    if (!create) return session ?? this.floor
    if (session !== undefined) {
      this.keyed.delete(key)
      this.keyed.set(key, session)
      return session
    }
    const made = newSession()
    this.keyed.set(key, made)
    if (this.keyed.size > this.maxKeys) {
      const [oldestKey, oldest] = this.keyed.entries().next().value as [string, Session]
      this.keyed.delete(oldestKey)
      this.fold(oldest)
    }
    return made
  }

  /** Keys kept (for tests and status). */
  get keys(): number {
    return this.keyed.size
  }

  /** Fold into the floor, and forget, the keyed sessions every replica has replayed past. */
  prune(replayedByAll: Lsn): void {
    for (const [key, session] of this.keyed) {
      if (!unresolved(session) && session.lsn <= replayedByAll) {
        this.keyed.delete(key)
        this.fold(session)
      }
    }
  }

  private fold(session: Session): void {
    const floor = this.floor
    if (session.lsn > floor.lsn) floor.lsn = session.lsn
    if (unresolved(session) && session.lastWrite > floor.lastWrite) floor.lastWrite = session.lastWrite
  }
}
