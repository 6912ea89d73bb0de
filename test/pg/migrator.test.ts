/**
 * effect/sql's `Migrator` and `@effect/sql-pg`'s `PgMigrator` over `PgSql`, against a real server.
 *
 * The migrator creates its table when missing, then, in one transaction, takes
 * `LOCK TABLE <migrations> IN ACCESS EXCLUSIVE MODE`, reads the latest recorded id, records the
 * pending migrations up front and runs them. Two migrators started together therefore serialise on
 * that lock: the first runs every migration, the second waits, then finds nothing pending and
 * succeeds with `[]` (a "Locked" outcome — two inserts of the same ids — is also reported as `[]`,
 * never as a failure). Each test works in a schema of its own, so reruns and the other test files
 * never collide.
 */
import { NodeServices } from "@effect/platform-node"
import { PgMigrator } from "@effect/sql-pg"
import { assert, describe, layer } from "@effect/vitest"
import { Effect, Layer, Schedule } from "effect"
import { ConnectionPool, NullPool, QueuePool, StaticPool } from "effect-db-pool"
import type { Driver, PoolError } from "effect-db-pool"
import { Migrator, SqlClient } from "effect/sql"
import { admin, appName, Database, sqlLayer } from "./fixture.ts"

type PoolLayer = Layer.Layer<ConnectionPool.ConnectionPool, PoolError.PoolConfigError, Driver.Driver>

/** A schema of this run's own (unquoted identifiers fold to lower case: keep it lower case). */
const uniqueSchema = (tag: string) => `edp_mig_${tag}_${process.pid}_${Math.random().toString(36).slice(2, 8)}`

const expected = [[1, "create_users"], [2, "create_posts"], [3, "seed_users"]] as const

/**
 * Three migrations into `schema`. When `waitForLockWaiter` is set, the first one (which runs
 * inside the migrator's transaction, holding the lock) waits until another session is seen
 * blocked on the migrations table's lock, so the test proves the two runs overlapped.
 */
const migrations = (schema: string, options: { readonly waitForLockWaiter?: { seen: boolean } } = {}) =>
  Migrator.fromRecord({
    "1_create_users": Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* sql`create table ${sql(`${schema}.users`)} (id serial primary key, name text not null)`
      const probe = options.waitForLockWaiter
      if (probe) {
        probe.seen = yield* sql<{ n: number }>`select count(*)::int as n from pg_locks
          where relation = to_regclass(${`${schema}.effect_sql_migrations`}) and not granted`.pipe(
          Effect.map((rows) => rows[0]!.n > 0),
          Effect.repeat({
            until: (seen) => seen,
            schedule: Schedule.spaced("20 millis").pipe(Schedule.upTo({ times: 250 }))
          })
        )
      }
    }),
    "2_create_posts": Effect.flatMap(SqlClient.SqlClient, (sql) =>
      sql`create table ${sql(`${schema}.posts`)} (
        id serial primary key,
        user_id int not null references ${sql(`${schema}.users`)} (id),
        title text not null
      )`),
    "3_seed_users": Effect.flatMap(
      SqlClient.SqlClient,
      (sql) => sql`insert into ${sql(`${schema}.users`)} (name) values ('alice')`
    )
  })

/** PgMigrator.run with the Node services its type asks for (pg_dump is only spawned for `schemaDirectory`). */
const runPgMigrator = (schema: string, loader: Migrator.Loader) =>
  PgMigrator.run({ loader, table: `${schema}.effect_sql_migrations` }).pipe(Effect.provide(NodeServices.layer))

/** Create the schema now, drop it (with everything the migrations made) when the test's scope closes. */
const withSchema = (schema: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql`create schema ${sql(schema)}`
    yield* Effect.addFinalizer(() => Effect.ignore(sql`drop schema if exists ${sql(schema)} cascade`))
  })

/** What the database holds afterwards: the recorded migrations, the tables, the seeded rows. */
const inspect = (schema: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const recorded = yield* sql<{ migration_id: number; name: string }>`select migration_id, name
      from ${sql(`${schema}.effect_sql_migrations`)} order by migration_id`
    const tables = yield* sql<{ table_name: string }>`select table_name from information_schema.tables
      where table_schema = ${schema} order by table_name`
    const users = yield* sql<{ name: string }>`select name from ${sql(`${schema}.users`)}`
    return {
      recorded: recorded.map((r) => [r.migration_id, r.name]),
      tables: tables.map((t) => t.table_name),
      users: users.map((u) => u.name)
    }
  })

const checkedOut = Effect.map(
  Effect.flatMap(Effect.service(ConnectionPool.ConnectionPool), (p) => p.status),
  (s) => s.checkedOut
)

layer(Database, { timeout: "60 seconds", excludeTestServices: true })("effect/sql Migrator over PgSql", (it) => {
  const concurrent: ReadonlyArray<readonly [string, PoolLayer]> = [
    ["QueuePool", QueuePool.layer({ poolSize: 2, maxOverflow: 2 })],
    ["NullPool", NullPool.layer()]
  ]
  for (const [name, pool] of concurrent) {
    it.layer(sqlLayer(pool, appName(`mig-${name.toLowerCase()}`)))(name, (it) => {
      it.effect("PgMigrator.run from two fibers at once: every migration runs exactly once, both succeed", () =>
        Effect.gen(function*() {
          const schema = uniqueSchema(name.toLowerCase())
          yield* withSchema(schema)
          const probe = { seen: false }
          const loader = migrations(schema, { waitForLockWaiter: probe })

          const results = yield* Effect.all([runPgMigrator(schema, loader), runPgMigrator(schema, loader)], {
            concurrency: "unbounded"
          })

          // One run applied everything; the other waited on the lock and found nothing pending.
          assert.isTrue(probe.seen, "the second migrator was seen waiting on the migrations table lock")
          const [ran, idle] = results[0].length > 0 ? results : [results[1], results[0]]
          assert.deepStrictEqual(ran, expected)
          assert.deepStrictEqual(idle, [])

          assert.deepStrictEqual(yield* inspect(schema), {
            recorded: expected.map(([id, n]) => [id, n]),
            tables: ["effect_sql_migrations", "posts", "users"],
            users: ["alice"]
          })
          assert.strictEqual(yield* checkedOut, 0)

          // A third run later: nothing pending, nothing re-run.
          assert.deepStrictEqual(yield* runPgMigrator(schema, loader), [])
          assert.deepStrictEqual((yield* inspect(schema)).users, ["alice"])
          assert.strictEqual(yield* checkedOut, 0)
        }))
    })
  }

  it.layer(sqlLayer(StaticPool.layer(), appName("mig-staticpool")))("StaticPool", (it) => {
    // One shared session: concurrent transactions would interleave on it, so the runs are sequential.
    it.effect("PgMigrator.run, then Migrator.make run again: applied once, the second run is a no-op", () =>
      Effect.gen(function*() {
        const schema = uniqueSchema("static")
        yield* withSchema(schema)
        const loader = migrations(schema)
        assert.deepStrictEqual(yield* runPgMigrator(schema, loader), expected)
        // The dialect-generic migrator (no platform services needed) sees the same table.
        const run = Migrator.make({})
        assert.deepStrictEqual(yield* run({ loader, table: `${schema}.effect_sql_migrations` }), [])
        assert.deepStrictEqual(yield* inspect(schema), {
          recorded: expected.map(([id, n]) => [id, n]),
          tables: ["effect_sql_migrations", "posts", "users"],
          users: ["alice"]
        })
        assert.strictEqual(yield* checkedOut, 0)
      }))
  })

  describe("a failing migration", () => {
    it.layer(sqlLayer(QueuePool.layer({ poolSize: 2 }), appName("mig-fail")))("QueuePool", (it) => {
      it.effect("rolls back its transaction: nothing recorded, nothing created, the connection is returned", () =>
        Effect.gen(function*() {
          const schema = uniqueSchema("fail")
          yield* withSchema(schema)
          const loader = Migrator.fromRecord({
            "1_create_users": Effect.flatMap(
              SqlClient.SqlClient,
              (sql) => sql`create table ${sql(`${schema}.users`)} (id serial primary key)`
            ),
            "2_broken": Effect.flatMap(SqlClient.SqlClient, (sql) => sql`selec 1`)
          })
          const error = yield* Effect.flip(runPgMigrator(schema, loader))
          assert.strictEqual(error._tag, "MigrationError")
          assert.strictEqual(error._tag === "MigrationError" ? error.kind : undefined, "Failed")
          const sql = yield* SqlClient.SqlClient
          const recorded = yield* sql`select 1 from ${sql(`${schema}.effect_sql_migrations`)}`
          assert.strictEqual(recorded.length, 0)
          const observer = yield* admin
          const users = yield* observer.query("select to_regclass($1)::text as t", [`${schema}.users`])
          assert.strictEqual(users.rows[0]!.t, null)
          assert.strictEqual(yield* checkedOut, 0)
        }))
    })
  })
})
