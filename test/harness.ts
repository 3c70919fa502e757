/**
 * A whole Transit cluster for a test file: real nats-server, redis-server and one process
 * per role, with the example organisation plus a send connector to a local SMTP sink.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decode } from '@msgpack/msgpack';
import { STREAMS, SUBJECTS, connectBus, scanStream } from '@transit/bus';
import { stringify, parse } from 'yaml';
import { startLocalCluster, type LocalCluster } from '@transit/cluster';
import type { Role } from '@transit/service';
import { freeClusterPorts, smtpTranscript, startSmtpSink, waitFor, type SinkReply, type SmtpSink, type SmtpSinkOptions } from '@transit/testkit';

export type Harness = { cluster: LocalCluster; sink: SmtpSink; dir: string; maildirFiles(address: string): Promise<string[]>; close(): Promise<void> };

export type HarnessOptions = {
  rejectRecipient?: (rcpt: string) => SinkReply | undefined;
  /** Holds the sink's answer to a RCPT TO (e.g. while the test kills the sender). */
  beforeRcptReply?: SmtpSinkOptions['beforeRcptReply'];
  /** Roles that run a second replica (on their own ports). */
  replicated?: Role[];
  transport?: Record<string, unknown>;
  /** Changes to the organisation before it seeds the cluster (users, connectors...). */
  prepare?: (config: Record<string, unknown>) => void;
  /** Keep Exchange's 5 s tarpit and auth tarpit (off by default so refusals answer at once). */
  tarpit?: boolean;
  /** Extra environment for every Transit process. */
  env?: NodeJS.ProcessEnv;
};

export async function startHarness(opts: HarnessOptions = {}): Promise<Harness> {
  const dir = await mkdtemp(join(tmpdir(), 'transit-e2e-'));
  const sink = await startSmtpSink({
    recordWire: true,
    rejectRecipient: opts.rejectRecipient,
    ...(opts.beforeRcptReply ? { beforeRcptReply: opts.beforeRcptReply } : {}),
  });
  const base = await exampleOrganisation();
  const config: Record<string, unknown> = {
    ...base,
    TransportSettings: { PickupDirectoryPollInterval: 200, TransientRetrySchedule: [1], ...opts.transport },
    SendConnectors: [{ Name: 'Sink', AddressSpaces: ['*'], DNSRoutingEnabled: false, SmartHosts: [`${sink.host}:${sink.port}`] }],
  };
  if (!opts.tarpit) {
    for (const c of config.ReceiveConnectors as Record<string, unknown>[]) Object.assign(c, { TarpitInterval: 0, AuthTarpitInterval: 0 });
  }
  opts.prepare?.(config);
  const configPath = join(dir, 'org.yaml');
  await writeFile(configPath, stringify(config));
  const replicated = Boolean(opts.replicated?.length);
  const cluster = await startLocalCluster({
    varDir: join(dir, 'var'),
    configPath,
    ...(await freeClusterPorts({ replicas: replicated ? 2 : 1 })),
    ...(replicated ? { replicaRoles: opts.replicated } : {}),
    env: opts.env,
  });
  return {
    cluster,
    sink,
    dir,
    maildirFiles: async (address) => {
      const [local, domain] = address.split('@');
      const path = join(cluster.mailDir, domain!, local!, 'new');
      const names = await readdir(path).catch(() => [] as string[]);
      return Promise.all(names.sort().map((n) => readFile(join(path, n), 'latin1')));
    },
    close: async () => {
      await cluster.stop();
      await sink.close();
      // TRANSIT_TEST_KEEP=1 keeps the harness directory, with every role's log under var/log, for a failure's post-mortem.
      if (process.env.TRANSIT_TEST_KEEP === '1') console.error(`kept the harness directory ${dir}`);
      else await rm(dir, { recursive: true, force: true });
    },
  };
}

/** The example organisation (config/examples/contoso.yaml) as a plain object, to adjust before it seeds a cluster. */
export async function exampleOrganisation(): Promise<Record<string, unknown>> {
  return parse(await readFile(new URL('../config/examples/contoso.yaml', import.meta.url), 'utf8')) as Record<string, unknown>;
}

/** Three NATS nodes (streams with 3 replicas) and two processes of each role in `roles`, on free loopback ports, seeded with `config`. */
export async function startMultiNodeCluster(dir: string, config: Record<string, unknown>, roles: Role[], env?: NodeJS.ProcessEnv): Promise<LocalCluster> {
  const configPath = join(dir, 'org.yaml');
  await writeFile(configPath, stringify(config));
  return startLocalCluster({
    varDir: join(dir, 'var'),
    configPath,
    ...(await freeClusterPorts({ replicas: 2, natsNodes: 3 })),
    roles,
    readyTimeoutMs: 90_000,
    ...(env ? { env } : {}),
  });
}

export async function waitForMaildir(h: Harness, address: string, count: number, timeoutMs = 20_000): Promise<string[]> {
  return waitFor(
    async () => {
      const files = await h.maildirFiles(address);
      return files.length >= count ? files : undefined;
    },
    { timeoutMs, what: `${count} message(s) in ${address}'s Maildir` },
  );
}

/** The one message in `address`'s Maildir containing `marker` (tests share mailboxes, so counts alone race). */
export async function waitForMaildirMessage(h: Harness, address: string, marker: string, timeoutMs = 20_000): Promise<string> {
  return waitFor(async () => (await h.maildirFiles(address)).find((f) => f.includes(marker)), {
    timeoutMs,
    what: `a message containing ${JSON.stringify(marker)} in ${address}'s Maildir`,
  });
}

/** Every event in the MAIL_EVENTS stream (decoded), optionally only those of one message id. */
export async function messageEvents(h: Harness, id?: string): Promise<Array<Record<string, unknown>>> {
  const bus = await connectBus(h.cluster.natsUrl.split(','), 'test', 'once');
  try {
    const out: Array<Record<string, unknown>> = [];
    await scanStream(bus, STREAMS.events, (m) => {
      if (id === undefined || m.subject === SUBJECTS.event(id)) out.push(decode(m.data) as Record<string, unknown>);
    });
    return out;
  } finally {
    await bus.close();
  }
}

/** Runs transitctl against `cluster`, as an administrator would; resolves with its exit code and output. */
export async function runTransitctl(
  cluster: LocalCluster,
  args: string[],
  stdin?: string,
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = execFile(process.execPath, [join(import.meta.dirname, '../tools/transitctl/src/main.ts'), ...args], {
    env: { ...process.env, ...env, NATS_URL: cluster.natsUrl },
  });
  child.stdin!.end(stdin);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number>((resolve) => child.on('close', (c) => resolve(c ?? -1)));
  return { code, stdout, stderr };
}

/**
 * Relays one message to `rcpt` through the example's Application Relay connector (from
 * 127.0.0.2, which may send as contoso.test and relay), with `marker` as its subject and in
 * its body; the test fails unless it is accepted.
 */
export async function relayOne(h: Harness, rcpt: string, marker: string): Promise<void> {
  const body = `From: bob@contoso.test\r\nTo: ${rcpt}\r\nSubject: ${marker}\r\n\r\nThe body of ${marker}\r\n.\r\n`;
  const replies = await smtpTranscript({
    host: '127.0.0.1',
    port: h.cluster.port(25),
    localAddress: '127.0.0.2',
    lines: ['EHLO app.contoso.test', 'MAIL FROM:<bob@contoso.test>', `RCPT TO:<${rcpt}>`, 'DATA', `DATA-BODY:${body}`, 'QUIT'],
  });
  if (!/^250 2\.6\.0 /.test(replies.at(-2) ?? '')) throw new Error(`the message to ${rcpt} was not accepted: ${replies.join(' | ')}`);
}
