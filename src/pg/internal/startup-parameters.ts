/**
 * What a PostgreSQL server reports at startup (ParameterStatus messages: `in_hot_standby`,
 * `default_transaction_read_only`, PostgreSQL 14+), read off a plaintext socket of the driver's
 * own as the driver reads it: the target check then needs no round trip.
 *
 * @internal
 */
import { Duration, Option } from "effect"
import * as Net from "node:net"
import type { Duplex } from "node:stream"
import type { ConnectConfig } from "./host-list.ts"
import type { Config } from "./settings.ts"

/** What the server reported at startup (ParameterStatus), read off the socket. */
export interface Reported {
  inHotStandby?: string
  defaultTransactionReadOnly?: string
}

/**
 * Read the ParameterStatus messages a plaintext startup carries, until ReadyForQuery (or an
 * error). Only reads: the driver's own listener gets the same chunks. Stops at 64 KiB.
 */
const readStartupParameters = (socket: Duplex, reported: Reported): void => {
  let buffer: Buffer = Buffer.alloc(0)
  const stop = () => {
    socket.off("data", onData)
    socket.off("close", stop)
  }
  const onData = (chunk: Buffer | string) => {
    const bytes = typeof chunk === "string" ? Buffer.from(chunk) : chunk
    buffer = buffer.length === 0 ? bytes : Buffer.concat([buffer, bytes])
    let offset = 0
    while (buffer.length - offset >= 5) {
      const type = buffer[offset]!
      const length = buffer.readUInt32BE(offset + 1)
      if (length < 4) return stop()
      if (buffer.length - offset < 1 + length) break
      if (type === 0x53 /* S: ParameterStatus */) {
        const payload = buffer.subarray(offset + 5, offset + 1 + length)
        const nul = payload.indexOf(0)
        if (nul > 0) {
          const name = payload.subarray(0, nul).toString("utf8")
          const end = payload.indexOf(0, nul + 1)
          const value = payload.subarray(nul + 1, end < 0 ? payload.length : end).toString("utf8")
          if (name === "in_hot_standby") reported.inHotStandby = value
          else if (name === "default_transaction_read_only") reported.defaultTransactionReadOnly = value
        }
      } else if (type === 0x5a /* Z: ReadyForQuery */ || type === 0x45 /* E: ErrorResponse */) {
        return stop()
      }
      offset += 1 + length
    }
    buffer = buffer.subarray(offset)
    if (buffer.length > 65536) stop()
  }
  socket.on("data", onData)
  socket.on("close", stop)
}

/** A socket to one host whose startup parameters are read (the first call only: later calls are cancel requests). */
export const readingSocket = (host: Config.Host, keepAlive: number | undefined, reported: Reported): () => Duplex => {
  let first = true
  return () => {
    const socket = host.host.startsWith("/")
      ? Net.connect({ path: `${host.host}/.s.PGSQL.${host.port}` })
      : Net.connect({
        host: host.host,
        port: host.port,
        noDelay: true,
        ...(keepAlive !== undefined && { keepAlive: true, keepAliveInitialDelay: keepAlive })
      })
    if (first) {
      first = false
      readStartupParameters(socket, reported)
    }
    return socket
  }
}

/** The socket keep-alive delay of a config, ms (`undefined`: none). */
export const keepAliveMillis = (config: ConnectConfig): number | undefined => {
  if (config.keepAlive === undefined) return undefined
  // Validated: between 1 s and 2^31 - 1 s; the driver truncates to whole seconds.
  const duration = Duration.fromInput(config.keepAlive)
  if (Option.isNone(duration) || !Duration.isFinite(duration.value)) return undefined
  const seconds = Math.floor(Duration.toSeconds(duration.value))
  return seconds >= 1 && seconds <= 0x7fffffff ? seconds * 1000 : undefined
}
