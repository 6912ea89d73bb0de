/**
 * Where a `PgReplicas` router sends work: writes, and work not marked read-only, to the
 * primary; read-only work to a replica that serves reads (after its session's writes, with
 * read-your-writes), the primary when none does. A replica whose checkout fails is marked down
 * and the work goes on at once to the next choice: nothing had run yet.
 *
 * @internal
 */
import { Effect } from "effect"
import type { Fiber } from "effect"
import * as SqlClient from "effect/sql/SqlClient"
import type { Acquirer, Borrower, Connection } from "effect/sql/SqlConnection"
import type { SqlError } from "effect/sql/SqlError"
import { isReadOnlyBegin, ReadOnly } from "./read-only.ts"
import { isReadYourWrites, markOf, readAfterWrites, wrote } from "./read-your-writes.ts"
import type { Next, ReadYourWrites } from "./read-your-writes.ts"
import { isUnreachable, markDown, pick } from "./replica-set.ts"
import type { Member, ReplicaSet } from "./replica-set.ts"

const readOnlyOf = (fiber: Fiber.Fiber<unknown, unknown>, transaction: boolean): boolean =>
  fiber.getRef(ReadOnly) ||
  (transaction && isReadOnlyBegin(fiber.getRef(SqlClient.BeginTransaction)))

/**
 * One statement on `at`; a replica whose checkout fails is marked down and the work goes to
 * `next` (picked after the mark).
 */
const borrowOn = <A, E, R>(
  set: ReplicaSet,
  at: Member,
  f: (connection: Connection) => Effect.Effect<A, E, R>,
  next: Next
): Effect.Effect<A, E | SqlError, R> =>
  Effect.suspend(() => {
    let entered = false
    at.routed++
    // Counted and uncounted in one uninterruptible step: an interrupt cannot leave the count off.
    const run = Effect.uninterruptibleMask((restore) => {
      at.inFlight++
      return Effect.ensuring(
        restore(at.borrower((connection) => {
          entered = true
          return f(connection)
        })),
        Effect.sync(() => at.inFlight--)
      )
    })
    if (at === set.primary) return run
    return Effect.catchIf(
      run,
      (error): error is SqlError & E => !entered && isUnreachable(error),
      (error) => Effect.andThen(markDown(at, error), Effect.suspend(() => borrowOn(set, next(set), f, next)))
    )
  })

/** A scoped checkout on `at` (stream, transaction, `reserve`), with the same fallback. */
const acquireOn = (set: ReplicaSet, at: Member, transaction: boolean, next: Next): Acquirer =>
  Effect.suspend(() => {
    const acquire = transaction ? at.options.transactionAcquirer ?? at.options.acquirer : at.options.acquirer
    at.routed++
    const counted = Effect.tap(acquire, () =>
      Effect.uninterruptible(Effect.andThen(
        Effect.sync(() => at.inFlight++),
        Effect.addFinalizer(() => Effect.sync(() => at.inFlight--))
      )))
    if (at === set.primary) return counted
    return Effect.catchIf(
      counted,
      isUnreachable,
      (error) => Effect.andThen(markDown(at, error), Effect.suspend(() => acquireOn(set, next(set), transaction, next)))
    )
  })

/** The router's `borrower`: one statement, on the member its marks choose. */
export const borrower = (set: ReplicaSet, state: ReadYourWrites): Borrower => (f) =>
  Effect.withFiber((fiber) => {
    const mark = markOf(fiber)
    if (readOnlyOf(fiber, false)) {
      return isReadYourWrites(state, mark)
        ? readAfterWrites(set, state, fiber, mark, (at, next) => borrowOn(set, at, f, next))
        : borrowOn(set, pick(set), f, pick)
    }
    const run = borrowOn(set, set.primary, f, pick)
    return isReadYourWrites(state, mark) ? Effect.ensuring(run, wrote(state, fiber, mark)) : run
  })

/** The router's `acquirer` (`transaction`: its `transactionAcquirer`): a scoped checkout on the member its marks choose. */
export const acquirer = (set: ReplicaSet, state: ReadYourWrites, transaction: boolean): Acquirer =>
  Effect.withFiber((fiber) => {
    const mark = markOf(fiber)
    if (readOnlyOf(fiber, transaction)) {
      return isReadYourWrites(state, mark)
        ? readAfterWrites(set, state, fiber, mark, (at, next) => acquireOn(set, at, transaction, next))
        : acquireOn(set, pick(set), transaction, pick)
    }
    const acquired = acquireOn(set, set.primary, transaction, pick)
    // The session's write ends when the checkout's scope closes: after COMMIT, or the stream / `reserve`.
    return isReadYourWrites(state, mark)
      ? Effect.tap(acquired, () => Effect.addFinalizer(() => wrote(state, fiber, mark)))
      : acquired
  })
