/**
 * The embedded server's superuser password is never readable by another OS user, not even for
 * the second initdb takes: while the server initialises, the temporary directory is watched
 * (fs.watch on it plus a 2 ms poll of it and of the server's own directory) and every small file
 * seen is read at once; afterwards, every file that held the password must have had no group or
 * other permission bits (and, as root, belong to the OS user the server runs as, who must read it).
 * Always an embedded server, whatever DATABASE_URL says.
 */
import { PgConnection } from "@effect/sql-pg"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Redacted } from "effect"
import { EmbeddedPostgres } from "effect-db-pool/pg/embedded"
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

interface Seen {
  readonly file: string
  readonly mode: number
  readonly uid: number
  readonly content: string
}

/** Watch the temporary directory until `stop()`; every small regular file seen, as first read. */
const watchTmp = () => {
  const tmp = os.tmpdir()
  const seen = new Map<string, Array<Seen>>()
  const look = (file: string) => {
    try {
      const stat = fs.statSync(file)
      if (!stat.isFile() || stat.size > 4096) return
      const content = fs.readFileSync(file, "utf8")
      const list = seen.get(file) ?? []
      if (!list.some((s) => s.mode === stat.mode && s.uid === stat.uid && s.content === content)) {
        list.push({ file, mode: stat.mode, uid: stat.uid, content })
        seen.set(file, list)
      }
    } catch {
      // gone already, or not ours to read
    }
  }
  const walk = (dir: string, depth: number) => {
    let entries: Array<fs.Dirent>
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true })
    } catch {
      return
    }
    for (const entry of entries) {
      const full = path.join(dir, entry.name)
      if (entry.isDirectory()) {
        // The server's own directory (not its data dir: PostgreSQL keeps only a SCRAM verifier).
        if (depth < 3 && entry.name !== "data" && (depth > 0 || entry.name.startsWith("effect-db-pool-pg-"))) {
          walk(full, depth + 1)
        }
      } else if (depth > 0 || entry.name.startsWith("pg-")) {
        look(full)
      }
    }
  }
  const watcher = fs.watch(tmp, (_event, name) => {
    if (name !== null && name.startsWith("pg-")) look(path.join(tmp, name))
  })
  const timer = setInterval(() => walk(tmp, 0), 2)
  return {
    seen,
    stop: () => {
      watcher.close()
      clearInterval(timer)
    }
  }
}

describe("EmbeddedPostgres: the superuser password", () => {
  it.live(
    "is never in a file another OS user can read, not even while the server initialises",
    () =>
      Effect.gen(function*() {
        const watch = watchTmp()
        const server = yield* EmbeddedPostgres.make().pipe(Effect.ensuring(Effect.sync(watch.stop)))
        const password = Redacted.value(server.password)
        const holders = [...watch.seen.values()].flat().filter((s) => s.content.includes(password))
        const readableByOthers = holders.filter((s) => (s.mode & 0o077) !== 0)
        assert.deepStrictEqual(
          readableByOthers.map((s) => `${s.file} mode ${(s.mode & 0o777).toString(8)}`),
          [],
          "files holding the password that group/others could read"
        )
        // The watch did see the password file initdb reads (so the check above is not vacuous).
        assert.isAbove(holders.length, 0)
        if (process.getuid?.() === 0) {
          // As root, the server runs as `postgres`: the file is that user's, and no one else's.
          const postgresUid = Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" }).trim())
          for (const s of holders) assert.strictEqual(s.uid, postgresUid, s.file)
        }
        // Nothing with the password is left behind.
        for (const s of holders) assert.isFalse(fs.existsSync(s.file), s.file)
        // And it is the superuser's password: the server accepts it.
        const conn = yield* PgConnection.make({ url: server.url })
        const result = yield* conn.query("select current_user as who", [])
        assert.deepStrictEqual(result.rows, [{ who: server.user }])
      }).pipe(Effect.scoped),
    { timeout: 120_000 }
  )
})
