/**
 * `--chaos`: terminate a random backend of the workload (its own `application_name` only,
 * never anyone else's session) every 0.3–1 s, so pre-ping, invalidation and recovery show up
 * in the view, the events and the metrics.
 */
import { Duration, Effect } from "effect"
import type * as Random from "../support/random.ts"
import type { Admin } from "./admin.ts"
import type { StrategyRun } from "./recorder.ts"

/** Kill backends named `applicationName` until interrupted, recording each kill in `run`. */
export const monkey = (
  admin: Admin,
  applicationName: string,
  run: StrategyRun,
  rng: Random.Random
): Effect.Effect<never> =>
  Effect.forever(
    Effect.gen(function*() {
      yield* Effect.sleep(Duration.millis(rng.int(300, 1000)))
      const rows = yield* admin.query(
        "select pid from pg_stat_activity where application_name = $1 and pid <> pg_backend_pid() order by pid",
        [applicationName]
      )
      if (rows.length === 0) return
      const pid = rows[rng.int(0, rows.length - 1)]!.pid as number
      const killed = yield* admin.query("select pg_terminate_backend($1) as ok", [pid])
      if (killed[0]?.ok === true) run.kills.push(run.now())
    }).pipe(Effect.ignore)
  )
