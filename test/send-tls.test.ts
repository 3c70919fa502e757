/**
 * A send connector's TLS policy and smart-host logon over real SMTP and TLS on loopback:
 * RequireTLS with each TlsAuthLevel against next hops with a trusted certificate (through
 * NODE_EXTRA_CA_CERTS), an untrusted self-signed one and none at all; the connector's Fqdn in
 * EHLO; BasicAuthRequireTLS with the password read from a file, and absent from every log and
 * from `transitctl export`. An attempt the policy refuses, or a logon the smart host refuses,
 * is deferred with the failure as its reason (message tracking's DEFER row) and nothing
 * reaches that next hop. Also the connector's hold on its connections:
 * SmtpMaxMessagesPerConnection and ConnectionInactivityTimeOut.
 */
import { randomBytes } from 'node:crypto';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generate } from 'selfsigned';
import { afterAll, describe, expect, it } from 'vitest';
import { startSmtpSink, waitFor, type SmtpSink } from '@transit/testkit';
import { messageEvents, relayOne, runTransitctl } from './harness.ts';
import { useHarness } from './use-harness.ts';

/** A self-signed certificate for `name` (and 127.0.0.1). */
async function certificate(name: string): Promise<{ key: string; cert: string }> {
  const pems = await generate([{ name: 'commonName', value: name }], {
    keySize: 2048,
    algorithm: 'sha256',
    days: 2,
    extensions: [
      { name: 'basicConstraints', cA: true },
      {
        name: 'subjectAltName',
        altNames: [
          { type: 2, value: name },
          { type: 7, ip: '127.0.0.1' },
        ],
      },
    ],
  } as Parameters<typeof generate>[1]);
  return { key: pems.private, cert: pems.cert };
}

let trusted: SmtpSink | undefined;
let untrusted: SmtpSink | undefined;
let authSink: SmtpSink | undefined;
/** A plain next hop for the connection settings, used by no other connector. */
let pooled: SmtpSink | undefined;
/** The smart host's password: it must appear in no log and in no export. */
const PASSWORD = `pw-${randomBytes(12).toString('hex')}`;
const h = useHarness(async () => {
  const trustedCert = await certificate('sink.transit.test');
  trusted = await startSmtpSink({ tls: trustedCert });
  authSink = await startSmtpSink({ tls: trustedCert, auth: { username: 'relay-app', password: PASSWORD } });
  const passwordFile = join(tmpdir(), `transit-send-auth-${process.pid}`);
  const wrongFile = `${passwordFile}-wrong`;
  await writeFile(passwordFile, `${PASSWORD}\n`, { mode: 0o600 });
  await writeFile(wrongFile, 'not-the-password\n', { mode: 0o600 });
  untrusted = await startSmtpSink({ tls: await certificate('untrusted.transit.test') });
  pooled = await startSmtpSink();
  // The outbound proxy trusts the first sink's certificate as a root, as an operator adds a private CA.
  const caFile = join(tmpdir(), `transit-send-tls-ca-${process.pid}.pem`);
  await writeFile(caFile, trustedCert.cert);
  const at = (sink: SmtpSink) => [`${sink.host}:${sink.port}`];
  const t = trusted;
  const u = untrusted;
  const a = authSink;
  const p = pooled;
  return {
    env: { NODE_EXTRA_CA_CERTS: caFile },
    prepare: (config) => {
      const plain = (config.SendConnectors as Array<{ SmartHosts: string[] }>)[0]!.SmartHosts;
      (config.SendConnectors as unknown[]).push(
        {
          Name: 'Verified',
          AddressSpaces: ['verified.test'],
          DNSRoutingEnabled: false,
          SmartHosts: at(t),
          Fqdn: 'out.contoso.test',
          RequireTLS: true,
          TlsAuthLevel: 'CertificateValidation',
        },
        {
          Name: 'Untrusted',
          AddressSpaces: ['untrusted.test'],
          DNSRoutingEnabled: false,
          SmartHosts: at(u),
          RequireTLS: true,
          TlsAuthLevel: 'CertificateValidation',
        },
        {
          Name: 'Name ok',
          AddressSpaces: ['name-ok.test'],
          DNSRoutingEnabled: false,
          SmartHosts: at(t),
          RequireTLS: true,
          TlsAuthLevel: 'DomainValidation',
          TlsDomain: 'sink.transit.test',
        },
        {
          Name: 'Name wrong',
          AddressSpaces: ['name-wrong.test'],
          DNSRoutingEnabled: false,
          SmartHosts: at(t),
          RequireTLS: true,
          TlsAuthLevel: 'DomainValidation',
          TlsDomain: 'other.transit.test',
        },
        { Name: 'No TLS', AddressSpaces: ['no-tls.test'], DNSRoutingEnabled: false, SmartHosts: plain, RequireTLS: true },
        { Name: 'Opportunistic', AddressSpaces: ['opportunistic.test'], DNSRoutingEnabled: false, SmartHosts: at(u) },
        {
          Name: 'Smart host',
          AddressSpaces: ['auth.test'],
          DNSRoutingEnabled: false,
          SmartHosts: at(a),
          SmartHostAuthMechanism: 'BasicAuthRequireTLS',
          AuthenticationCredential: { UserName: 'relay-app', PasswordFile: passwordFile },
          ProtocolLoggingLevel: 'Verbose',
        },
        {
          Name: 'Wrong password',
          AddressSpaces: ['auth-wrong.test'],
          DNSRoutingEnabled: false,
          SmartHosts: at(a),
          SmartHostAuthMechanism: 'BasicAuth',
          AuthenticationCredential: { UserName: 'relay-app', PasswordFile: wrongFile },
        },
        {
          Name: 'Short connections',
          AddressSpaces: ['pooled.test'],
          DNSRoutingEnabled: false,
          SmartHosts: at(p),
          SmtpMaxMessagesPerConnection: 2,
          ConnectionInactivityTimeOut: '00:00:02',
        },
      );
    },
  };
});
afterAll(async () => {
  await Promise.all([trusted?.close(), untrusted?.close(), authSink?.close(), pooled?.close()]);
});

const relay = (rcpt: string, marker: string) => relayOne(h, rcpt, marker);

const arrived = (sink: SmtpSink, marker: string) => sink.messages.filter((m) => m.data.toString('latin1').includes(marker));

/** The message with `marker` once `sink` has it. */
const arrival = (sink: SmtpSink, marker: string) =>
  waitFor(() => Promise.resolve(arrived(sink, marker)[0]), { timeoutMs: 30_000, what: `the message ${marker} at the sink on port ${sink.port}` });

/** The first Deferred event for `rcpt`'s recipient. */
async function deferral(rcpt: string): Promise<{ reason: string; hop: string }> {
  return waitFor(
    async () =>
      (await messageEvents(h)).find((e) => e.type === 'Deferred' && (e.recipients as string[]).includes(rcpt)) as { reason: string; hop: string } | undefined,
    { timeoutMs: 30_000, what: `a Deferred event for ${rcpt}` },
  );
}

describe('send connector TLS', () => {
  const marker = `tls-${Date.now()}`;
  it('delivers over verified TLS with CertificateValidation, giving the connector Fqdn in EHLO', async () => {
    await relay('a@verified.test', `${marker}-verified`);
    const msg = await arrival(trusted!, `${marker}-verified`);
    expect(msg.secure).toBe(true);
    expect(msg.heloName).toBe('out.contoso.test');
  });

  it('defers, without sending, when CertificateValidation meets a self-signed certificate', async () => {
    await relay('a@untrusted.test', `${marker}-untrusted`);
    const d = await deferral('a@untrusted.test');
    expect(d.reason).toMatch(/self[- ]signed certificate/);
    expect(arrived(untrusted!, `${marker}-untrusted`)).toHaveLength(0);
  });

  it('delivers with DomainValidation when the certificate carries TlsDomain, and defers when it does not', async () => {
    await relay('a@name-ok.test', `${marker}-name-ok`);
    await relay('a@name-wrong.test', `${marker}-name-wrong`);
    const d = await deferral('a@name-wrong.test');
    expect(d.reason).toMatch(/other\.transit\.test/);
    expect(d.reason).toMatch(/does not match|altnames/i);
    expect((await arrival(trusted!, `${marker}-name-ok`)).secure).toBe(true);
    expect(arrived(trusted!, `${marker}-name-wrong`)).toHaveLength(0);
  });

  it('defers when RequireTLS meets a next hop without STARTTLS', async () => {
    await relay('a@no-tls.test', `${marker}-no-tls`);
    const d = await deferral('a@no-tls.test');
    expect(d.reason).toMatch(/STARTTLS/i);
    expect(arrived(h.sink, `${marker}-no-tls`)).toHaveLength(0);
  });

  it('encrypts opportunistically, whatever the certificate, without RequireTLS', async () => {
    await relay('a@opportunistic.test', `${marker}-opportunistic`);
    expect((await arrival(untrusted!, `${marker}-opportunistic`)).secure).toBe(true);
  });

  it('logs on to a smart host with BasicAuthRequireTLS, over TLS, and keeps the password out of every log and the export', async () => {
    await relay('a@auth.test', `${marker}-auth`);
    const msg = await arrival(authSink!, `${marker}-auth`);
    expect(msg.user).toBe('relay-app');
    expect(msg.secure).toBe(true);
    const exported = await runTransitctl(h.cluster, ['export']);
    expect(exported.code).toBe(0);
    expect(exported.stdout).toContain('PasswordFile:');
    expect(exported.stdout).not.toContain(PASSWORD);
    // Every file the cluster wrote: role logs, the Send protocol log (Verbose on this connector), NATS and Redis data.
    const files = await allFiles(h.dir);
    expect(files.some((f) => f.includes('SmtpSend'))).toBe(true);
    for (const f of files) expect((await readFile(f)).includes(PASSWORD), f).toBe(false);
  });

  it('defers when the smart host refuses the logon', async () => {
    await relay('a@auth-wrong.test', `${marker}-auth-wrong`);
    const d = await deferral('a@auth-wrong.test');
    expect(d.reason).toMatch(/535/);
    expect(arrived(authSink!, `${marker}-auth-wrong`)).toHaveLength(0);
  });
});

describe('send connector connections', () => {
  it('sends SmtpMaxMessagesPerConnection messages over a connection, and closes one idle for ConnectionInactivityTimeOut', async () => {
    const marker = `pool-${Date.now()}`;
    const remotes: string[] = [];
    // One at a time, so that each can take the connection the one before left open.
    for (const n of [1, 2, 3]) {
      await relay(`a${n}@pooled.test`, `${marker}-${n}`);
      remotes.push((await arrival(pooled!, `${marker}-${n}`)).remote);
    }
    expect(remotes[1]).toBe(remotes[0]);
    expect(remotes[2]).not.toBe(remotes[0]);
    // Unset, the pool would keep the connection for 10 minutes; this connector closes it after 2 s of silence.
    await waitFor(() => (pooled!.openConnections() === 0 ? true : undefined), { timeoutMs: 15_000, what: 'the idle connection to be closed' });
  });
});

async function allFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
}
