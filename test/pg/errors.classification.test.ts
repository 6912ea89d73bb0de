/**
 * Error classification: which errors are disconnects (`PgDriver.isDisconnect`: invalidate,
 * retry), and what a failed connect becomes for the SQL layer (`PgSql.checkoutError`).
 *
 * Only SQLSTATE class 08, 57P01–57P05 and socket-level errors are disconnects; a FATAL at
 * connect keeps its own reason (wrong password, unknown database, bad startup option are not
 * retryable); 53300 (too many connections) stays retryable. A table over every classified code,
 * the errors built as `@effect/sql-pg` builds them; then the real server's answers.
 */
import { assert, describe, it, layer } from "@effect/vitest"
import { Cause, Duration, Effect, Exit, Layer } from "effect"
import { PoolError, QueuePool } from "effect-db-pool"
import { PgDriver, PgSql } from "effect-db-pool/pg"
import { PgDatabase } from "effect-db-pool/pg/embedded"
import { SqlClient } from "effect/sql"
import {
  AuthenticationError,
  AuthorizationError,
  ConnectionError,
  ConstraintError,
  DeadlockError,
  isSqlError,
  SerializationError,
  SqlError,
  SqlSyntaxError,
  StatementTimeoutError,
  UniqueViolation,
  UnknownError
} from "effect/sql/SqlError"
import type { SqlErrorReason } from "effect/sql/SqlError"
import { readFileSync } from "node:fs"
import { constants } from "node:os"
import { fileURLToPath } from "node:url"
import { getSystemErrorMap } from "node:util"
import ts from "typescript"
import { appName, Database } from "./fixture.ts"

/** A server error as `@effect/sql-pg` reports it (its `classifySqlState`, the fields as the cause). */
const serverError = (code: string, severity: string, operation: "connect" | "query"): SqlError => {
  const cause = Object.assign(new Error(`server says ${code}`), { code, severity, message: `server says ${code}` })
  const props = {
    cause,
    message: `PgConnection: ${operation === "connect" ? "Failed to connect" : "Query failed"}`,
    operation
  }
  const reason: SqlErrorReason = code.startsWith("08")
    ? new ConnectionError(props)
    : code.startsWith("28")
    ? new AuthenticationError(props)
    : code === "42501"
    ? new AuthorizationError(props)
    : code.startsWith("42")
    ? new SqlSyntaxError(props)
    : code === "23505"
    ? new UniqueViolation({ ...props, constraint: "c" })
    : code.startsWith("23")
    ? new ConstraintError(props)
    : code === "40P01"
    ? new DeadlockError(props)
    : code === "40001"
    ? new SerializationError(props)
    : code === "57014"
    ? new StatementTimeoutError(props)
    : new UnknownError(props)
  return new SqlError({ reason })
}

/** A socket error as `@effect/sql-pg` reports it. */
const socketError = (code: string): SqlError =>
  new SqlError({
    reason: new ConnectionError({
      cause: Object.assign(new Error(`read ${code}`), { code }),
      message: "PgConnection: Socket error",
      operation: "query"
    })
  })

interface Row {
  readonly code: string
  readonly severity: string
  readonly what: string
  /** `PgDriver.isDisconnect` of the error (at connect and on a statement). */
  readonly disconnect: boolean
  /** At connect: the reason `PgSql.checkoutError` gives, and whether it is retryable. */
  readonly checkout: readonly [SqlErrorReason["_tag"], boolean]
}

const table: ReadonlyArray<Row> = [
  // class 08: connection exception
  {
    code: "08000",
    severity: "FATAL",
    what: "connection_exception",
    disconnect: true,
    checkout: ["ConnectionError", true]
  },
  {
    code: "08001",
    severity: "FATAL",
    what: "sqlclient_unable_to_establish_sqlconnection",
    disconnect: true,
    checkout: ["ConnectionError", true]
  },
  {
    code: "08003",
    severity: "FATAL",
    what: "connection_does_not_exist",
    disconnect: true,
    checkout: ["ConnectionError", true]
  },
  {
    code: "08004",
    severity: "FATAL",
    what: "sqlserver_rejected_establishment_of_sqlconnection",
    disconnect: true,
    checkout: ["ConnectionError", true]
  },
  {
    code: "08006",
    severity: "FATAL",
    what: "connection_failure",
    disconnect: true,
    checkout: ["ConnectionError", true]
  },
  {
    code: "08007",
    severity: "FATAL",
    what: "transaction_resolution_unknown",
    disconnect: true,
    checkout: ["ConnectionError", true]
  },
  {
    code: "08P01",
    severity: "FATAL",
    what: "protocol_violation",
    disconnect: true,
    checkout: ["ConnectionError", true]
  },
  // class 08 sent with severity ERROR: the server answered, the session goes on
  {
    code: "08P01",
    severity: "ERROR",
    what: "protocol_violation (a Bind with the wrong parameter count)",
    disconnect: false,
    checkout: ["ConnectionError", true]
  },
  {
    code: "08001",
    severity: "ERROR",
    what: "dblink / postgres_fdw could not connect",
    disconnect: false,
    checkout: ["ConnectionError", true]
  },
  // 57P01–57P05: the server ends the session / refuses for now
  {
    code: "57P01",
    severity: "FATAL",
    what: "admin_shutdown (pg_terminate_backend)",
    disconnect: true,
    checkout: ["ConnectionError", true]
  },
  { code: "57P02", severity: "FATAL", what: "crash_shutdown", disconnect: true, checkout: ["ConnectionError", true] },
  {
    code: "57P03",
    severity: "FATAL",
    what: "cannot_connect_now (starting up / shutting down)",
    disconnect: true,
    checkout: ["ConnectionError", true]
  },
  { code: "57P04", severity: "FATAL", what: "database_dropped", disconnect: true, checkout: ["ConnectionError", true] },
  {
    code: "57P05",
    severity: "FATAL",
    what: "idle_session_timeout",
    disconnect: true,
    checkout: ["ConnectionError", true]
  },
  // too many connections: no disconnect, but retryable at connect
  {
    code: "53300",
    severity: "FATAL",
    what: "too_many_connections",
    disconnect: false,
    checkout: ["ConnectionError", true]
  },
  // FATAL at connect that keeps its own reason: not retryable
  {
    code: "28000",
    severity: "FATAL",
    what: "invalid_authorization_specification (pg_hba: no entry)",
    disconnect: false,
    checkout: ["AuthenticationError", false]
  },
  {
    code: "28P01",
    severity: "FATAL",
    what: "invalid_password",
    disconnect: false,
    checkout: ["AuthenticationError", false]
  },
  {
    code: "42501",
    severity: "FATAL",
    what: "insufficient_privilege (no CONNECT on the database)",
    disconnect: false,
    checkout: ["AuthorizationError", false]
  },
  {
    code: "3D000",
    severity: "FATAL",
    what: "invalid_catalog_name (unknown database)",
    disconnect: false,
    checkout: ["UnknownError", false]
  },
  {
    code: "22023",
    severity: "FATAL",
    what: "invalid_parameter_value (bad startup option)",
    disconnect: false,
    checkout: ["UnknownError", false]
  },
  {
    code: "42704",
    severity: "FATAL",
    what: "undefined_object (unknown startup parameter)",
    disconnect: false,
    checkout: ["SqlSyntaxError", false]
  },
  { code: "53100", severity: "FATAL", what: "disk_full", disconnect: false, checkout: ["UnknownError", false] },
  { code: "53200", severity: "FATAL", what: "out_of_memory", disconnect: false, checkout: ["UnknownError", false] },
  {
    code: "XX000",
    severity: "PANIC",
    what: "internal_error (PANIC)",
    disconnect: false,
    checkout: ["UnknownError", false]
  },
  // statement errors: never disconnects, whatever the severity
  {
    code: "25P03",
    severity: "FATAL",
    what: "idle_in_transaction_session_timeout",
    disconnect: false,
    checkout: ["UnknownError", false]
  },
  {
    code: "57014",
    severity: "ERROR",
    what: "query_canceled",
    disconnect: false,
    checkout: ["StatementTimeoutError", true]
  },
  {
    code: "57000",
    severity: "ERROR",
    what: "operator_intervention",
    disconnect: false,
    checkout: ["UnknownError", false]
  },
  {
    code: "40001",
    severity: "ERROR",
    what: "serialization_failure",
    disconnect: false,
    checkout: ["SerializationError", true]
  },
  { code: "40P01", severity: "ERROR", what: "deadlock_detected", disconnect: false, checkout: ["DeadlockError", true] },
  {
    code: "23505",
    severity: "ERROR",
    what: "unique_violation",
    disconnect: false,
    checkout: ["UniqueViolation", false]
  },
  { code: "42P01", severity: "ERROR", what: "undefined_table", disconnect: false, checkout: ["SqlSyntaxError", false] }
]

/**
 * A string list a module keeps in a top-level `const` (`[...]` or `new Set([...])`), read from
 * its source with the TypeScript parser: the test iterates the module's own list, which the
 * module does not export.
 */
const sourceList = (file: URL, name: string): ReadonlyArray<string> => {
  const path = fileURLToPath(file)
  const source = ts.createSourceFile(path, readFileSync(path, "utf8"), ts.ScriptTarget.Latest)
  for (const statement of source.statements) {
    if (!ts.isVariableStatement(statement)) continue
    for (const declaration of statement.declarationList.declarations) {
      if (!ts.isIdentifier(declaration.name) || declaration.name.text !== name) continue
      let init = declaration.initializer
      if (init !== undefined && ts.isNewExpression(init) && init.arguments?.length === 1) init = init.arguments[0]
      const elements = init !== undefined && ts.isArrayLiteralExpression(init) ? [...init.elements] : []
      const strings = elements.filter(ts.isStringLiteral)
      if (strings.length === 0 || strings.length !== elements.length) {
        throw new Error(`${name} in ${path} is not a list of string literals`)
      }
      return strings.map((e) => e.text)
    }
  }
  throw new Error(`no top-level const ${name} in ${path}`)
}

/** The socket codes `PgDriver.isDisconnect` reads as a lost connection: the driver's one list. */
const socketCodes = sourceList(new URL("../../src/pg/internal/errors.ts", import.meta.url), "socketCodes")

describe("classification table", () => {
  for (const row of table) {
    it(`${row.code} ${row.severity} ${row.what}: disconnect ${row.disconnect}; at connect ${row.checkout[0]} (retryable ${row.checkout[1]})`, () => {
      for (const operation of ["connect", "query"] as const) {
        const error = serverError(row.code, row.severity, operation)
        assert.strictEqual(PgDriver.isDisconnect(error), row.disconnect, `${operation}: isDisconnect`)
        // The server's error as a bare cause (no SqlError around it) decides the same way.
        assert.strictEqual(PgDriver.isDisconnect(error.reason.cause), row.disconnect, `${operation}: bare cause`)
      }
      const mapped = PgSql.checkoutError(
        new PoolError.ConnectError({ cause: serverError(row.code, row.severity, "connect") })
      )
      assert.strictEqual(mapped.reason._tag, row.checkout[0])
      assert.strictEqual(mapped.isRetryable, row.checkout[1])
      if (!row.disconnect) assert.notInclude(mapped.message, "the connection was lost")
      // What a retry `while: PgDriver.isDisconnect` would do at connect.
      assert.strictEqual(
        PgDriver.isDisconnect(mapped),
        row.disconnect || (row.code.startsWith("08") && row.severity !== "ERROR"),
        "mapped isDisconnect"
      )
    })
  }

  for (const code of socketCodes) {
    it(`socket error ${code}: a disconnect (as a SqlError, and bare)`, () => {
      assert.isTrue(PgDriver.isDisconnect(socketError(code)))
      assert.isTrue(PgDriver.isDisconnect(Object.assign(new Error(code), { code })))
      // Nested under a pool error's cause chain.
      assert.isTrue(PgDriver.isDisconnect(new PoolError.ConnectError({ cause: socketError(code) })))
    })
  }

  it("the socket-code list: the codes the docs name, real Node error codes; no other errno is a disconnect", () => {
    // `PgDriver.isDisconnect`'s documentation names these.
    for (const code of ["ECONNRESET", "ECONNREFUSED", "EPIPE", "ETIMEDOUT"]) assert.include(socketCodes, code)
    assert.strictEqual(new Set(socketCodes).size, socketCodes.length, "no duplicates")
    // Node's system error codes: the OS's errno names and libuv's (a socket error's `code`).
    const errnos = [...new Set([...Object.keys(constants.errno), ...[...getSystemErrorMap().values()].map(([n]) => n)])]
    for (const code of socketCodes) {
      // A misspelt code would never match: every E... is an errno Node knows, the rest Node's own ERR_ codes.
      assert.isTrue(errnos.includes(code) || code.startsWith("ERR_"), `${code} is a Node error code`)
    }
    // The list is the whole rule: an errno outside it is no disconnect (by itself, with no SQLSTATE).
    for (const code of errnos) {
      assert.strictEqual(
        PgDriver.isDisconnect(Object.assign(new Error(code), { code })),
        socketCodes.includes(code),
        code
      )
    }
  })

  it("codeless errors: ConnectionError and DisconnectionError are disconnects, the pool's own timeouts are not", () => {
    const closed = new SqlError({
      reason: new ConnectionError({
        cause: new Error("Connection closed"),
        message: "PgConnection: Connection closed",
        operation: "query"
      })
    })
    assert.isTrue(PgDriver.isDisconnect(closed))
    assert.isTrue(PgDriver.isDisconnect(new PoolError.DisconnectionError({ cause: new Error("x") })))
    const poolTimeout = new SqlError({
      reason: new ConnectionError({
        cause: new PoolError.PoolTimeoutError(
          { strategy: "QueuePool", size: 1, overflow: 0, timeout: Duration.seconds(1) } as never
        ),
        message: "timeout",
        operation: "checkout"
      })
    })
    assert.isFalse(PgDriver.isDisconnect(poolTimeout))
    assert.isFalse(PgDriver.isDisconnect(new Error("something else")))
    assert.isFalse(
      PgDriver.isDisconnect(
        new SqlError({ reason: new UnknownError({ cause: new Error("x"), message: "x", operation: "query" }) })
      )
    )
  })

  it("a COMMIT whose outcome is unknown (sent, never answered) is neither a disconnect nor retryable", () => {
    // What PgSql raises when a COMMIT was sent and the connection died before its answer.
    const unknown = new SqlError({
      reason: new UnknownError({
        cause: new PgSql.CommitOutcomeUnknownError({ cause: socketError("ECONNRESET") }),
        message: "PgSql: COMMIT was sent but never answered, the outcome is unknown",
        operation: "commit"
      })
    })
    assert.isTrue(PgSql.isCommitOutcomeUnknown(unknown))
    assert.isFalse(PgDriver.isDisconnect(unknown))
    assert.isFalse(unknown.isRetryable)
    assert.isFalse(PgSql.isCommitOutcomeUnknown(serverError("08006", "FATAL", "query")))
  })

  it("the README's retry example does not retry a wrong password", () =>
    Effect.gen(function*() {
      let attempts = 0
      const wrongPassword = Effect.suspend(() => {
        attempts++
        return Effect.fail(serverError("28P01", "FATAL", "connect"))
      })
      yield* Effect.exit(Effect.retry(wrongPassword, { times: 3, while: PgDriver.isDisconnect }))
      assert.strictEqual(attempts, 1)
      attempts = 0
      const dropped = Effect.suspend(() => {
        attempts++
        return Effect.fail(serverError("57P01", "FATAL", "query"))
      })
      yield* Effect.exit(Effect.retry(dropped, { times: 3, while: PgDriver.isDisconnect }))
      assert.strictEqual(attempts, 4)
    }).pipe(Effect.runPromise))
})

const failureOf = (exit: Exit.Exit<unknown, unknown>): unknown =>
  Exit.isFailure(exit) ? exit.cause.reasons.find(Cause.isFailReason)?.error : undefined

/** A statement over a pool whose connections use `config` (on the test database). */
const attempt = (config: Omit<PgDriver.Config, "url">) =>
  Effect.exit(
    Effect.flatMap(Effect.service(SqlClient.SqlClient), (sql) => sql`select 1`).pipe(
      Effect.provide(
        PgSql.layer().pipe(
          Layer.provideMerge(QueuePool.layer({ poolSize: 1, timeout: "10 seconds" })),
          Layer.provideMerge(Layer.unwrap(Effect.map(Effect.service(PgDatabase.PgDatabase), (db) =>
            PgDriver.layer({
              url: db.url,
              applicationName: appName("classify"),
              connectTimeout: "5 seconds",
              ...config
            }))))
        )
      )
    )
  )

layer(Database, { timeout: "60 seconds", excludeTestServices: true })("the server's own answers at connect", (it) => {
  it.effect("unknown database (3D000): its own reason, not retryable, not 'the connection was lost'", () =>
    Effect.gen(function*() {
      const error = failureOf(yield* attempt({ database: "edp_no_such_database" }))
      assert.isTrue(isSqlError(error), String(error))
      const e = error as SqlError
      assert.strictEqual((e.reason.cause as { code?: string }).code, "3D000")
      assert.strictEqual(e.reason._tag, "UnknownError")
      assert.isFalse(e.isRetryable)
      assert.isFalse(PgDriver.isDisconnect(e))
      assert.notInclude(e.message, "the connection was lost")
    }))

  it.effect("a bad startup option (22023): its own reason, not retryable", () =>
    Effect.gen(function*() {
      const error = failureOf(yield* attempt({ startupParameters: { work_mem: "plenty" } }))
      assert.isTrue(isSqlError(error), String(error))
      const e = error as SqlError
      assert.strictEqual((e.reason.cause as { code?: string }).code, "22023")
      assert.isFalse(e.isRetryable)
      assert.isFalse(PgDriver.isDisconnect(e))
      assert.notInclude(e.message, "the connection was lost")
    }))
})
