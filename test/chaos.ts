/**
 * The fault-injection run shared by `npm test` (reduced) and `npm run chaos` (full): a
 * three-node NATS cluster and two replicas of every mail role, N messages (one local and one
 * remote recipient each) sent over C parallel SMTP sessions while a seeded schedule SIGKILLs
 * and restarts frontends, hubs, mailbox and outbound workers, a NATS node, and Redis (which
 * comes back empty). Frontends are killed while one of their sessions is in the middle of
 * DATA, mailbox workers while they write a message file, outbound proxies while they hold a
 * connection to the remote server mid-transaction (found through /proc), when that moment
 * comes within a few seconds. Then it counts, by marker, what reached each Maildir and the
 * sink, and checks each arrived message's event log (its folded state) against that.
 */
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CONSUMERS, STREAMS, connectBus, loadMessage, loadMessageEvents, type Bus } from '@transit/bus';
import { natsServerVersion, type LocalCluster } from '@transit/cluster';
import type { Role } from '@transit/service';
import { smtpTranscript, startSmtpSink, waitFor } from '@transit/testkit';
import { exampleOrganisation, startMultiNodeCluster } from './harness.ts';
import { openFiles, ownerOfConnection } from './proc.ts';

export type ChaosOptions = {
  messages: number;
  sessions: number;
  seed: number;
  killEveryMs: [number, number];
  /**
   * 'chaos' (default): the seeded SIGKILL schedule. 'rolling': a rolling restart instead —
   * each replica of every role (submission and admin too) in turn gets SIGTERM, is waited for, and started again, while
   * sending goes on until the last one is back (`messages` is then a cap).
   */
  schedule?: 'chaos' | 'rolling';
  /** Pause of each session between its messages, so sending spans the kills. */
  paceMs: [number, number];
  /**
   * How long after the last kill every acknowledged message may take to reach every
   * recipient (seconds); the run waits that long and reports `recoverySeconds`, undefined
   * when it did not happen in time. Default 120.
   */
  recoveryBoundSeconds?: number;
  /** Keep the run's directory (var/log has every process's log) instead of removing it; its path is in the report. */
  keepDir?: boolean;
  /** TRANSIT_STALL_SECONDS of the cluster's roles (default 30): a worker stalled that long says so on /readyz, which the samples record. */
  stallSeconds?: number;
  log?: (line: string) => void;
};

/** One sample of a durable consumer: what waits for it (num_pending) and what it holds unacknowledged. */
export type ConsumerSample = { pending: number; ackPending: number; waiting: number; redelivered: number };
/** The work queues' depth at one moment of the run, every 5 s (undefined: the consumer did not answer). */
export type QueueSample = {
  t: number;
  hub?: ConsumerSample;
  mailbox?: ConsumerSample;
  outbound?: ConsumerSample;
  /** Worker replicas whose /readyz said stalled (role#replica: reason). */ stalled?: string[];
};

export type ChaosReport = {
  /** The nats-server the cluster ran (findBinary, libs/cluster/src/processes.ts): 2.9 loses work items in these faults. */
  natsServer: string;
  sent: number;
  acknowledged: number;
  refused: number;
  /** The client never saw a final reply (connection cut, timeout): delivery either way is correct. */
  unknown: number;
  deliveredLocal: number;
  deliveredRemote: number;
  lost: string[];
  /** More than one copy in a Maildir: must never happen (delivery there is idempotent). */
  duplicatesLocal: string[];
  /**
   * More than one copy at the remote sink. SMTP has no two-phase commit: an outbound proxy
   * killed after the remote 250 and before it recorded the delivery sends again when the item
   * comes back. Transit narrows that window to the Redis write; it cannot close it.
   */
  duplicatesRemote: string[];
  /**
   * Remote duplicates that SMTP's window does not explain. A message with n copies at the sink
   * is explained when at least n - 1 of them were never confirmed (the sender sent nothing
   * after the final dot and its connection then broke: it may have died before reading the
   * 250; see libs/testkit/src/smtp-sink.ts), or when at most one outbound attempt recorded its
   * delivery (the others died between the remote 250 and their Redis record). A duplicate two
   * attempts both recorded is Transit's own doing. Must be empty.
   */
  duplicatesRemoteUnexplained: string[];
  outboundKills: number;
  /** Work items still in mail.submit / mail.deliver.* after everything arrived (should be none). */
  stuck: number;
  /** Appeared although the client was refused (an ambiguous 4xx; see README). */
  appearedWithout250: string[];
  kills: string[];
  /** Arrived messages whose event log was folded and compared with where copies arrived. */
  eventLogsChecked: number;
  /** Arrived messages whose folded state does not say Delivered for every recipient (should be none). */
  eventLogsInconsistent: string[];
  /** Seconds from the last kill until every acknowledged message had reached every recipient; undefined: not within the bound. */
  recoverySeconds?: number;
  recoveryBoundSeconds: number;
  /** Seconds from the start of the run to the last kill. */
  lastKillAt?: number;
  /** The work queues every 5 s (pending + ack pending per consumer): a stall shows as a depth that stops falling. */
  queueDepth: QueueSample[];
  /** The kept directory (keepDir). */
  dir?: string;
  /** From the processes' logs: nats-server replica resets of the work-queue streams, stranded items requeued, pull loops restarted. */
  streamResets: number;
  requeued: number;
  /** Consumers re-created because their stream went back behind them, or they stopped handing out items they hold (libs/bus consume.ts). */
  consumersRecreated: number;
  /** Delivery items the hubs queued again from their shadow (services/hub/src/shadow-check.ts). */
  reissuedFromShadow: number;
  pullRestarts: number;
  /** Samples in which some worker replica reported itself stalled on /readyz. */
  stalledSamples: number;
  seconds: number;
};

/** Polls `check` every few milliseconds for up to `ms`; true once it held. */
async function within(ms: number, check: () => Promise<boolean> | boolean): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 2));
  }
  return false;
}

const MOMENT_WAIT_MS = 10_000;

const ROLES: Role[] = ['frontend', 'hub', 'mailbox-delivery', 'outbound-proxy'];
/** A rolling restart goes through every role, those that carry no SMTP traffic in the run included. */
const ALL_ROLES: Role[] = [...ROLES, 'submission', 'admin'];

/** mulberry32: a small seeded PRNG, so a failing schedule can be replayed with its seed. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SAMPLED: Array<['hub' | 'mailbox' | 'outbound', string, string]> = [
  ['hub', STREAMS.submit, CONSUMERS.hub],
  ['mailbox', STREAMS.deliver, CONSUMERS.mailboxDelivery],
  ['outbound', STREAMS.deliver, CONSUMERS.outboundProxy],
];

async function sampleQueues(bus: Bus, t: number): Promise<QueueSample> {
  const sample: QueueSample = { t };
  await Promise.all(
    SAMPLED.map(async ([key, stream, consumer]) => {
      const info = await bus.jsm.consumers.info(stream, consumer).catch(() => undefined);
      if (info) sample[key] = { pending: info.num_pending, ackPending: info.num_ack_pending, waiting: info.num_waiting, redelivered: info.num_redelivered };
    }),
  );
  return sample;
}

const depth = (c: ConsumerSample | undefined) => (c ? String(c.pending + c.ackPending) : '?');
/** `t=35s hub 0 mailbox 3 outbound 120 (pending 100, ack pending 20, pulls waiting 2)`. */
export function formatQueueSample(s: QueueSample): string {
  const o = s.outbound;
  return `t=${s.t}s queues: hub ${depth(s.hub)} mailbox ${depth(s.mailbox)} outbound ${depth(o)}${o ? ` (pending ${o.pending}, ack pending ${o.ackPending}, pulls waiting ${o.waiting}, redelivered ${o.redelivered})` : ''}${s.stalled?.length ? `; stalled: ${s.stalled.join(', ')}` : ''}`;
}

const WORKER_ROLES: Role[] = ['hub', 'mailbox-delivery', 'outbound-proxy'];

/** The worker replicas whose /readyz answers 503 with a stall (a dead or restarting replica does not answer and is left out). */
async function stalledWorkers(c: LocalCluster): Promise<string[]> {
  const out: string[] = [];
  await Promise.all(
    WORKER_ROLES.flatMap((role) =>
      [0, 1].map(async (replica) => {
        const res = await fetch(`http://${c.host}:${c.httpPort(role, replica)}/readyz`, { signal: AbortSignal.timeout(2000) }).catch(() => undefined);
        if (!res || res.status !== 503) return;
        const body = (await res.json().catch(() => ({}))) as { stalled?: string };
        if (body.stalled) out.push(`${role}#${replica} (${body.stalled})`);
      }),
    ),
  );
  return out.sort();
}

/** Counts lines matching `pattern` in the run's process logs whose names start with `prefix`. */
/** The lines of the process logs in `logDir` whose file name starts with `prefix` and that match `pattern`, each as `<file>: <line>`. */
export async function logLinesMatching(logDir: string, prefix: string, pattern: RegExp): Promise<string[]> {
  const out: string[] = [];
  for (const f of await readdir(logDir).catch(() => [] as string[])) {
    if (!f.startsWith(prefix)) continue;
    for (const line of (await readFile(join(logDir, f), 'utf8').catch(() => '')).split('\n')) if (pattern.test(line)) out.push(`${f}: ${line}`);
  }
  return out;
}

async function countInLogs(logDir: string, prefix: string, pattern: RegExp): Promise<number> {
  return (await logLinesMatching(logDir, prefix, pattern)).length;
}

/** Message id → outbound attempts that recorded a delivery ("outbound attempt finished" with delivered > 0), from every outbound proxy's log. */
async function deliveriesRecorded(logDir: string): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  for (const f of await readdir(logDir).catch(() => [] as string[])) {
    if (!f.startsWith('outbound-proxy')) continue;
    for (const line of (await readFile(join(logDir, f), 'utf8').catch(() => '')).split('\n')) {
      if (!line.includes('"msg":"outbound attempt finished"')) continue;
      const id = /"id":"([^"]+)"/.exec(line)?.[1];
      const delivered = Number(/"delivered":(\d+)/.exec(line)?.[1] ?? 0);
      if (id && delivered > 0) counts.set(id, (counts.get(id) ?? 0) + 1);
    }
  }
  return counts;
}

export async function runChaos(opts: ChaosOptions): Promise<ChaosReport> {
  const started = Date.now();
  const log = opts.log ?? (() => undefined);
  const rnd = random(opts.seed);
  const bound = opts.recoveryBoundSeconds ?? 120;
  const dir = await mkdtemp(join(tmpdir(), 'transit-chaos-'));
  const queueDepth: QueueSample[] = [];
  let monitor: { bus: Bus; timer: NodeJS.Timeout } | undefined;
  // An outbound proxy marked for death is killed while the sink holds its RCPT reply.
  let outboundVictim: { pid: number; kill: () => Promise<void>; hit?: boolean } | undefined;
  const sink = await startSmtpSink({
    beforeRcptReply: async (_rcpt, client) => {
      const victim = outboundVictim;
      if (!victim || victim.hit || (await ownerOfConnection([victim.pid], client.port)) !== victim.pid) return;
      victim.hit = true;
      await victim.kill();
    },
  });
  let cluster: LocalCluster | undefined;
  try {
    const config = await exampleOrganisation();
    config.SendConnectors = [{ Name: 'Sink', AddressSpaces: ['*'], DNSRoutingEnabled: false, SmartHosts: [`${sink.host}:${sink.port}`] }];
    config.TransportSettings = { TransientRetrySchedule: [1] };
    // A killed worker's items come back after 3 s; sends wait out outages up to 10 s.
    // Maildir writes are held 30 ms (test/fixtures/slow-maildir-write.ts) so a kill can land inside one.
    const roles = opts.schedule === 'rolling' ? ALL_ROLES : ROLES;
    cluster = await startMultiNodeCluster(dir, config, roles, {
      TRANSIT_ACK_WAIT_SECONDS: '3',
      TRANSIT_PUBLISH_BUDGET_MS: '10000',
      TRANSIT_STALL_SECONDS: String(opts.stallSeconds ?? 30),
      NODE_OPTIONS: `--import=${join(import.meta.dirname, 'fixtures', 'slow-maildir-write.ts')}`,
    });
    const c = cluster;
    log(`cluster up in ${((Date.now() - started) / 1000).toFixed(1)} s (nats-server ${natsServerVersion()})`);
    // The queues' depth every 5 s, on a connection that outlives NATS kills like a service's.
    const monitorBus = await connectBus(c.natsUrl.split(','), 'chaos-monitor');
    const since = Date.now();
    let sampling = false;
    monitor = {
      bus: monitorBus,
      timer: setInterval(() => {
        if (sampling) return;
        sampling = true;
        void sampleQueues(monitorBus, Math.round((Date.now() - since) / 1000))
          .then(async (s) => {
            const stalled = await stalledWorkers(c);
            if (stalled.length) s.stalled = stalled;
            return s;
          })
          .then((s) => {
            queueDepth.push(s);
            log(formatQueueSample(s));
          })
          .finally(() => (sampling = false));
      }, 5000),
    };

    // The chaos schedule: one victim at a time, always leaving a replica of its kind alive.
    const kills: string[] = [];
    let lastKill: number | undefined;
    let sending = true;
    /** Sessions of each frontend replica paused in the middle of DATA right now. */
    const midData = [0, 0];
    const pidOf = (role: Role, replica: number) => c.roleProcess(role, replica)?.child.pid ?? -1;
    /** Kills a role replica at its telling moment if that comes within MOMENT_WAIT_MS; says which moment it was. */
    const killAtMoment = async (role: Role, replica: number): Promise<string> => {
      const kill = () => c.killRole(role, replica);
      if (role === 'frontend') {
        const hit = await within(MOMENT_WAIT_MS, () => midData[replica]! > 0);
        await kill();
        return hit ? ' (mid-DATA)' : '';
      }
      if (role === 'mailbox-delivery') {
        const pid = pidOf(role, replica);
        const writing = (files: string[]) => files.some((f) => f.startsWith(c.mailDir) && f.slice(c.mailDir.length).includes('/tmp/'));
        const hit = await within(MOMENT_WAIT_MS, async () => writing(await openFiles(pid)));
        await kill();
        return hit ? ' (mid-write)' : '';
      }
      if (role === 'outbound-proxy') {
        const victim: NonNullable<typeof outboundVictim> = { pid: pidOf(role, replica), kill };
        outboundVictim = victim;
        await within(MOMENT_WAIT_MS, () => victim.hit === true);
        outboundVictim = undefined;
        if (!victim.hit) await kill();
        return victim.hit ? ' (mid-SMTP)' : '';
      }
      await kill();
      return '';
    };
    let rollingDone = false;
    const rolling = async () => {
      for (const role of roles) {
        for (const replica of [0, 1]) {
          await new Promise((r) => setTimeout(r, 500));
          log(`SIGTERM ${role}#${replica}`);
          await c.stopRole(role, replica);
          lastKill = Date.now();
          kills.push(`${role}#${replica} (SIGTERM, restarted)`);
          await c.startRole(role, replica);
        }
      }
      rollingDone = true;
    };
    const chaos =
      opts.schedule === 'rolling'
        ? rolling()
        : (async () => {
            const victims: Array<{ name: string; kill: () => Promise<string | void>; revive: () => Promise<void> }> = [
              ...ROLES.flatMap((role) =>
                [0, 1].map((replica) => ({ name: `${role}#${replica}`, kill: () => killAtMoment(role, replica), revive: () => c.startRole(role, replica) })),
              ),
              ...[0, 1, 2].map((node) => ({ name: `nats#${node}`, kill: () => c.stopNats(node, true), revive: () => c.startNats(node) })),
              { name: 'redis (restarts empty)', kill: () => c.stopRedis(true), revive: () => c.startRedis() },
            ];
            // A seeded shuffle, taken in turn: every kind of victim comes up before any comes twice.
            const order = victims
              .map((v) => ({ v, k: rnd() }))
              .sort((a, b) => a.k - b.k)
              .map((x) => x.v);
            for (let turn = 0; sending; turn++) {
              const [lo, hi] = opts.killEveryMs;
              await new Promise((r) => setTimeout(r, lo + rnd() * (hi - lo)));
              if (!sending) break;
              const victim = order[turn % order.length]!;
              const moment = (await victim.kill()) ?? '';
              lastKill = Date.now();
              kills.push(`${victim.name}${moment}`);
              log(`SIGKILL ${victim.name}${moment}`);
              await new Promise((r) => setTimeout(r, 300 + rnd() * 1200));
              await victim.revive().catch((err: Error) => log(`could not restart ${victim.name}: ${err.message}`));
            }
          })();

    type Outcome = 'acknowledged' | 'refused' | 'unknown';
    const outcomes = new Map<string, { outcome: Outcome; local: string }>();
    let next = 0;
    const sender = async () => {
      for (;;) {
        const i = next++;
        if (i >= opts.messages || rollingDone) return;
        const marker = `chaos-${opts.seed}-${i}`;
        const local = i % 2 === 0 ? 'alice@contoso.test' : 'bob@contoso.test';
        const replica = i % 2;
        const pause = 20 + rnd() * 200;
        let outcome: Outcome;
        try {
          // The message goes in two parts with a pause between: a frontend killed then dies mid-DATA.
          const r = await smtpTranscript({
            host: '127.0.0.1',
            port: c.port(25, replica),
            localAddress: '127.0.0.2', // the Application Relay connector: may relay to the sink
            lines: [
              'EHLO chaos.example.org',
              'MAIL FROM:<app@contoso.test>',
              `RCPT TO:<${local}>`,
              `RCPT TO:<r${i}@example.net>`,
              'DATA',
              `DATA-PART:From: app@contoso.test\r\nSubject: ${marker}\r\n`,
              `DATA-BODY:\r\n${marker}\r\n.\r\n`,
              'QUIT',
            ],
            beforeEntry: async (entry) => {
              if (entry !== 6) return;
              midData[replica]!++;
              await new Promise((res) => setTimeout(res, pause));
              midData[replica]!--;
            },
            timeoutMs: 30_000,
            allowClose: true,
          });
          const final = r[6];
          outcome = final?.startsWith('250 ') ? 'acknowledged' : final && /^[45]\d\d /.test(final) ? 'refused' : 'unknown';
        } catch (err) {
          // Never connected (the replica was down): certainly not accepted.
          outcome = /ECONNREFUSED/.test((err as Error).message) ? 'refused' : 'unknown';
        }
        outcomes.set(marker, { outcome, local });
        const [lo, hi] = opts.paceMs;
        await new Promise((r) => setTimeout(r, lo + rnd() * (hi - lo)));
      }
    };
    await Promise.all(Array.from({ length: opts.sessions }, sender));
    sending = false;
    await chaos;
    log(`sent ${outcomes.size}; waiting for delivery`);

    /** Marker → Transit's message id, from the Received header the frontend wrote. */
    const ids = new Map<string, string>();
    // Maildir file name → marker: a file is read once, so a poll costs a directory listing (runs of 10,000 messages and more).
    const localFiles = new Map<string, string | undefined>();
    const countLocal = async () => {
      const counts = new Map<string, number>();
      for (const user of ['alice', 'bob']) {
        const path = join(c.mailDir, 'contoso.test', user, 'new');
        for (const f of await readdir(path).catch(() => [] as string[])) {
          const key = `${user}/${f}`;
          if (!localFiles.has(key)) {
            const text = await readFile(join(path, f), 'latin1').catch(() => undefined);
            if (text === undefined) continue;
            const m = /Subject: (chaos-\d+-\d+)\r\n/.exec(text);
            localFiles.set(key, m?.[1]);
            const id = /\(Transit\) with \S+ id ([^;\s]+);/.exec(text)?.[1];
            if (m && id) ids.set(m[1]!, id);
          }
          const marker = localFiles.get(key);
          if (marker) counts.set(marker, (counts.get(marker) ?? 0) + 1);
        }
      }
      return counts;
    };
    const remoteMarkers: Array<string | undefined> = [];
    const countRemote = () => {
      for (let i = remoteMarkers.length; i < sink.messages.length; i++)
        remoteMarkers.push(/Subject: (chaos-\d+-\d+)\r\n/.exec(sink.messages[i]!.data.toString('latin1'))?.[1]);
      const counts = new Map<string, number>();
      for (const m of remoteMarkers) if (m) counts.set(m, (counts.get(m) ?? 0) + 1);
      return counts;
    };
    const acked = [...outcomes].filter(([, o]) => o.outcome === 'acknowledged').map(([m]) => m);
    const everything = async () => {
      const local = await countLocal();
      const remote = countRemote();
      return acked.every((m) => local.has(m) && remote.has(m)) ? { local, remote } : undefined;
    };
    // Recovery: from the last kill until every acknowledged message is at every recipient, within the bound.
    const from = lastKill ?? Date.now();
    const settled = await waitFor(everything, {
      timeoutMs: Math.max(0, from + bound * 1000 - Date.now()),
      intervalMs: 1000,
      what: 'every acknowledged message at its recipients',
    }).catch(() => undefined);
    const recoverySeconds = settled ? Math.round((Date.now() - from) / 100) / 10 : undefined;
    log(
      settled
        ? `recovery: everything acknowledged arrived ${recoverySeconds} s after the last kill (bound ${bound} s)`
        : `not everything acknowledged arrived within ${bound} s of the last kill`,
    );
    // Let redeliveries that could double something arrive before counting.
    await new Promise((r) => setTimeout(r, 5000));
    const local = await countLocal();
    const remote = countRemote();
    if (!settled) {
      log('not everything acknowledged arrived in time');
      const s = await sampleQueues(monitorBus, Math.round((Date.now() - since) / 1000));
      log(`consumers now: ${JSON.stringify(s)}`);
    }

    const lost = acked.filter((m) => !local.has(m) || !remote.has(m));
    // Items a killed worker held come back after the ack wait (3 s here) and are settled then.
    const bus = await connectBus(c.natsUrl.split(','), 'chaos', 'once');
    let stuck = 0;
    const eventLogsInconsistent: string[] = [];
    try {
      const inQueues = async () => (await bus.jsm.streams.info(STREAMS.submit)).state.messages + (await bus.jsm.streams.info(STREAMS.deliver)).state.messages;
      stuck = await waitFor(async () => ((await inQueues()) === 0 ? 0 : undefined), {
        timeoutMs: settled ? 90_000 : 5000,
        intervalMs: 1000,
        what: 'empty work queues',
      }).catch(() => inQueues());
      // Each arrived message's history, folded, must say what the Maildir and the sink say (16 at a time: long runs have tens of thousands).
      const entries = [...ids];
      // A read can time out while the cluster is still settling after the kills: ask again (bounded), never count it as a verdict.
      const read = async <T>(what: () => Promise<T>): Promise<T> => {
        for (let attempt = 1; ; attempt++) {
          try {
            return await what();
          } catch (err) {
            if (attempt >= 5 || (err as Error).name !== 'TimeoutError') throw err;
            await new Promise((r) => setTimeout(r, 1000 * attempt));
          }
        }
      };
      const checkOne = async ([marker, id]: [string, string]) => {
        const state = await read(() => loadMessage(bus, id));
        const recipients = Object.values(state.recipients);
        const wrong = recipients.filter((r) => r.status !== 'Delivered').map((r) => `${r.address}: ${r.status}`);
        if (recipients.length < 2) wrong.push(`${recipients.length} recipient(s) in the log`);
        if (wrong.length) {
          const history = (await read(() => loadMessageEvents(bus, id))).map(
            (e) => `${e.type}${'hop' in e ? `@${e.hop}` : ''}${'recipients' in e ? `[${e.recipients.join(' ')}]` : ''}#${e.seq}`,
          );
          eventLogsInconsistent.push(`${marker} (${id}): ${wrong.join(', ')}; log: ${history.join(', ')}`);
        }
      };
      await Promise.all(
        Array.from({ length: 16 }, async () => {
          for (let entry = entries.pop(); entry; entry = entries.pop()) await checkOne(entry);
        }),
      );
    } finally {
      await bus.close();
    }
    const logDir = join(c.varDir, 'log');
    const streamResets = await countInLogs(logDir, 'nats-server', /Resetting stream cluster state for '\$G > MAIL_(SUBMIT|DELIVER)'/);
    const requeued = await countInLogs(logDir, '', /"msg":"stranded work item requeued"/);
    const consumersRecreated = await countInLogs(logDir, '', /"msg":"consumer re-created/);
    const reissuedFromShadow = await countInLogs(logDir, 'hub', /"msg":"delivery item lost by the stream; queued again from its shadow"/);
    const pullRestarts = await countInLogs(logDir, '', /"msg":"pull loop restarted"/);
    const duplicatesLocal = [...outcomes.keys()].filter((m) => (local.get(m) ?? 0) > 1);
    const duplicatesRemote = [...outcomes.keys()].filter((m) => (remote.get(m) ?? 0) > 1);
    // Over the copies `remote` counted (remoteMarkers holds one marker per sink message up to there).
    const unconfirmed = new Map<string, number>();
    remoteMarkers.forEach((marker, i) => {
      if (marker && sink.unconfirmed(sink.messages[i]!)) unconfirmed.set(marker, (unconfirmed.get(marker) ?? 0) + 1);
    });
    // And how often an outbound proxy recorded a delivery of each (its "attempt finished" line comes after the Redis record):
    // a second copy is SMTP's window when at most one attempt got that far; it is a real duplicate when two did.
    const finished = await deliveriesRecorded(logDir);
    const idOf = new Map<string, string>();
    remoteMarkers.forEach((marker, i) => {
      const id = marker ? /\(Transit\) with \S+ id ([^;\s]+);/.exec(sink.messages[i]!.data.toString('latin1'))?.[1] : undefined;
      if (marker && id) idOf.set(marker, id);
    });
    const duplicatesRemoteUnexplained = duplicatesRemote.filter(
      (m) => (unconfirmed.get(m) ?? 0) < remote.get(m)! - 1 && (finished.get(idOf.get(m) ?? '') ?? 0) > 1,
    );
    const appearedWithout250 = [...outcomes].filter(([m, o]) => o.outcome === 'refused' && (local.has(m) || remote.has(m))).map(([m]) => m);
    return {
      natsServer: natsServerVersion(),
      sent: outcomes.size,
      acknowledged: acked.length,
      refused: [...outcomes.values()].filter((o) => o.outcome === 'refused').length,
      unknown: [...outcomes.values()].filter((o) => o.outcome === 'unknown').length,
      deliveredLocal: [...local.values()].reduce((a, b) => a + b, 0),
      deliveredRemote: [...remote.values()].reduce((a, b) => a + b, 0),
      lost,
      duplicatesLocal,
      duplicatesRemote,
      duplicatesRemoteUnexplained,
      outboundKills: kills.filter((k) => k.startsWith('outbound-proxy')).length,
      stuck,
      appearedWithout250,
      kills,
      eventLogsChecked: ids.size,
      eventLogsInconsistent,
      ...(recoverySeconds !== undefined ? { recoverySeconds } : {}),
      recoveryBoundSeconds: bound,
      ...(lastKill !== undefined ? { lastKillAt: Math.round((lastKill - started) / 1000) } : {}),
      queueDepth,
      streamResets,
      requeued,
      consumersRecreated,
      reissuedFromShadow,
      pullRestarts,
      stalledSamples: queueDepth.filter((q) => q.stalled?.length).length,
      ...(opts.keepDir ? { dir } : {}),
      seconds: Math.round((Date.now() - started) / 1000),
    };
  } finally {
    if (monitor) {
      clearInterval(monitor.timer);
      await monitor.bus.close().catch(() => undefined);
    }
    await cluster?.stop();
    await sink.close();
    if (opts.keepDir) {
      await writeFile(join(dir, 'queue-depth.json'), JSON.stringify(queueDepth)).catch(() => undefined);
      log(`kept ${dir}`);
    } else await rm(dir, { recursive: true, force: true });
  }
}
