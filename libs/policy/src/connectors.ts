/**
 * Receive connector selection (docs/exchange-behaviour.md §4): among enabled connectors bound to the
 * connection's local port, a binding on the exact local address beats a wildcard binding;
 * then the smallest RemoteIPRanges interval containing the client wins. `matchConnector`
 * is the one place that decides how a connector matches a connection; the frontend's
 * choice and `transitctl test-connector`'s explanation both come from it.
 */
import type { ReceiveConnector } from '@transit/config';
import { intervalContains, intervalSize, normalizeIp, parseBinding, parseIp, parseIpRange } from '@transit/config';

export type ConnectionFacts = {
  /** The local address the client connected to (as the socket reports it). */
  localIp: string;
  /** The configured port of the listener (before any local port offset). */
  localPort: number;
  remoteIp: string;
};

/** How one connector matches a connection; undefined when it has no binding on the port. */
export type ConnectorMatch = {
  connector: ReceiveConnector;
  binding: 'specific' | 'wildcard' | 'none';
  /** The smallest RemoteIPRanges entry containing the client, and its size. */
  range: string | undefined;
  rangeSize: bigint | undefined;
};

export function matchConnector(connector: ReceiveConnector, facts: ConnectionFacts): ConnectorMatch | undefined {
  const remote = parseIp(facts.remoteIp);
  const local = normalizeIp(facts.localIp);
  let binding: ConnectorMatch['binding'] = 'none';
  let onPort = false;
  for (const spec of connector.Bindings) {
    const b = parseBinding(spec);
    if (b.port !== facts.localPort) continue;
    onPort = true;
    if (!b.wildcard && normalizeIp(b.host) === local) binding = 'specific';
    else if (b.wildcard && remote && b.family === remote.family && binding === 'none') binding = 'wildcard';
  }
  if (!onPort) return undefined;
  let range: string | undefined;
  let rangeSize: bigint | undefined;
  for (const spec of connector.RemoteIPRanges) {
    const r = parseIpRange(spec);
    if (r && remote && intervalContains(r, remote) && (rangeSize === undefined || intervalSize(r) < rangeSize)) {
      range = spec;
      rangeSize = intervalSize(r);
    }
  }
  return { connector, binding, range, rangeSize };
}

export function selectReceiveConnector(connectors: readonly ReceiveConnector[], facts: ConnectionFacts): ReceiveConnector | undefined {
  let best: ConnectorMatch | undefined;
  for (const connector of connectors) {
    if (!connector.Enabled) continue;
    const m = matchConnector(connector, facts);
    if (!m || m.binding === 'none' || m.rangeSize === undefined) continue;
    if (!best || better(m, best)) best = m;
  }
  return best?.connector;
}

function better(a: ConnectorMatch, b: ConnectorMatch): boolean {
  if (a.binding !== b.binding) return a.binding === 'specific';
  return a.rangeSize! < b.rangeSize!;
}
