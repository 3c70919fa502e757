import { TestkitError } from './errors.ts';

export type WaitOptions = { timeoutMs: number; intervalMs?: number; what: string };

/** Polls `probe` until it returns something other than undefined; a probe that throws ends the wait. */
export async function waitFor<T>(probe: () => Promise<T | undefined> | T | undefined, opts: WaitOptions): Promise<T> {
  const deadline = Date.now() + opts.timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() >= deadline) throw new TestkitError('TIMEOUT', `timed out after ${opts.timeoutMs}ms waiting for ${opts.what}`);
    await sleep(Math.min(opts.intervalMs ?? 100, Math.max(0, deadline - Date.now())));
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
