/**
 * The dashboard's files. The page is plain TypeScript modules (services/admin/web) bundled by
 * esbuild into one script. In a checkout (npm start, npm test) the admin service bundles them
 * in memory at start, so what it serves always matches the sources and nothing is written
 * to disk. Where esbuild is absent (a production install has no devDependencies) it serves
 * the bundle `npm run build:dashboard` wrote to services/admin/public/. Nothing is fetched
 * from elsewhere at run time: no CDN, no fonts, no chart library from outside.
 */
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { BuildOptions } from 'esbuild';
import type { Logger } from '@transit/service';

export type Asset = { contentType: string; body: string | Uint8Array };
export type DashboardAssets = { lookup(path: string): (() => Promise<Asset>) | undefined; bundledBy: string };

const WEB_DIR = fileURLToPath(new URL('../web/', import.meta.url));
const PUBLIC_DIR = fileURLToPath(new URL('../public/', import.meta.url));
export const DASHBOARD_ENTRY = `${WEB_DIR}app.ts`;
export const DASHBOARD_BUNDLE = `${PUBLIC_DIR}app.js`;

/** esbuild's options for the page, shared by the in-memory build and `npm run build:dashboard`. */
export const BUNDLE_OPTIONS: BuildOptions = {
  entryPoints: [DASHBOARD_ENTRY],
  bundle: true,
  format: 'esm',
  target: 'es2022',
  minify: true,
  sourcemap: false,
  legalComments: 'none',
};

async function bundle(log: Logger): Promise<{ js: string; by: string } | undefined> {
  try {
    const esbuild = await import('esbuild');
    const result = await esbuild.build({ ...BUNDLE_OPTIONS, write: false });
    return { js: result.outputFiles[0]!.text, by: 'esbuild (in memory)' };
  } catch (err) {
    const { code } = err as NodeJS.ErrnoException;
    // A missing esbuild is the production case; a failing build is a bug in the page's sources.
    if (code !== 'ERR_MODULE_NOT_FOUND') log.error({ err: (err as Error).message }, 'dashboard bundle failed; trying the prebuilt one');
  }
  try {
    return { js: await readFile(DASHBOARD_BUNDLE, 'utf8'), by: DASHBOARD_BUNDLE };
  } catch {
    return undefined;
  }
}

export async function loadDashboardAssets(log: Logger): Promise<DashboardAssets> {
  const built = await bundle(log);
  if (!built)
    log.error({ expected: DASHBOARD_BUNDLE }, 'dashboard unavailable: no esbuild and no prebuilt bundle (run npm run build:dashboard); the API still answers');
  const file = (name: string, contentType: string) => async (): Promise<Asset> => ({ contentType, body: await readFile(`${WEB_DIR}${name}`) });
  const files: Record<string, () => Promise<Asset>> = {
    '/': file('index.html', 'text/html; charset=utf-8'),
    '/index.html': file('index.html', 'text/html; charset=utf-8'),
    '/assets/app.css': file('app.css', 'text/css; charset=utf-8'),
    '/assets/app.js': () =>
      Promise.resolve(
        built
          ? { contentType: 'text/javascript; charset=utf-8', body: built.js }
          : {
              contentType: 'text/javascript; charset=utf-8',
              body: 'document.body.textContent = "The dashboard bundle is missing: run npm run build:dashboard.";',
            },
      ),
  };
  return { lookup: (path) => files[path], bundledBy: built?.by ?? 'none' };
}
