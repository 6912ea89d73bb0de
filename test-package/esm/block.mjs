// `node --import ./block.mjs`: any import of a package named in BLOCK_MODULES (comma-separated)
// fails with ERR_BLOCKED_FOR_TEST, so a successful import proves the package was not loaded.
import { register } from "node:module"

register("./block-hooks.mjs", import.meta.url, {
  data: { blocked: (process.env.BLOCK_MODULES ?? "").split(",").filter(Boolean) }
})
