/**
 * A strict decoder for the PROXY protocol header (HAProxy's proxy-protocol.txt, versions 1
 * and 2) that a load balancer sends before the SMTP stream to name the real client.
 *
 * Contract: `decodeProxyHeader` looks at the bytes received so far and answers `incomplete`
 * (send more), `invalid` (a code and a reason; the connection must be dropped) or
 * `complete` (the header and how many bytes it took; everything after them is SMTP). It
 * never reads past `MAX_PROXY_HEADER_BYTES`, accepts only what the specification allows
 * (single spaces and CRLF in v1, canonical addresses, ports 0-65535 without leading zeros;
 * the v2 signature, version 2, the seven address families it defines, well-formed TLVs and
 * a matching CRC32C when one is sent), and leaves trust to the caller: it only parses.
 *
 * LOCAL (v2) is the load balancer's own connection (a health check), and v1 UNKNOWN, v2
 * UNSPEC and AF_UNIX carry no usable client address: in those cases `addresses` is absent
 * and the socket's own addresses apply, as the specification says.
 *
 * `readProxyHeader` takes one header off a fresh socket within a deadline and puts back
 * whatever followed it.
 */
import { isIPv4, isIPv6, type Socket } from 'node:net';

/** `\r\n\r\n\0\r\nQUIT\n`: chosen so that a server not expecting the header sees an empty line and QUIT. */
export const PROXY_V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const V1_PREFIX = Buffer.from('PROXY ', 'latin1');
/** v1: the longest line the specification allows, CRLF included. */
export const MAX_PROXY_V1_BYTES = 107;
/** v2: 16 fixed bytes plus addresses and TLVs. Real load balancers send well under 1 KB (SSL details, unique id, authority). */
export const MAX_PROXY_HEADER_BYTES = 2048;

export type ProxyAddresses = { sourceAddress: string; sourcePort: number; destinationAddress: string; destinationPort: number };
export type ProxyTlv = { type: number; value: Buffer };

export type ProxyHeader = {
  version: 1 | 2;
  /** PROXY: relayed on behalf of a client; LOCAL: the load balancer's own connection (health check). */
  command: 'PROXY' | 'LOCAL';
  /** v1 TCP4/TCP6 or v2 INET/INET6 over a stream; absent when the socket's addresses apply. */
  addresses?: ProxyAddresses;
  /** v2 type-length-value extensions (ALPN, authority, SSL, unique id, ...), unparsed; unknown types are kept and ignored. */
  tlvs: ProxyTlv[];
  /** Bytes the header took; the SMTP stream starts right after them. */
  length: number;
};

export type ProxyHeaderErrorCode = 'NOT_PROXY' | 'TOO_LONG' | 'MALFORMED' | 'BAD_ADDRESS' | 'UNSUPPORTED' | 'BAD_CHECKSUM';

export type ProxyDecode =
  { status: 'incomplete' } | { status: 'invalid'; code: ProxyHeaderErrorCode; message: string } | { status: 'complete'; header: ProxyHeader };

const invalid = (code: ProxyHeaderErrorCode, message: string): ProxyDecode => ({ status: 'invalid', code, message });
const INCOMPLETE: ProxyDecode = { status: 'incomplete' };

/** True when `buf` is (so far) a prefix of `whole`. */
function prefixOf(buf: Buffer, whole: Buffer): boolean {
  const n = Math.min(buf.length, whole.length);
  return buf.subarray(0, n).equals(whole.subarray(0, n));
}

/**
 * Which header the first bytes of a connection start, without needing all of it: version 1
 * or 2, `undecided` while they are still a prefix of one (at most 11 bytes), or undefined
 * when they are not a PROXY header at all (ordinary SMTP).
 */
export function proxyHeaderStart(buf: Buffer): { version: 1 | 2 } | 'undecided' | undefined {
  if (buf.length >= V1_PREFIX.length && prefixOf(buf, V1_PREFIX)) return { version: 1 };
  if (buf.length >= PROXY_V2_SIGNATURE.length && prefixOf(buf, PROXY_V2_SIGNATURE)) return { version: 2 };
  if (prefixOf(buf, V1_PREFIX) || prefixOf(buf, PROXY_V2_SIGNATURE)) return 'undecided';
  return undefined;
}

export function decodeProxyHeader(buf: Buffer): ProxyDecode {
  const start = proxyHeaderStart(buf);
  if (start === 'undecided') return INCOMPLETE;
  if (start === undefined) return invalid('NOT_PROXY', 'the connection did not start with a PROXY protocol header');
  return start.version === 1 ? decodeV1(buf) : decodeV2(buf);
}

const PORT = /^(0|[1-9]\d{0,4})$/;

function decodeV1(buf: Buffer): ProxyDecode {
  const lf = buf.indexOf(0x0a);
  if (lf < 0) return buf.length >= MAX_PROXY_V1_BYTES ? invalid('TOO_LONG', `PROXY v1 line longer than ${MAX_PROXY_V1_BYTES} bytes`) : INCOMPLETE;
  const length = lf + 1;
  if (length > MAX_PROXY_V1_BYTES) return invalid('TOO_LONG', `PROXY v1 line longer than ${MAX_PROXY_V1_BYTES} bytes`);
  if (buf[lf - 1] !== 0x0d) return invalid('MALFORMED', 'PROXY v1 line must end with CRLF');
  const line = buf.subarray(0, lf - 1).toString('latin1');
  // Printable US-ASCII only: the addresses end up in replies, logs and Received headers.
  if (!/^[\x20-\x7e]*$/.test(line)) return invalid('MALFORMED', 'PROXY v1 line contains control or non-ASCII characters');
  const parts = line.split(' ');
  const proto = parts[1];
  if (proto === 'UNKNOWN') return { status: 'complete', header: { version: 1, command: 'PROXY', tlvs: [], length } };
  if (proto !== 'TCP4' && proto !== 'TCP6') return invalid('UNSUPPORTED', `PROXY v1 protocol ${JSON.stringify(proto ?? '')} (expected TCP4, TCP6 or UNKNOWN)`);
  if (parts.length !== 6)
    return invalid('MALFORMED', 'PROXY v1 line must be "PROXY TCP4|TCP6 <source> <destination> <source port> <destination port>" with single spaces');
  const [, , src, dst, sport, dport] = parts as [string, string, string, string, string, string];
  const isFamily = proto === 'TCP4' ? isIPv4 : (ip: string) => isIPv6(ip) && !ip.includes('%');
  if (!isFamily(src) || !isFamily(dst)) return invalid('BAD_ADDRESS', `PROXY v1 ${proto} addresses must be ${proto === 'TCP4' ? 'IPv4' : 'IPv6'} addresses`);
  if (!PORT.test(sport) || !PORT.test(dport) || Number(sport) > 65535 || Number(dport) > 65535)
    return invalid('BAD_ADDRESS', 'PROXY v1 ports must be decimal numbers 0-65535 without leading zeros');
  return {
    status: 'complete',
    header: {
      version: 1,
      command: 'PROXY',
      addresses: { sourceAddress: src.toLowerCase(), sourcePort: Number(sport), destinationAddress: dst.toLowerCase(), destinationPort: Number(dport) },
      tlvs: [],
      length,
    },
  };
}

/** Address block sizes of the v2 families (high nibble of byte 13): INET, INET6, UNIX. */
const FAMILY_BYTES: Record<number, number> = { 0x0: 0, 0x1: 12, 0x2: 36, 0x3: 216 };
const PP2_TYPE_CRC32C = 0x03;

function decodeV2(buf: Buffer): ProxyDecode {
  if (buf.length < 16) return INCOMPLETE;
  const versionCommand = buf[12]!;
  const familyProtocol = buf[13]!;
  const payload = buf.readUInt16BE(14);
  const length = 16 + payload;
  if (versionCommand >> 4 !== 0x2) return invalid('UNSUPPORTED', `PROXY v2 header with version ${versionCommand >> 4}`);
  const commandBits = versionCommand & 0x0f;
  if (commandBits > 0x1) return invalid('UNSUPPORTED', `PROXY v2 command ${commandBits} (expected LOCAL or PROXY)`);
  if (length > MAX_PROXY_HEADER_BYTES) return invalid('TOO_LONG', `PROXY v2 header of ${length} bytes (at most ${MAX_PROXY_HEADER_BYTES} accepted)`);
  // UNSPEC, TCP4, UDP4, TCP6, UDP6, UNIX stream, UNIX datagram: anything else must be rejected.
  if (![0x00, 0x11, 0x12, 0x21, 0x22, 0x31, 0x32].includes(familyProtocol))
    return invalid('UNSUPPORTED', `PROXY v2 address family/protocol 0x${familyProtocol.toString(16).padStart(2, '0')}`);
  if (buf.length < length) return INCOMPLETE;
  const block = buf.subarray(16, length);
  // LOCAL: the load balancer speaks for itself; its protocol block is discarded whole.
  if (commandBits === 0x0) return { status: 'complete', header: { version: 2, command: 'LOCAL', tlvs: [], length } };

  const family = familyProtocol >> 4;
  if ((familyProtocol & 0x0f) === 0x2) return invalid('UNSUPPORTED', 'PROXY v2 header for a datagram (UDP) connection; SMTP runs over a stream');
  const addressBytes = FAMILY_BYTES[family]!;
  if (payload < addressBytes) return invalid('MALFORMED', `PROXY v2 length ${payload} is shorter than the ${addressBytes}-byte address block of its family`);
  const tlvs = parseTlvs(block.subarray(addressBytes));
  if (!Array.isArray(tlvs)) return tlvs;
  const crc = tlvs.find((t) => t.type === PP2_TYPE_CRC32C);
  if (crc) {
    if (crc.value.length !== 4) return invalid('MALFORMED', 'PROXY v2 CRC32C value must be 4 bytes');
    const copy = Buffer.from(buf.subarray(0, length));
    const at = crc.value.byteOffset - buf.byteOffset;
    copy.fill(0, at, at + 4);
    if (crc32c(copy) !== crc.value.readUInt32BE(0)) return invalid('BAD_CHECKSUM', 'PROXY v2 CRC32C does not match the header');
  }
  let addresses: ProxyAddresses | undefined;
  if (family === 0x1) {
    addresses = {
      sourceAddress: ipv4(block.subarray(0, 4)),
      destinationAddress: ipv4(block.subarray(4, 8)),
      sourcePort: block.readUInt16BE(8),
      destinationPort: block.readUInt16BE(10),
    };
  } else if (family === 0x2) {
    addresses = {
      sourceAddress: ipv6(block.subarray(0, 16)),
      destinationAddress: ipv6(block.subarray(16, 32)),
      sourcePort: block.readUInt16BE(32),
      destinationPort: block.readUInt16BE(34),
    };
  }
  return { status: 'complete', header: { version: 2, command: 'PROXY', ...(addresses ? { addresses } : {}), tlvs, length } };
}

function parseTlvs(bytes: Buffer): ProxyTlv[] | ProxyDecode {
  const tlvs: ProxyTlv[] = [];
  let at = 0;
  while (at < bytes.length) {
    if (bytes.length - at < 3) return invalid('MALFORMED', 'PROXY v2 TLV area ends inside a type-length field');
    const type = bytes[at]!;
    const len = bytes.readUInt16BE(at + 1);
    if (at + 3 + len > bytes.length) return invalid('MALFORMED', `PROXY v2 TLV 0x${type.toString(16)} runs past the end of the header`);
    tlvs.push({ type, value: bytes.subarray(at + 3, at + 3 + len) });
    at += 3 + len;
  }
  return tlvs;
}

const ipv4 = (b: Buffer) => `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;

/** RFC 5952 text: lower case, the longest run of two or more zero groups as `::`, IPv4-mapped as `::ffff:a.b.c.d`. */
export function ipv6(b: Buffer): string {
  const groups = Array.from({ length: 8 }, (_v, i) => b.readUInt16BE(i * 2));
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) return `::ffff:${ipv4(b.subarray(12, 16))}`;
  let best = { at: -1, len: 0 };
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > best.len && j - i >= 2) best = { at: i, len: j - i };
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best.at < 0) return hex.join(':');
  return `${hex.slice(0, best.at).join(':')}::${hex.slice(best.at + best.len).join(':')}`;
}

let crcTable: Uint32Array | undefined;

/** CRC32C (Castagnoli), as PP2_TYPE_CRC32C uses it. */
export function crc32c(bytes: Buffer): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let crc = 0xffffffff;
  for (const byte of bytes) crc = crcTable[(crc ^ byte) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

export type ProxyRead = { ok: true; header: ProxyHeader } | { ok: false; code: ProxyHeaderErrorCode | 'TIMEOUT' | 'CLOSED'; message: string; received: number };

/**
 * Reads one header off a fresh socket, within `timeoutMs`. Bytes after the header are put
 * back into the socket for the SMTP session; nothing is consumed once the header is
 * complete or refused. On failure the socket is left to the caller (to answer and close).
 */
export function readProxyHeader(socket: Socket, timeoutMs: number): Promise<ProxyRead> {
  return new Promise((resolve) => {
    let received: Buffer = Buffer.alloc(0);
    let settled = false;
    const finish = (result: ProxyRead) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.removeListener('readable', onReadable);
      socket.removeListener('error', onError);
      socket.removeListener('close', onClosed);
      socket.removeListener('end', onClosed);
      resolve(result);
    };
    const fail = (code: Extract<ProxyRead, { ok: false }>['code'], message: string) => finish({ ok: false, code, message, received: received.length });
    const onReadable = () => {
      let chunk: Buffer | null;
      while (!settled && (chunk = socket.read() as Buffer | null) !== null) {
        received = received.length ? Buffer.concat([received, chunk]) : chunk;
        const decoded = decodeProxyHeader(received);
        if (decoded.status === 'incomplete') continue;
        if (decoded.status === 'invalid') return fail(decoded.code, decoded.message);
        const rest = received.subarray(decoded.header.length);
        if (rest.length > 0) socket.unshift(rest);
        return finish({ ok: true, header: decoded.header });
      }
    };
    const onError = (err: Error) => fail('CLOSED', `socket error before the PROXY header was complete: ${err.message}`);
    const onClosed = () => fail('CLOSED', 'the peer closed the connection before the PROXY header was complete');
    const timer = setTimeout(() => fail('TIMEOUT', `no complete PROXY header within ${timeoutMs} ms`), timeoutMs);
    timer.unref();
    socket.on('readable', onReadable);
    socket.on('error', onError);
    socket.on('close', onClosed);
    socket.on('end', onClosed);
  });
}
