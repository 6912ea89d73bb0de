/**
 * No secret ever appears in a log line, status, error or span: the pool and the Postgres binding
 * are driven through failures that log and raise errors (wrong password, bad settings, a killed
 * session, leak warnings, echo), and every line, error rendering and span attribute is scanned.
 */
import { assert, describe, it, layer } from "@effect/vitest"
import { Cause, Effect, Exit, Layer, Logger, Redacted, Tracer } from "effect"
import { QueuePool } from "effect-db-pool"
import { PgDriver, PgSql } from "effect-db-pool/pg"
import { PgDatabase } from "effect-db-pool/pg/embedded"
import { SqlClient } from "effect/sql"
import { TestClock } from "effect/testing"
import { recordingTracer } from "../helpers.ts"
import { appName, Database } from "./fixture.ts"

const secret = `Sup3r-S3cret-${Math.random().toString(36).slice(2, 10)}`

/** Everything a user or an operator could see, as text. */
const seen: Array<string> = []
const Capture = Logger.layer([
  Logger.make((options) => {
    seen.push(String(options.message), Cause.pretty(options.cause))
  })
])
const spans: Array<Tracer.Span> = []
const tracer = recordingTracer(spans)

const render = (u: unknown): string => {
  let json = ""
  try {
    json = JSON.stringify(u)
  } catch {
    json = ""
  }
  return `${String(u)}\n${json}\n${u instanceof Error ? `${u.message}\n${u.stack ?? ""}` : ""}`
}

const exitText = (exit: Exit.Exit<unknown, unknown>) =>
  Exit.isFailure(exit)
    ? `${Cause.pretty(exit.cause)}\n${
      exit.cause.reasons.map((r) => render(r._tag === "Fail" ? r.error : r._tag === "Die" ? r.defect : r)).join("\n")
    }`
    : ""

const withSecretUrl = (url: Redacted.Redacted<string>) => {
  const u = new URL(Redacted.value(url))
  u.password = secret
  return Redacted.make(u.toString())
}

layer(Database, { timeout: "120 seconds" })("Secrets never leak", (it) => {
  it.effect("wrong password: the authentication error, with the password in no log line, error or span", () =>
    Effect.gen(function*() {
      const db = yield* PgDatabase.PgDatabase
      const name = appName("redact")
      const Sql = PgSql.layer().pipe(
        Layer.provideMerge(
          QueuePool.layer({ poolSize: 2, prePing: true, echo: true, tracing: true, timeout: "5 seconds" })
        ),
        Layer.provideMerge(
          PgDriver.layer({ url: withSecretUrl(db.url), applicationName: name, connectTimeout: "5 seconds" })
        )
      )
      const exit = yield* Effect.exit(
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          return yield* sql`select 1 as one`
        }).pipe(Effect.provide(Sql), Effect.withTracer(tracer), Effect.provide(Capture))
      )
      const text = exitText(exit)
      if (db.embedded !== undefined) {
        // The embedded server authenticates (SCRAM): a wrong password is refused, fast, as an auth error.
        assert.isTrue(Exit.isFailure(exit))
        assert.match(text, /password authentication failed|AuthenticationError/)
      }
      seen.push(text)
      const attributes = spans.flatMap((
        s
      ) => [s.name, ...[...s.attributes.entries()].map(([k, v]) => `${k}=${render(v)}`)])
      const all = [...seen, ...attributes].join("\n")
      assert.isAbove(all.length, 0)
      assert.notInclude(all, secret)
    }))

  it.effect("bad settings: PgConfigError names the field, never the secret", () =>
    Effect.gen(function*() {
      const exits = [
        yield* Effect.exit(Layer.build(PgDriver.layer({ url: `postgres://u:${secret}@h/db` as any }))),
        yield* Effect.exit(
          Layer.build(PgDriver.layer({ url: Redacted.make("postgres://h/db"), password: secret as any }))
        ),
        yield* Effect.exit(Layer.build(PgDriver.layer({ url: Redacted.make(`not a url ${secret}`) })))
      ]
      for (const exit of exits) {
        const text = exitText(exit)
        assert.notInclude(text, secret)
      }
      assert.isTrue(exits.slice(0, 2).every(Exit.isFailure))
      assert.include(exitText(exits[0]!), "url")
      assert.include(exitText(exits[1]!), "password")
    }))

  it.effect(
    "a working pool with the real password: logs (echo, failures), status and errors never show it",
    () =>
      Effect.gen(function*() {
        const db = yield* PgDatabase.PgDatabase
        const password = db.embedded !== undefined ? Redacted.value(db.embedded.password) : undefined
        const name = appName("redact-ok")
        const Sql = PgSql.layer().pipe(
          Layer.provideMerge(
            QueuePool.layer({ poolSize: 2, echo: true, tracing: true, leakDetectionThreshold: "1 millis" })
          ),
          Layer.provideMerge(PgDriver.layer({ url: db.url, applicationName: name }))
        )
        const exit = yield* Effect.exit(
          Effect.gen(function*() {
            const sql = yield* SqlClient.SqlClient
            yield* sql`select 1`
            yield* Effect.exit(sql`selec broken`)
            // a checkout held past leakDetectionThreshold: one leak warning
            yield* Effect.scoped(
              Effect.andThen(SqlClient.SqlClient.pipe(Effect.flatMap((s) => s.reserve)), TestClock.adjust("1 second"))
            )
            return yield* sql`select 1 as one`
          }).pipe(Effect.provide(Sql), Effect.withTracer(tracer), Effect.provide(Capture))
        )
        assert.isTrue(Exit.isSuccess(exit))
        const all = [...seen, ...spans.flatMap((s) => [...s.attributes.entries()].map(([k, v]) => `${k}=${render(v)}`))]
          .join("\n")
        assert.include(all, "checkout slot")
        assert.include(all, "leak suspected")
        if (password !== undefined) assert.notInclude(all, password)
      }),
    { timeout: 60_000 }
  )
})

describe("redaction helpers", () => {
  it("the scan would catch a leak", () => {
    assert.include(render(new Error(`boom ${secret}`)), secret)
  })
})
