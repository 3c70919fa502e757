/**
 * Transit behind a real load balancer: HAProxy (Debian's /usr/sbin/haproxy) in TCP mode,
 * round robin over two frontend replicas, `send-proxy-v2` towards them, health-checking
 * their /readyz. HAProxy connects from 127.0.0.200, the one address the organisation
 * trusts to send PROXY headers; clients connect from their own 127.0.0.x addresses, so
 * connector selection by remote IP is really exercised through the load balancer.
 *
 * If the frontends ignored the header every session would come from 127.0.0.200: the
 * IP-scoped relay connector would never be chosen and the logs and headers would name
 * HAProxy, so each assertion below would fail.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { STREAMS, connectBus, scanStream } from '@transit/bus';
import { findBinary, startLocalCluster, startProcess, stopProcess, waitForPort, type LocalCluster, type Supervised } from '@transit/cluster';
import { decodeDeliveryItem, type Origin } from '@transit/envelope';
import { freeClusterPorts, freePort, openSmtpDialogue, smtpTranscript, waitFor, type SmtpDialogue } from '@transit/testkit';
import { exampleOrganisation } from './harness.ts';

const HAPROXY_SOURCE = '127.0.0.200';
const RELAY_CLIENT = '127.0.0.9';
const OTHER_CLIENT = '127.0.0.10';
const DIRECT_CLIENT = '127.0.0.11';
const NODE = 'transit';
const RUN = Date.now().toString(36);

let dir: string;
let cluster: LocalCluster;
let haproxy: Supervised;
let lbPort: number;

function haproxyConfig(): string {
  const server = (replica: number) =>
    `    server fe${replica} ${cluster.host}:${cluster.port(25, replica)} send-proxy-v2 check port ${cluster.httpPort('frontend', replica)}`;
  return [
    'global',
    '    maxconn 500',
    'defaults',
    '    mode tcp',
    '    timeout connect 2s',
    '    timeout client 30s',
    '    timeout server 30s',
    // A refused connect (a stopped frontend) is retried on the other server.
    '    retries 3',
    '    option redispatch',
    'frontend smtp',
    `    bind 127.0.0.1:${lbPort}`,
    '    default_backend frontends',
    'backend frontends',
    '    balance roundrobin',
    `    source ${HAPROXY_SOURCE}`,
    '    option httpchk GET /readyz',
    '    http-check expect status 200',
    '    default-server inter 200ms fall 1 rise 2',
    server(0),
    server(1),
    '',
  ].join('\n');
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'transit-haproxy-'));
  const config = await exampleOrganisation();
  const connectors = config.ReceiveConnectors as Record<string, unknown>[];
  // Refusals answer at once (Exchange's 5 s tarpit would only slow the test down).
  for (const c of connectors) Object.assign(c, { TarpitInterval: 0, AuthTarpitInterval: 0 });
  connectors.push({
    Name: 'LB Relay',
    TransportRole: 'FrontendTransport',
    Bindings: ['0.0.0.0:25'],
    RemoteIPRanges: [RELAY_CLIENT],
    AuthMechanism: ['ExternalAuthoritative'],
    PermissionGroups: ['ExchangeServers'],
  });
  config.LoadBalancers = [{ Name: 'haproxy', Bindings: ['0.0.0.0:25', '[::]:25'], RemoteIPRanges: [HAPROXY_SOURCE], Comment: 'test/haproxy.test.ts' }];
  const configPath = join(dir, 'org.yaml');
  await writeFile(configPath, stringify(config));
  // Only what local delivery needs: one hub, one mailbox worker, two frontends (replica 1 on every port + 100).
  cluster = await startLocalCluster({
    varDir: join(dir, 'var'),
    configPath,
    ...(await freeClusterPorts({ replicas: 2 })),
    roles: [],
    env: { TRANSIT_NODE_NAME: NODE, TRANSIT_DRAIN_TIMEOUT_MS: '5000' },
  });
  try {
    await Promise.all([cluster.startRole('hub'), cluster.startRole('mailbox-delivery'), cluster.startRole('frontend', 0), cluster.startRole('frontend', 1)]);
    lbPort = await freePort();
    const cfg = join(dir, 'haproxy.cfg');
    await writeFile(cfg, haproxyConfig());
    haproxy = startProcess('haproxy', findBinary('haproxy', ['/usr/sbin/haproxy']), ['-db', '-f', cfg], {
      logFile: join(cluster.varDir, 'log', 'haproxy.log'),
    });
    await waitForPort('127.0.0.1', lbPort, 10_000, 'haproxy', () => haproxy.alive());
    // Both frontends answer through HAProxy (banners name the node: transit and transit-1).
    const seen = new Set<string>();
    await waitFor(
      async () => {
        const [greeting] = await smtpTranscript({ host: '127.0.0.1', port: lbPort, localAddress: OTHER_CLIENT, lines: ['QUIT'], allowClose: true });
        const node = /^220 (\S+) /.exec(greeting ?? '')?.[1];
        if (node) seen.add(node);
        return seen.size === 2 ? true : undefined;
      },
      { timeoutMs: 15_000, intervalMs: 50, what: 'both frontends greeting through HAProxy' },
    );
  } catch (err) {
    if (haproxy) await stopProcess(haproxy);
    await cluster.stop();
    throw err;
  }
}, 120_000);

afterAll(async () => {
  if (haproxy) await stopProcess(haproxy);
  await cluster?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
}, 60_000);

/** Every receive protocol log line of both frontends. */
async function protocolLogs(): Promise<string> {
  const dirs = [
    join(cluster.varDir, 'logs', 'ProtocolLog', 'FrontEnd', 'SmtpReceive'),
    join(cluster.varDir, 'logs', 'replica-1', 'ProtocolLog', 'FrontEnd', 'SmtpReceive'),
  ];
  const texts = await Promise.all(dirs.map(async (d) => Promise.all((await readdir(d).catch(() => [] as string[])).map((f) => readFile(join(d, f), 'utf8')))));
  return texts.flat().join('');
}

async function aliceMaildir(): Promise<string[]> {
  const path = join(cluster.mailDir, 'contoso.test', 'alice', 'new');
  const names = await readdir(path).catch(() => [] as string[]);
  return Promise.all(names.map((n) => readFile(join(path, n), 'latin1')));
}

/** transitctl against the test cluster; fails the test on a non-zero exit. */
async function transitctl(...args: string[]): Promise<string> {
  const { stdout } = await promisify(execFile)(process.execPath, [join(import.meta.dirname, '../tools/transitctl/src/main.ts'), ...args], {
    env: { ...process.env, NATS_URL: cluster.natsUrl },
  });
  return stdout;
}

const RELAY_LINES = ['EHLO app.example.org', 'MAIL FROM:<app@example.org>', 'RCPT TO:<someone@example.net>', 'QUIT'];

/** One message to alice as a raw dialogue: the replies, and whether the body was sent (after which a retry could duplicate it). */
async function sendToAlice(source: string, messageId: string, subject: string): Promise<string[]> {
  const body = `From: app@example.org\r\nTo: alice@contoso.test\r\nMessage-ID: ${messageId}\r\nSubject: ${subject}\r\n\r\nthrough HAProxy\r\n.\r\n`;
  return smtpTranscript({
    host: '127.0.0.1',
    port: lbPort,
    localAddress: source,
    lines: ['EHLO app.example.org', 'MAIL FROM:<app@example.org>', 'RCPT TO:<alice@contoso.test>', 'DATA', `DATA-BODY:${body}`, 'QUIT'],
    allowClose: true,
    timeoutMs: 20_000,
  });
}

describe('HAProxy in front of two frontends (PROXY protocol v2)', () => {
  it('chooses IP-scoped connectors by the real client, on both frontends', async () => {
    const nodes = new Set<string>();
    for (let i = 0; i < 4; i++) {
      const relay = await smtpTranscript({ host: '127.0.0.1', port: lbPort, localAddress: RELAY_CLIENT, lines: RELAY_LINES });
      expect(relay[1]).toMatch(/^250-\S+ Hello \[127\.0\.0\.9\]/);
      expect(relay[3]).toBe('250 2.1.5 Recipient OK');
      const other = await smtpTranscript({ host: '127.0.0.1', port: lbPort, localAddress: OTHER_CLIENT, lines: RELAY_LINES });
      expect(other[1]).toMatch(/^250-\S+ Hello \[127\.0\.0\.10\]/);
      expect(other[3]).toBe('550 5.7.54 SMTP; Unable to relay recipient in non-accepted domain');
      for (const greeting of [relay[0], other[0]]) nodes.add(/^220 (\S+) /.exec(greeting!)![1]!);
    }
    // Round robin: the same decisions on both replicas.
    expect([...nodes].sort()).toEqual([NODE, `${NODE}-1`]);
  });

  it('records the client, not HAProxy, in the Received header, the origin and the protocol logs', async () => {
    const messageId = `<haproxy-origin-${RUN}@example.org>`;
    const replies = await sendToAlice(RELAY_CLIENT, messageId, 'origin');
    expect(replies[5]).toMatch(/^250 2\.6\.0 /);
    const message = await waitFor(async () => (await aliceMaildir()).find((m) => m.includes(messageId)), {
      timeoutMs: 20_000,
      what: 'the message in the Maildir',
    });
    expect(message).toMatch(/^Received: from app\.example\.org \(\[127\.0\.0\.9\]\) by transit(-1)? \(Transit\) with ESMTP id /m);
    expect(message).not.toContain(HAPROXY_SOURCE);

    // The envelope the frontend put on the bus (its Safety Net copy after delivery) carries the client too.
    const bus = await connectBus(cluster.natsUrl.split(','), 'haproxy-test', 'once');
    let origin: Origin | undefined;
    try {
      origin = await waitFor(
        async () => {
          let found: Origin | undefined;
          await scanStream(bus, STREAMS.safetyNet, (m) => {
            const item = decodeDeliveryItem(m.data);
            if (item.envelope.messageId === messageId) found = item.envelope.origin;
          });
          return found;
        },
        { timeoutMs: 10_000, what: 'the Safety Net copy' },
      );
    } finally {
      await bus.close();
    }
    expect(origin).toMatchObject({ kind: 'smtp', connector: 'LB Relay', clientIp: RELAY_CLIENT, clientHelo: 'app.example.org' });

    // Default Frontend is Verbose: its sessions (from 127.0.0.10) are logged with the client's endpoint and the load balancer that relayed them.
    const logs = await waitFor(
      async () => {
        const text = await protocolLogs();
        return /,127\.0\.0\.10:\d+,<,RCPT TO:<someone@example\.net>,/.test(text) ? text : undefined;
      },
      { timeoutMs: 5000, what: 'protocol log lines of 127.0.0.10' },
    );
    expect(logs).toMatch(
      /\\Default Frontend,\w+,\d+,127\.0\.0\.1:\d+,127\.0\.0\.10:\d+,\*,PROXY v2 PROXY from load balancer haproxy at 127\.0\.0\.200:\d+,PROXY/,
    );
    expect(logs).not.toMatch(/,127\.0\.0\.200:\d+,[<>+]/);
  });

  it('refuses a PROXY header sent directly by an address that is no load balancer, and a load balancer without one', async () => {
    const direct = cluster.port(25, 0);
    // A plain direct client on the same listener is served as usual.
    const plain = await smtpTranscript({ host: '127.0.0.1', port: direct, localAddress: DIRECT_CLIENT, lines: ['EHLO direct.example.org', 'QUIT'] });
    expect(plain[1]).toMatch(/^250-\S+ Hello \[127\.0\.0\.11\]/);

    // The same client claiming, in a v1 header, to be the relay client: refused, never relayed.
    const spoofed = await smtpTranscript({
      host: '127.0.0.1',
      port: direct,
      localAddress: DIRECT_CLIENT,
      lines: [`PROXY TCP4 ${RELAY_CLIENT} 127.0.0.1 40000 25`, 'EHLO spoof.example.org', 'MAIL FROM:<spoof@example.org>', 'RCPT TO:<someone@example.net>'],
      allowClose: true,
    });
    expect(spoofed[1]).toBe('421 4.7.0 PROXY protocol header not accepted from this address, closing transmission channel');
    expect(spoofed[2]).toBe('(closed)');

    // HAProxy's own address without a header: after the header deadline (5 s), refused before any greeting.
    const bare = await smtpTranscript({ host: '127.0.0.1', port: direct, localAddress: HAPROXY_SOURCE, lines: ['EHLO lb.example.org'], allowClose: true });
    expect(bare[0]).toBe('421 4.7.0 Valid PROXY protocol header required, closing transmission channel');

    const log = await waitFor(
      async () => {
        const text = await readFile(join(cluster.varDir, 'log', 'frontend.log'), 'utf8');
        return text.includes('PROXY header from an address that is not a configured load balancer') &&
          text.includes('no valid PROXY header from a trusted load balancer')
          ? text
          : undefined;
      },
      { timeoutMs: 5000, what: 'the refusals in the frontend log' },
    );
    expect(log).toMatch(/"remote":"127\.0\.0\.11:\d+".*"msg":"PROXY header from an address that is not a configured load balancer; connection refused"/);
    expect(log).toMatch(/"loadBalancer":"haproxy","peer":"127\.0\.0\.200:\d+".*"code":"TIMEOUT"/);
    expect(await protocolLogs()).toMatch(
      /,127\.0\.0\.11:\d+,\*,PROXY v1 header from an address that is not a configured load balancer; connection refused,PROXY/,
    );
  });

  it('keeps mail flowing through the other frontend while one is stopped (SIGTERM), losing and doubling nothing', async () => {
    const lanes = 4;
    const perLane = 10;
    const stopAfter = 12;
    const maxAttempts = 6;
    const accepted = new Map<string, string>(); // Message-ID -> the node that answered 250, in the order of the 250s
    const unconfirmed: string[] = [];
    let stopping: Promise<void> | undefined;

    // A transaction open on the frontend about to be stopped: the drain must let it finish.
    let held: SmtpDialogue | undefined;
    for (let i = 0; i < 4 && !held; i++) {
      const d = await openSmtpDialogue({ host: '127.0.0.1', port: lbPort, localAddress: OTHER_CLIENT });
      if (d.greeting.startsWith(`220 ${NODE}-1 `)) held = d;
      else d.socket.destroy();
    }
    if (!held) throw new Error('no session through HAProxy reached the second frontend in 4 tries');
    const heldId = `<haproxy-held-${RUN}@example.org>`;
    expect(await held.say('EHLO held.example.org')).toMatch(/^250 /);
    expect(await held.say('MAIL FROM:<app@example.org>')).toBe('250 2.1.0 Sender OK');
    expect(await held.say('RCPT TO:<alice@contoso.test>')).toBe('250 2.1.5 Recipient OK');

    const finishHeld = async (session: SmtpDialogue) => {
      // Once the frontend is draining (its /readyz fails), the open transaction is completed.
      await waitFor(
        async () => ((await fetch(`http://127.0.0.1:${cluster.httpPort('frontend', 1)}/readyz`).catch(() => undefined))?.ok === false ? true : undefined),
        {
          timeoutMs: 5000,
          intervalMs: 20,
          what: 'the second frontend to report not ready',
        },
      );
      expect(await session.say('DATA')).toMatch(/^354 /);
      session.socket.write(`From: app@example.org\r\nTo: alice@contoso.test\r\nMessage-ID: ${heldId}\r\nSubject: held\r\n\r\nfinished while draining\r\n`);
      const reply = await session.say('.');
      expect(reply).toMatch(new RegExp(`^250 2\\.6\\.0 .*Hostname=${NODE}-1\\]`));
      accepted.set(heldId, `${NODE}-1`);
      session.socket.destroy();
    };
    let finishing: Promise<void> | undefined;

    const lane = async (n: number) => {
      for (let k = 0; k < perLane; k++) {
        const messageId = `<haproxy-drain-${RUN}-${n}-${k}@example.org>`;
        for (let attempt = 1; attempt <= maxAttempts; attempt++) {
          const replies = await sendToAlice(OTHER_CLIENT, messageId, `drain ${n}-${k}`);
          const final = replies[5];
          if (final?.startsWith('250 ')) {
            accepted.set(messageId, /Hostname=([^\]]+)\]/.exec(final)![1]!);
            break;
          }
          // Sent but not answered: retrying could deliver it twice; such a message is only counted, never resent.
          if (replies.length > 5) {
            unconfirmed.push(`${messageId}: ${JSON.stringify(replies)}`);
            break;
          }
          // Refused or cut before the body (421 4.3.2 from the draining frontend): a client retries.
          await new Promise((r) => setTimeout(r, 100));
        }
        if (!stopping && accepted.size >= stopAfter) {
          stopping = cluster.stopRole('frontend', 1);
          finishing = finishHeld(held);
        }
      }
    };
    await Promise.all(Array.from({ length: lanes }, (_v, n) => lane(n)));
    await finishing;
    await stopping;
    expect(cluster.roleProcess('frontend', 1)!.alive()).toBe(false);

    expect(unconfirmed).toEqual([]);
    expect(accepted.size).toBe(lanes * perLane + 1);
    // Both frontends took mail before the stop; the last ones all went to the survivor.
    const nodes = [...accepted.values()];
    expect(new Set(nodes.slice(0, stopAfter))).toEqual(new Set([NODE, `${NODE}-1`]));
    expect(new Set(nodes.slice(-8))).toEqual(new Set([NODE]));

    const count = (files: string[]) => {
      const byId = new Map<string, number>();
      for (const f of files) {
        const id = /^Message-ID: (<haproxy-(?:drain|held)-[^>]+>)/im.exec(f)?.[1];
        if (id) byId.set(id, (byId.get(id) ?? 0) + 1);
      }
      return byId;
    };
    const delivered = await waitFor(
      async () => {
        const byId = count(await aliceMaildir());
        return [...accepted.keys()].every((id) => byId.has(id)) ? byId : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 250, what: `all ${accepted.size} accepted messages in alice's Maildir` },
    );
    expect([...delivered.keys()].sort()).toEqual([...accepted.keys()].sort());
    expect([...delivered.values()].every((n) => n === 1)).toBe(true);
  }, 180_000);

  it('follows load-balancer changes made with transitctl, live', async () => {
    expect(await transitctl('get', 'lb')).toMatch(/^haproxy\s+0\.0\.0\.0:25, \[::\]:25\s+127\.0\.0\.200\s/m);
    const relayThroughHaproxy = () => smtpTranscript({ host: '127.0.0.1', port: lbPort, localAddress: RELAY_CLIENT, lines: RELAY_LINES, allowClose: true });
    // HAProxy's address no longer trusted: its header is now refused like anyone else's.
    await transitctl('set', 'lb', 'haproxy', '--RemoteIPRanges', '127.0.0.201');
    const refused = await waitFor(
      async () => {
        const replies = await relayThroughHaproxy();
        return replies[1] === '421 4.7.0 PROXY protocol header not accepted from this address, closing transmission channel' ? replies : undefined;
      },
      { timeoutMs: 5000, intervalMs: 100, what: 'the frontend to stop trusting HAProxy' },
    );
    expect(refused[0]).toMatch(/^220 /);
    await transitctl('set', 'lb', 'haproxy', '--RemoteIPRanges', HAPROXY_SOURCE);
    await waitFor(async () => ((await relayThroughHaproxy())[3] === '250 2.1.5 Recipient OK' ? true : undefined), {
      timeoutMs: 5000,
      intervalMs: 100,
      what: 'the frontend to trust HAProxy again',
    });
  });
});
