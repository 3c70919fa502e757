/**
 * The receive engine with load balancers: real listeners and real sockets from distinct
 * loopback addresses, the engine's own admission (libs/policy) and smtp-server adapter.
 * No bus: these sessions never reach DATA (test/haproxy.test.ts carries mail end to end).
 */
import { once } from 'node:events';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BodyStore, Bus } from '@transit/bus';
import { LiveConfig, parseOrganizationConfig, runtimeSettings, type OrganizationConfig } from '@transit/config';
import { ProtocolLog } from '@transit/logs';
import { freePortOffset, waitFor } from '@transit/testkit';
import { startReceiveEngine, type ReceiveEngine } from './engine.ts';
import { PROXY_V2_SIGNATURE } from './proxy-protocol.ts';
import { loadTlsMaterial } from './tls.ts';

const LB = '127.0.0.200';

function organisation(loadBalancers: unknown[]): OrganizationConfig {
  return parseOrganizationConfig({
    Organization: { Name: 'Contoso' },
    AcceptedDomains: [{ DomainName: 'contoso.test', Default: true }],
    Mailboxes: [{ Name: 'Alice', PrimarySmtpAddress: 'alice@contoso.test' }],
    ReceiveConnectors: [
      {
        Name: 'Default Frontend',
        TransportRole: 'FrontendTransport',
        Bindings: ['0.0.0.0:25'],
        PermissionGroups: ['AnonymousUsers'],
        TarpitInterval: 0,
        ProtocolLoggingLevel: 'Verbose',
      },
      {
        Name: 'Relay',
        TransportRole: 'FrontendTransport',
        Bindings: ['0.0.0.0:25'],
        RemoteIPRanges: ['127.0.0.9'],
        AuthMechanism: ['ExternalAuthoritative'],
        PermissionGroups: ['ExchangeServers'],
      },
      {
        Name: 'One Per Source',
        TransportRole: 'FrontendTransport',
        Bindings: ['0.0.0.0:25'],
        RemoteIPRanges: ['127.0.0.12'],
        PermissionGroups: ['AnonymousUsers'],
        MaxInboundConnectionPerSource: 1,
      },
      { Name: 'Client Frontend', TransportRole: 'FrontendTransport', Bindings: ['0.0.0.0:587'], PermissionGroups: ['AnonymousUsers'], TarpitInterval: 0 },
    ],
    LoadBalancers: loadBalancers,
  });
}

const v4 = (ip: string) => Buffer.from(ip.split('.').map(Number));
const u16 = (n: number) => Buffer.from([n >> 8, n & 0xff]);
/** What HAProxy's send-proxy-v2 sends: PROXY, TCP over IPv4, client then server address and port. */
const proxyV2 = (client: string, clientPort: number) =>
  Buffer.concat([PROXY_V2_SIGNATURE, Buffer.from([0x21, 0x11]), u16(12), v4(client), v4('127.0.0.1'), u16(clientPort), u16(25)]);
const localV2 = Buffer.concat([PROXY_V2_SIGNATURE, Buffer.from([0x20, 0x00]), u16(0)]);
const proxyV1 = (client: string, clientPort: number) => Buffer.from(`PROXY TCP4 ${client} 127.0.0.1 ${clientPort} 25\r\n`);

type Session = { replies: string[]; closed: boolean; socket: Socket };

/**
 * Connects from `source`, sends `preamble` at once (as a load balancer does), then each line
 * after the previous reply. The first reply is the greeting (or the refusal).
 */
async function session(port: number, source: string, preamble: Buffer | undefined, lines: string[], leaveOpen = false): Promise<Session> {
  const socket = connect({ host: '127.0.0.1', port, localAddress: source });
  socket.on('error', () => undefined);
  let buffer = '';
  let closed = false;
  let wake: (() => void) | undefined;
  socket.on('data', (d: Buffer) => {
    buffer += d.toString('latin1');
    wake?.();
  });
  socket.on('close', () => {
    closed = true;
    wake?.();
  });
  await once(socket, 'connect');
  if (preamble) socket.write(preamble);
  const deadline = Date.now() + 8000;
  const reply = async (): Promise<string | undefined> => {
    for (;;) {
      const m = /^(?:\d{3}-[^\r\n]*\r\n)*\d{3}(?: [^\r\n]*)?\r\n/.exec(buffer);
      if (m) {
        buffer = buffer.slice(m[0].length);
        return m[0].trimEnd();
      }
      if (closed || Date.now() > deadline) return undefined;
      await new Promise<void>((resolve) => {
        wake = resolve;
        setTimeout(resolve, 100).unref();
      });
    }
  };
  const replies: string[] = [];
  const first = await reply();
  if (first !== undefined) replies.push(first);
  for (const line of lines) {
    if (closed) break;
    socket.write(`${line}\r\n`);
    const r = await reply();
    if (r === undefined) break;
    replies.push(r);
  }
  // A refusal can follow the greeting without a command (the screen answers the header itself).
  const pause = new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), lines.length === 0 ? 300 : 0));
  const extra = await Promise.race([reply(), pause]);
  if (extra !== undefined) replies.push(extra);
  if (leaveOpen) return { replies, closed, socket };
  socket.end();
  if (!closed) await Promise.race([once(socket, 'close'), new Promise((r) => setTimeout(r, 2000))]);
  return { replies, closed: closed || socket.destroyed, socket };
}

describe('receive engine behind a load balancer (PROXY protocol)', () => {
  let dir: string;
  let engine: ReceiveEngine;
  let live: LiveConfig;
  let revision = 1;
  let port25: number;
  let port587: number;
  const logLines: Array<Record<string, unknown>> = [];
  let protocolLog: ProtocolLog;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'transit-proxy-'));
    const offset = await freePortOffset([25, 587]);
    port25 = 25 + offset;
    port587 = 587 + offset;
    const settings = runtimeSettings({
      TRANSIT_LISTEN_HOST: '127.0.0.1',
      TRANSIT_PORT_OFFSET: String(offset),
      TRANSIT_VAR_DIR: dir,
      TRANSIT_NODE_NAME: 'fe-test',
    });
    const sink = new Writable({
      write(chunk: Buffer, _enc, next) {
        for (const line of chunk.toString().split('\n').filter(Boolean)) logLines.push(JSON.parse(line) as Record<string, unknown>);
        next();
      },
    });
    live = new LiveConfig({ config: organisation([{ Name: 'lb', Bindings: ['0.0.0.0:25'], RemoteIPRanges: [LB] }]), revision });
    protocolLog = new ProtocolLog({ dir: join(dir, 'ProtocolLog'), kind: 'Receive' });
    engine = await startReceiveEngine({
      connectorsFor: (config) => config.ReceiveConnectors,
      live,
      settings,
      // Never used: no session here reaches DATA.
      bus: {} as Bus,
      bodies: {} as BodyStore,
      log: pino({ level: 'info' }, sink),
      tls: await loadTlsMaterial(settings),
      protocolLog,
    });
  });
  afterAll(async () => {
    await engine?.close();
    await protocolLog?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const relayDialogue = ['EHLO client.example', 'MAIL FROM:<app@example.org>', 'RCPT TO:<someone@example.net>', 'QUIT'];

  it('takes the client from a trusted load balancer v2 header: connector, EHLO and relay right follow it', async () => {
    const relayed = await session(port25, LB, proxyV2('127.0.0.9', 40001), relayDialogue);
    expect(relayed.replies[0]).toMatch(/^220 fe-test /);
    expect(relayed.replies[1]).toMatch(/^250-fe-test Hello \[127\.0\.0\.9\]/);
    expect(relayed.replies[3]).toBe('250 2.1.5 Recipient OK');
    const refused = await session(port25, LB, proxyV2('127.0.0.10', 40002), relayDialogue);
    expect(refused.replies[1]).toMatch(/Hello \[127\.0\.0\.10\]/);
    expect(refused.replies[3]).toBe('550 5.7.54 SMTP; Unable to relay recipient in non-accepted domain');
  });

  it('reads v1 headers too', async () => {
    const s = await session(port25, LB, proxyV1('127.0.0.9', 40003), relayDialogue);
    expect(s.replies[1]).toMatch(/Hello \[127\.0\.0\.9\]/);
    expect(s.replies[3]).toBe('250 2.1.5 Recipient OK');
  });

  it("treats LOCAL (the load balancer's health check) as the load balancer itself", async () => {
    const s = await session(port25, LB, localV2, ['EHLO lb.example', 'QUIT']);
    expect(s.replies[1]).toMatch(/Hello \[127\.0\.0\.200\]/);
  });

  it('counts MaxInboundConnectionPerSource per real client, not per load balancer', async () => {
    const held = await session(port25, LB, proxyV2('127.0.0.12', 40010), ['EHLO a.example'], true);
    try {
      expect(held.replies[1]).toMatch(/Hello \[127\.0\.0\.12\]/);
      const second = await session(port25, LB, proxyV2('127.0.0.12', 40011), []);
      expect(second.replies[0]).toBe('421 4.3.2 The maximum number of concurrent server connections has exceeded a limit, closing transmission channel');
      const other = await session(port25, LB, proxyV2('127.0.0.13', 40012), ['QUIT']);
      expect(other.replies[0]).toMatch(/^220 /);
    } finally {
      held.socket.destroy();
    }
  });

  it('refuses a trusted load balancer that sends no valid header, and logs it', async () => {
    const s = await session(port25, LB, Buffer.from('EHLO lb.example\r\n'), []);
    expect(s.replies).toEqual(['421 4.7.0 Valid PROXY protocol header required, closing transmission channel']);
    expect(s.closed).toBe(true);
    const logged = await waitFor(
      () => Promise.resolve(logLines.find((l) => l.msg === 'no valid PROXY header from a trusted load balancer; connection refused')),
      { timeoutMs: 2000, what: 'the log line' },
    );
    expect(logged).toMatchObject({ loadBalancer: 'lb', code: 'NOT_PROXY', peer: expect.stringMatching(/^127\.0\.0\.200:\d+$/) as unknown });
  });

  it('serves a direct client on the same listener as before', async () => {
    const s = await session(port25, '127.0.0.11', undefined, ['EHLO direct.example', 'QUIT']);
    expect(s.replies[1]).toMatch(/Hello \[127\.0\.0\.11\]/);
    expect(s.replies[2]).toBe('221 2.0.0 Service closing transmission channel');
  });

  it.each([
    ['v1', proxyV1('127.0.0.9', 40020)],
    ['v2', proxyV2('127.0.0.9', 40021)],
  ])('refuses a %s header from an address that is no load balancer, logs it, and never lets it choose the client', async (version, header) => {
    const s = await session(port25, '127.0.0.11', header, []);
    expect(s.replies[0]).toMatch(/^220 /);
    expect(s.replies[1]).toBe('421 4.7.0 PROXY protocol header not accepted from this address, closing transmission channel');
    expect(s.replies).toHaveLength(2);
    expect(s.closed).toBe(true);
    const logged = await waitFor(
      () =>
        Promise.resolve(
          logLines.find(
            (l) =>
              l.msg === 'PROXY header from an address that is not a configured load balancer; connection refused' && l.version === Number(version.slice(1)),
          ),
        ),
      {
        timeoutMs: 2000,
        what: 'the log line',
      },
    );
    expect(logged).toMatchObject({ connector: 'Default Frontend', remote: expect.stringMatching(/^127\.0\.0\.11:\d+$/) as unknown });
  });

  it('writes the real client and the load balancer to the protocol log', async () => {
    await session(port25, LB, proxyV2('127.0.0.10', 40030), ['EHLO logged.example', 'QUIT']);
    await protocolLog.flush();
    const files = await readdir(join(dir, 'ProtocolLog'));
    const text = (await Promise.all(files.map((f) => readFile(join(dir, 'ProtocolLog', f), 'utf8')))).join('');
    expect(text).toMatch(/\\Default Frontend,\w+,\d+,127\.0\.0\.1:\d+,127\.0\.0\.10:40030,\*,PROXY v2 PROXY from load balancer lb at 127\.0\.0\.200:\d+,PROXY/);
    expect(text).toMatch(/,127\.0\.0\.10:40030,<,EHLO logged\.example,/);
    expect(text).toMatch(/,127\.0\.0\.11:\d+,\*,PROXY v1 header from an address that is not a configured load balancer; connection refused,PROXY/);
    expect(text).toMatch(/,127\.0\.0\.11:\d+,>,"421 4\.7\.0 PROXY protocol header not accepted from this address, closing transmission channel",/);
    expect(text).not.toMatch(/,127\.0\.0\.200:\d+,<,EHLO logged/);
  });

  it('leaves a listener no load balancer serves untouched: a header there is just an unknown command', async () => {
    const s = await session(port587, LB, proxyV1('127.0.0.9', 40040), ['QUIT']);
    expect(s.replies[0]).toMatch(/^220 /);
    expect(s.replies[1]).toBe('500 5.3.3 Unrecognized command');
  });

  it('follows configuration changes without reopening listeners', async () => {
    live.update({ config: organisation([]), revision: ++revision });
    const plain = await session(port25, LB, undefined, ['EHLO lb.example', 'QUIT']);
    expect(plain.replies[1]).toMatch(/Hello \[127\.0\.0\.200\]/);
    live.update({ config: organisation([{ Name: 'lb', Bindings: ['0.0.0.0:25'], RemoteIPRanges: ['127.0.0.0/24'] }]), revision: ++revision });
    // 127.0.0.11 is now inside the trusted range: it must send a header, and its header counts.
    const trusted = await session(port25, '127.0.0.11', proxyV2('127.0.0.9', 40050), relayDialogue);
    expect(trusted.replies[1]).toMatch(/Hello \[127\.0\.0\.9\]/);
    expect(trusted.replies[3]).toBe('250 2.1.5 Recipient OK');
    expect(
      engine
        .endpoints()
        .map((e) => e.port)
        .sort(),
    ).toEqual([port25, port587].sort());
  });
});
