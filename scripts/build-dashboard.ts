/**
 * Writes the dashboard bundle to services/admin/public/app.js, for installs without
 * devDependencies (the container image): there the admin service cannot bundle the page at
 * start and serves this file instead. In a checkout the admin service bundles in memory and
 * this file is not needed.
 */
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { build } from 'esbuild';
import { BUNDLE_OPTIONS, DASHBOARD_BUNDLE } from '../services/admin/src/assets.ts';

await mkdir(dirname(DASHBOARD_BUNDLE), { recursive: true });
await build({ ...BUNDLE_OPTIONS, outfile: DASHBOARD_BUNDLE });
process.stdout.write(`wrote ${DASHBOARD_BUNDLE}\n`);
