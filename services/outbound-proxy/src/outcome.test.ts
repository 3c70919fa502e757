import { describe, expect, it } from 'vitest';
import { classifyFailure, classifyReport, nextAttempt, sendGroups } from './outcome.ts';
import { checkServerIdentity, type PeerCertificate } from 'node:tls';
import { lookUpDestinations, parseSmartHost, tlsOptionsFor, type SendPolicy } from './sender.ts';

describe('outbound outcomes', () => {
  it('classifies each recipient from the remote answers', () => {
    const r = classifyReport(['a@x', 'b@x', 'c@x'], {
      accepted: ['a@x'],
      rejected: [
        { address: 'B@x', code: 550, response: '550 no' },
        { address: 'c@x', code: 451, response: '451 later' },
      ],
    });
    expect(r.map((x) => x.status)).toEqual(['delivered', 'permanent', 'transient']);
  });
  it.each([
    [undefined, 'transient'], // connection refused, timeout
    [421, 'transient'],
    [554, 'permanent'],
  ])('a whole-transaction failure with code %s is %s', (code, status) => {
    expect(classifyFailure(['a@x'], code, 'x')[0]!.status).toBe(status);
  });
  it('follows the schedule, holds on its last step, tries once more at the expiry, and expires at MessageExpirationTimeout', () => {
    expect(nextAttempt([60, 300], 0, 0, 1000, 3600)).toEqual({ kind: 'retry', notBefore: 61_000 });
    expect(nextAttempt([60, 300], 5, 0, 1000, 3600)).toEqual({ kind: 'retry', notBefore: 301_000 });
    expect(nextAttempt([60, 300], 5, 0, 3_400_000, 3600)).toEqual({ kind: 'retry', notBefore: 3_600_000 });
    expect(nextAttempt([60, 300], 5, 0, 3_599_999, 3600)).toEqual({ kind: 'retry', notBefore: 3_600_000 });
    expect(nextAttempt([60, 300], 5, 0, 3_600_000, 3600)).toEqual({ kind: 'expire' });
    expect(nextAttempt([60, 300], 5, 0, 9_000_000, 3600)).toEqual({ kind: 'expire' });
  });
  it.each([
    ['mx.example.net', { host: 'mx.example.net', port: 25 }],
    ['127.0.0.1:2525', { host: '127.0.0.1', port: 2525 }],
    ['[::1]:2526', { host: '::1', port: 2526 }],
  ])('parses smart host %s', (spec, dest) => {
    expect(parseSmartHost(spec, 25)).toEqual(dest);
  });
  it('turns a DNS server failure into a transient failure of the attempt, and keeps what a lookup found', async () => {
    const hop = { type: 'smtp' as const, connector: 'Internet', domain: 'example.net', port: 25 };
    const servfail = () => Promise.reject(Object.assign(new Error('queryMx ESERVFAIL example.net'), { code: 'ESERVFAIL' }));
    const found = await lookUpDestinations(hop, servfail);
    expect(found).toEqual({ failure: '451 4.4.0 DNS query failed for example.net: ESERVFAIL' });
    if ('failure' in found) expect(classifyFailure(['a@example.net'], undefined, found.failure)[0]!.status).toBe('transient');
    const mx = await lookUpDestinations(hop, () => Promise.resolve([{ host: 'mx.example.net', port: 25 }]));
    expect(mx).toEqual({ destinations: [{ host: 'mx.example.net', port: 25 }] });
  });
});

describe('send connector TLS options', () => {
  const dest = { host: 'mx.fabrikam.test', port: 25 };
  const policy = (p: Partial<SendPolicy>): SendPolicy => ({ Name: 'S', RequireTLS: false, ...p });
  const cert = (name: string) => ({ subject: { CN: name }, subjectaltname: `DNS:${name}` }) as unknown as PeerCertificate;

  it('is opportunistic without RequireTLS, and takes any certificate with EncryptionOnly', () => {
    expect(tlsOptionsFor(undefined, dest)).toEqual({ requireTLS: false, tls: { rejectUnauthorized: false } });
    expect(tlsOptionsFor(policy({}), dest)).toEqual({ requireTLS: false, tls: { rejectUnauthorized: false } });
    expect(tlsOptionsFor(policy({ RequireTLS: true }), dest)).toEqual({ requireTLS: true, tls: { rejectUnauthorized: false } });
    expect(tlsOptionsFor(policy({ RequireTLS: true, TlsAuthLevel: 'EncryptionOnly' }), dest)).toEqual({ requireTLS: true, tls: { rejectUnauthorized: false } });
  });

  it('checks the chain but not the name with CertificateValidation', () => {
    const o = tlsOptionsFor(policy({ RequireTLS: true, TlsAuthLevel: 'CertificateValidation' }), dest);
    expect(o.requireTLS).toBe(true);
    expect(o.tls.rejectUnauthorized).toBe(true);
    expect(o.tls.checkServerIdentity!('mx.fabrikam.test', cert('elsewhere.test'))).toBeUndefined();
  });

  it('checks the name against TlsDomain, else the host, with DomainValidation', () => {
    const withDomain = tlsOptionsFor(policy({ RequireTLS: true, TlsAuthLevel: 'DomainValidation', TlsDomain: 'relay.fabrikam.test' }), dest);
    expect(withDomain.tls).toMatchObject({ rejectUnauthorized: true, servername: 'relay.fabrikam.test' });
    expect(withDomain.tls.checkServerIdentity!('mx.fabrikam.test', cert('relay.fabrikam.test'))).toBeUndefined();
    expect(withDomain.tls.checkServerIdentity!('mx.fabrikam.test', cert('mx.fabrikam.test'))).toBeInstanceOf(Error);
    const byHost = tlsOptionsFor(policy({ RequireTLS: true, TlsAuthLevel: 'DomainValidation' }), dest);
    expect(byHost.tls.checkServerIdentity!('mx.fabrikam.test', cert('mx.fabrikam.test'))).toEqual(
      checkServerIdentity('mx.fabrikam.test', cert('mx.fabrikam.test')),
    );
    expect(byHost.tls.checkServerIdentity!('mx.fabrikam.test', cert('other.test'))).toBeInstanceOf(Error);
    // An IP address is no SNI name.
    expect(tlsOptionsFor(policy({ RequireTLS: true, TlsAuthLevel: 'DomainValidation' }), { host: '192.0.2.1', port: 25 }).tls.servername).toBeUndefined();
  });
});

describe('DSN parameters per transaction', () => {
  it('sends recipients without parameters together, with none when the message has none', () => {
    expect(sendGroups([{ address: 'a@x' }, { address: 'b@x' }], undefined)).toEqual([{ recipients: ['a@x', 'b@x'] }]);
  });
  it('gives every transaction the message RET and ENVID, and splits recipients by NOTIFY and ORCPT in the order they came', () => {
    const groups = sendGroups(
      [
        { address: 'a@x', notify: ['SUCCESS', 'FAILURE'] },
        { address: 'b@x' },
        { address: 'c@x', notify: ['SUCCESS', 'FAILURE'] },
        { address: 'd@x', notify: ['SUCCESS', 'FAILURE'], original: 'rfc822;D@x' },
        { address: 'e@x', notify: [] },
      ],
      { ret: 'HDRS', envid: 'env-1' },
    );
    expect(groups).toEqual([
      { recipients: ['a@x', 'c@x'], dsn: { ret: 'HDRS', envid: 'env-1', notify: 'SUCCESS,FAILURE' } },
      { recipients: ['b@x', 'e@x'], dsn: { ret: 'HDRS', envid: 'env-1' } },
      { recipients: ['d@x'], dsn: { ret: 'HDRS', envid: 'env-1', notify: 'SUCCESS,FAILURE', orcpt: 'rfc822;D@x' } },
    ]);
  });
});
