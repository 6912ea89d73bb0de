/**
 * How durations read in messages: always in milliseconds with the unit (`timeout 300 ms`,
 * `2500 ms`), so a reader never has to guess whether `0.30` meant seconds.
 *
 * @internal
 */
import { Duration } from "effect"

/** `300 ms`, `2500 ms`, `0.25 ms`; `no bound` for an infinite duration. */
export const millisText = (duration: Duration.Duration): string => {
  if (!Duration.isFinite(duration)) return "no bound"
  const ms = Duration.toMillis(duration)
  return `${Number.isInteger(ms) ? ms : Number(ms.toFixed(3))} ms`
}
