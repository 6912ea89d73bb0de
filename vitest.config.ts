import { fileURLToPath } from "node:url"
import { configDefaults, defineConfig } from "vitest/config"

// Node 20 lacks Map.groupBy; vitest 5's reporter calls it when a test fails and would
// otherwise crash, losing the failure message (see shared/reference/effect4-notes.md §0).
if (typeof (Map as any).groupBy !== "function") {
  ;(Map as any).groupBy = <K, V>(items: Iterable<V>, key: (v: V, i: number) => K): Map<K, Array<V>> => {
    const groups = new Map<K, Array<V>>()
    let i = 0
    for (const item of items) {
      const k = key(item, i++)
      const group = groups.get(k)
      if (group) group.push(item)
      else groups.set(k, [item])
    }
    return groups
  }
}

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
