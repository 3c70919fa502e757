/**
 * Receive connector selection (EXCHANGE.md §4): among enabled connectors bound to the
 * connection's local port, a binding on the exact local address beats a wildcard binding;
 * then the smallest RemoteIPRanges interval containing the client wins.
 */
import type { ReceiveConnector } from '@transit/config';
import { intervalContains, intervalSize, normalizeIp, parseBinding, parseIp, parseIpRange } from '@transit/config';

export type ConnectionFacts = {
  /** The local address the client connected to (as the socket reports it). */
  localIp: string;
  /** The configured port of the listener (before any local port offset). */
  localPort: number;
  remoteIp: string;
  /** In the local profile wildcard bindings listen on one host; they still count as wildcards. */
};

export type ConnectorChoice = { connector: ReceiveConnector; specificBinding: boolean; rangeSize: bigint };

export function selectReceiveConnector(connectors: readonly ReceiveConnector[], facts: ConnectionFacts): ReceiveConnector | undefined {
  const remote = parseIp(facts.remoteIp);
  const local = normalizeIp(facts.localIp);
  if (!remote) return undefined;
  let best: ConnectorChoice | undefined;
  for (const connector of connectors) {
    if (!connector.Enabled) continue;
    let bindingScore: boolean | undefined;
    for (const spec of connector.Bindings) {
      const b = parseBinding(spec);
      if (b.port !== facts.localPort) continue;
      if (!b.wildcard && normalizeIp(b.host) === local) bindingScore = true;
      else if (b.wildcard && b.family === remote.family && bindingScore === undefined) bindingScore = false;
    }
    if (bindingScore === undefined) continue;
    let smallest: bigint | undefined;
    for (const spec of connector.RemoteIPRanges) {
      const range = parseIpRange(spec);
      if (range && intervalContains(range, remote)) {
        const size = intervalSize(range);
        if (smallest === undefined || size < smallest) smallest = size;
      }
    }
    if (smallest === undefined) continue;
    const candidate = { connector, specificBinding: bindingScore, rangeSize: smallest };
    if (!best || better(candidate, best)) best = candidate;
  }
  return best?.connector;
}

function better(a: ConnectorChoice, b: ConnectorChoice): boolean {
  if (a.specificBinding !== b.specificBinding) return a.specificBinding;
  return a.rangeSize < b.rangeSize;
}
