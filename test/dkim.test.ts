/**
 * DKIM signing end to end: keys made and rotated with transitctl (its own verbs and Exchange
 * Online's cmdlets through ems), mail relayed over real SMTP and signed by the outbound
 * proxy, and each signature checked by mailauth's verifier against the TXT records
 * transitctl prints, before and after a rotation. The private keys are sealed with the
 * cluster secret: no file the cluster writes holds one in clear.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { dkimVerify } from 'mailauth/lib/dkim/verify.js';
import { describe, expect, it } from 'vitest';
import { waitFor, type ReceivedMessage } from '@transit/testkit';
import { relayOne, runTransitctl } from './harness.ts';
import { useHarness } from './use-harness.ts';

const SECRET = 'dkim-test-cluster-secret';
const h = useHarness({ env: { TRANSIT_CLUSTER_SECRET: SECRET } });
const ctl = (args: string[]) => runTransitctl(h.cluster, args, undefined, { TRANSIT_CLUSTER_SECRET: SECRET });

/** The TXT records `transitctl dkim get --records` prints, as a resolver for mailauth. */
async function publishedRecords(domain: string): Promise<(name: string, type: string) => Promise<string[][]>> {
  const r = await ctl(['dkim', 'get', '--domain', domain, '--records']);
  expect(r.code, r.stderr).toBe(0);
  const records = new Map<string, string>();
  for (const line of r.stdout.trim().split('\n')) {
    const m = /^(\S+)\. IN TXT \( (.*) \)$/.exec(line);
    expect(m, line).not.toBeNull();
    records.set(m![1]!.toLowerCase(), [...m![2]!.matchAll(/"([^"]*)"/g)].map((x) => x[1]).join(''));
  }
  return (name, type) => {
    const value = type === 'TXT' ? records.get(name.toLowerCase()) : undefined;
    return value ? Promise.resolve([[value]]) : Promise.reject(Object.assign(new Error(`no ${type} record for ${name}`), { code: 'ENOTFOUND' }));
  };
}

const arrival = (marker: string) =>
  waitFor(() => h.sink.messages.find((m) => m.data.toString('latin1').includes(marker)), { timeoutMs: 30_000, what: `the message ${marker} at the sink` });

async function verify(message: ReceivedMessage, resolver: Awaited<ReturnType<typeof publishedRecords>>) {
  const result = await dkimVerify(message.data, { resolver });
  return result.results.map((r) => ({ result: r.status.result, domain: r.signingDomain, selector: r.selector }));
}

const selectorOf = (m: ReceivedMessage) => /^DKIM-Signature:[^]*?\bs=([^;\s]+)/m.exec(m.data.toString('latin1'))?.[1];

describe('DKIM signing', () => {
  const marker = `dkim-${Date.now()}`;

  it('signs mail from a domain once it has a key, and mailauth verifies the signature against the published record', async () => {
    const made = await ctl(['dkim', 'new', '--domain', 'contoso.test']);
    expect(made.code, made.stderr).toBe(0);
    expect(made.stdout).toMatch(/contoso\.test\s+true\s+selector1\s+rsa-sha256\s+2048/);
    expect(made.stderr).toContain('selector1._domainkey.contoso.test. IN TXT');
    expect(made.stderr).toContain('selector2._domainkey.contoso.test. IN TXT');
    await relayOne(h, 'signed@example.net', `${marker}-1`);
    const msg = await arrival(`${marker}-1`);
    expect(msg.data.toString('latin1')).toMatch(/^DKIM-Signature: /);
    expect(await verify(msg, await publishedRecords('contoso.test'))).toEqual([{ result: 'pass', domain: 'contoso.test', selector: 'selector1' }]);
  });

  it('signs with the other selector after Rotate-DkimSigningConfig, still verifiable', async () => {
    const rotated = await ctl(['ems', 'Rotate-DkimSigningConfig -Identity contoso.test']);
    expect(rotated.code, rotated.stderr).toBe(0);
    expect(rotated.stdout).toMatch(/contoso\.test\s+True\s+Valid\s+selector2/);
    expect(rotated.stderr).toMatch(/signing with selector2 now; selector1 has a new key/);
    // The outbound proxies follow the change through a KV watch; the first message signed after it uses selector2.
    let signed: ReceivedMessage | undefined;
    for (let n = 2; n < 12 && !signed; n++) {
      await relayOne(h, 'signed@example.net', `${marker}-${n}`);
      const m = await arrival(`${marker}-${n}`);
      if (selectorOf(m) === 'selector2') signed = m;
    }
    expect(signed).toBeDefined();
    expect(await verify(signed!, await publishedRecords('contoso.test'))).toEqual([{ result: 'pass', domain: 'contoso.test', selector: 'selector2' }]);
    const listed = await ctl(['ems', 'Get-DkimSigningConfig contoso.test | Format-List']);
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).toMatch(/Selector1Record\s+: selector1\._domainkey\.contoso\.test TXT v=DKIM1; k=rsa; p=/);
    expect(listed.stdout).toMatch(/LastRotatedAt\s+: 20\d\d-/);
  });

  it('stops signing when disabled, and refuses bad lines with the field named', async () => {
    expect((await ctl(['ems', 'Set-DkimSigningConfig contoso.test -Enabled $false'])).code).toBe(0);
    let unsigned: ReceivedMessage | undefined;
    for (let n = 20; n < 30 && !unsigned; n++) {
      await relayOne(h, 'signed@example.net', `${marker}-${n}`);
      const m = await arrival(`${marker}-${n}`);
      if (!m.data.toString('latin1').startsWith('DKIM-Signature:')) unsigned = m;
    }
    expect(unsigned).toBeDefined();
    const twice = await ctl(['dkim', 'new', '--domain', 'contoso.test']);
    expect(twice.code).not.toBe(0);
    expect(twice.stderr).toContain('contoso.test already has a DKIM signing configuration');
    const noEnabled = await ctl(['ems', 'New-DkimSigningConfig -DomainName fabrikam.test']);
    expect(noEnabled.code).not.toBe(0);
    expect(noEnabled.stderr).toContain('-Enabled is required');
    const noSecret = await runTransitctl(h.cluster, ['dkim', 'new', '--domain', 'fabrikam.test'], undefined, { TRANSIT_CLUSTER_SECRET: '' });
    expect(noSecret.code).not.toBe(0);
    expect(noSecret.stderr).toContain('TRANSIT_CLUSTER_SECRET is not set');
  });

  it('keeps every private key sealed: no file the cluster wrote holds one in clear', async () => {
    const entries = await readdir(h.dir, { withFileTypes: true, recursive: true });
    // The listeners' own TLS key (var/tls) is the one private key meant to be a file.
    const files = entries
      .filter((e) => e.isFile())
      .map((e) => join(e.parentPath, e.name))
      .filter((f) => !f.includes(`${join(h.dir, 'var', 'tls')}/`));
    expect(files.some((f) => f.includes('jetstream'))).toBe(true);
    for (const f of files) expect((await readFile(f)).includes('PRIVATE KEY'), f).toBe(false);
  });
});
