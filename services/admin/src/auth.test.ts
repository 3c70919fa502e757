import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AdminAuth, basicCredentials, cookieValue, loadAdminCredential } from './auth.ts';

describe('bootstrap admin credential', () => {
  it('is absent unless a variable names one, and the reason says what to set', async () => {
    const none = await loadAdminCredential({});
    expect(none).toMatchObject({ configured: false });
    expect(!none.configured && none.reason).toMatch(/TRANSIT_ADMIN_PASSWORD or TRANSIT_ADMIN_PASSWORD_FILE/);
    expect(await loadAdminCredential({ TRANSIT_ADMIN_PASSWORD: 'short' })).toMatchObject({ configured: false });
  });

  it('reads the password from the environment or a file (trailing newline dropped), keeping only a hash', async () => {
    const fromEnv = await loadAdminCredential({ TRANSIT_ADMIN_PASSWORD: 'correct horse battery' });
    expect(fromEnv).toMatchObject({ configured: true, from: 'TRANSIT_ADMIN_PASSWORD' });
    expect(fromEnv.configured && fromEnv.hash).toMatch(/^\$scrypt\$/);
    const dir = await mkdtemp(join(tmpdir(), 'admin-pw-'));
    try {
      await writeFile(join(dir, 'pw'), 'from-a-secret-file\n');
      const fromFile = await loadAdminCredential({ TRANSIT_ADMIN_PASSWORD_FILE: join(dir, 'pw'), TRANSIT_ADMIN_PASSWORD: 'ignored-when-a-file-is-named' });
      expect(fromFile.configured).toBe(true);
      const auth = new AdminAuth(fromFile.configured ? fromFile.hash : '');
      expect(await auth.verify('c', 'admin', 'from-a-secret-file')).toMatchObject({ ok: true });
      expect(await loadAdminCredential({ TRANSIT_ADMIN_PASSWORD_FILE: join(dir, 'missing') })).toMatchObject({ configured: false });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('AdminAuth', () => {
  const make = async (now: { t: number }) => {
    const c = await loadAdminCredential({ TRANSIT_ADMIN_PASSWORD: 'the-admin-password' });
    return new AdminAuth(c.configured ? c.hash : '', { now: () => now.t, maxFailures: 3, failureWindowMs: 60_000, sessionTtlMs: 1000 });
  };

  it('accepts only user admin with the password', async () => {
    const auth = await make({ t: 0 });
    expect(await auth.verify('a', 'admin', 'the-admin-password')).toMatchObject({ ok: true, user: 'admin' });
    expect(await auth.verify('a', 'Admin', 'the-admin-password')).toMatchObject({ ok: false, status: 401 });
    expect(await auth.verify('a', 'admin', 'the-admin-passwor')).toMatchObject({ ok: false, status: 401 });
  });

  it('refuses a client after repeated failures until its window ends, other clients unaffected', async () => {
    const now = { t: 0 };
    const auth = await make(now);
    for (let i = 0; i < 3; i++) expect(await auth.verify('a', 'admin', 'wrong')).toMatchObject({ status: 401 });
    expect(await auth.verify('a', 'admin', 'the-admin-password')).toMatchObject({ ok: false, status: 429, retryAfterSeconds: 60 });
    expect(await auth.verify('b', 'admin', 'the-admin-password')).toMatchObject({ ok: true });
    now.t = 60_001;
    expect(await auth.verify('a', 'admin', 'the-admin-password')).toMatchObject({ ok: true });
  });

  it('gives random session tokens that expire and can be closed', async () => {
    const now = { t: 0 };
    const auth = await make(now);
    const one = auth.openSession('admin');
    const two = auth.openSession('admin');
    expect(one.token).not.toBe(two.token);
    expect(one.token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(auth.session(one.token)).toBe('admin');
    expect(auth.session('forged')).toBeUndefined();
    auth.closeSession(two.token);
    expect(auth.session(two.token)).toBeUndefined();
    now.t = 1000;
    expect(auth.session(one.token)).toBeUndefined();
  });

  it('parses cookies and Basic credentials', () => {
    expect(cookieValue('a=1; transit_admin=tok; b=2', 'transit_admin')).toBe('tok');
    expect(cookieValue(undefined, 'transit_admin')).toBeUndefined();
    expect(basicCredentials(`Basic ${Buffer.from('admin:p:w').toString('base64')}`)).toEqual({ user: 'admin', password: 'p:w' });
    expect(basicCredentials('Bearer x')).toBeUndefined();
  });
});
