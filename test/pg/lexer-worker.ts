/**
 * Worker of test/pg/lexer.test.ts's linear-time test: classifies the texts it is given
 * (`workerData`) when told to, and posts the verdicts. A worker, so that a scanner that never
 * finishes (the old regular expressions took minutes) can be stopped (`worker.terminate()`) and
 * the test fails at its bound instead of blocking the test runner's event loop.
 *
 * Runs under Node's own TypeScript type stripping (no test-runner transform): it imports the
 * module by path, and uses only `touchesSessionState`, which the code before the lexer had too.
 */
import { parentPort, workerData } from "node:worker_threads"
import { touchesSessionState } from "../../src/pg/internal/session.ts"

const texts = workerData as ReadonlyArray<string>
const port = parentPort!
port.on("message", (which: ReadonlyArray<number>) => {
  port.postMessage(which.map((i) => touchesSessionState(texts[i]!)))
})
port.postMessage("ready")
