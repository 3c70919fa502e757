import { parseOrganizationConfig } from '@transit/config';
import { describe, expect, it } from 'vitest';
import { decideProxyPeer, loadBalancersOn, proxiedClient, type ProxyPeerDecision } from './index.ts';

const config = parseOrganizationConfig({
  Organization: { Name: 'Contoso' },
  AcceptedDomains: [{ DomainName: 'contoso.test', Default: true }],
  ReceiveConnectors: [
    { Name: 'Default Frontend', TransportRole: 'FrontendTransport', Bindings: ['0.0.0.0:25', '[::]:25'], PermissionGroups: ['AnonymousUsers'] },
    { Name: 'Client Frontend', TransportRole: 'FrontendTransport', Bindings: ['0.0.0.0:587', '[::]:587'], PermissionGroups: ['ExchangeUsers'] },
    { Name: 'Internal', TransportRole: 'FrontendTransport', Bindings: ['10.0.0.5:2526'], PermissionGroups: ['AnonymousUsers'] },
  ],
  LoadBalancers: [
    { Name: 'edge', Bindings: ['0.0.0.0:25', '[::]:25'], RemoteIPRanges: ['10.0.0.0/8', '2001:db8:1::/48'] },
    { Name: 'edge-b', Bindings: ['0.0.0.0:25'], RemoteIPRanges: ['10.9.9.9'] },
    { Name: 'submission', Bindings: ['0.0.0.0:587'], RemoteIPRanges: ['192.168.50.10-192.168.50.11'] },
  ],
});
const lbs = config.LoadBalancers;

describe('which load balancers serve a listener', () => {
  it.each([
    ['port 25 (both families)', ['0.0.0.0:25', '[::]:25'], ['edge', 'edge-b']],
    ['port 25 over IPv6 only', ['[::]:25'], ['edge']],
    ['port 25 written differently', ['[0:0::0]:25'], ['edge']],
    ['port 587', ['0.0.0.0:587', '[::]:587'], ['submission']],
    ['a listener none names', ['10.0.0.5:2526'], []],
    ['the same port on another address', ['10.0.0.5:25'], []],
  ])('%s', (_name, bindings, names) => {
    expect(loadBalancersOn(lbs, bindings).map((lb) => lb.Name)).toEqual(names);
  });
});

describe('who may (and must) send a PROXY header', () => {
  const on25 = loadBalancersOn(lbs, ['0.0.0.0:25', '[::]:25']);
  const on587 = loadBalancersOn(lbs, ['0.0.0.0:587']);
  it.each<[string, ReturnType<typeof loadBalancersOn>, string, ProxyPeerDecision]>([
    ['a listener without load balancers: plain SMTP for everyone', [], '10.1.2.3', { kind: 'direct' }],
    ['a load balancer in a CIDR range', on25, '10.1.2.3', { kind: 'trusted', loadBalancer: 'edge', range: '10.0.0.0/8' }],
    ['the most specific range wins', on25, '10.9.9.9', { kind: 'trusted', loadBalancer: 'edge-b', range: '10.9.9.9' }],
    ['an IPv4-mapped peer is its IPv4 address', on25, '::ffff:10.1.2.3', { kind: 'trusted', loadBalancer: 'edge', range: '10.0.0.0/8' }],
    ['an IPv6 load balancer', on25, '2001:db8:1::7', { kind: 'trusted', loadBalancer: 'edge', range: '2001:db8:1::/48' }],
    ['a direct client on a load-balanced listener', on25, '192.0.2.1', { kind: 'untrusted' }],
    ['just outside a range', on25, '11.0.0.0', { kind: 'untrusted' }],
    ['another IPv6 network', on25, '2001:db8:2::7', { kind: 'untrusted' }],
    ['an a-b range', on587, '192.168.50.11', { kind: 'trusted', loadBalancer: 'submission', range: '192.168.50.10-192.168.50.11' }],
    ["one load balancer's address on another's listener", on587, '10.1.2.3', { kind: 'untrusted' }],
    ['an unreadable peer address', on25, '', { kind: 'untrusted' }],
  ])('%s', (_name, serving, peer, decision) => {
    expect(decideProxyPeer(serving, peer)).toEqual(decision);
  });
});

describe('whose address the session carries', () => {
  const socket = { address: '10.1.2.3', port: 40000 };
  it.each([
    [
      'PROXY with a client: the client',
      { command: 'PROXY' as const, addresses: { sourceAddress: '192.0.2.7', sourcePort: 51000 } },
      { address: '192.0.2.7', port: 51000, from: 'header' },
    ],
    ['LOCAL (health check): the load balancer itself', { command: 'LOCAL' as const }, { address: '10.1.2.3', port: 40000, from: 'socket' }],
    [
      'LOCAL never takes addresses, even if present',
      { command: 'LOCAL' as const, addresses: { sourceAddress: '192.0.2.7', sourcePort: 1 } },
      { address: '10.1.2.3', port: 40000, from: 'socket' },
    ],
    ['PROXY without addresses (v1 UNKNOWN, v2 UNSPEC)', { command: 'PROXY' as const }, { address: '10.1.2.3', port: 40000, from: 'socket' }],
  ])('%s', (_name, header, expected) => {
    expect(proxiedClient(header, socket)).toEqual(expected);
  });
});
