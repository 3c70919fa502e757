import { Readable } from 'node:stream';
import { dkimVerify } from 'mailauth/lib/dkim/verify.js';
import { describe, expect, it } from 'vitest';
import { DkimError, activeKey, newSigningConfig, privateKeyOf, rotate, txtRecord, unseal, zoneLine, type DkimSigningConfig } from './keys.ts';
import { DkimSigner, configsOf, fromDomain, signingCandidates, withSignature } from './sign.ts';

const SECRET = 'the cluster secret';
const now = new Date('2026-12-07T10:00:00Z');
const message = Buffer.from(
  'From: "Bob Example" <bob@contoso.test>\r\nTo: alice@example.net\r\nSubject: hello\r\nDate: Mon, 07 Dec 2026 10:00:00 +0000\r\n' +
    'Message-ID: <1@contoso.test>\r\n\r\nThe body.\r\n.. a stuffed-looking line\r\n',
);

/** A DNS that knows the TXT records of `configs`' keys, and nothing else. */
const resolverFor =
  (...configs: DkimSigningConfig[]) =>
  (name: string, type: string) => {
    for (const c of configs)
      for (const k of c.Keys) {
        const r = txtRecord(c.Domain, k);
        if (type === 'TXT' && name.toLowerCase() === r.name) return Promise.resolve([[r.value]]);
      }
    return Promise.reject(Object.assign(new Error(`no ${type} for ${name}`), { code: 'ENOTFOUND' }));
  };

async function signWith(config: DkimSigningConfig | undefined, raw = message) {
  const signer = new DkimSigner(config ? configsOf(config) : configsOf(), SECRET);
  const signed = await signer.signature(() => Promise.resolve(Readable.from([raw])));
  if (!signed) return undefined;
  const chunks: Buffer[] = [];
  for await (const c of withSignature(signed, Readable.from([raw]))) chunks.push(c as Buffer);
  return { ...signed, bytes: Buffer.concat(chunks) };
}

describe('DKIM keys', () => {
  it('makes two selectors, seals the private keys, and publishes RSA keys as SubjectPublicKeyInfo', () => {
    const c = newSigningConfig('Contoso.TEST', SECRET, now);
    expect(c.Domain).toBe('contoso.test');
    expect(c.Keys.map((k) => k.Selector)).toEqual(['selector1', 'selector2']);
    expect(c.ActiveSelector).toBe('selector1');
    for (const k of c.Keys) {
      expect(k.SealedPrivateKey).not.toContain('PRIVATE KEY');
      expect(privateKeyOf(k, SECRET)).toContain('-----BEGIN PRIVATE KEY-----');
    }
    expect(txtRecord(c.Domain, c.Keys[0]).name).toBe('selector1._domainkey.contoso.test');
    expect(txtRecord(c.Domain, c.Keys[0]).value).toMatch(/^v=DKIM1; k=rsa; p=MIIB/);
    // 2048-bit keys do not fit one 255-byte TXT string.
    expect(zoneLine(c.Domain, c.Keys[0])).toMatch(/^selector1\._domainkey\.contoso\.test\. IN TXT \( "v=DKIM1; k=rsa; p=[^"]{237}" "[^"]+" \)$/);
  });

  it('publishes Ed25519 keys as the raw 32 bytes (RFC 8463)', () => {
    const c = newSigningConfig('contoso.test', SECRET, now, { algorithm: 'ed25519-sha256' });
    expect(Buffer.from(c.Keys[0].PublicKey, 'base64')).toHaveLength(32);
    expect(txtRecord(c.Domain, c.Keys[0]).value).toMatch(/^v=DKIM1; k=ed25519; p=/);
  });

  it('refuses a wrong secret, no secret, bad names and sizes, naming what is wrong', () => {
    const c = newSigningConfig('contoso.test', SECRET, now, { algorithm: 'ed25519-sha256' });
    expect(() => unseal('another secret', c.Keys[0].SealedPrivateKey)).toThrow(/TRANSIT_CLUSTER_SECRET differs/);
    expect(() => newSigningConfig('contoso.test', '', now, { algorithm: 'ed25519-sha256' })).toThrow(/TRANSIT_CLUSTER_SECRET is not set/);
    expect(() => newSigningConfig('not a domain', SECRET, now)).toThrow(DkimError);
    expect(() => newSigningConfig('contoso.test', SECRET, now, { keySize: 512 })).toThrow(/KeySize: 512/);
    expect(() => newSigningConfig('contoso.test', SECRET, now, { selectors: ['s1', 'S1'], algorithm: 'ed25519-sha256' })).toThrow(/differ/);
  });

  it('rotates to the standby key, which was published before, and gives the retired selector a fresh key', () => {
    const c = newSigningConfig('contoso.test', SECRET, now, { algorithm: 'ed25519-sha256' });
    const later = new Date('2026-12-10T10:00:00Z');
    const r = rotate(c, SECRET, later);
    expect(r.ActiveSelector).toBe('selector2');
    expect(activeKey(r).PublicKey).toBe(c.Keys[1].PublicKey);
    expect(r.Keys[0].PublicKey).not.toBe(c.Keys[0].PublicKey);
    expect(r.Keys[0].CreatedAt).toBe(later.toISOString());
    expect(r.LastRotatedAt).toBe(later.toISOString());
    expect(rotate(r, SECRET, later).ActiveSelector).toBe('selector1');
  });
});

describe('DKIM signing', () => {
  it('finds the From domain through folding, display names and comments', () => {
    expect(fromDomain('Subject: x\r\nFrom: "A, B" <a@Contoso.TEST>\r\n')).toBe('contoso.test');
    expect(fromDomain('From:\r\n a@sub.contoso.test (Alice)\r\nTo: b@x')).toBe('sub.contoso.test');
    expect(fromDomain('To: b@x\r\n')).toBeUndefined();
    expect(signingCandidates('a.sub.contoso.test')).toEqual(['a.sub.contoso.test', 'sub.contoso.test', 'contoso.test']);
  });

  it.each(['rsa-sha256', 'ed25519-sha256'] as const)('signs with %s so that mailauth verifies it, before and after a rotation', async (algorithm) => {
    const c = newSigningConfig('contoso.test', SECRET, now, { algorithm });
    const first = await signWith(c);
    expect(first?.selector).toBe('selector1');
    expect(first!.bytes.subarray(0, 16).toString()).toBe('DKIM-Signature: ');
    expect(first!.bytes.subarray(first!.bytes.length - message.length).equals(message)).toBe(true);
    const v1 = await dkimVerify(first!.bytes, { resolver: resolverFor(c) });
    expect(v1.results.map((r) => [r.status.result, r.signingDomain, r.selector])).toEqual([['pass', 'contoso.test', 'selector1']]);
    const r = rotate(c, SECRET, now);
    const second = await signWith(r);
    const v2 = await dkimVerify(second!.bytes, { resolver: resolverFor(r) });
    expect(v2.results.map((x) => [x.status.result, x.selector])).toEqual([['pass', 'selector2']]);
    // A changed body no longer verifies: the check can fail.
    const tampered = Buffer.from(second!.bytes.toString('latin1').replace('The body.', 'The b0dy.'), 'latin1');
    expect((await dkimVerify(tampered, { resolver: resolverFor(r) })).results[0]!.status.result).not.toBe('pass');
  });

  it('leaves mail unsigned from a domain without an enabled configuration', async () => {
    const other = newSigningConfig('fabrikam.test', SECRET, now, { algorithm: 'ed25519-sha256' });
    expect(await signWith(other)).toBeUndefined();
    const disabled = { ...newSigningConfig('contoso.test', SECRET, now, { algorithm: 'ed25519-sha256' }), Enabled: false };
    expect(await signWith(disabled)).toBeUndefined();
  });

  it('signs mail from a subdomain with the parent domain', async () => {
    const c = newSigningConfig('contoso.test', SECRET, now, { algorithm: 'ed25519-sha256' });
    const raw = Buffer.from(message.toString().replace('bob@contoso.test', 'bob@mail.contoso.test'));
    expect((await signWith(c, raw))?.domain).toBe('contoso.test');
  });
});
