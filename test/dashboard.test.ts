/**
 * The admin API and dashboard against a real cluster: authentication (refusals, Basic,
 * the login cookie, CSRF, throttling), configuration writes through the store's validation,
 * and the dashboard in headless Chromium (Debian's, driven by playwright-core): login, the
 * cluster map, a queue with a deferred message, and a message found by recipient with its
 * timeline. A screenshot of each page goes to test-results/.
 */
import { mkdir } from 'node:fs/promises';
import { request } from 'node:http';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROLES } from '@transit/service';
import { smtpTranscript, waitFor } from '@transit/testkit';
import { waitForMaildir } from './harness.ts';
import { useHarness } from './use-harness.ts';

const PASSWORD = 'dashboard-test-Secret-1';
const h = useHarness({
  env: { TRANSIT_ADMIN_PASSWORD: PASSWORD },
  // A deferred recipient waits ten minutes before its next try: it stays in its queue for the test.
  transport: { TransientRetrySchedule: [600] },
  rejectRecipient: (rcpt) => (rcpt.startsWith('slow') ? { code: 451, message: '4.4.1 try again later' } : undefined),
});

const base = () => `http://${h.cluster.host}:${h.cluster.httpPort('admin')}`;
const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
const admin = { authorization: basic('admin', PASSWORD) };
const changing = { ...admin, 'x-transit-request': '1', 'content-type': 'application/json' };

type Json = Record<string, unknown>;
async function call(
  method: string,
  path: string,
  headers: Record<string, string> = {},
  body?: unknown,
): Promise<{ status: number; headers: Headers; json: Json }> {
  const res = await fetch(`${base()}${path}`, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  return { status: res.status, headers: res.headers, json: (await res.json().catch(() => ({}))) as Json };
}

/** A login attempt from another loopback address, so throttling it leaves 127.0.0.1 (the browser) alone. */
function loginFrom(localAddress: string, password: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${base()}/api/login`,
      { method: 'POST', localAddress, headers: { 'content-type': 'application/json', 'x-transit-request': '1' } },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    );
    req.on('error', reject);
    req.end(JSON.stringify({ user: 'admin', password }));
  });
}

/** From 127.0.0.2 the example's "Application Relay" connector takes the session, so remote recipients are accepted too. */
async function send(from: string, to: string, subject: string): Promise<void> {
  const replies = await smtpTranscript({
    host: h.cluster.host,
    port: h.cluster.port(25),
    localAddress: '127.0.0.2',
    lines: [
      'EHLO client.example',
      `MAIL FROM:<${from}>`,
      `RCPT TO:<${to}>`,
      'DATA',
      `DATA-BODY:Subject: ${subject}\r\nFrom: <${from}>\r\nTo: <${to}>\r\n\r\nhello\r\n.\r\n`,
      'QUIT',
    ],
  });
  expect(replies.at(-2)).toMatch(/^250 2\.6\.0 /);
}

describe('admin API', () => {
  it('refuses without credentials, keeps /healthz and /metrics open', async () => {
    const refused = await call('GET', '/api/health');
    expect(refused.status).toBe(401);
    expect(refused.headers.get('www-authenticate')).toMatch(/^Basic /);
    expect((await call('GET', '/api/health', { authorization: basic('admin', 'wrong-password') })).status).toBe(401);
    expect((await call('GET', '/api/health', { authorization: basic('root', PASSWORD) })).status).toBe(401);
    expect((await fetch(`${base()}/healthz`)).status).toBe(200);
    expect((await fetch(`${base()}/metrics`)).status).toBe(200);
  });

  it('answers an API client with HTTP Basic, and a browser session after a login', async () => {
    const health = await call('GET', '/api/health', admin);
    expect(health.status).toBe(200);
    expect((health.json.roles as Array<{ role: string; ready: number }>).map((r) => r.role).sort()).toEqual([...ROLES].sort());

    expect((await call('POST', '/api/login', { 'content-type': 'application/json' }, { user: 'admin', password: PASSWORD })).status).toBe(403);
    const login = await fetch(`${base()}/api/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-transit-request': '1' },
      body: JSON.stringify({ user: 'admin', password: PASSWORD }),
    });
    expect(login.status).toBe(200);
    const cookie = login.headers.get('set-cookie') ?? '';
    expect(cookie).toMatch(/^transit_admin=[A-Za-z0-9_-]{43}; HttpOnly; SameSite=Strict; Path=\/; Max-Age=\d+/);
    const session = { cookie: cookie.split(';')[0]! };
    expect((await call('GET', '/api/session', session)).json).toEqual({ user: 'admin' });
    // A change from another origin is refused even with the session cookie and the header.
    expect(
      (
        await call(
          'POST',
          '/api/test-connector',
          { ...session, 'x-transit-request': '1', 'content-type': 'application/json', origin: 'http://evil.example' },
          { remoteIp: '127.0.0.5' },
        )
      ).status,
    ).toBe(403);
    expect((await call('POST', '/api/logout', { ...session, 'x-transit-request': '1' })).status).toBe(200);
    expect((await call('GET', '/api/session', session)).status).toBe(401);
  });

  it('throttles repeated failed logins from one address', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) statuses.push(await loginFrom('127.0.0.3', `wrong-${i}`));
    expect(statuses.slice(0, 5)).toEqual([401, 401, 401, 401, 401]);
    expect(statuses[5]).toBe(429);
    // Even the right password waits out the window; other addresses are not affected.
    expect(await loginFrom('127.0.0.3', PASSWORD)).toBe(429);
    expect(await loginFrom('127.0.0.4', PASSWORD)).toBe(200);
  });

  it('refuses an invalid configuration naming the field, and writes a valid one with compare-and-set', async () => {
    const read = await call('GET', '/api/config', admin);
    expect(read.status).toBe(200);
    const revision = read.json.revision as number;
    const config = read.json.config as { ReceiveConnectors: Array<Record<string, unknown>> };
    const index = config.ReceiveConnectors.findIndex((c) => c.Name === 'Default Frontend');
    expect(index).toBeGreaterThanOrEqual(0);

    const invalid = structuredClone(config);
    invalid.ReceiveConnectors[index]!.AuthMechanism = ['Telepathy'];
    const refused = await call('PUT', '/api/config', changing, { revision, config: invalid });
    expect(refused.status).toBe(400);
    expect(refused.json.code).toBe('CONFIG_INVALID');
    expect((refused.json.issues as Array<{ path: string }>).map((i) => i.path)).toContain(`ReceiveConnectors.${index}.AuthMechanism.0`);

    expect((await call('PUT', '/api/config', { ...admin, 'content-type': 'application/json' }, { revision, config })).status).toBe(403);

    const valid = structuredClone(config);
    valid.ReceiveConnectors[index]!.Banner = '220 mail.contoso.test ready (dashboard test)';
    const written = await call('PUT', '/api/config', changing, { revision, config: valid });
    expect(written.status).toBe(200);
    expect(written.json.revision).toBeGreaterThan(revision);
    const again = await call('GET', '/api/config', admin);
    expect((again.json.config as typeof config).ReceiveConnectors[index]!.Banner).toBe('220 mail.contoso.test ready (dashboard test)');
    // The old revision is stale now: a second writer based on it is told so.
    expect((await call('PUT', '/api/config', changing, { revision, config: valid })).status).toBe(409);
  });

  it('explains a connector decision with the policy code', async () => {
    const r = await call('POST', '/api/test-connector', changing, { remoteIp: '127.0.0.5', from: 'x@example.org', to: ['someone@example.net'] });
    expect(r.status).toBe(200);
    const steps = r.json.steps as Array<{ command: string; reply: string }>;
    expect(steps.find((s) => s.command.startsWith('RCPT TO'))?.reply).toMatch(/^550 5\.7\.54/);
  });
});

describe('dashboard in headless Chromium', () => {
  let browser: Browser;
  let page: Page;
  beforeAll(async () => {
    await mkdir('test-results', { recursive: true });
    browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox', '--disable-dev-shm-usage'] });
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  });
  afterAll(async () => {
    await browser?.close();
  });

  it('refuses without a login, then logs in and shows every role ready', async () => {
    await page.goto(`${base()}/#/cluster`);
    await page.locator('#login').waitFor();
    expect(await page.evaluate(async () => (await fetch('/api/health', { headers: { 'x-transit-request': '1' } })).status)).toBe(401);
    await page.fill('#login input[name=password]', 'not-the-password');
    await page.click('#login button[type=submit]');
    await page.getByText('wrong user name or password').waitFor();
    await page.fill('#login input[name=password]', PASSWORD);
    await page.click('#login button[type=submit]');
    await page.locator('[data-testid=roles]').waitFor();
    for (const role of ROLES) {
      await expect.poll(() => page.locator(`tr[data-role="${role}"] td:nth-child(4)`).textContent(), { timeout: 15_000 }).toBe('ready');
    }
    expect(await page.locator('[data-testid=cluster-status]').textContent()).toBe('healthy');
    await page.screenshot({ path: 'test-results/dashboard-cluster.png', fullPage: true });
  });

  it('shows a queue holding a deferred message, and suspends it', async () => {
    await send('x@example.org', 'slow@example.net', 'dashboard deferred');
    await waitFor(
      async () => {
        const r = await call('GET', '/api/queues', admin);
        return (r.json.queues as Array<{ Identity: string; MessageCount: number }> | undefined)?.find((q) => /remote/.test(q.Identity) && q.MessageCount > 0);
      },
      { timeoutMs: 30_000, what: 'a remote queue with the deferred message' },
    );
    await page.goto(`${base()}/#/queues`);
    const queue = page.locator('[data-testid=queues] tbody tr', { hasText: 'remote' });
    await queue.first().waitFor();
    const message = page.locator('[data-testid=queue-messages] tbody tr', { hasText: 'slow@example.net' }).first();
    await message.waitFor();
    // Suspend-Message through the page: libs/queues holds it, and the list shows it Suspended.
    await message.locator('button[data-action=suspend]').click();
    await page
      .locator('[data-testid=queue-messages] tbody tr', { hasText: 'slow@example.net' })
      .filter({ hasText: 'Suspended' })
      .first()
      .waitFor({ timeout: 15_000 });
    await page.screenshot({ path: 'test-results/dashboard-queues.png', fullPage: true });
  });

  it('finds a message by recipient and shows its timeline from RECEIVE to DELIVER', async () => {
    await send('x@example.org', 'alice@contoso.test', 'dashboard tracking');
    await waitForMaildir(h, 'alice@contoso.test', 1);
    await page.goto(`${base()}/#/tracking`);
    await page.fill('#tracking-search input[name=recipient]', 'alice@contoso.test');
    // The tracking rows appear once the event log has the delivery: search until DELIVER is there.
    await expect
      .poll(
        async () => {
          await page.click('#tracking-search button[type=submit]');
          await page.locator('[data-testid=tracking-results], p.muted:has-text("No tracking rows")').first().waitFor();
          return page.locator('[data-testid=tracking-results] tbody tr', { hasText: 'DELIVER' }).count();
        },
        { timeout: 20_000, interval: 500 },
      )
      .toBeGreaterThan(0);
    await page.locator('[data-testid=tracking-results] tbody tr', { hasText: 'dashboard tracking' }).first().click();
    const timeline = page.locator('[data-testid=timeline] tbody tr');
    await timeline.first().waitFor();
    const events = await timeline.locator('td:nth-child(2)').allTextContents();
    expect(events[0]).toBe('RECEIVE');
    expect(events).toContain('DELIVER');
    expect(events.indexOf('DELIVER')).toBeGreaterThan(0);
    expect(await page.locator('[data-testid=message-status]').textContent()).toBe('Delivered');
    await page.screenshot({ path: 'test-results/dashboard-timeline.png', fullPage: true });
  });

  it('shows throughput, the connectors and a test-connector explanation', async () => {
    await page.goto(`${base()}/#/throughput`);
    await page.locator('[data-testid=throughput-chart] svg path[data-series=received]').waitFor();
    await page.screenshot({ path: 'test-results/dashboard-throughput.png', fullPage: true });
    await page.goto(`${base()}/#/connectors`);
    await page.locator('[data-testid=receive-connectors] tbody tr', { hasText: 'Default Frontend' }).waitFor();
    await page.fill('#test-connector input[name=remoteIp]', '127.0.0.5');
    await page.fill('#test-connector input[name=from]', 'x@example.org');
    await page.fill('#test-connector input[name=to]', 'someone@example.net');
    await page.click('#test-connector button[type=submit]');
    await expect.poll(() => page.locator('[data-testid=explanation]').textContent()).toMatch(/550 5\.7\.54/);
    await page.screenshot({ path: 'test-results/dashboard-connectors.png', fullPage: true });
  });
});
