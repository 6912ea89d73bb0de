/**
 * The pool layer the workbench builds for each strategy, with the options it shows, and how
 * the workload adapts to strategies that cannot take it as is; in pipelined mode, the
 * `PgSql.layer({ pipeline })` bounds.
 */
import type { Layer } from "effect"
import { AssertionPool, FiberPool, NullPool, QueuePool, StaticPool } from "effect-db-pool"
import type { ConnectionPool, Driver, PoolError } from "effect-db-pool"
import type { PgSql } from "effect-db-pool/pg"
import type { Options, PhaseMode, StrategyName } from "./args.ts"

/** How one strategy is set up for its phase. */
export interface StrategySetup {
  readonly layer: Layer.Layer<ConnectionPool.ConnectionPool, PoolError.PoolConfigError, Driver.Driver>
  /** Options shown in the view and the report. */
  readonly config: Readonly<Record<string, string | number | boolean>>
  readonly workers: number
  /** Run transactions as one statement (the connection is shared by concurrent checkouts). */
  readonly singleStatementTransactions: boolean
  readonly notes: ReadonlyArray<string>
  /** Pipelined mode: the bounds given to `PgSql.layer({ pipeline })`; `undefined`: exclusive. */
  readonly pipeline: PipelineBounds | undefined
}

/** The pipelined mode's bounds, both given (`PgSql.PipelineOptions`). */
export interface PipelineBounds extends PgSql.PipelineOptions {
  readonly maxInFlight: number
  readonly maxConnections: number
}

/** How long a QueuePool checkout waits for a slot before `PoolTimeoutError`. */
export const checkoutTimeout = "10 seconds"

/**
 * The layer and workload adaptations for `strategy` in `mode`; the pool is named `poolName`. In
 * pipelined mode the bounds are always given explicitly (the library's defaults when the flags
 * are not), so that what the view shows is what runs.
 */
export const setup = (
  strategy: StrategyName,
  options: Options,
  poolName: string,
  mode: PhaseMode = "exclusive"
): StrategySetup => {
  const base = exclusiveSetup(strategy, options, poolName)
  if (mode === "exclusive") return base
  const pipeline: PipelineBounds = {
    maxInFlight: options.maxInFlight,
    maxConnections: options.sharedConnections ?? (strategy === "QueuePool" ? options.poolSize : 1)
  }
  return {
    ...base,
    config: {
      mode: "pipelined",
      maxInFlight: pipeline.maxInFlight,
      sharedConnections: pipeline.maxConnections,
      ...base.config
    },
    pipeline,
    notes: [
      `Pipelined: point queries and reports from every worker share at most ${pipeline.maxConnections} connection${
        pipeline.maxConnections === 1 ? "" : "s"
      } of ${
        options.topology === "replicas" ? "each pool (the primary's, the standby's)" : "the pool"
      } (${pipeline.maxInFlight} in flight on each); transfers (transactions) and slow statements (PgSql.exclusive: cancellable, nothing queues behind them) take a connection of their own.`,
      ...base.notes
    ]
  }
}

const exclusiveSetup = (strategy: StrategyName, options: Options, poolName: string): StrategySetup => {
  // tracing: the checkout spans give the recorder every acquire wait.
  const common = { name: poolName, tracing: true, connectTimeout: "5 seconds" } as const
  switch (strategy) {
    case "QueuePool":
      return {
        layer: QueuePool.layer({
          ...common,
          poolSize: options.poolSize,
          maxOverflow: options.maxOverflow,
          timeout: checkoutTimeout,
          prePing: true
        }),
        config: {
          poolSize: options.poolSize,
          maxOverflow: options.maxOverflow,
          timeout: checkoutTimeout,
          prePing: true
        },
        workers: options.workers,
        singleStatementTransactions: false,
        notes: [],
        pipeline: undefined
      }
    case "NullPool":
      return {
        layer: NullPool.layer(common),
        config: { pooling: "none: a new connection per checkout" },
        workers: options.workers,
        singleStatementTransactions: false,
        notes: ["Every checkout connects and every return closes: watch the connect count and the acquire wait."],
        pipeline: undefined
      }
    case "StaticPool":
      return {
        layer: StaticPool.layer({ ...common, prePing: true }),
        config: { connections: 1, prePing: true },
        workers: options.workers,
        singleStatementTransactions: true,
        notes: [
          "One connection shared by every worker: statements queue on it.",
          "Overlapping checkouts share one lease, so the pool sees one checkout (and one acquire wait) while any worker holds it; the queueing shows in the throughput.",
          "Transfers run as one statement: a multi-statement transaction would own the shared session until it ends, and every other worker would wait for it."
        ],
        pipeline: undefined
      }
    case "FiberPool":
      return {
        layer: FiberPool.layer({ ...common, poolSize: options.poolSize, prePing: true }),
        config: { poolSize: options.poolSize, prePing: true },
        workers: options.workers,
        singleStatementTransactions: false,
        notes: [
          "One connection per fiber: every worker keeps its own; poolSize bounds the idle ones kept.",
          ...(options.workers > options.poolSize
            ? [
              `${options.workers} workers > poolSize ${options.poolSize}: the least recently used idle connections are closed, so workers reconnect often (--pool-size ${options.workers} keeps one per worker).`
            ]
            : [])
        ],
        pipeline: undefined
      }
    case "AssertionPool":
      return {
        layer: AssertionPool.layer({ ...common, prePing: true }),
        config: { connections: 1, prePing: true },
        workers: 1,
        singleStatementTransactions: false,
        notes: ["Runs one worker: AssertionPool allows one checkout at a time (a second one fails, naming the first)."],
        pipeline: undefined
      }
  }
}
