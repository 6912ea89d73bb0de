/**
 * Which PostgreSQL to talk to: the `DATABASE_URL` environment variable when it is set,
 * otherwise an {@link EmbeddedPostgres} server started for the layer's lifetime. Tests and
 * examples use it so the same code runs on a fresh machine and against a CI database.
 *
 * @since 0.1.0
 */
import { Config, Context, Effect, Layer, Option, Redacted } from "effect"
import * as EmbeddedPostgres from "./EmbeddedPostgres.ts"

/**
 * @category models
 * @since 0.1.0
 */
export interface Service {
  /** The URL to connect to. */
  readonly url: Redacted.Redacted<string>
  /** The embedded server, when no `DATABASE_URL` was set (stop/start it in tests). */
  readonly embedded: EmbeddedPostgres.Service | undefined
}

/**
 * The database service.
 *
 * @category services
 * @since 0.1.0
 */
export class PgDatabase extends Context.Service<PgDatabase, Service>()("effect-db-pool/pg/PgDatabase") {}

/**
 * `DATABASE_URL` when set (read through `Config`), else a fresh embedded server.
 *
 * @example
 * ```ts
 * import { Effect, Layer } from "effect"
 * import { QueuePool } from "effect-db-pool"
 * import { PgDriver, PgSql } from "effect-db-pool/pg"
 * import { PgDatabase } from "effect-db-pool/pg/embedded"
 *
 * const Driver = Layer.unwrap(Effect.map(Effect.service(PgDatabase.PgDatabase), (db) => PgDriver.layer({ url: db.url })))
 * const Sql = PgSql.layer().pipe(
 *   Layer.provide(QueuePool.layer()),
 *   Layer.provideMerge(Driver),
 *   Layer.provide(PgDatabase.layer())
 * )
 * ```
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (
  options: EmbeddedPostgres.Options = {}
): Layer.Layer<PgDatabase, EmbeddedPostgres.EmbeddedPostgresError | Config.ConfigError> =>
  Layer.effect(
    PgDatabase,
    Effect.gen(function*() {
      const fromEnv = yield* Config.option(Config.Redacted("DATABASE_URL"))
      if (Option.isSome(fromEnv) && Redacted.value(fromEnv.value).trim().length > 0) {
        return { url: fromEnv.value, embedded: undefined }
      }
      const embedded = yield* EmbeddedPostgres.make(options)
      return { url: embedded.url, embedded }
    })
  )
