/** Settings of the benchmarks, read from the environment. */

/** The integer in `name`, or `fallback` when unset; anything else is refused with the variable's name. */
export function intFromEnv(name: string, fallback: number, min: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) throw new Error(`${name} must be an integer ≥ ${min} (got ${raw})`);
  return n;
}
