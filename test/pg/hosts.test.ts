/**
 * Host lists and their options, without a server: libpq's forms (`host=a,b port=1,2`, a URL with
 * several hosts, `?host=&port=`), precedence, and what validation refuses (as a `PgConfigError`
 * naming the field, a URL never quoted back).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Layer, Redacted } from "effect"
import { PgDriver } from "effect-db-pool/pg"
import { targetSessionAttrsValues } from "../../src/pg/internal/host-list.ts"

const hosts = (config: PgDriver.Config) => {
  const result = PgDriver.hostsOf(config)
  if (result instanceof PgDriver.PgConfigError) throw new Error(result.message)
  return result.map((h) => `${h.host}:${h.port}`)
}
const url = (text: string) => Redacted.make(text)

/** Building the driver layer validates (it connects nothing). */
const buildError = (config: PgDriver.Config) =>
  Effect.gen(function*() {
    const exit = yield* Effect.exit(Effect.scoped(Layer.build(PgDriver.layer(config))))
    assert.isTrue(Exit.isFailure(exit), "expected the layer to fail")
    return Exit.isFailure(exit)
      ? (exit.cause.reasons[0] as unknown as { error: PgDriver.PgConfigError }).error
      : undefined
  })
const builds = (config: PgDriver.Config) =>
  Effect.map(Effect.exit(Effect.scoped(Layer.build(PgDriver.layer(config)))), Exit.isSuccess)

describe("host lists (libpq forms)", () => {
  it("a URL with several hosts, each with its port", () => {
    assert.deepStrictEqual(hosts({ url: url("postgres://u@a:1,b:2/db") }), ["a:1", "b:2"])
    assert.deepStrictEqual(hosts({ url: url("postgresql://u:secret@a:1,b/db") }), ["a:1", "b:5432"])
    assert.deepStrictEqual(hosts({ url: url("postgres://u@[::1]:5433,b,[fe80::1]/db") }), [
      "::1:5433",
      "b:5432",
      "fe80::1:5432"
    ])
    assert.deepStrictEqual(hosts({ url: url("postgres://u@a%2Db:7/db") }), ["a-b:7"])
  })

  it("host=a,b port=1,2 as options; one port for every host", () => {
    assert.deepStrictEqual(hosts({ host: "a,b", port: "1,2" }), ["a:1", "b:2"])
    assert.deepStrictEqual(hosts({ host: "a,b", port: 7 }), ["a:7", "b:7"])
    assert.deepStrictEqual(hosts({ host: "a, b", port: "7" }), ["a:7", "b:7"])
    assert.deepStrictEqual(hosts({ host: "a,b", port: "1," }), ["a:1", "b:5432"])
    assert.deepStrictEqual(hosts({ host: "a,b" }), ["a:5432", "b:5432"])
    assert.deepStrictEqual(hosts({}), ["localhost:5432"])
    assert.deepStrictEqual(hosts({ host: "/var/run/postgresql,b" }), ["/var/run/postgresql:5432", "b:5432"])
  })

  it("?host=a,b&port=1,2 in a URL", () => {
    assert.deepStrictEqual(hosts({ url: url("postgres://u@/db?host=a,b&port=1,2") }), ["a:1", "b:2"])
    assert.deepStrictEqual(hosts({ url: url("postgres://u@x:9/db?host=a,b") }), ["a:9", "b:9"])
  })

  it("precedence as libpq: an option over the URL's query parameter over its authority", () => {
    assert.deepStrictEqual(hosts({ url: url("postgres://u@x:1,y:2/db"), host: "a,b" }), ["a:1", "b:2"])
    assert.deepStrictEqual(hosts({ url: url("postgres://u@x:1,y:2/db"), port: "3,4" }), ["x:3", "y:4"])
    assert.deepStrictEqual(hosts({ url: url("postgres://u@x:1,y:2/db?host=c,d"), host: "a,b", port: 5 }), [
      "a:5",
      "b:5"
    ])
    assert.deepStrictEqual(hosts({ url: url("postgres://u@x:1,y:2/db?host=c,d") }), ["c:1", "d:2"])
  })
})

describe("host options are validated when the layer builds", () => {
  it.effect("good values build", () =>
    Effect.gen(function*() {
      const good: ReadonlyArray<PgDriver.Config> = [
        { port: 5432 },
        { port: "5432" },
        { host: "a,b", port: "5432,5433" },
        { url: url("postgres://u@a:1,b:2/db?target_session_attrs=read-write&load_balance_hosts=random") },
        // Every target of the driver's own list.
        ...targetSessionAttrsValues.map((t) => ({ targetSessionAttrs: t })),
        { loadBalanceHosts: "disable" },
        { loadBalanceHosts: "random" }
      ]
      for (const config of good) assert.isTrue(yield* builds(config), JSON.stringify(config))
    }))

  it.effect("bad ports, bad targets, mismatched lists: PgConfigError naming the field", () =>
    Effect.gen(function*() {
      const bad: ReadonlyArray<readonly [PgDriver.Config, string, string]> = [
        [{ port: 0 }, "port", "between 1 and 65535"],
        [{ port: 70000 }, "port", "between 1 and 65535"],
        [{ port: 1.5 }, "port", "between 1 and 65535"],
        [{ port: "x" }, "port", "comma-separated list"],
        [{ port: "1,x" }, "port", "comma-separated list"],
        [{ port: "70000" }, "port", "comma-separated list"],
        [{ port: true as never }, "port", "between 1 and 65535"],
        [{ host: "a,b", port: "1,2,3" }, "port", "3 ports for 2 hosts"],
        [{ url: url("postgres://u@a:1,b:2,c:3/db"), port: "1,2" }, "port", "2 ports for 3 hosts"],
        [{ host: "a,b", path: "/tmp/.s.PGSQL.5432" }, "path", "several hosts"],
        [{ targetSessionAttrs: "master" as never }, "targetSessionAttrs", "must be one of"],
        [{ loadBalanceHosts: "yes" as never }, "loadBalanceHosts", "must be one of"]
      ]
      for (const [config, field, reason] of bad) {
        const error = yield* buildError(config)
        assert.strictEqual(error?._tag, "PgConfigError", JSON.stringify(config))
        assert.strictEqual(error?.field, field, JSON.stringify(config))
        assert.include(error?.message, reason, JSON.stringify(config))
      }
    }))

  it.effect("a bad URL is refused without quoting it (it may hold a password)", () =>
    Effect.gen(function*() {
      const bad: ReadonlyArray<readonly [string, string]> = [
        ["postgres://u:hunter2@a:1,b:99999/db", "invalid port"],
        ["postgres://u:hunter2@a:1,b:2/db?target_session_attrs=master", "target_session_attrs"],
        ["postgres://u:hunter2@a/db?load_balance_hosts=yes", "load_balance_hosts"],
        ["postgres://u:hunter2@a/db?port=1,x", "invalid port"],
        ["mysql://u:hunter2@a/db", "postgres://"]
      ]
      for (const [text, reason] of bad) {
        const error = yield* buildError({ url: url(text) })
        assert.strictEqual(error?.field, "url", text)
        assert.include(error?.message, reason, text)
        assert.notInclude(error?.message, "hunter2")
        assert.notInclude(JSON.stringify(error), "hunter2")
      }
    }))
})
