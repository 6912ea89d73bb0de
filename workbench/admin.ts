/**
 * The workbench's own admin session, outside the pools under test: schema set-up, the server
 * version, and (with `--chaos`) finding and terminating the workload's backends. Built with the
 * library's public API: a one-connection QueuePool over PgDriver.
 */
import { Context, Effect, Layer } from "effect"
import type { Redacted, Scope } from "effect"
import { ConnectionPool, QueuePool } from "effect-db-pool"
import type { PoolError } from "effect-db-pool"
import { PgDriver } from "effect-db-pool/pg"
import type { SqlError } from "effect/sql/SqlError"

/** The admin session. */
export interface Admin {
  /** Run one statement; rows keyed by column. */
  readonly query: (
    sql: string,
    params?: ReadonlyArray<unknown>
  ) => Effect.Effect<ReadonlyArray<Record<string, unknown>>, SqlError | PoolError.CheckoutError>
}

/** An admin session to `url`, tagged `applicationName`, for the life of the scope. */
export const make = (
  url: Redacted.Redacted<string>,
  applicationName: string
): Effect.Effect<Admin, PgDriver.PgConfigError | PoolError.PoolConfigError, Scope.Scope> =>
  Effect.map(
    Layer.build(
      QueuePool.layer({ name: `${applicationName}-pool`, poolSize: 1, maxOverflow: 1, prePing: true, metrics: false })
        .pipe(
          Layer.provide(PgDriver.layer({ url, applicationName, connectTimeout: "10 seconds" }))
        )
    ),
    (context) => {
      const pool = Context.get(context, ConnectionPool.ConnectionPool)
      return {
        query: (sql, params = []) =>
          pool.use((pooled) =>
            Effect.map((pooled.connection as PgDriver.Connection).query(sql, params), (r) =>
              r.rows as ReadonlyArray<Record<string, unknown>>)
          )
      }
    }
  )
