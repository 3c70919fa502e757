import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSecureContext } from 'node:tls';
import { afterAll, expect, it } from 'vitest';
import { loadTlsMaterial, splitPemBundle } from './tls.ts';

const dirs: string[] = [];
afterAll(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

it('gives every role of a node starting at once the same, matching key and certificate', async () => {
  const varDir = await mkdtemp(join(tmpdir(), 'transit-tls-'));
  dirs.push(varDir);
  const settings = { varDir, nodeName: 'node1.contoso.test', tlsCertPath: undefined, tlsKeyPath: undefined };
  // Six roles at once, as `npm start` starts them (the race that once gave a role another's key).
  const all = await Promise.all(Array.from({ length: 6 }, () => loadTlsMaterial(settings)));
  for (const m of all) {
    expect(m.cert).toBe(all[0]!.cert);
    expect(m.key).toBe(all[0]!.key);
    expect(() => createSecureContext({ key: m.key, cert: m.cert })).not.toThrow();
  }
  // And later starts reuse it.
  expect((await loadTlsMaterial(settings)).cert).toBe(all[0]!.cert);
});

it('reads a bundle only when it holds both a private key and a certificate', () => {
  expect(splitPemBundle('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n')).toBeUndefined();
  expect(
    splitPemBundle('-----BEGIN PRIVATE KEY-----\nBBBB\n-----END PRIVATE KEY-----\n-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n'),
  ).toEqual({ key: '-----BEGIN PRIVATE KEY-----\nBBBB\n-----END PRIVATE KEY-----\n', cert: '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n' });
});
