/** Loopback helpers shared by the dev fixtures (PgBouncer, replication). */
import { createServer } from "node:net"

/** A loopback port that was free when asked (a fixture that then fails to bind it retries). */
export const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = createServer()
    server.unref()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })
