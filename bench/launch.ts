/**
 * `npm run bench` entry: bundles the harness with esbuild (the library's TypeScript compiled as
 * a user's build would, without tsx's keepNames helpers and loader hooks in the hot path), then
 * runs the bundle in a fresh `node --expose-gc`.
 *
 *   npm run bench                         full run
 *   npm run bench -- --quick              under a minute
 *   npm run bench -- --only=cycle,scaling,memory,e2e
 *   npm run bench -- --tsx                run the sources through tsx instead of the bundle
 *   npm run bench -- --profile [checkout|use] [none|rollback] [workers] [connections] [cycles]
 *                                         CPU-profile the QueuePool hot path and print a summary
 */
import { spawnSync } from "node:child_process"
import { existsSync, mkdirSync, readdirSync, statSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { build } from "esbuild"

const benchDir = fileURLToPath(new URL(".", import.meta.url))
const rootDir = join(benchDir, "..")
const outDir = join(rootDir, "node_modules", ".cache", "effect-db-pool-bench")
const args = process.argv.slice(2)
const env = { ...process.env, EFFECT_DB_POOL_BENCH_DIR: benchDir }

const run = (nodeArgs: ReadonlyArray<string>): number =>
  spawnSync(process.execPath, nodeArgs, { stdio: "inherit", env, cwd: rootDir }).status ?? 1

const bundle = async (): Promise<void> => {
  mkdirSync(outDir, { recursive: true })
  const entryPoints = ["run.ts", "profile.ts", "e2e-pg.ts"]
    .map((f) => join(benchDir, f))
    .filter((f) => existsSync(f))
  await build({
    entryPoints,
    outdir: outDir,
    outExtension: { ".js": ".mjs" },
    bundle: true,
    splitting: true,
    packages: "external",
    format: "esm",
    platform: "node",
    target: "node20",
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
