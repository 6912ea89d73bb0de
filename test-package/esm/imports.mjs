// Import each specifier given on the command line; print one line per specifier:
// "IMPORT <specifier> ok <exported names>" or "IMPORT <specifier> error <code> <message>".
// Exits 1 when any import failed.
let failed = false
for (const specifier of process.argv.slice(2)) {
  try {
    const module = await import(specifier)
    console.log(`IMPORT ${specifier} ok ${Object.keys(module).sort().join(",")}`)
  } catch (error) {
    failed = true
    console.log(`IMPORT ${specifier} error ${error?.code ?? "-"} ${String(error?.message ?? error).split("\n")[0]}`)
  }
}
process.exitCode = failed ? 1 : 0
