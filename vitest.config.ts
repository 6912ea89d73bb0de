import { fileURLToPath } from "node:url"
import { configDefaults, defineConfig } from "vitest/config"

const src = (path: string) => fileURLToPath(new URL(`./src/${path}`, import.meta.url))

export default defineConfig({
  resolve: {
    alias: [
      { find: /^effect-db-pool$/, replacement: src("index.ts") },
      { find: /^effect-db-pool\/testing$/, replacement: src("testing/index.ts") },
      { find: /^effect-db-pool\/pg$/, replacement: src("pg/index.ts") },
      { find: /^effect-db-pool\/pg\/embedded$/, replacement: src("pg/embedded.ts") }
    ]
  },
  test: {
    include: ["test/**/*.test.ts", "workbench/**/*.test.ts"],
    // The long runs live in `npm run test:chaos` (vitest.chaos.config.ts).
    exclude: [...configDefaults.exclude, "test/chaos/**"],
    testTimeout: 30_000,
    hookTimeout: 60_000
  }
})
