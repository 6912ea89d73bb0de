import { configDefaults, defineConfig } from "vitest/config"
import base from "./vitest.config.ts"

// The long runs (`npm run test:chaos`): chaos on a real server (DATABASE_URL, else embedded),
// restart / start-while-down / wrong password on an embedded server. Bounded: CHAOS_SECONDS (10).
export default defineConfig({
  ...base,
  test: {
    ...base.test,
    include: ["test/chaos/**/*.test.ts"],
    exclude: [...configDefaults.exclude],
    testTimeout: 180_000,
    hookTimeout: 120_000,
    fileParallelism: false
  }
})
