import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '@transit/service';
import { adminSurface } from './surface.ts';

describe('admin surface without a credential', () => {
  let server: Server;
  let base = '';
  beforeAll(async () => {
    const route = adminSurface({
      auth: undefined,
      disabledReason: 'no admin credential: set TRANSIT_ADMIN_PASSWORD or TRANSIT_ADMIN_PASSWORD_FILE',
      assets: { lookup: (path) => (path === '/' ? () => Promise.resolve({ contentType: 'text/html', body: 'page' }) : undefined), bundledBy: 'test' },
      api: () => Promise.reject(new Error('the API must not be reached')),
      log: createLogger('admin', 'test'),
    });
    server = createServer((req, res) => {
      void Promise.resolve(route(req, res)).then((handled) => {
        if (!handled) res.writeHead(404).end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => {
    server.close();
  });

  it('answers 503 with the reason on the API and the page, and leaves other paths alone', async () => {
    const api = await fetch(`${base}/api/health`, { headers: { authorization: `Basic ${Buffer.from('admin:anything').toString('base64')}` } });
    expect(api.status).toBe(503);
    expect(await api.json()).toMatchObject({ code: 'ADMIN_DISABLED', error: expect.stringMatching(/TRANSIT_ADMIN_PASSWORD/) as unknown });
    const page = await fetch(`${base}/`);
    expect(page.status).toBe(503);
    expect(await page.text()).toContain('set TRANSIT_ADMIN_PASSWORD');
    expect((await fetch(`${base}/healthz`)).status).toBe(404);
  });
});
