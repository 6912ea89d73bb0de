/**
 * Shared pieces of the reliability suite: a seeded random source (so a failing combination can
 * be replayed with RELIABILITY_SEED), exit classification, and the strategies under test.
 */
import { Cause, Exit } from "effect"
import { AssertionPool, FiberPool, NullPool, QueuePool, StaticPool } from "effect-db-pool"
import * as SeededRandom from "../../support/random.ts"
import { everyStrategy } from "../helpers.ts"
import type { MakePool } from "../helpers.ts"

/** A seeded generator (mulberry32, test/support/random.ts), plus `pick`. */
export const seeded = (seed: number) => {
  const random = SeededRandom.make(seed)
  return {
    ...random,
    pick: <A>(items: ReadonlyArray<A>): A => items[Math.floor(random.next() * items.length)]!
  }
}
export type Rng = ReturnType<typeof seeded>

export const seedFromEnv = (): number => {
  const fromEnv = Number(process.env.RELIABILITY_SEED)
  return Number.isFinite(fromEnv) && fromEnv > 0 ? fromEnv : Math.floor(Math.random() * 2 ** 31)
}

export type Outcome = "success" | "interrupted" | `fail:${string}` | `defect:${string}`

/** What a user saw: success, interruption only, a typed failure (by tag), or a defect. */
export const classify = (exit: Exit.Exit<unknown, unknown>): Outcome => {
  if (Exit.isSuccess(exit)) return "success"
  const cause = exit.cause
  if (Cause.hasDies(cause)) {
    const die = cause.reasons.find(Cause.isDieReason)
    return `defect:${String((die?.defect as Error | undefined)?.message ?? die?.defect)}`
  }
  const failure = cause.reasons.find(Cause.isFailReason)
  if (failure === undefined) return "interrupted"
  const error = failure.error as { _tag?: unknown } | undefined
  return `fail:${typeof error?._tag === "string" ? error._tag : String(error)}`
}

export interface StrategyUnderTest {
  readonly name: string
  readonly make: MakePool
  readonly options: Record<string, unknown>
  /** Invariants that must hold at every sampled moment. */
  readonly limits: {
    readonly maxCheckedOut?: number
    readonly maxOverflow?: number
    readonly maxCheckedIn?: number
    /** Raw connections open at once (MockDriver.open()). */
    readonly maxOpen?: number
  }
}

/** Every strategy (a strategy without its row here does not compile). */
export const strategies: ReadonlyArray<StrategyUnderTest> = everyStrategy<Omit<StrategyUnderTest, "name">>({
  QueuePool: {
    make: QueuePool.make,
    options: { poolSize: 3, maxOverflow: 2, timeout: "4 millis" },
    limits: { maxCheckedOut: 5, maxOverflow: 2, maxCheckedIn: 3, maxOpen: 5 }
  },
  NullPool: { make: NullPool.make, options: {}, limits: { maxCheckedIn: 0 } },
  StaticPool: { make: StaticPool.make, options: {}, limits: { maxCheckedOut: 1, maxCheckedIn: 1, maxOpen: 1 } },
  FiberPool: { make: FiberPool.make, options: { poolSize: 3 }, limits: { maxCheckedIn: 3 } },
  AssertionPool: { make: AssertionPool.make, options: {}, limits: { maxCheckedOut: 1, maxCheckedIn: 1, maxOpen: 1 } }
}).map(([name, strategy]) => ({ name, ...strategy }))
