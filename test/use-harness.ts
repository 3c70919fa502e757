/**
 * The usual test-file set-up: one harness started before the file's tests and stopped after
 * them. The returned object stands for the harness once it is up.
 */
import { afterAll, beforeAll } from 'vitest';
import { startHarness, type Harness, type HarnessOptions } from './harness.ts';

export function useHarness(options: HarnessOptions | (() => Promise<HarnessOptions>) = {}): Harness {
  let current: Harness | undefined;
  beforeAll(async () => {
    current = await startHarness(typeof options === 'function' ? await options() : options);
  });
  afterAll(async () => {
    await current?.close();
  });
  return new Proxy({} as Harness, {
    get: (_target, property) => {
      if (!current) throw new Error('the harness is not started yet (use it inside a test)');
      return Reflect.get(current, property) as unknown;
    },
  });
}
