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
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { STREAMS, connectBus, loadMessage, loadMessageEvents } from '@transit/bus';
import type { LocalCluster } from '@transit/cluster';
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
  log?: (line: string) => void;
};

export type ChaosReport = {
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

export async function runChaos(opts: ChaosOptions): Promise<ChaosReport> {
  const started = Date.now();
  const log = opts.log ?? (() => undefined);
  const rnd = random(opts.seed);
  const dir = await mkdtemp(join(tmpdir(), 'transit-chaos-'));
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
      NODE_OPTIONS: `--import=${join(import.meta.dirname, 'fixtures', 'slow-maildir-write.ts')}`,
    });
    const c = cluster;
    log(`cluster up in ${((Date.now() - started) / 1000).toFixed(1)} s`);

    // The chaos schedule: one victim at a time, always leaving a replica of its kind alive.
    const kills: string[] = [];
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
          kills.push(`${role}#${replica} (SIGTERM, restarted)`);
          await c.startRole(role, replica);
        }
      }
      rollingDone = true;
    };
    const chaos = opts.schedule === 'rolling' ? rolling() : (async () => {
      const victims: Array<{ name: string; kill: () => Promise<string | void>; revive: () => Promise<void> }> = [
        ...ROLES.flatMap((role) => [0, 1].map((replica) => ({ name: `${role}#${replica}`, kill: () => killAtMoment(role, replica), revive: () => c.startRole(role, replica) }))),
        ...[0, 1, 2].map((node) => ({ name: `nats#${node}`, kill: () => c.stopNats(node, true), revive: () => c.startNats(node) })),
        { name: 'redis (restarts empty)', kill: () => c.stopRedis(true), revive: () => c.startRedis() },
      ];
      // A seeded shuffle, taken in turn: every kind of victim comes up before any comes twice.
      const order = victims.map((v) => ({ v, k: rnd() })).sort((a, b) => a.k - b.k).map((x) => x.v);
      for (let turn = 0; sending; turn++) {
        const [lo, hi] = opts.killEveryMs;
        await new Promise((r) => setTimeout(r, lo + rnd() * (hi - lo)));
        if (!sending) break;
        const victim = order[turn % order.length]!;
        const moment = (await victim.kill()) ?? '';
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
            lines: ['EHLO chaos.example.org', 'MAIL FROM:<app@contoso.test>', `RCPT TO:<${local}>`, `RCPT TO:<r${i}@example.net>`, 'DATA', `DATA-PART:From: app@contoso.test\r\nSubject: ${marker}\r\n`, `DATA-BODY:\r\n${marker}\r\n.\r\n`, 'QUIT'],
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
    const countLocal = async () => {
      const counts = new Map<string, number>();
      for (const user of ['alice', 'bob']) {
        const path = join(c.mailDir, 'contoso.test', user, 'new');
        for (const f of await readdir(path).catch(() => [] as string[])) {
          const text = await readFile(join(path, f), 'latin1');
          const m = /Subject: (chaos-\d+-\d+)\r\n/.exec(text);
          if (!m) continue;
          counts.set(m[1]!, (counts.get(m[1]!) ?? 0) + 1);
          const id = /\(Transit\) with \S+ id ([^;\s]+);/.exec(text)?.[1];
          if (id) ids.set(m[1]!, id);
        }
      }
      return counts;
    };
    const countRemote = () => {
      const counts = new Map<string, number>();
      for (const m of sink.messages) {
        const found = /Subject: (chaos-\d+-\d+)\r\n/.exec(m.data.toString('latin1'));
        if (found) counts.set(found[1]!, (counts.get(found[1]!) ?? 0) + 1);
      }
      return counts;
    };
    const acked = [...outcomes].filter(([, o]) => o.outcome === 'acknowledged').map(([m]) => m);
    const everything = async () => {
      const local = await countLocal();
      const remote = countRemote();
      return acked.every((m) => local.has(m) && remote.has(m)) ? { local, remote } : undefined;
    };
    const settled = await waitFor(everything, { timeoutMs: 120_000, intervalMs: 1000, what: 'every acknowledged message at its recipients' }).catch(() => undefined);
    // Let redeliveries that could double something arrive before counting.
    await new Promise((r) => setTimeout(r, 5000));
    const local = await countLocal();
    const remote = countRemote();
    if (!settled) log('not everything acknowledged arrived in time');

    const lost = acked.filter((m) => !local.has(m) || !remote.has(m));
    // Items a killed worker held come back after the ack wait (3 s here) and are settled then.
    const bus = await connectBus(c.natsUrl.split(','), 'chaos', 'once');
    let stuck = 0;
    const eventLogsInconsistent: string[] = [];
    try {
      const inQueues = async () => (await bus.jsm.streams.info(STREAMS.submit)).state.messages + (await bus.jsm.streams.info(STREAMS.deliver)).state.messages;
      stuck = await waitFor(async () => ((await inQueues()) === 0 ? 0 : undefined), { timeoutMs: 90_000, intervalMs: 1000, what: 'empty work queues' }).catch(() => inQueues());
      // Each arrived message's history, folded, must say what the Maildir and the sink say.
      for (const [marker, id] of ids) {
        const state = await loadMessage(bus, id);
        const recipients = Object.values(state.recipients);
        const wrong = recipients.filter((r) => r.status !== 'Delivered').map((r) => `${r.address}: ${r.status}`);
        if (recipients.length < 2) wrong.push(`${recipients.length} recipient(s) in the log`);
        if (wrong.length) {
          const history = (await loadMessageEvents(bus, id)).map((e) => `${e.type}${'hop' in e ? `@${e.hop}` : ''}${'recipients' in e ? `[${e.recipients.join(' ')}]` : ''}#${e.seq}`);
          eventLogsInconsistent.push(`${marker} (${id}): ${wrong.join(', ')}; log: ${history.join(', ')}`);
        }
      }
    } finally {
      await bus.close();
    }
    const duplicatesLocal = [...outcomes.keys()].filter((m) => (local.get(m) ?? 0) > 1);
    const duplicatesRemote = [...outcomes.keys()].filter((m) => (remote.get(m) ?? 0) > 1);
    const appearedWithout250 = [...outcomes].filter(([m, o]) => o.outcome === 'refused' && (local.has(m) || remote.has(m))).map(([m]) => m);
    return {
      sent: outcomes.size,
      acknowledged: acked.length,
      refused: [...outcomes.values()].filter((o) => o.outcome === 'refused').length,
      unknown: [...outcomes.values()].filter((o) => o.outcome === 'unknown').length,
      deliveredLocal: [...local.values()].reduce((a, b) => a + b, 0),
      deliveredRemote: [...remote.values()].reduce((a, b) => a + b, 0),
      lost,
      duplicatesLocal,
      duplicatesRemote,
      outboundKills: kills.filter((k) => k.startsWith('outbound-proxy')).length,
      stuck,
      appearedWithout250,
      kills,
      eventLogsChecked: ids.size,
      eventLogsInconsistent,
      seconds: Math.round((Date.now() - started) / 1000),
    };
  } finally {
    await cluster?.stop();
    await sink.close();
    await rm(dir, { recursive: true, force: true });
  }
}
