/**
 * Writes the settings tables of docs/configuration.md from the register
 * (libs/config/src/settings.ts): `npm run docs:config`. Only the part between the markers
 * changes; the rest of the document is written by hand. `--check` writes nothing and exits 1
 * when the document is stale (libs/config/src/settings-doc.test.ts checks the same).
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { withGeneratedSettings } from '@transit/config';

const file = join(import.meta.dirname, '..', 'docs', 'configuration.md');
const current = await readFile(file, 'utf8');
const next = withGeneratedSettings(current);
if (process.argv.includes('--check')) {
  if (next !== current) {
    process.stderr.write(`${file} is stale: run npm run docs:config\n`);
    process.exitCode = 1;
  }
} else if (next === current) {
  process.stdout.write(`${file} is up to date\n`);
} else {
  await writeFile(file, next);
  process.stdout.write(`wrote the settings tables of ${file}\n`);
}
