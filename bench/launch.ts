/**
 * `npm run bench` entry: builds the library (`npm run build`, so the bench always measures the
 * current sources), bundles the harness with esbuild, then runs the bundle in a fresh
 * `node --expose-gc`. The library stays external: the bundle imports `effect-db-pool`,
 * `effect-db-pool/pg` ... and Node resolves them through package.json `exports` to `dist/`, as
 * in a user's app (no tsx keepNames helpers or loader hooks in the hot path).
 *
 *   npm run bench                         full run
 *   npm run bench -- --quick              under a minute
 *   npm run bench -- --only=cycle,scaling,memory,e2e,lexer
 *   npm run bench -- --tsx                run the sources through tsx instead of the bundle (the
 *                                         library from src/, through tsconfig.json `paths`)
 *   npm run bench -- --profile [checkout|use] [none|rollback] [workers] [connections] [cycles]
 *                                         CPU-profile the QueuePool hot path and print a summary
 *   npm run bench -- --sql-overhead [op=select|tx] [c=16] [subjects=ours,effpool,floor] ...
 *                                         CPU per statement above the wire (bench/sql-overhead.ts)
 *   npm run bench -- --neighbours [active=ours-pipelined,multiplex,...] [query=select|point] ...
 *                                         the e2e subjects in one process, some idle (bench/neighbours.ts)
 */
import { build } from "esbuild"
import { spawnSync } from "node:child_process"
import { existsSync, mkdirSync, readdirSync, statSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"

const benchDir = fileURLToPath(new URL(".", import.meta.url))
const rootDir = join(benchDir, "..")
// Inside the package (the `/tmp/` of .gitignore), not under node_modules/: Node resolves the
// bundle's `effect-db-pool` imports by package self-reference, which only works from files whose
// nearest package.json is this package's.
const outDir = join(rootDir, "tmp", "bench-bundle")
const args = process.argv.slice(2)
const env = { ...process.env, EFFECT_DB_POOL_BENCH_DIR: benchDir }

const run = (nodeArgs: ReadonlyArray<string>): number =>
  spawnSync(process.execPath, nodeArgs, { stdio: "inherit", env, cwd: rootDir }).status ?? 1

/** `npm run build`: dist/ from the current sources. */
const buildLibrary = (): void => {
  const npm = process.env.npm_execpath
  const result = npm !== undefined && npm.endsWith(".js")
    ? spawnSync(process.execPath, [npm, "run", "--silent", "build"], { stdio: "inherit", env, cwd: rootDir })
    : spawnSync("npm", ["run", "--silent", "build"], {
      stdio: "inherit",
      env,
      cwd: rootDir,
      shell: process.platform === "win32"
    })
  if (result.status !== 0) throw new Error(`npm run build failed (exit ${result.status ?? result.signal})`)
}

const bundle = async (): Promise<void> => {
  buildLibrary()
  mkdirSync(outDir, { recursive: true })
  const entryPoints = ["run.ts", "profile.ts", "e2e-pg.ts", "sql-overhead.ts", "neighbours.ts"]
    .map((f) => join(benchDir, f))
    .filter((f) => existsSync(f))
  await build({
    entryPoints,
    outdir: outDir,
    outExtension: { ".js": ".mjs" },
    bundle: true,
    splitting: true,
    packages: "external",
    // Without tsconfig.json's `paths` (they map the entry points to src/ for tests and tsx), so
    // `effect-db-pool/*` stays external and resolves to dist/ at run time.
    tsconfig: join(rootDir, "tsconfig.build.json"),
    format: "esm",
    platform: "node",
    target: "node22",
    logLevel: "warning"
  })
}

const main = async (): Promise<number> => {
  if (args[0] === "--profile") {
    await bundle()
    const dir = join(outDir, `profile-${Date.now()}`)
    const code = run(["--cpu-prof", `--cpu-prof-dir=${dir}`, join(outDir, "profile.mjs"), ...args.slice(1)])
    if (code !== 0) return code
    const file = readdirSync(dir).map((f) => join(dir, f)).sort((a, b) => statSync(b).size - statSync(a).size)[0]!
    console.log(`profile: ${file}`)
    return run(["--import", "tsx", join(benchDir, "profile-report.ts"), file, "40"])
  }
  if (args[0] === "--sql-overhead") {
    await bundle()
    return run([join(outDir, "sql-overhead.mjs"), ...args.slice(1)])
  }
  if (args[0] === "--neighbours") {
    await bundle()
    return run([join(outDir, "neighbours.mjs"), ...args.slice(1)])
  }
  if (args.includes("--tsx")) {
    return run(["--expose-gc", "--import", "tsx", join(benchDir, "run.ts"), ...args.filter((a) => a !== "--tsx")])
  }
  await bundle()
  return run(["--expose-gc", join(outDir, "run.mjs"), ...args])
}

main().then(
  (code) => process.exit(code),
  (error) => {
    console.error(error)
    process.exit(1)
  }
)
