/**
 * Type-check code snippets written to files in `outDir` against the repository's tsconfig
 * (shared by `check-examples.ts`, the `@example`s of `src/`, and `check-docs.ts`, the blocks of
 * the markdown docs): a tsconfig in `outDir` that extends the root one and lists the files, then
 * one program. The diagnostics are the caller's to map back to where each snippet came from.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import ts from "typescript"

export const typecheckSnippets = (
  root: string,
  outDir: string,
  files: ReadonlyArray<string>
): ReadonlyArray<ts.Diagnostic> => {
  const tsconfigPath = path.join(outDir, "tsconfig.json")
  fs.writeFileSync(
    tsconfigPath,
    JSON.stringify(
      {
        extends: path.relative(outDir, path.join(root, "tsconfig.json")).split(path.sep).join("/"),
        compilerOptions: { noEmit: true, noUnusedLocals: false, noUnusedParameters: false, incremental: false },
        files: files.map((file) => path.basename(file)),
        include: []
      },
      null,
      2
    ) + "\n"
  )
  const config = ts.getParsedCommandLineOfConfigFile(tsconfigPath, {}, {
    ...ts.sys,
    onUnRecoverableConfigFileDiagnostic: (d) => {
      throw new Error(ts.flattenDiagnosticMessageText(d.messageText, "\n"))
    }
  })!
  const program = ts.createProgram({
    rootNames: config.fileNames,
    options: config.options,
    projectReferences: config.projectReferences ?? []
  })
  return [...config.errors, ...ts.getPreEmitDiagnostics(program)]
}
