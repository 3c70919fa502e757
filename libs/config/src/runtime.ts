/**
 * Process settings from the environment: where the bus is, where files go, how listeners
 * are placed on this machine, and the process-level tunables. Each variable, its default
 * and its meaning are in the register (settings.ts); this module reads them once and
 * refuses a process whose settings are wrong or contradict each other.
 */
import { ConfigError } from './load.ts';
import { deriveRuntime, environmentRuleProblems, readEnvironment, type RuntimeSettings } from './settings.ts';

export type { RuntimeSettings } from './settings.ts';

/** Validated settings of `env`; a ConfigError names every variable at fault and every broken rule between them. */
export function runtimeSettings(env: NodeJS.ProcessEnv = process.env): RuntimeSettings {
  const { values, problems } = readEnvironment(env);
  const all = problems.length ? problems : environmentRuleProblems(values);
  if (all.length) throw new ConfigError(`environment settings are invalid:\n${all.map((p) => `  ${p}`).join('\n')}`);
  return deriveRuntime(values);
}

let processSettingsCache: RuntimeSettings | undefined;

/**
 * This process's settings, read from process.env the first time they are asked for (the
 * service shell asks first, at start, and exits on a ConfigError); later calls return the
 * same object, so every module sees what the process started with.
 */
export function processSettings(): RuntimeSettings {
  processSettingsCache ??= runtimeSettings(process.env);
  return processSettingsCache;
}
