// The pg entry's declarations alone (no `process`, no Node API of its own), type-checked without
// @types/node to report whether a consumer of `effect-db-pool/pg` needs it (test-package.sh
// prints the count of errors: @effect/sql-pg's own declarations import `node:stream`, `node:tls`).
import { Layer, Redacted } from "effect"
import { QueuePool } from "effect-db-pool"
import type { ConnectionPool } from "effect-db-pool"
import { PgDriver, PgSql } from "effect-db-pool/pg"
import type { SqlClient } from "effect/sql"

export const Sql: Layer.Layer<SqlClient.SqlClient | ConnectionPool.ConnectionPool, unknown> = PgSql.layerWith({}).pipe(
  Layer.provideMerge(QueuePool.layer({ poolSize: 2 })),
  Layer.provideMerge(PgDriver.layer({ url: Redacted.make("postgres://app@db:5432/app") }))
)
