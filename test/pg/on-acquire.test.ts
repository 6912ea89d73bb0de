/**
 * `onAcquire` (PgSql's option, as `PgClient`'s config field since @effect/sql-pg 4.1): a hook run
 * after each checkout in the fiber that uses the connection — once per statement outside a
 * transaction, once per `withTransaction`, `reserve`, stream, `listen` and `notify` — whose
 * finalizers run when that use ends, with the services captured at build and the consuming
 * fiber's own taking precedence. The same assertions run against `PgClient.layer` as the
 * reference when the installed @effect/sql-pg has the option.
 */
import { PgClient } from "@effect/sql-pg"
import sqlPgPackage from "@effect/sql-pg/package.json" with { type: "json" }
import { assert, describe, layer } from "@effect/vitest"
import { Context, Effect, Layer, Queue, Stream } from "effect"
import { NullPool, QueuePool, StaticPool } from "effect-db-pool"
import type { ConnectionPool, Driver, PoolError } from "effect-db-pool"
import { PgDriver, PgSql } from "effect-db-pool/pg"
import { PgDatabase } from "effect-db-pool/pg/embedded"
import { SqlClient } from "effect/sql"
import { appName, Database } from "./fixture.ts"

/** Read from the consuming fiber (a request id, say). */
const RequestTag = Context.Reference<string>("test/onAcquire/RequestTag", { defaultValue: () => "none" })
/** A service captured when the client is built. */
class Captured extends Context.Service<Captured, string>()("test/onAcquire/Captured") {}

const log: Array<string> = []
const onAcquire = Effect.gen(function*() {
  const tag = yield* RequestTag
  const captured = yield* Captured
  log.push(`acquire ${tag} ${captured}`)
  yield* Effect.addFinalizer(() => Effect.sync(() => log.push(`release ${tag}`)))
})
/** The log since the last call. */
const drain = Effect.sync(() => log.splice(0))

const note = (what: string) => Effect.sync(() => log.push(what))

const driverOf = (applicationName: string) =>
  Layer.unwrap(
    Effect.map(Effect.service(PgDatabase.PgDatabase), (db) =>
      PgDriver.layer({ url: db.url, applicationName, connectTimeout: "5 seconds" }))
  )

type PoolLayer = Layer.Layer<ConnectionPool.ConnectionPool, PoolError.PoolConfigError, Driver.Driver>

const pgSql = (pool: () => PoolLayer, options: PgSql.Options = {}) => (applicationName: string) =>
  PgClient.layerFrom(PgSql.make({ ...options, onAcquire })).pipe(
    Layer.provide(Layer.succeed(Captured)("built")),
    Layer.provideMerge(pool()),
    Layer.provideMerge(driverOf(applicationName))
  )

const [major, minor] = sqlPgPackage.version.split(".").map(Number) as [number, number]
const referenceHasOnAcquire = major > 4 || (major === 4 && minor >= 1)

const targets: ReadonlyArray<
  readonly [
    string,
    (applicationName: string) => Layer.Layer<PgClient.PgClient | SqlClient.SqlClient, unknown, PgDatabase.PgDatabase>
  ]
> = [
  ["QueuePool", pgSql(() => QueuePool.layer({ poolSize: 2 }))],
  ["NullPool", pgSql(() => NullPool.layer())],
  // Pipelined statements (PgSql.layer({ pipeline })): the hook runs once per statement all the same.
  ["QueuePool-pipelined", pgSql(() => QueuePool.layer({ poolSize: 2 }), { pipeline: { maxInFlight: 4 } })],
  ["StaticPool", pgSql(() => StaticPool.layer())],
  ...(referenceHasOnAcquire
    ? [
      [
        "PgClient.layer (reference)",
        // Typed loosely: this file also compiles against @effect/sql-pg 4.0, whose config has no onAcquire.
        (applicationName: string) =>
          Layer.unwrap(
            Effect.map(Effect.service(PgDatabase.PgDatabase), (db) =>
              PgClient.layer({ url: db.url, applicationName, onAcquire } as Parameters<typeof PgClient.layer>[0]))
          ).pipe(
            Layer.provide(Layer.succeed(Captured)("built"))
          ) as Layer.Layer<PgClient.PgClient | SqlClient.SqlClient, unknown, PgDatabase.PgDatabase>
      ] as const
    ]
    : [])
]

layer(Database, { timeout: "60 seconds", excludeTestServices: true })("onAcquire", (it) => {
  for (const [name, clientLayer] of targets) {
    describe(name, () => {
      it.layer(clientLayer(appName(`on-acquire-${name.split(" ")[0]!.toLowerCase()}`)))(name, (it) => {
        it.effect("once per statement, in the consuming fiber: its Reference, the captured service, its finalizer after the statement", () =>
          Effect.gen(function*() {
            const sql = yield* SqlClient.SqlClient
            yield* drain
            yield* sql`select 1`
            yield* sql`select 2`.pipe(Effect.provideService(RequestTag, "req-1"))
            assert.deepStrictEqual(yield* drain, [
              "acquire none built",
              "release none",
              "acquire req-1 built",
              "release req-1"
            ])
          }))

        it.effect("the consuming fiber's services take precedence over the captured ones", () =>
          Effect.gen(function*() {
            const sql = yield* SqlClient.SqlClient
            yield* drain
            yield* sql`select 1`.pipe(Effect.provideService(Captured, "request"))
            assert.deepStrictEqual(yield* drain, ["acquire none request", "release none"])
          }))

        it.effect("once per transaction, however many statements; released after the COMMIT", () =>
          Effect.gen(function*() {
            const sql = yield* SqlClient.SqlClient
            yield* drain
            yield* sql.withTransaction(Effect.gen(function*() {
              yield* sql`select 1`
              yield* note("body")
              yield* sql`select 2`
            }))
            yield* note("after")
            assert.deepStrictEqual(yield* drain, ["acquire none built", "body", "release none", "after"])
          }))

        it.effect("once per reserve and per stream, released when they end", () =>
          Effect.gen(function*() {
            const sql = yield* SqlClient.SqlClient
            yield* drain
            yield* Effect.scoped(Effect.gen(function*() {
              const conn = yield* sql.reserve
              yield* conn.executeRaw("select 1", [])
              yield* conn.executeRaw("select 2", [])
              yield* note("reserved")
            }))
            yield* Stream.runCollect(sql`select generate_series(1, 3) as n`.stream)
            yield* note("streamed")
            assert.deepStrictEqual(yield* drain, [
              "acquire none built",
              "reserved",
              "release none",
              "acquire none built",
              "release none",
              "streamed"
            ])
          }))

        it.effect("once per listen (released with the listener's scope) and per notify", () =>
          Effect.gen(function*() {
            const client = yield* PgClient.PgClient
            yield* drain
            const channel = `on_acquire_${name.split(" ")[0]!.toLowerCase()}`
            yield* Effect.scoped(Effect.gen(function*() {
              const queue = yield* client.listen(channel)
              yield* note("listening")
              yield* client.notify(channel, "hi").pipe(Effect.provideService(RequestTag, "notify"))
              const received = yield* Queue.take(queue)
              assert.strictEqual(received.payload, "hi")
              yield* note("received")
            }))
            assert.deepStrictEqual(yield* drain, [
              "acquire none built",
              "listening",
              "acquire notify built",
              "release notify",
              "received",
              "release none"
            ])
          }))

        it.effect("config.onAcquire is the hook the client runs", () =>
          Effect.gen(function*() {
            const client = yield* PgClient.PgClient
            const config = client.config as { readonly onAcquire?: Effect.Effect<void> | undefined }
            assert.isTrue(Effect.isEffect(config.onAcquire))
          }))
      })
    })
  }

  it.effect("a value that is no Effect fails the layer with PgSqlConfigError naming onAcquire", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Effect.scoped(Layer.build(
        PgClient.layerFrom(PgSql.make({ onAcquire: (() => {}) as unknown as Effect.Effect<void> })).pipe(
          Layer.provide(QueuePool.layer()),
          Layer.provide(driverOf(appName("on-acquire-bad")))
        )
      )))
      assert.strictEqual(error._tag, "PgSqlConfigError")
      assert.match(error.message, /onAcquire.*must be an Effect/)
    }))
})
