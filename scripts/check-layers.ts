/**
 * The structure of `src/`, drawn from its imports (npm run check:layers).
 *
 * Every module of `src/` is parsed with the TypeScript compiler; its edges are the relative module
 * specifiers of its import declarations (`import type` too), re-exports (`export ... from`),
 * `import("...")` types and dynamic `import("...")` calls. Each module sits in one layer of
 * {@link layers} (lowest first). The check fails when
 *
 * - the import graph has a cycle (every elementary cycle is listed), or
 * - a module imports one of a higher layer ("runs back up a layer"),
 *
 * except for the import edges of a cycle named in {@link knownCycles}, which are reported apart.
 * A known cycle that is gone is an error too, so the list only shrinks.
 *
 * Usage: tsx scripts/check-layers.ts [--print] [--stats] [--quiet]
 *   --print  the drawn structure: each layer's modules and what each imports (with the layer of
 *            every import outside its own)
 *   --stats  the largest modules and the longest functions and classes, by lines
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import ts from "typescript"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")
const srcDir = path.join(root, "src")

// ------------------------------------------------------------------------------------- layers

/**
 * A layer: a name, what belongs there, and which modules (paths relative to `src/`) it holds:
 * whole files, or every module under a folder (`dir/`) that no earlier entry claims by file.
 */
interface Layer {
  readonly name: string
  readonly about: string
  readonly files?: ReadonlyArray<string>
  readonly folders?: ReadonlyArray<string>
}

/**
 * The layers of `src/`, lowest first: a module may import its own layer and those before it.
 *
 * Core: a checkout flows down driver → record → pipeline → strategy → layer. The contracts
 * (`Driver`, `ConnectionPool`'s service interface, errors, events, options, metric names) sit at
 * the bottom with the driver: they are types, tags and constants the pipeline implements and
 * every layer above speaks. Two leaf helpers that know nothing of pools (duration text, the
 * option-rule table) sit below them, since the error messages use them.
 *
 * SQL binding (`src/pg/`), the same idea one level down: the wire pieces of the driver
 * (`pg/internal/`, one concept each), `PgDriver` over them, the pieces of the SQL client, `PgSql`,
 * the replica router over `PgSql`, the embedded server, and the entry points. Unlisted modules of
 * `pg/internal/` have no layer: place a new one explicitly.
 */
const layers: ReadonlyArray<Layer> = [
  {
    name: "base",
    about: "leaf helpers that know nothing of pools (used by error messages and every validator)",
    files: ["internal/format.ts", "internal/validate.ts"]
  },
  {
    name: "driver",
    about: "contracts: the driver, the pool service interface and tag, errors, events, options, metric names",
    files: ["Driver.ts", "ConnectionPool.ts", "PoolError.ts", "PoolEvent.ts", "PoolOptions.ts", "PoolMetrics.ts"]
  },
  {
    name: "record",
    about: "one pool's state: resolved options, hook table, instruments, the shared core, the connection record",
    files: [
      "internal/hooks.ts",
      "internal/options.ts",
      "internal/instruments.ts",
      "internal/core.ts",
      "internal/record.ts"
    ]
  },
  {
    name: "pipeline",
    about: "the checkout pipeline and what it is made of (strategy contract, waiters, upkeep, service assembly)",
    folders: ["internal/"]
  },
  {
    name: "strategies",
    about: "one module per strategy: which slot a checkout gets, where a returned one goes",
    folders: ["strategy/"]
  },
  {
    name: "layers",
    about: "public modules above the strategies and the core entry points",
    files: ["PoolManager.ts", "index.ts"],
    folders: ["testing/"]
  },
  {
    name: "pg-wire",
    about: "the Postgres driver's pieces: settings, lexer, session rules, encoding, errors, hosts, pooler, connection",
    files: [
      "pg/internal/settings.ts",
      "pg/internal/sql-pg-internals.ts",
      "pg/internal/lexer.ts",
      "pg/internal/session.ts",
      "pg/internal/encoding.ts",
      "pg/internal/errors.ts",
      "pg/internal/host-list.ts",
      "pg/internal/startup-parameters.ts",
      "pg/internal/target-session.ts",
      "pg/internal/connect.ts",
      "pg/internal/pooler.ts",
      "pg/internal/connection.ts",
      "pg/internal/config.ts"
    ]
  },
  {
    name: "pg-driver",
    about: "PgDriver: the Driver over one Postgres connection",
    files: ["pg/PgDriver.ts"]
  },
  {
    name: "pg-sql-parts",
    about:
      "the SQL client's pieces: options, errors, the connection over a checkout, lanes, shared sessions, the borrower",
    files: [
      "pg/internal/read-only.ts",
      "pg/internal/sql-options.ts",
      "pg/internal/sql-errors.ts",
      "pg/internal/shared-session.ts",
      "pg/internal/pooled-sql.ts",
      "pg/internal/pipeline.ts",
      "pg/internal/sql-borrower.ts",
      "pg/internal/sql-client.ts"
    ]
  },
  {
    name: "pg-sql",
    about: "PgSql: SqlClient / PgClient over a pool",
    files: ["pg/PgSql.ts"]
  },
  {
    name: "pg-replicas",
    about:
      "PgReplicas: a router over PgSql clients, and its pieces (replication, the pools, routing, health, read-your-writes)",
    files: [
      "pg/internal/replication.ts",
      "pg/internal/replica-set.ts",
      "pg/internal/replica-health.ts",
      "pg/internal/read-your-writes.ts",
      "pg/internal/replica-router.ts",
      "pg/PgReplicas.ts"
    ]
  },
  {
    name: "pg-embedded",
    about: "the embedded server (an entry of its own)",
    files: ["pg/EmbeddedPostgres.ts", "pg/PgDatabase.ts"]
  },
  {
    name: "pg-entries",
    about: "the entry points of the SQL binding",
    files: ["pg/index.ts", "pg/embedded.ts"]
  }
]

/**
 * Cycles known and still to be broken, as module paths (relative to `src/`) in import order: each
 * imports the next, the last the first. Their edges are exempt from both checks and reported
 * apart. Remove an entry when its cycle is broken (a listed cycle that is gone fails the check),
 * until the list is empty.
 */
const knownCycles: ReadonlyArray<{ readonly name: string; readonly modules: ReadonlyArray<string> }> = []

// ------------------------------------------------------------------------------------- graph

type EdgeKind = "import" | "import type" | "export from" | "import()"

interface Edge {
  readonly from: string
  readonly to: string
  readonly kind: EdgeKind
  readonly line: number
}

const rel = (file: string): string => path.relative(srcDir, file).split(path.sep).join("/")

const listModules = (dir: string): Array<string> =>
  fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name)
    if (entry.isDirectory()) return listModules(full)
    return entry.name.endsWith(".ts") && !entry.name.endsWith(".d.ts") && !entry.name.endsWith(".test.ts")
      ? [full]
      : []
  })

/** The module a relative specifier names (`./x.ts`, `./x.js`, `./x`, `./dir`), if it is in `src/`. */
const resolveSpecifier = (fromFile: string, specifier: string): string | undefined => {
  if (!specifier.startsWith("./") && !specifier.startsWith("../")) return undefined
  const base = path.resolve(path.dirname(fromFile), specifier)
  const candidates = [base, base.replace(/\.js$/, ".ts"), `${base}.ts`, path.join(base, "index.ts")]
  const found = candidates.find((candidate) => candidate.endsWith(".ts") && fs.existsSync(candidate))
  if (found === undefined) throw new Error(`${rel(fromFile)}: cannot resolve "${specifier}"`)
  return found.startsWith(srcDir + path.sep) ? found : undefined
}

const parse = (file: string): ts.SourceFile =>
  ts.createSourceFile(file, fs.readFileSync(file, "utf8"), ts.ScriptTarget.Latest, true, ts.ScriptKind.TS)

/** Every edge of one module: import and export declarations, `import()` types and calls. */
const edgesOf = (source: ts.SourceFile): Array<Edge> => {
  const edges: Array<Edge> = []
  const add = (specifier: ts.Node, kind: EdgeKind) => {
    if (!ts.isStringLiteralLike(specifier)) return
    const to = resolveSpecifier(source.fileName, specifier.text)
    if (to === undefined) return
    const line = source.getLineAndCharacterOfPosition(specifier.getStart(source)).line + 1
    edges.push({ from: rel(source.fileName), to: rel(to), kind, line })
  }
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node)) {
      const typeOnly = node.importClause?.isTypeOnly === true ||
        (node.importClause !== undefined && node.importClause.name === undefined &&
          node.importClause.namedBindings !== undefined && ts.isNamedImports(node.importClause.namedBindings) &&
          node.importClause.namedBindings.elements.length > 0 &&
          node.importClause.namedBindings.elements.every((element) => element.isTypeOnly))
      add(node.moduleSpecifier, typeOnly ? "import type" : "import")
    } else if (ts.isExportDeclaration(node) && node.moduleSpecifier !== undefined) {
      add(node.moduleSpecifier, "export from")
    } else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference)) {
      add(node.moduleReference.expression, "import")
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) {
      add(node.argument.literal, "import type")
    } else if (
      ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword && node.arguments.length > 0
    ) {
      add(node.arguments[0]!, "import()")
    }
    ts.forEachChild(node, visit)
  }
  visit(source)
  return edges
}

// ------------------------------------------------------------------------------------- cycles

/** Strongly connected components (Tarjan), each of more than one module or importing itself. */
const componentsOf = (nodes: ReadonlyArray<string>, next: ReadonlyMap<string, ReadonlyArray<string>>) => {
  let counter = 0
  const index = new Map<string, number>()
  const low = new Map<string, number>()
  const stack: Array<string> = []
  const onStack = new Set<string>()
  const components: Array<Array<string>> = []
  const strong = (v: string): void => {
    index.set(v, counter)
    low.set(v, counter)
    counter++
    stack.push(v)
    onStack.add(v)
    for (const w of next.get(v) ?? []) {
      if (!index.has(w)) {
        strong(w)
        low.set(v, Math.min(low.get(v)!, low.get(w)!))
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!))
      }
    }
    if (low.get(v) === index.get(v)) {
      const component: Array<string> = []
      let w: string
      do {
        w = stack.pop()!
        onStack.delete(w)
        component.push(w)
      } while (w !== v)
      if (component.length > 1 || (next.get(v) ?? []).includes(v)) components.push(component.sort())
    }
  }
  for (const v of nodes) if (!index.has(v)) strong(v)
  return components
}

/**
 * Every elementary cycle of one component (each listed once, starting at its smallest module),
 * up to `limit`: a depth-first search from each module over the modules after it.
 */
const cyclesOf = (
  component: ReadonlyArray<string>,
  next: ReadonlyMap<string, ReadonlyArray<string>>,
  limit: number
): { cycles: Array<Array<string>>; truncated: boolean } => {
  const members = [...component].sort()
  const cycles: Array<Array<string>> = []
  let truncated = false
  for (let s = 0; s < members.length && !truncated; s++) {
    const start = members[s]!
    const allowed = new Set(members.slice(s))
    const pathNow: Array<string> = [start]
    const onPath = new Set<string>([start])
    const walk = (v: string): void => {
      for (const w of next.get(v) ?? []) {
        if (truncated) return
        if (w === start) {
          cycles.push([...pathNow])
          if (cycles.length >= limit) truncated = true
        } else if (allowed.has(w) && !onPath.has(w)) {
          pathNow.push(w)
          onPath.add(w)
          walk(w)
          pathNow.pop()
          onPath.delete(w)
        }
      }
    }
    walk(start)
  }
  return { cycles, truncated }
}

// ------------------------------------------------------------------------------------- stats

interface Sized {
  readonly name: string
  readonly lines: number
}

const lineSpan = (source: ts.SourceFile, node: ts.Node): number =>
  source.getLineAndCharacterOfPosition(node.getEnd()).line -
  source.getLineAndCharacterOfPosition(node.getStart(source)).line + 1

/** A readable name for a function-like node: its own, or the binding / property it is assigned to. */
const nameOf = (node: ts.Node): string => {
  const named = node as { readonly name?: ts.Node }
  if (named.name !== undefined && (ts.isIdentifier(named.name) || ts.isPrivateIdentifier(named.name))) {
    return named.name.text
  }
  if (ts.isConstructorDeclaration(node)) return "constructor"
  const parent = node.parent
  if (parent !== undefined) {
    if (ts.isVariableDeclaration(parent) && ts.isIdentifier(parent.name)) return parent.name.text
    if (ts.isPropertyAssignment(parent) || ts.isPropertyDeclaration(parent)) {
      return ts.isIdentifier(parent.name) || ts.isStringLiteral(parent.name) ? parent.name.text : "(property)"
    }
    if (ts.isCallExpression(parent)) return `(argument of ${parent.expression.getText().slice(0, 40)})`
  }
  return "(anonymous)"
}

/** The functions and classes of a module, by lines (nested ones counted on their own too). */
const measure = (source: ts.SourceFile): { functions: Array<Sized>; classes: Array<Sized> } => {
  const functions: Array<Sized> = []
  const classes: Array<Sized> = []
  const file = rel(source.fileName)
  const visit = (node: ts.Node): void => {
    if (
      ts.isFunctionDeclaration(node) || ts.isFunctionExpression(node) || ts.isArrowFunction(node) ||
      ts.isMethodDeclaration(node) || ts.isConstructorDeclaration(node) || ts.isGetAccessorDeclaration(node) ||
      ts.isSetAccessorDeclaration(node)
    ) {
      functions.push({ name: `${file} ${nameOf(node)}`, lines: lineSpan(source, node) })
    } else if (ts.isClassDeclaration(node) || ts.isClassExpression(node)) {
      classes.push({ name: `${file} class ${node.name?.text ?? "(anonymous)"}`, lines: lineSpan(source, node) })
    }
    ts.forEachChild(node, visit)
  }
  visit(source)
  return { functions, classes }
}

// ------------------------------------------------------------------------------------- main

const args = new Set(process.argv.slice(2))
for (const arg of args) {
  if (!["--print", "--stats", "--quiet"].includes(arg)) {
    console.error(`unknown argument ${arg}; usage: tsx scripts/check-layers.ts [--print] [--stats] [--quiet]`)
    process.exit(2)
  }
}

const files = listModules(srcDir).sort()
const sources = new Map(files.map((file) => [rel(file), parse(file)]))
const modules = [...sources.keys()]
const problems: Array<string> = []

const layerOf = new Map<string, number>()
for (const module of modules) {
  let rank = layers.findIndex((layer) => layer.files?.includes(module) === true)
  if (rank < 0) {
    // The deepest folder that claims it.
    let depth = -1
    layers.forEach((layer, i) => {
      for (const folder of layer.folders ?? []) {
        if (module.startsWith(folder) && folder.length > depth) {
          depth = folder.length
          rank = i
        }
      }
    })
  }
  if (rank < 0) problems.push(`${module}: in no layer (place it in \`layers\` of scripts/check-layers.ts)`)
  else layerOf.set(module, rank)
}
for (const layer of layers) {
  for (const file of layer.files ?? []) {
    if (!sources.has(file)) problems.push(`layer ${layer.name}: ${file} does not exist`)
  }
}

const edges = [...sources.values()].flatMap(edgesOf)
const key = (from: string, to: string) => `${from} -> ${to}`

// The edges of known cycles: exempt, and each must still exist.
const exempt = new Map<string, string>()
for (const cycle of knownCycles) {
  cycle.modules.forEach((from, i) => {
    const to = cycle.modules[(i + 1) % cycle.modules.length]!
    if (!edges.some((edge) => edge.from === from && edge.to === to)) {
      problems.push(`known cycle "${cycle.name}" is gone (${from} no longer imports ${to}): remove it from knownCycles`)
    }
    exempt.set(key(from, to), cycle.name)
  })
}

const checked = edges.filter((edge) => !exempt.has(key(edge.from, edge.to)))
const next = new Map<string, Array<string>>()
for (const edge of checked) {
  const targets = next.get(edge.from) ?? []
  if (!targets.includes(edge.to)) targets.push(edge.to)
  next.set(edge.from, targets)
}

const components = componentsOf(modules, next)
const cycleLimit = 1000
const cycles: Array<Array<string>> = []
for (const component of components) {
  const found = cyclesOf(component, next, cycleLimit - cycles.length)
  cycles.push(...found.cycles)
  if (found.truncated) {
    problems.push(`more than ${cycleLimit} import cycles: only the first ${cycleLimit} are counted`)
    break
  }
}

const upward = checked.filter((edge) => {
  const from = layerOf.get(edge.from)
  const to = layerOf.get(edge.to)
  return from !== undefined && to !== undefined && to > from
})

const layerName = (module: string) => {
  const rank = layerOf.get(module)
  return rank === undefined ? "?" : layers[rank]!.name
}

if (args.has("--print")) {
  console.log("Layers of src/, lowest first (a module may import its own layer and those before it):\n")
  layers.forEach((layer, rank) => {
    const members = modules.filter((module) => layerOf.get(module) === rank)
    console.log(`${rank + 1}. ${layer.name}: ${layer.about}`)
    for (const module of members) {
      const imports = [...new Set(edges.filter((edge) => edge.from === module).map((edge) => edge.to))].sort()
      const shown = imports.map((to) => layerOf.get(to) === rank ? to : `${to} [${layerName(to)}]`)
      console.log(`   ${module}${shown.length === 0 ? "" : ` -> ${shown.join(", ")}`}`)
    }
    console.log("")
  })
}

if (args.has("--stats")) {
  const all = [...sources.values()].map(measure)
  const byLines = (a: Sized, b: Sized) => b.lines - a.lines || a.name.localeCompare(b.name)
  const top = (title: string, list: Array<Sized>) => {
    console.log(title)
    for (const item of list.sort(byLines).slice(0, 10)) console.log(`  ${String(item.lines).padStart(5)}  ${item.name}`)
    console.log("")
  }
  const lines = (source: ts.SourceFile) => source.getLineAndCharacterOfPosition(source.getEnd()).line
  const sizes = [...sources.entries()].map(([name, source]) => ({ name, lines: lines(source) }))
  top("Largest modules (lines):", sizes)
  top("Largest modules outside src/pg (lines):", sizes.filter((s) => !s.name.startsWith("pg/")))
  const functions = all.flatMap((m) => m.functions)
  top("Longest functions (lines, nested ones on their own too):", functions)
  top("Longest functions outside src/pg (lines):", functions.filter((f) => !f.name.startsWith("pg/")))
  top("Longest classes (lines):", all.flatMap((m) => m.classes))
}

const exemptEdges = edges.filter((edge) => exempt.has(key(edge.from, edge.to)))
if (!args.has("--quiet") || cycles.length > 0 || upward.length > 0 || problems.length > 0) {
  console.log(
    `${modules.length} modules, ${edges.length} imports, ${layers.length} layers: ` +
      `${cycles.length} import cycles (in ${components.length} circles of modules), ${upward.length} upward imports` +
      (exemptEdges.length > 0 ? ` (${knownCycles.length} known cycles exempt, ${exemptEdges.length} imports)` : "")
  )
}
for (const cycle of cycles) console.log(`cycle: ${[...cycle, cycle[0]].join(" -> ")}`)
for (const edge of upward) {
  console.log(
    `upward: src/${edge.from}:${edge.line} (${layerName(edge.from)}) ${edge.kind} src/${edge.to} (${
      layerName(edge.to)
    })`
  )
}
for (const cycle of knownCycles) {
  if (!args.has("--quiet")) {
    console.log(`known cycle (to break): ${cycle.name}: ${[...cycle.modules, cycle.modules[0]].join(" -> ")}`)
  }
}
for (const problem of problems) console.log(`error: ${problem}`)
process.exit(cycles.length > 0 || upward.length > 0 || problems.length > 0 ? 1 : 0)
