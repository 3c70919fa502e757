import { once } from 'node:events';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  MAX_PROXY_HEADER_BYTES,
  PROXY_V2_SIGNATURE,
  crc32c,
  decodeProxyHeader,
  ipv6,
  proxyHeaderStart,
  readProxyHeader,
  type ProxyHeader,
} from './proxy-protocol.ts';

const text = (s: string) => Buffer.from(s, 'latin1');
const u16 = (n: number) => Buffer.from([n >> 8, n & 0xff]);
const v4 = (ip: string) => Buffer.from(ip.split('.').map(Number));
const v6 = (groups: number[]) => Buffer.concat(groups.map(u16));
const tlv = (type: number, value: Buffer) => Buffer.concat([Buffer.from([type]), u16(value.length), value]);

/** A v2 header: signature, version/command, family/protocol, length, then the block (addresses and TLVs). */
function v2(versionCommand: number, familyProtocol: number, block: Buffer, length = block.length): Buffer {
  return Buffer.concat([PROXY_V2_SIGNATURE, Buffer.from([versionCommand, familyProtocol]), u16(length), block]);
}
const inet = (src: string, dst: string, sport: number, dport: number) => Buffer.concat([v4(src), v4(dst), u16(sport), u16(dport)]);
const DB8_10 = [0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10];
const DB8_1 = [0x2001, 0xdb8, 0, 0, 0, 0, 0, 1];
const inet6 = Buffer.concat([v6(DB8_10), v6(DB8_1), u16(40000), u16(25)]);

/** A v2 PROXY TCP4 header carrying a correct (or deliberately wrong) CRC32C TLV. */
function withCrc(wrong = false): Buffer {
  const header = v2(0x21, 0x11, Buffer.concat([inet('192.0.2.10', '198.51.100.1', 56324, 25), tlv(0x03, Buffer.alloc(4))]));
  const sum = crc32c(header);
  header.writeUInt32BE(wrong ? (sum ^ 1) >>> 0 : sum, header.length - 4);
  return header;
}

type Row = [name: string, input: Buffer, expected: Partial<ProxyHeader>];
const LONGEST_V1 = `${'PROXY UNKNOWN ffff:f:f:f:f:f:f:ffff ffff:f:f:f:f:f:f:ffff 65535 65535'.padEnd(105, ' ')}\r\n`;

describe('decodeProxyHeader: valid headers', () => {
  it.each<Row>([
    [
      'v1 TCP4',
      text('PROXY TCP4 192.0.2.10 198.51.100.1 56324 25\r\n'),
      {
        version: 1,
        command: 'PROXY',
        addresses: { sourceAddress: '192.0.2.10', sourcePort: 56324, destinationAddress: '198.51.100.1', destinationPort: 25 },
        length: 45,
      },
    ],
    [
      'v1 TCP6 (upper case written lower)',
      text('PROXY TCP6 2001:DB8::10 2001:db8::1 65535 0\r\n'),
      { version: 1, addresses: { sourceAddress: '2001:db8::10', sourcePort: 65535, destinationAddress: '2001:db8::1', destinationPort: 0 } },
    ],
    ['v1 UNKNOWN', text('PROXY UNKNOWN\r\n'), { version: 1, command: 'PROXY', addresses: undefined, length: 15 }],
    ['v1 UNKNOWN with the longest allowed line', text(LONGEST_V1), { version: 1, addresses: undefined, length: 107 }],
    ['v1 followed by SMTP', text('PROXY TCP4 192.0.2.10 198.51.100.1 1 25\r\nEHLO client.example\r\n'), { version: 1, length: 41 }],
    [
      'v2 PROXY TCP4',
      v2(0x21, 0x11, inet('192.0.2.10', '198.51.100.1', 56324, 25)),
      {
        version: 2,
        command: 'PROXY',
        addresses: { sourceAddress: '192.0.2.10', sourcePort: 56324, destinationAddress: '198.51.100.1', destinationPort: 25 },
        tlvs: [],
        length: 28,
      },
    ],
    [
      'v2 PROXY TCP4 with TLVs (ALPN, authority, NOOP, unknown type)',
      v2(
        0x21,
        0x11,
        Buffer.concat([
          inet('10.1.2.3', '10.0.0.1', 1025, 25),
          tlv(0x01, text('smtp')),
          tlv(0x02, text('mx.contoso.test')),
          tlv(0x04, Buffer.alloc(0)),
          tlv(0xe0, Buffer.from([1, 2])),
        ]),
      ),
      {
        version: 2,
        addresses: { sourceAddress: '10.1.2.3', sourcePort: 1025, destinationAddress: '10.0.0.1', destinationPort: 25 },
        tlvs: [
          { type: 0x01, value: text('smtp') },
          { type: 0x02, value: text('mx.contoso.test') },
          { type: 0x04, value: Buffer.alloc(0) },
          { type: 0xe0, value: Buffer.from([1, 2]) },
        ],
      },
    ],
    [
      'v2 PROXY TCP6',
      v2(0x21, 0x21, inet6),
      { version: 2, addresses: { sourceAddress: '2001:db8::10', sourcePort: 40000, destinationAddress: '2001:db8::1', destinationPort: 25 } },
    ],
    [
      'v2 PROXY TCP6 with an IPv4-mapped client',
      v2(0x21, 0x21, Buffer.concat([v6([0, 0, 0, 0, 0, 0xffff, 0xc000, 0x020a]), v6(DB8_1), u16(1), u16(25)])),
      { addresses: { sourceAddress: '::ffff:192.0.2.10', sourcePort: 1, destinationAddress: '2001:db8::1', destinationPort: 25 } },
    ],
    [
      'v2 PROXY TCP4 with a correct CRC32C',
      withCrc(),
      { version: 2, addresses: { sourceAddress: '192.0.2.10', sourcePort: 56324, destinationAddress: '198.51.100.1', destinationPort: 25 } },
    ],
    ['v2 LOCAL (health check)', v2(0x20, 0x00, Buffer.alloc(0)), { version: 2, command: 'LOCAL', addresses: undefined, length: 16 }],
    [
      'v2 LOCAL: its protocol block is discarded whatever it holds',
      v2(0x20, 0x11, Buffer.from([9, 9, 9])),
      { command: 'LOCAL', addresses: undefined, length: 19 },
    ],
    ['v2 PROXY UNSPEC: the socket addresses apply', v2(0x21, 0x00, Buffer.alloc(0)), { command: 'PROXY', addresses: undefined, length: 16 }],
    ['v2 PROXY over AF_UNIX: the socket addresses apply', v2(0x21, 0x31, Buffer.alloc(216)), { command: 'PROXY', addresses: undefined, length: 232 }],
    ['v2 followed by SMTP', Buffer.concat([v2(0x21, 0x11, inet('192.0.2.10', '198.51.100.1', 1, 25)), text('EHLO x\r\n')]), { length: 28 }],
  ])('%s', (_name, input, expected) => {
    const result = decodeProxyHeader(input);
    expect(result.status).toBe('complete');
    if (result.status !== 'complete') return;
    const { addresses, ...rest } = expected;
    expect(result.header).toMatchObject(rest);
    // Present: exactly these; written as undefined: the socket's addresses apply.
    if ('addresses' in expected) expect(result.header.addresses).toEqual(addresses);
  });
});

describe('decodeProxyHeader: incomplete headers wait for more bytes', () => {
  const full = v2(0x21, 0x11, inet('192.0.2.10', '198.51.100.1', 1, 25));
  it.each([
    ['nothing yet', Buffer.alloc(0)],
    ['part of "PROXY "', text('PRO')],
    ['a v1 line without its CRLF', text('PROXY TCP4 192.0.2.10 198.51.100.1 1 25')],
    ['a v1 line ending in CR', text('PROXY TCP4 192.0.2.10 198.51.100.1 1 25\r')],
    ['part of the v2 signature', PROXY_V2_SIGNATURE.subarray(0, 5)],
    ['the v2 signature and 3 more bytes', full.subarray(0, 15)],
    ['a v2 header short of its last byte', full.subarray(0, full.length - 1)],
  ])('%s', (_name, input) => {
    expect(decodeProxyHeader(input)).toEqual({ status: 'incomplete' });
  });
});

describe('decodeProxyHeader: refused headers', () => {
  it.each([
    ['SMTP instead of a header', text('EHLO client.example\r\n'), 'NOT_PROXY'],
    ['a lower-case v1 keyword', text('proxy TCP4 192.0.2.10 198.51.100.1 1 25\r\n'), 'NOT_PROXY'],
    ['garbage', Buffer.from([0xff, 0x00, 0x13, 0x37]), 'NOT_PROXY'],
    ['a bad v2 signature', Buffer.concat([text('\r\n\r\n\0\r\nQUIX\n'), Buffer.alloc(8)]), 'NOT_PROXY'],
    ['a v1 line without CRLF in 107 bytes', text(`PROXY UNKNOWN ${'a'.repeat(100)}`), 'TOO_LONG'],
    ['a v1 line of 108 bytes', text(`PROXY UNKNOWN ${'a'.repeat(92)}\r\n`), 'TOO_LONG'],
    ['a v1 line ending in a bare LF', text('PROXY TCP4 192.0.2.10 198.51.100.1 1 25\n'), 'MALFORMED'],
    ['a v1 line with a control character', text('PROXY UNKNOWN \x01\r\n'), 'MALFORMED'],
    ['a v1 line with a missing port', text('PROXY TCP4 192.0.2.10 198.51.100.1 1\r\n'), 'MALFORMED'],
    ['a v1 line with double spaces', text('PROXY TCP4  192.0.2.10 198.51.100.1 1 25\r\n'), 'MALFORMED'],
    ['a v1 protocol that does not exist', text('PROXY TCP5 192.0.2.10 198.51.100.1 1 25\r\n'), 'UNSUPPORTED'],
    ['a v1 line without a protocol', text('PROXY \r\n'), 'UNSUPPORTED'],
    ['v1 TCP4 with IPv6 addresses', text('PROXY TCP4 2001:db8::1 2001:db8::2 1 25\r\n'), 'BAD_ADDRESS'],
    ['v1 TCP6 with IPv4 addresses', text('PROXY TCP6 192.0.2.10 198.51.100.1 1 25\r\n'), 'BAD_ADDRESS'],
    ['v1 with a host name', text('PROXY TCP4 evil.example 198.51.100.1 1 25\r\n'), 'BAD_ADDRESS'],
    ['v1 with an IPv6 zone', text('PROXY TCP6 fe80::1%eth0 fe80::2 1 25\r\n'), 'BAD_ADDRESS'],
    ['v1 with a leading-zero octet', text('PROXY TCP4 192.0.2.010 198.51.100.1 1 25\r\n'), 'BAD_ADDRESS'],
    ['v1 with port 65536', text('PROXY TCP4 192.0.2.10 198.51.100.1 65536 25\r\n'), 'BAD_ADDRESS'],
    ['v1 with a leading-zero port', text('PROXY TCP4 192.0.2.10 198.51.100.1 1 025\r\n'), 'BAD_ADDRESS'],
    ['v2 with version 1', v2(0x11, 0x11, inet('192.0.2.10', '198.51.100.1', 1, 25)), 'UNSUPPORTED'],
    ['v2 with command 2', v2(0x22, 0x11, inet('192.0.2.10', '198.51.100.1', 1, 25)), 'UNSUPPORTED'],
    ['v2 with family 4', v2(0x21, 0x41, inet('192.0.2.10', '198.51.100.1', 1, 25)), 'UNSUPPORTED'],
    ['v2 with transport 3', v2(0x21, 0x13, inet('192.0.2.10', '198.51.100.1', 1, 25)), 'UNSUPPORTED'],
    ['v2 for UDP', v2(0x21, 0x12, inet('192.0.2.10', '198.51.100.1', 1, 25)), 'UNSUPPORTED'],
    ['v2 TCP4 shorter than its addresses', v2(0x21, 0x11, Buffer.alloc(8)), 'MALFORMED'],
    ['v2 TCP6 with IPv4-sized addresses', v2(0x21, 0x21, inet('192.0.2.10', '198.51.100.1', 1, 25)), 'MALFORMED'],
    ['v2 with a TLV cut short', v2(0x21, 0x11, Buffer.concat([inet('192.0.2.10', '198.51.100.1', 1, 25), Buffer.from([0x01, 0x00, 0x09, 0x61])])), 'MALFORMED'],
    ['v2 with a stray byte after its TLVs', v2(0x21, 0x11, Buffer.concat([inet('192.0.2.10', '198.51.100.1', 1, 25), Buffer.from([0x04])])), 'MALFORMED'],
    ['v2 with a wrong CRC32C', withCrc(true), 'BAD_CHECKSUM'],
    ['v2 announcing more than the limit (only its first 16 bytes sent)', v2(0x21, 0x11, Buffer.alloc(0), MAX_PROXY_HEADER_BYTES), 'TOO_LONG'],
  ])('%s', (_name, input, code) => {
    expect(decodeProxyHeader(input)).toMatchObject({ status: 'invalid', code });
  });
});

describe('proxyHeaderStart (screening a direct client)', () => {
  it.each([
    ['EHLO', text('EHLO x\r\n'), undefined],
    ['an empty line', text('\r\n'), 'undecided'],
    ['"P"', text('P'), 'undecided'],
    ['"PROXY" without its space', text('PROXY'), 'undecided'],
    ['"PROXY " (v1)', text('PROXY '), { version: 1 }],
    ['"PROXYX"', text('PROXYX'), undefined],
    ['the v2 signature', PROXY_V2_SIGNATURE, { version: 2 }],
    ['the v2 signature cut after QUI', PROXY_V2_SIGNATURE.subarray(0, 10), 'undecided'],
    ['QUIT', text('QUIT\r\n'), undefined],
  ])('%s', (_name, input, expected) => {
    expect(proxyHeaderStart(input)).toEqual(expected);
  });
});

describe('helpers', () => {
  it.each([
    [DB8_10, '2001:db8::10'],
    [[0, 0, 0, 0, 0, 0, 0, 0], '::'],
    [[0, 0, 0, 0, 0, 0, 0, 1], '::1'],
    [[0x2001, 0xdb8, 0, 1, 0, 0, 0, 1], '2001:db8:0:1::1'],
    [[0x2001, 0xdb8, 0, 0, 1, 0, 0, 1], '2001:db8::1:0:0:1'],
    [[0x2001, 0xdb8, 1, 1, 1, 1, 0, 1], '2001:db8:1:1:1:1:0:1'],
    [[0xfe80, 0, 0, 0, 0xabcd, 0, 0, 0], 'fe80::abcd:0:0:0'],
  ])('writes %j as %s (RFC 5952)', (groups, expected) => {
    expect(ipv6(v6(groups))).toBe(expected);
  });
  it('computes CRC32C (Castagnoli) like the reference check value', () => {
    expect(crc32c(text('123456789'))).toBe(0xe3069283);
  });
});

describe('readProxyHeader on a socket', () => {
  let server: Server;
  let port: number;
  const accepted: Socket[] = [];
  const waiting: Array<(s: Socket) => void> = [];
  beforeAll(async () => {
    server = createServer((s) => {
      const w = waiting.shift();
      if (w) w(s);
      else accepted.push(s);
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    port = (server.address() as { port: number }).port;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  /** A connected pair: the client side and the server side of one connection. */
  async function pair(): Promise<{ client: Socket; peer: Socket }> {
    const peer = new Promise<Socket>((resolve) => {
      const s = accepted.shift();
      if (s) resolve(s);
      else waiting.push(resolve);
    });
    const client = connect({ host: '127.0.0.1', port });
    await once(client, 'connect');
    return { client, peer: await peer };
  }

  /** Everything the server side receives after the header, until the client ends. */
  async function rest(peer: Socket): Promise<string> {
    let data = '';
    peer.on('data', (d: Buffer) => (data += d.toString('latin1')));
    await once(peer, 'end');
    return data;
  }

  it('reads a v2 header sent one byte at a time and leaves the SMTP bytes after it in the socket', async () => {
    const { client, peer } = await pair();
    const bytes = Buffer.concat([v2(0x21, 0x11, inet('192.0.2.10', '198.51.100.1', 56324, 25)), text('EHLO x\r\n')]);
    const reading = readProxyHeader(peer, 2000);
    for (let i = 0; i < 30; i++) {
      client.write(bytes.subarray(i, i + 1));
      await new Promise((r) => setImmediate(r));
    }
    client.end(bytes.subarray(30));
    const read = await reading;
    expect(read).toMatchObject({ ok: true, header: { version: 2, addresses: { sourceAddress: '192.0.2.10', sourcePort: 56324 } } });
    expect(await rest(peer)).toBe('EHLO x\r\n');
  });

  it('reads a v1 header and the command sent with it in one segment', async () => {
    const { client, peer } = await pair();
    const reading = readProxyHeader(peer, 2000);
    client.end(text('PROXY TCP6 2001:db8::10 2001:db8::1 40000 25\r\nEHLO y\r\n'));
    expect(await reading).toMatchObject({ ok: true, header: { version: 1, addresses: { sourceAddress: '2001:db8::10' } } });
    expect(await rest(peer)).toBe('EHLO y\r\n');
  });

  it.each([
    ['garbage', text('EHLO x\r\n'), 'NOT_PROXY'],
    ['an endless v1 line', text(`PROXY UNKNOWN ${'a'.repeat(500)}`), 'TOO_LONG'],
  ])('refuses %s as soon as it is clear', async (_name, bytes, code) => {
    const { client, peer } = await pair();
    const reading = readProxyHeader(peer, 2000);
    client.write(bytes);
    expect(await reading).toMatchObject({ ok: false, code });
    client.destroy();
    peer.destroy();
  });

  it('gives up after its deadline when nothing comes', async () => {
    const { client, peer } = await pair();
    expect(await readProxyHeader(peer, 150)).toMatchObject({ ok: false, code: 'TIMEOUT' });
    client.destroy();
    peer.destroy();
  });

  it('reports a peer that leaves halfway through the header', async () => {
    const { client, peer } = await pair();
    const reading = readProxyHeader(peer, 2000);
    client.end(PROXY_V2_SIGNATURE.subarray(0, 8));
    expect(await reading).toMatchObject({ ok: false, code: 'CLOSED' });
    peer.destroy();
  });
});
