/**
 * Several hosts and `targetSessionAttrs` on a real primary + streaming hot standby (embedded
 * binaries, this file's own: never the machine's server). Which server a session lands on is
 * read from the server itself: `pg_is_in_recovery()` and `inet_server_port()`.
 */
import { PgClient } from "@effect/sql-pg"
import { assert, layer } from "@effect/vitest"
import { Cause, Effect, Exit, Fiber, Layer, Queue, Redacted } from "effect"
import { NullPool, QueuePool } from "effect-db-pool"
import { PgDriver, PgSql } from "effect-db-pool/pg"
import { SqlClient } from "effect/sql"
import { isSqlError } from "effect/sql/SqlError"
import type { SqlError } from "effect/sql/SqlError"
import * as net from "node:net"
import * as HostList from "../../src/pg/internal/host-list.ts"
import * as Fixture from "../../support/replication.ts"

interface Landed {
  readonly recovery: boolean
  readonly port: number
}

const where = Effect.flatMap(
  Effect.service(SqlClient.SqlClient),
  (sql) => sql<Landed>`select pg_is_in_recovery() as recovery, inet_server_port() as port`
)

/** Connect once through NullPool + PgSql with `config`: where the session landed, or the failure. */
const landOn = (config: PgDriver.Config) =>
  Effect.exit(Effect.provide(
    Effect.map(where, (rows) => rows[0]!),
    PgSql.layer().pipe(Layer.provideMerge(NullPool.layer()), Layer.provideMerge(PgDriver.layer(config)))
  ))

const landed = (exit: Exit.Exit<Landed, unknown>): Landed => {
  if (Exit.isFailure(exit)) throw new Error(`expected a session, got ${Cause.pretty(exit.cause)}`)
  return exit.value
}

const failure = (exit: Exit.Exit<unknown, unknown>): SqlError => {
  const reason = Exit.isFailure(exit) ? exit.cause.reasons.find(Cause.isFailReason) : undefined
  if (reason === undefined || !isSqlError(reason.error)) throw new Error("expected a SqlError failure")
  return reason.error
}

/** The statements libpq's check sends when the server's startup parameters were not seen. */
const checkStatements = ["SHOW transaction_read_only", "pg_catalog.pg_is_in_recovery() AS in_recovery"]

/**
 * A loopback proxy to `port` that reads what clients send through it: `checks()` is how many of
 * the check's statements went to the server (a round trip each). Closed with the scope.
 */
const checkCountingProxy = (port: number) =>
  Effect.acquireRelease(
    Effect.callback<{ readonly port: number; readonly checks: () => number; readonly close: () => void }>((resume) => {
      const sockets = new Set<net.Socket>()
      const sent: Array<{ text: string }> = []
      const track = (socket: net.Socket) => {
        sockets.add(socket)
        socket.on("close", () => sockets.delete(socket))
        socket.on("error", () => socket.destroy())
      }
      const server = net.createServer((client) => {
        const upstream = net.connect({ host: "127.0.0.1", port })
        const seen = { text: "" }
        sent.push(seen)
        track(client)
        track(upstream)
        client.on("data", (chunk: Buffer) => {
          seen.text += chunk.toString("latin1")
          upstream.write(chunk)
        })
        upstream.pipe(client)
        upstream.on("close", () => client.destroy())
        client.on("close", () => upstream.destroy())
      })
      server.listen(0, "127.0.0.1", () => {
        const address = server.address()
        resume(Effect.succeed({
          port: typeof address === "object" && address !== null ? address.port : 0,
          checks: () =>
            sent.reduce(
              (n, { text }) => n + checkStatements.reduce((m, statement) => m + text.split(statement).length - 1, 0),
              0
            ),
          close: () => {
            server.close()
            for (const socket of sockets) socket.destroy()
          }
        }))
      })
    }),
    (proxy) => Effect.sync(proxy.close)
  )

/** Every `targetSessionAttrs`: the driver's own list, the one its validation accepts. */
const targets = HostList.targetSessionAttrsValues

layer(Fixture.layer, { timeout: "120 seconds", excludeTestServices: true })("primary + hot standby", (it) => {
  it.effect("every targetSessionAttrs, both host orders, as options and as a URL: libpq's choice", () =>
    Effect.gen(function*() {
      const cluster = yield* Fixture.Replication
      const P = cluster.primary.port
      const S = cluster.standby.port
      // Plaintext sessions: the check reads the startup parameters (PostgreSQL 14+), no round trip.
      // Every session goes through a proxy that counts the check's statements.
      const proxies = new Map([[P, yield* checkCountingProxy(P)], [S, yield* checkCountingProxy(S)]])
      const via = (port: number) => proxies.get(port)!.port
      // [order, target] → the port the session must land on.
      const expected = (first: number, target: typeof targets[number]) =>
        target === "any" ? first : target === "read-write" || target === "primary" ? P : S
      for (const [first, second] of [[P, S], [S, P]] as const) {
        for (const target of targets) {
          const viaOptions = landed(
            yield* landOn({
              host: "127.0.0.1,127.0.0.1",
              port: `${via(first)},${via(second)}`,
              username: "postgres",
              database: "postgres",
              targetSessionAttrs: target
            })
          )
          const viaUrl = landed(
            yield* landOn({
              url: Redacted.make(
                `postgres://postgres@127.0.0.1:${via(first)},127.0.0.1:${
                  via(second)
                }/postgres?target_session_attrs=${target}`
              )
            })
          )
          for (const [how, session] of [["options", viaOptions], ["url", viaUrl]] as const) {
            const label = `${target}, hosts ${first === P ? "primary,standby" : "standby,primary"}, via ${how}`
            assert.strictEqual(session.port, expected(first, target), label)
            assert.strictEqual(session.recovery, session.port === S, label)
          }
        }
      }
      assert.strictEqual(proxies.get(P)!.checks() + proxies.get(S)!.checks(), 0, "no check needed a round trip")
    }).pipe(Effect.scoped))

  it.effect("the check without startup parameters (the user's own stream): libpq's queries decide the same", () =>
    Effect.gen(function*() {
      const cluster = yield* Fixture.Replication
      // The sessions go through proxies that count the check's statements.
      const proxies = new Map([
        [cluster.primary.port, yield* checkCountingProxy(cluster.primary.port)],
        [cluster.standby.port, yield* checkCountingProxy(cluster.standby.port)]
      ])
      const viaStream = (port: number, targetSessionAttrs: PgDriver.Config.TargetSessionAttrs) =>
        landOn({
          stream: () => net.connect({ host: "127.0.0.1", port: proxies.get(port)!.port }),
          username: "postgres",
          database: "postgres",
          targetSessionAttrs
        })
      assert.isTrue(landed(yield* viaStream(cluster.standby.port, "standby")).recovery)
      assert.isTrue(landed(yield* viaStream(cluster.standby.port, "read-only")).recovery)
      assert.isFalse(landed(yield* viaStream(cluster.primary.port, "primary")).recovery)
      assert.isFalse(landed(yield* viaStream(cluster.primary.port, "read-write")).recovery)
      const error = failure(yield* viaStream(cluster.standby.port, "read-write"))
      const cause = error.reason.cause
      assert.instanceOf(cause, PgDriver.HostsError)
      assert.strictEqual((cause as PgDriver.HostsError).attempts[0]!.error._tag, "TargetSessionAttrsError")
      const checks = [...proxies.values()].reduce((n, proxy) => n + proxy.checks(), 0)
      assert.strictEqual(checks, 5, "each check asked the server")
    }).pipe(Effect.scoped))

  it.effect("default_transaction_read_only=on is a read-only session (libpq), seen at startup", () =>
    Effect.gen(function*() {
      const cluster = yield* Fixture.Replication
      const config = {
        host: "127.0.0.1",
        port: cluster.primary.port,
        username: "postgres",
        database: "postgres",
        startupParameters: { default_transaction_read_only: "on" }
      }
      const readOnly = landed(yield* landOn({ ...config, targetSessionAttrs: "read-only" }))
      assert.strictEqual(readOnly.port, cluster.primary.port)
      const error = failure(yield* landOn({ ...config, targetSessionAttrs: "read-write" }))
      const attempt = (error.reason.cause as PgDriver.HostsError).attempts[0]!.error as PgDriver.TargetSessionAttrsError
      assert.strictEqual(attempt.session, "read-only")
      // Still a primary: "primary" accepts it.
      assert.isFalse(landed(yield* landOn({ ...config, targetSessionAttrs: "primary" })).recovery)
    }))

  it.effect("a host that refuses is skipped; no acceptable host: one typed error listing every host", () =>
    Effect.gen(function*() {
      const cluster = yield* Fixture.Replication
      const dead = yield* Fixture.deadPort
      const base = { host: "127.0.0.1,127.0.0.1", username: "postgres", database: "postgres" }
      // A dead first host: the next one serves.
      const skipped = landed(
        yield* landOn({ ...base, port: `${dead},${cluster.primary.port}`, targetSessionAttrs: "read-write" })
      )
      assert.strictEqual(skipped.port, cluster.primary.port)
      // prefer-standby with no standby reachable: the primary, kept open from the first pass.
      const preferred = landed(
        yield* landOn({ ...base, port: `${cluster.primary.port},${dead}`, targetSessionAttrs: "prefer-standby" })
      )
      assert.strictEqual(preferred.port, cluster.primary.port)

      // A dead host and a standby, for a read-write session: nothing acceptable.
      const error = failure(
        yield* landOn({ ...base, port: `${dead},${cluster.standby.port}`, targetSessionAttrs: "read-write" })
      )
      assert.strictEqual(error.reason._tag, "ConnectionError")
      assert.isTrue(error.isRetryable)
      assert.isTrue(PgDriver.isDisconnect(error), "a failover may be under way: retryable as a disconnect")
      const hostsError = error.reason.cause as PgDriver.HostsError
      assert.instanceOf(hostsError, PgDriver.HostsError)
      assert.strictEqual(hostsError.targetSessionAttrs, "read-write")
      assert.deepStrictEqual(hostsError.attempts.map((a) => a.port), [dead, cluster.standby.port])
      const [refused, standby] = hostsError.attempts
      assert.isTrue(isSqlError(refused!.error) && PgDriver.isDisconnect(refused!.error), "refused: a connect error")
      assert.instanceOf(standby!.error, PgDriver.TargetSessionAttrsError)
      assert.strictEqual((standby!.error as PgDriver.TargetSessionAttrsError).session, "read-only")
      assert.include(error.message, `127.0.0.1:${dead}`)
      assert.include(error.message, `127.0.0.1:${cluster.standby.port}: read-only, not read-write`)
    }))

  it.effect("every host refusing with a server error keeps its kind: a wrong database is not retryable", () =>
    Effect.gen(function*() {
      const cluster = yield* Fixture.Replication
      const error = failure(
        yield* landOn({
          host: "127.0.0.1,127.0.0.1",
          port: cluster.ports,
          username: "postgres",
          database: "no_such_database"
        })
      )
      assert.isFalse(PgDriver.isDisconnect(error))
      assert.isFalse(error.isRetryable)
      const hostsError = error.reason.cause as PgDriver.HostsError
      assert.strictEqual(hostsError.attempts.length, 2)
      for (const attempt of hostsError.attempts) {
        assert.strictEqual(((attempt.error as SqlError).reason.cause as { code?: string }).code, "3D000")
      }
    }))

  it.effect("loadBalanceHosts: random spreads connects over the hosts, disable keeps their order", () =>
    Effect.gen(function*() {
      const cluster = yield* Fixture.Replication
      const n = 200
      const count = (loadBalanceHosts: PgDriver.Config.LoadBalanceHosts) =>
        Effect.provide(
          Effect.gen(function*() {
            const ports = new Map<number, number>()
            for (let i = 0; i < n; i++) {
              const [row] = yield* where
              ports.set(row!.port, (ports.get(row!.port) ?? 0) + 1)
            }
            return ports
          }),
          PgSql.layer().pipe(
            Layer.provideMerge(NullPool.layer()),
            Layer.provideMerge(PgDriver.layer({ url: cluster.url, loadBalanceHosts }))
          )
        )
      const random = yield* count("random")
      const onPrimary = random.get(cluster.primary.port) ?? 0
      const onStandby = random.get(cluster.standby.port) ?? 0
      console.log(`[multi-host] loadBalanceHosts random over ${n} connects: primary ${onPrimary}, standby ${onStandby}`)
      assert.strictEqual(onPrimary + onStandby, n)
      // Binomial(200, 0.5): sd ~7; [60, 140] is > 5.6 sd either side.
      assert.isAtLeast(onPrimary, 60)
      assert.isAtLeast(onStandby, 60)
      const ordered = yield* count("disable")
      assert.strictEqual(ordered.get(cluster.primary.port), n)
    }))

  it.effect("a pool over several hosts: statements, transactions and LISTEN land on the read-write server", () =>
    Effect.gen(function*() {
      const cluster = yield* Fixture.Replication
      const stack = PgSql.layer().pipe(
        Layer.provideMerge(QueuePool.layer({ poolSize: 2 })),
        Layer.provideMerge(PgDriver.layer({
          // The standby first: every session must still be the primary's.
          url: Redacted.make(
            `postgres://postgres@127.0.0.1:${cluster.standby.port},127.0.0.1:${cluster.primary.port}/postgres`
          ),
          targetSessionAttrs: "read-write"
        }))
      )
      yield* Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const pg = yield* PgClient.PgClient
        yield* sql`create table if not exists multi_host_t (id serial primary key, v text)`
        const [row] = yield* sql.withTransaction(
          sql<
            { id: number; recovery: boolean }
          >`insert into multi_host_t (v) values ('x') returning id, pg_is_in_recovery() as recovery`
        )
        assert.isFalse(row!.recovery)
        const queue = yield* pg.listen("multi_host_channel")
        const received = yield* Effect.forkChild(Queue.take(queue))
        yield* pg.notify("multi_host_channel", "hello")
        const notification = yield* Fiber.join(received).pipe(Effect.timeout("5 seconds"))
        assert.strictEqual(notification.payload, "hello")
      }).pipe(Effect.scoped, Effect.provide(stack))
    }))
})
