/**
 * IP addresses and RemoteIPRanges as inclusive intervals of one family. A single address,
 * a CIDR block and an `a-b` range are the same thing here (docs/exchange-behaviour.md §4), which makes
 * "most specific match" simply "smallest containing interval".
 */
import { isIPv4, isIPv6 } from 'node:net';

export type IpFamily = 4 | 6;
export type IpInterval = { family: IpFamily; lo: bigint; hi: bigint };

/** Strips brackets and IPv4-mapped IPv6 (`::ffff:1.2.3.4`) so a v4 client is v4 everywhere. */
export function normalizeIp(ip: string): string {
  const bare = ip.startsWith('[') && ip.endsWith(']') ? ip.slice(1, -1) : ip;
  const mapped = /^::ffff:(\d{1,3}(\.\d{1,3}){3})$/i.exec(bare);
  return mapped ? mapped[1]! : bare;
}

export function parseIp(input: string): { family: IpFamily; value: bigint } | undefined {
  const ip = normalizeIp(input.trim());
  if (isIPv4(ip)) {
    const value = ip.split('.').reduce((acc, part) => (acc << 8n) | BigInt(Number(part)), 0n);
    return { family: 4, value };
  }
  if (isIPv6(ip)) {
    let text = ip;
    const v4tail = /(\d{1,3}(\.\d{1,3}){3})$/.exec(text);
    if (v4tail) {
      const v4 = parseIp(v4tail[1]!)!.value;
      text = text.slice(0, -v4tail[1]!.length) + `${(v4 >> 16n).toString(16)}:${(v4 & 0xffffn).toString(16)}`;
    }
    const [head, tail] = text.split('::') as [string, string | undefined];
    const headParts = head ? head.split(':') : [];
    const tailParts = tail ? tail.split(':') : [];
    const fill = tail === undefined ? [] : new Array<string>(8 - headParts.length - tailParts.length).fill('0');
    const groups = [...headParts, ...fill, ...tailParts];
    const value = groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n);
    return { family: 6, value };
  }
  return undefined;
}

/** Parses `1.2.3.4`, `1.2.3.0/24`, `1.2.3.4-1.2.3.9`, and the IPv6 forms; undefined when invalid. */
export function parseIpRange(spec: string): IpInterval | undefined {
  const s = spec.trim();
  const slash = s.indexOf('/');
  if (slash >= 0) {
    const base = parseIp(s.slice(0, slash));
    const bitsText = s.slice(slash + 1);
    if (!base || !/^\d{1,3}$/.test(bitsText)) return undefined;
    const width = base.family === 4 ? 32 : 128;
    const bits = Number(bitsText);
    if (bits > width) return undefined;
    const hostBits = BigInt(width - bits);
    const lo = (base.value >> hostBits) << hostBits;
    return { family: base.family, lo, hi: lo + (1n << hostBits) - 1n };
  }
  const dash = s.indexOf('-');
  if (dash >= 0) {
    const a = parseIp(s.slice(0, dash));
    const b = parseIp(s.slice(dash + 1));
    if (!a || !b || a.family !== b.family || a.value > b.value) return undefined;
    return { family: a.family, lo: a.value, hi: b.value };
  }
  const one = parseIp(s);
  return one ? { family: one.family, lo: one.value, hi: one.value } : undefined;
}

export function intervalContains(range: IpInterval, ip: { family: IpFamily; value: bigint }): boolean {
  return range.family === ip.family && range.lo <= ip.value && ip.value <= range.hi;
}

export function intervalSize(range: IpInterval): bigint {
  return range.hi - range.lo + 1n;
}

/** Two intervals share an address but neither contains the other (Exchange refuses this). */
export function intervalsPartiallyOverlap(a: IpInterval, b: IpInterval): boolean {
  if (a.family !== b.family || a.hi < b.lo || b.hi < a.lo) return false;
  const aInB = b.lo <= a.lo && a.hi <= b.hi;
  const bInA = a.lo <= b.lo && b.hi <= a.hi;
  return !aInB && !bInA;
}

export type Binding = { host: string; port: number; wildcard: boolean; family: 4 | 6 };

/** `0.0.0.0:25`, `192.168.1.10:25`, `[::]:25`, `[2001:db8::1]:587`. */
export function parseBinding(binding: string): Binding {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(binding.trim());
  if (!m) throw new Error(`invalid binding ${binding}`);
  const host = normalizeIp((m[1] ?? m[2])!);
  const family = host.includes(':') ? 6 : 4;
  const wildcard = host === '0.0.0.0' || host === '::';
  return { host, port: Number(m[3]), wildcard, family };
}
