/**
 * PoolManager over a real server that checks passwords (an EMBEDDED server of this file's own,
 * whatever DATABASE_URL says: the machine's server may trust every login). Tenant A's role has
 * a password whose effect `Hash.string` equals that of another string: the colliding wrong
 * password must get no pool of A's (and no pool at all once its login fails), and must not lock
 * A out by asking first.
 */
import { PgConnection } from "@effect/sql-pg"
import { assert, layer } from "@effect/vitest"
import { Cause, Effect, Exit, Hash, Layer, Redacted } from "effect"
import { PoolError, PoolManager, QueuePool } from "effect-db-pool"
import { PgDriver } from "effect-db-pool/pg"
import { EmbeddedPostgres } from "effect-db-pool/pg/embedded"

/** A real `Hash.string` collision (see test/pool-manager.security.test.ts for how it was found). */
const passwordA = "tenant-a-S3cret!"
const collidingPassword = "wrong-hu8k3w"

interface Login {
  readonly user: string
  readonly password: Redacted.Redacted<string>
}

const login = (user: string, password: string): Login => ({ user, password: Redacted.make(password) })

const managerFor = (server: EmbeddedPostgres.Service) =>
  PoolManager.make({
    pool: (args: Login) =>
      QueuePool.layer({ poolSize: 2 }).pipe(
        Layer.provide(PgDriver.layer({
          url: Redacted.make(`postgres://${args.user}@${server.host}:${server.port}/postgres`),
          password: args.password,
          applicationName: "edp-pool-manager",
          connectTimeout: "5 seconds"
        }))
      )
  })

const whoAmI = <E>(manager: PoolManager.PoolManager<Login, E>, args: Login) =>
  manager.use(args, (conn) =>
    Effect.map(
      (conn.connection as PgDriver.Connection).query("select current_user as who", []),
      (result) => result.rows[0]!.who as string
    ))

const failureOf = (exit: Exit.Exit<unknown, unknown>): unknown =>
  Exit.isFailure(exit) ? exit.cause.reasons.find(Cause.isFailReason)?.error : undefined

layer(EmbeddedPostgres.layer(), { timeout: "120 seconds", excludeTestServices: true })(
  "PoolManager on a server that checks passwords",
  (it) => {
    it.effect("the colliding wrong password gets no pool of A's and keeps none; A's login works, first or second", () =>
      Effect.gen(function*() {
        assert.strictEqual(Hash.string(passwordA), Hash.string(collidingPassword))
        const server = yield* EmbeddedPostgres.EmbeddedPostgres
        const admin = yield* PgConnection.make({ url: server.url })
        yield* admin.query(`create role tenant_a login password '${passwordA}'`, [])

        const manager = yield* managerFor(server)
        assert.strictEqual(yield* whoAmI(manager, login("tenant_a", passwordA)), "tenant_a")
        const keyA = manager.keyOf(login("tenant_a", passwordA))
        assert.deepStrictEqual(yield* manager.keys, [keyA])

        // The wrong password is refused by the server (it did not get A's pool), and leaves no pool.
        const wrong = yield* Effect.exit(whoAmI(manager, login("tenant_a", collidingPassword)))
        const error = failureOf(wrong)
        assert.instanceOf(error, PoolError.ConnectError)
        assert.isTrue(PoolManager.isAuthenticationError((error as PoolError.ConnectError).cause))
        assert.deepStrictEqual(yield* manager.keys, [keyA])
        assert.notInclude([...(yield* manager.keys), keyA].join("\n"), passwordA)

        // Asking first does not lock A out either.
        const fresh = yield* managerFor(server)
        assert.isTrue(Exit.isFailure(yield* Effect.exit(whoAmI(fresh, login("tenant_a", collidingPassword)))))
        assert.deepStrictEqual(yield* fresh.keys, [])
        assert.strictEqual(yield* whoAmI(fresh, login("tenant_a", passwordA)), "tenant_a")
        assert.deepStrictEqual(yield* fresh.keys, [keyA])
      }).pipe(Effect.scoped))

    it.effect("a wrong superuser password keeps no pool; the right one works", () =>
      Effect.gen(function*() {
        const server = yield* EmbeddedPostgres.EmbeddedPostgres
        const manager = yield* managerFor(server)
        for (let i = 0; i < 20; i++) {
          const exit = yield* Effect.exit(whoAmI(manager, login(server.user, `wrong-${i}`)))
          assert.instanceOf(failureOf(exit), PoolError.ConnectError)
        }
        assert.deepStrictEqual(yield* manager.keys, [])
        const right = { user: server.user, password: server.password }
        assert.strictEqual(yield* whoAmI(manager, right), server.user)
        assert.deepStrictEqual(yield* manager.keys, [manager.keyOf(right)])
        assert.notInclude((yield* manager.keys).join("\n"), Redacted.value(server.password))
      }).pipe(Effect.scoped))
  }
)
