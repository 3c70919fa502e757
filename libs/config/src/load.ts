import { readFile } from 'node:fs/promises';
import { parse } from 'yaml';
import { organizationConfigSchema, type OrganizationConfig } from './schema.ts';

export class ConfigError extends Error {
  readonly code = 'CONFIG_INVALID';
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** Validates a parsed document; every problem is reported with its path, e.g. `ReceiveConnectors.1.AuthMechanism`. */
export function parseOrganizationConfig(doc: unknown, source = 'configuration'): OrganizationConfig {
  const result = organizationConfigSchema.safeParse(doc);
  if (!result.success) {
    const lines = result.error.issues.map((i) => `  ${i.path.join('.') || '(root)'}: ${i.message}`);
    throw new ConfigError(`${source} is invalid:\n${lines.join('\n')}`);
  }
  return result.data;
}

export function parseOrganizationYaml(text: string, source = 'configuration'): OrganizationConfig {
  let doc: unknown;
  try {
    doc = parse(text);
  } catch (err) {
    throw new ConfigError(`${source} is not valid YAML: ${(err as Error).message}`);
  }
  return parseOrganizationConfig(doc, source);
}

export async function loadOrganizationConfig(path: string): Promise<OrganizationConfig> {
  return parseOrganizationYaml(await readFile(path, 'utf8'), path);
}
