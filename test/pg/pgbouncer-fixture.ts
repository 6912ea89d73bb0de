/**
 * Moved to `support/pgbouncer.ts` (shared by the tests, the benchmarks and the workbench). This
 * re-export only keeps `bench/e2e-pg.ts` building until its import points there; then delete it.
 */
export * from "../../support/pgbouncer.ts"
