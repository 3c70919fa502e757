import { readFile, readdir } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { ENVIRONMENT_KEYS, GENERATED_BEGIN, GENERATED_END, environmentMeta, renderSettingsDoc, withGeneratedSettings } from './index.ts';

const repo = new URL('../../../', import.meta.url);
const read = (path: string) => readFile(new URL(path, repo), 'utf8');

describe('docs/configuration.md', () => {
  it('has the settings tables the register generates (run npm run docs:config when this fails)', async () => {
    const doc = await read('docs/configuration.md');
    expect(doc).toContain(GENERATED_BEGIN);
    expect(withGeneratedSettings(doc), 'docs/configuration.md is stale: run npm run docs:config').toBe(doc);
  });

  it('lists every environment variable of the register', () => {
    const generated = renderSettingsDoc();
    for (const key of ENVIRONMENT_KEYS) expect(generated).toContain(`| \`${environmentMeta(key).variable}\` |`);
  });

  it('replaces only what is between the markers', () => {
    const doc = `# Title\n\nhand-written\n\n${GENERATED_BEGIN}\nold table\n${GENERATED_END}\n\nmore hand-written\n`;
    expect(withGeneratedSettings(doc, 'new table')).toBe(`# Title\n\nhand-written\n\n${GENERATED_BEGIN}\nnew table\n${GENERATED_END}\n\nmore hand-written\n`);
    expect(() => withGeneratedSettings('# no markers')).toThrow(/no <!-- BEGIN GENERATED: settings/);
  });
});

describe('the variables the docs name', () => {
  // Read by scripts/local-cluster.ts only (npm start, npm run cluster), and by what starts nats-server and redis-server
  // for local clusters and tests (findBinary, libs/cluster/src/processes.ts), not by a Transit process.
  const SCRIPT_ONLY = ['TRANSIT_LOCAL_NODES', 'TRANSIT_LOCAL_REPLICAS', 'TRANSIT_NATS_SERVER', 'TRANSIT_REDIS_SERVER'];

  it('are all in the register, so no page describes a variable Transit does not read', async () => {
    const known = new Set([...ENVIRONMENT_KEYS.map((k) => environmentMeta(k).variable), ...SCRIPT_ONLY]);
    const pages = ['README.md', ...(await readdir(new URL('docs/', repo))).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
    const unknown: string[] = [];
    for (const page of pages) {
      for (const [name] of (await read(page)).matchAll(/\bTRANSIT_[A-Z0-9_]*[A-Z0-9]\b/g)) if (!known.has(name)) unknown.push(`${page}: ${name}`);
    }
    expect([...new Set(unknown)]).toEqual([]);
  });
});
