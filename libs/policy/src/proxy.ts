/**
 * PROXY protocol trust (a Transit extension; Exchange has no load-balancer protocol). A
 * listener that some configured load balancer serves takes a PROXY header from that load
 * balancer's addresses only, and requires one from them; every other peer is an ordinary
 * direct client, and a PROXY header from it is refused (it would let anyone choose the
 * address that connector selection, permissions and limits are decided on). A listener no
 * load balancer serves never looks for a header. Pure: the listeners and the tests share it.
 */
import type { LoadBalancer } from '@transit/config';
import { intervalContains, intervalSize, parseBinding, parseIp, parseIpRange } from '@transit/config';

export type ProxyPeerDecision =
  /** No load balancer serves this listener: SMTP starts at once, as without PROXY support. */
  | { kind: 'direct' }
  /** Load balancers serve this listener, but the peer is none of them: a direct client, whose PROXY header would be refused. */
  | { kind: 'untrusted' }
  /** The peer is a configured load balancer (its most specific range): it must send a valid PROXY header before anything else. */
  | { kind: 'trusted'; loadBalancer: string; range: string };

const sameBinding = (a: string, b: string): boolean => {
  const x = parseBinding(a);
  const y = parseBinding(b);
  return x.port === y.port && parseIp(x.host)?.value === parseIp(y.host)?.value && x.family === y.family;
};

/** The load balancers in front of a listener, given the configured bindings the listener serves. */
export function loadBalancersOn(loadBalancers: readonly LoadBalancer[], bindings: readonly string[]): LoadBalancer[] {
  return loadBalancers.filter((lb) => lb.Bindings.some((b) => bindings.some((own) => sameBinding(b, own))));
}

/** What a listener served by `loadBalancers` (see loadBalancersOn) does with a connection from `peerIp`, the socket's own peer. */
export function decideProxyPeer(loadBalancers: readonly LoadBalancer[], peerIp: string): ProxyPeerDecision {
  if (loadBalancers.length === 0) return { kind: 'direct' };
  const peer = parseIp(peerIp);
  let best: { loadBalancer: string; range: string; size: bigint } | undefined;
  for (const lb of loadBalancers) {
    for (const spec of lb.RemoteIPRanges) {
      const range = parseIpRange(spec);
      if (!range || !peer || !intervalContains(range, peer)) continue;
      const size = intervalSize(range);
      if (!best || size < best.size) best = { loadBalancer: lb.Name, range: spec, size };
    }
  }
  return best ? { kind: 'trusted', loadBalancer: best.loadBalancer, range: best.range } : { kind: 'untrusted' };
}

/** The parts of a decoded PROXY header that decide who the client is. */
export type ProxyHeaderFacts = { command: 'PROXY' | 'LOCAL'; addresses?: { sourceAddress: string; sourcePort: number } };

/**
 * Whose address the session carries once a trusted load balancer's header is read: the
 * client named in a PROXY header; the socket's peer (the load balancer itself) for LOCAL
 * (its health checks) and for headers without a usable address (v1 UNKNOWN, v2 UNSPEC or
 * AF_UNIX), as the specification says.
 */
export function proxiedClient(
  header: ProxyHeaderFacts,
  socket: { address: string; port: number },
): { address: string; port: number; from: 'header' | 'socket' } {
  if (header.command === 'PROXY' && header.addresses) return { address: header.addresses.sourceAddress, port: header.addresses.sourcePort, from: 'header' };
  return { address: socket.address, port: socket.port, from: 'socket' };
}
