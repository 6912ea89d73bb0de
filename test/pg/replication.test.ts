/**
 * What `PgReplicas` reasons with, without a server (src/pg/internal/replication.ts): the WAL
 * position a commit needs, a replica's lag from the router's samples, and the bounded store of
 * read-your-writes sessions.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Replication from "../../src/pg/internal/replication.ts"

const block = 8192n
const segment = 16n * 1024n * 1024n

describe("the WAL position a commit needs", () => {
  it("an insert position past a page header needs only the page boundary (else an idle primary would never be passed)", () => {
    const page = 7n * block
    assert.strictEqual(Replication.covering(page + 24n, block, segment), page)
    assert.strictEqual(Replication.covering(3n * segment + 40n, block, segment), 3n * segment)
    // Mid-page, or a header size at another offset: unchanged.
    assert.strictEqual(Replication.covering(page + 25n, block, segment), page + 25n)
    assert.strictEqual(Replication.covering(3n * segment + 24n, block, segment), 3n * segment + 24n)
    assert.strictEqual(Replication.covering(page + 24n, 0n, 0n), page + 24n, "sizes not known: unchanged")
  })

  it("positions parse from pg_lsn - '0/0' and show as X/Y; anything else is refused", () => {
    assert.strictEqual(Replication.parse("24414376"), 24414376n)
    assert.strictEqual(Replication.format(0x16B374D848n), "16/B374D848")
    for (const bad of ["-1", "1e3", "0/0", "", " 1", 5, null, "1".repeat(21)]) {
      assert.isUndefined(Replication.parse(bad))
    }
  })
})

describe("a replica's lag", () => {
  it("caught up with a sample taken after it was read: 0, however long the primary stays idle", () => {
    const lag = new Replication.LagEstimator()
    lag.sample(1_000, 500n, 50_000)
    assert.strictEqual(lag.lag(900, 500n, 10_000), 0)
    // Idle for a minute: same position sampled again and again, the last commit long ago.
    for (let t = 2_000; t <= 60_000; t += 1_000) lag.sample(t, 500n, 50_000 + t)
    assert.strictEqual(lag.lag(59_990, 500n, 10_000), 0)
  })

  it("behind: the time since the newest sample it had passed, or since its last replayed commit, the smaller", () => {
    const lag = new Replication.LagEstimator()
    lag.sample(1_000, 100n, 101_000)
    lag.sample(2_000, 200n, 102_000)
    lag.sample(3_000, 300n, 103_000)
    // Replayed 250 by 3 010: it has all of the sample at 2 000 → at most 1 010 ms.
    assert.strictEqual(lag.lag(3_010, 250n, undefined), 1_010)
    // Its last replayed commit at 102 700 (primary clock); the primary's clock at 3 010 is 103 010 → 310 ms.
    assert.strictEqual(lag.lag(3_010, 250n, 102_700), 310)
    // Older than every sample, no commit time: as old as the oldest sample.
    assert.strictEqual(lag.lag(3_010, 50n, undefined), 2_010)
  })

  it("no sample yet: not known; a lower position (another primary) starts the samples over", () => {
    const lag = new Replication.LagEstimator()
    assert.isUndefined(lag.lag(0, 0n, undefined))
    lag.sample(1_000, 900n, undefined)
    lag.sample(2_000, 100n, undefined)
    assert.strictEqual(lag.primaryLsn, 100n)
    assert.strictEqual(lag.lag(2_500, 100n, undefined), 500)
  })
})

describe("read-your-writes sessions", () => {
  it("a fiber's or scope's session is made on a write only", () => {
    const sessions = new Replication.Sessions(10)
    const owner = {}
    assert.isUndefined(sessions.ofObject(owner, false))
    const made = sessions.ofObject(owner, true)!
    assert.strictEqual(sessions.ofObject(owner, false), made)
  })

  it("keys beyond the bound: the least recently written leaves, folded into the floor that unknown keys read", () => {
    const sessions = new Replication.Sessions(2)
    const a = sessions.ofKey("a", true)
    a.lastWrite = 1
    a.resolvedWrite = 1
    a.lsn = 700n
    const b = sessions.ofKey("b", true)
    b.lastWrite = 2 // written, its position not read yet
    sessions.ofKey("a", true) // a written again: b is now the oldest
    sessions.ofKey("c", true)
    assert.strictEqual(sessions.keys, 2)
    // b left unresolved: a key no longer kept reads the floor, which still needs its position read.
    const floor = sessions.ofKey("b", false)
    assert.notStrictEqual(floor, b)
    assert.isTrue(Replication.unresolved(floor))
    assert.strictEqual(floor.lastWrite, 2)
    assert.strictEqual(sessions.ofKey("never-wrote", false), floor)
  })

  it("pruned once every replica replayed past them: the floor keeps their position", () => {
    const sessions = new Replication.Sessions(10)
    const a = sessions.ofKey("a", true)
    Object.assign(a, { lastWrite: 1, resolvedWrite: 1, lsn: 500n })
    const b = sessions.ofKey("b", true)
    Object.assign(b, { lastWrite: 2, resolvedWrite: 2, lsn: 900n })
    sessions.prune(600n)
    assert.strictEqual(sessions.keys, 1)
    assert.strictEqual(sessions.ofKey("a", false).lsn, 500n, "a reads the floor, at a's position")
    assert.strictEqual(sessions.ofKey("b", false), b)
  })
})
