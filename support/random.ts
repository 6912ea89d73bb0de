/**
 * A small seeded pseudo-random generator (mulberry32), shared by the workbench and the tests, so
 * a workbench run (`--seed`) or a failing randomized test combination can be replayed.
 */

/** A seeded generator. */
export interface Random {
  /** Uniform in [0, 1). */
  readonly next: () => number
  /** Uniform integer in [min, max]. */
  readonly int: (min: number, max: number) => number
}

/** A generator for `seed`; `stream` derives independent generators (one per worker). */
export const make = (seed: number, stream = 0): Random => {
  let state = (seed ^ Math.imul(stream + 1, 0x9e3779b9)) >>> 0
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  return { next, int: (min, max) => min + Math.floor(next() * (max - min + 1)) }
}
