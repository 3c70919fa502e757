/**
 * `npm run bench:large`: large messages through Transit, with the memory every process
 * needs for them. It starts the local three-node cluster (NATS R3, two processes of every
 * role; or one node), sends each large message over SMTP to one mailbox recipient and one
 * remote recipient (relayed to a sink in this process), checks that both copies arrived
 * with the body byte for byte, and samples the resident memory (VmRSS) of every process
 * throughout. The growth of a process is its highest RSS while the large messages were
 * under way minus its RSS just before, after one small warm-up message had gone both ways.
 *
 *   BENCH_LARGE_MB (35, the message size in MiB)   BENCH_LARGE_MESSAGES (3, one after another)
 *   BENCH_LARGE_SYSTEM (cluster, or transit)       BENCH_LARGE_LIMIT_MB (64, growth allowed per role process)
 *   BENCH_LARGE_TIMEOUT_S (600, per message)     BENCH_LARGE_KEEP (set: keep the data and logs directory)
 *   BENCH_LARGE_SINK_MBPS (unset: as fast as it can; else the sink reads DATA at this many MiB/s, a slow destination)
 *   BENCH_LOG_LEVEL (warn: the roles' log level, e.g. info to see each message's stages with times)
 *
 * Loopback only; everything it starts is stopped by PID, also on error and on Ctrl-C.
 * Exits 1 when a message did not arrive intact or a role process grew beyond the limit.
 * Docs: docs/performance.md, "Large messages".
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { cpus, release, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import nodemailer from 'nodemailer';
import { natsServerVersion, type LocalCluster } from '@transit/cluster';
import { ROLES } from '@transit/service';
import { startSmtpSink, type SmtpSink } from '@transit/testkit';
import { childrenOfSelf, partOf, processTree } from './compare/cpu.ts';
import { benchOrg, startBenchTransit, type TransitShape } from './compare/transit.ts';
import { intFromEnv } from './compare/env.ts';

const MIB = 1024 * 1024;
const SIZE_MB = intFromEnv('BENCH_LARGE_MB', 35, 1);
const MESSAGES = intFromEnv('BENCH_LARGE_MESSAGES', 3, 1);
const LIMIT_MB = intFromEnv('BENCH_LARGE_LIMIT_MB', 64, 1);
const TIMEOUT_S = intFromEnv('BENCH_LARGE_TIMEOUT_S', 600, 5);
const SINK_MBPS = intFromEnv('BENCH_LARGE_SINK_MBPS', 0, 0);
const SYSTEM = (process.env.BENCH_LARGE_SYSTEM ?? 'cluster') as TransitShape;
if (SYSTEM !== 'cluster' && SYSTEM !== 'transit') throw new Error('BENCH_LARGE_SYSTEM must be cluster or transit');
const HOST = '127.0.0.1';
const FROM = 'bench@example.org';
const MAILBOX = 'alice@contoso.test'; // a mailbox of the example organisation
const REMOTE = 'someone@example.net'; // not an accepted domain: relayed to the sink
const SAMPLE_MS = 50;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** A message of exactly `bytes` octets: a header block, then base64-like lines of 76 characters, as an attachment's body is. */
function largeMessage(bytes: number, n: number): { message: Buffer; body: Buffer } {
  const header = Buffer.from(
    `From: <${FROM}>\r\nTo: <${MAILBOX}>, <${REMOTE}>\r\nSubject: bench:large ${n}\r\nMIME-Version: 1.0\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n`,
    'latin1',
  );
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
  const body = Buffer.alloc(bytes - header.length);
  let seed = 0x9e3779b9 ^ n;
  for (let i = 0; i < body.length; i++) {
    if (i % 78 === 76) body[i] = 0x0d;
    else if (i % 78 === 77) body[i] = 0x0a;
    else {
      seed = (seed * 1103515245 + 12345) >>> 0;
      body[i] = alphabet.charCodeAt(seed >>> 26);
    }
  }
  // Ends in CRLF, so the message is byte for byte what a reader gets back.
  body[body.length - 2] = 0x0d;
  body[body.length - 1] = 0x0a;
  return { message: Buffer.concat([header, body]), body };
}

/** The body of a message as stored or relayed: everything after its header block, whatever headers Transit added. */
function bodyOf(data: Buffer): Buffer {
  const end = data.indexOf('\r\n\r\n');
  return end < 0 ? Buffer.alloc(0) : data.subarray(end + 4);
}

function rssBytes(pid: number): number | undefined {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

type Tracked = { pid: number; name: string; part: string; base: number; peak: number };

/** Samples every process's RSS until stopped; `peak` is the highest seen since `reset`. */
function rssSampler(processes: { pid: number; name: string; part: string }[]) {
  const tracked: Tracked[] = processes.map((p) => ({ ...p, base: rssBytes(p.pid) ?? 0, peak: 0 }));
  const sample = () => {
    for (const t of tracked) t.peak = Math.max(t.peak, rssBytes(t.pid) ?? 0);
  };
  const timer = setInterval(sample, SAMPLE_MS);
  return {
    tracked,
    reset() {
      for (const t of tracked) {
        t.base = rssBytes(t.pid) ?? 0;
        t.peak = t.base;
      }
    },
    stop() {
      sample();
      clearInterval(timer);
    },
  };
}

/** Names like frontend, frontend-1, nats-server-2, by the order the processes were started. */
function nameProcesses(pids: number[]): { pid: number; name: string; part: string }[] {
  const seen = new Map<string, number>();
  return [...pids]
    .sort((a, b) => a - b)
    .map((pid) => {
      const part = partOf(pid);
      const n = seen.get(part) ?? 0;
      seen.set(part, n + 1);
      return { pid, part, name: n === 0 ? part : `${part}-${n}` };
    });
}

/** Maildir files delivered to `address` so far (new/ and cur/). */
async function mailboxFiles(mailDir: string, address: string): Promise<string[]> {
  const out: string[] = [];
  const [local, domain] = address.split('@');
  // services/mailbox-delivery/src/maildir.ts: <mail dir>/<domain>/<local part>/{tmp,new,cur}
  for (const sub of ['new', 'cur']) {
    const dir = join(mailDir, domain!.toLowerCase(), local!.toLowerCase(), sub);
    for (const f of await readdir(dir).catch(() => [] as string[])) out.push(join(dir, f));
  }
  return out;
}

async function waitFor<T>(what: string, deadline: number, probe: () => Promise<T | undefined>): Promise<T> {
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`${what}: not there within ${TIMEOUT_S} s`);
    await sleep(100);
  }
}

let cluster: LocalCluster | undefined;
let sink: SmtpSink | undefined;
let stopping = false;
const dir = await mkdtemp(join(tmpdir(), 'transit-bench-large-'));
const cleanup = async () => {
  await cluster?.stop().catch((err: Error) => console.error(`stopping Transit failed: ${err.message}`));
  await sink?.close().catch(() => undefined);
  // Any child still there (a start that was interrupted) is ended by its PID.
  for (const pid of processTree(childrenOfSelf())) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  if (process.env.BENCH_LARGE_KEEP) console.log(`kept ${dir}`);
  else await rm(dir, { recursive: true, force: true });
};
for (const signal of ['SIGINT', 'SIGTERM'] as const)
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    console.log(`\n${signal}: stopping everything bench:large started ...`);
    void cleanup().then(() => process.exit(130));
  });

let exitCode = 0;
try {
  console.log(
    `bench:large on ${cpus().length} cores (${cpus()[0]?.model ?? '?'}), ${(totalmem() / 2 ** 30).toFixed(1)} GiB, Linux ${release()}; Node ${process.versions.node}; nats-server ${natsServerVersion()}`,
  );
  sink = await startSmtpSink({ host: HOST, ...(SINK_MBPS > 0 ? { readBytesPerSecond: SINK_MBPS * MIB } : {}) });
  const before = new Set(childrenOfSelf());
  console.log(`${SYSTEM === 'cluster' ? 'Transit, 3 NATS nodes R3, 2 processes of every role' : 'Transit, one node (R1)'}: starting ...`);
  cluster = await startBenchTransit(SYSTEM, dir, await benchOrg(dir, sink));
  const processes = nameProcesses(processTree(childrenOfSelf().filter((p) => !before.has(p))));
  const targets = Array.from({ length: cluster.replicas }, (_v, r) => cluster!.port(25, r));
  const transports = targets.map((port) =>
    // Plain SMTP on loopback: the frontend's STARTTLS would add TLS's cost to what is measured here.
    nodemailer.createTransport({ host: HOST, port, secure: false, ignoreTLS: true, socketTimeout: TIMEOUT_S * 1000 }),
  );
  const mailDir = cluster.mailDir;

  const sendBoth = async (message: Buffer, body: Buffer, via: number, label: string) => {
    const deadline = Date.now() + TIMEOUT_S * 1000;
    const inMailbox = new Set(await mailboxFiles(mailDir, MAILBOX));
    const atSink = sink!.messages.length;
    const t0 = performance.now();
    await transports[via % transports.length]!.sendMail({ envelope: { from: FROM, to: [MAILBOX, REMOTE] }, raw: message });
    const accepted = performance.now() - t0;
    const relayed = await waitFor(`${label} at the sink`, deadline, () => Promise.resolve(sink!.messages[atSink]));
    const relayedAt = performance.now() - t0;
    const file = await waitFor(`${label} in ${MAILBOX}'s Maildir`, deadline, async () => (await mailboxFiles(mailDir, MAILBOX)).find((f) => !inMailbox.has(f)));
    const storedAt = performance.now() - t0;
    const stored = await readFile(file);
    const want = sha(body);
    const problems = [
      ...(sha(bodyOf(relayed.data)) === want ? [] : [`the copy at the sink differs from the body sent (${relayed.data.length} bytes)`]),
      ...(sha(bodyOf(stored)) === want ? [] : [`the Maildir copy differs from the body sent (${(await stat(file)).size} bytes)`]),
      ...(sink!.messages.length > atSink + 1 ? [`${sink!.messages.length - atSink} copies at the sink`] : []),
    ];
    return { accepted, relayedAt, storedAt, problems };
  };

  const small = largeMessage(4096, 0);
  await sendBoth(small.message, small.body, 0, 'warm-up message');
  await sleep(2_000); // let the warm-up's timers and buffers settle before the baseline
  const sampler = rssSampler(processes);
  sampler.reset();
  console.log(
    `  ${processes.length} processes; after a warm-up message, RSS (MiB): ${sampler.tracked.map((t) => `${t.name} ${(t.base / MIB).toFixed(0)}`).join(', ')}`,
  );
  console.log(
    `load: ${MESSAGES} message(s) of ${SIZE_MB} MiB, one after another, each to ${MAILBOX} (Maildir) and ${REMOTE} (relayed to the sink${SINK_MBPS > 0 ? `, which reads ${SINK_MBPS} MiB/s` : ''})`,
  );
  for (let n = 1; n <= MESSAGES && !stopping; n++) {
    const { message, body } = largeMessage(SIZE_MB * MIB, n);
    const r = await sendBoth(message, body, n, `message ${n}`);
    console.log(
      `  message ${n}: 250 after ${(r.accepted / 1000).toFixed(1)} s, at the sink after ${(r.relayedAt / 1000).toFixed(1)} s, in the mailbox after ${(r.storedAt / 1000).toFixed(1)} s; ${r.problems.length ? r.problems.join('; ') : 'both copies byte for byte'}`,
    );
    if (r.problems.length) exitCode = 1;
  }
  sampler.stop();

  const rows = [['process', 'RSS before MiB', 'peak MiB', 'growth MiB', `role ≤ ${LIMIT_MB} MiB`]];
  for (const t of sampler.tracked) {
    const growth = (t.peak - t.base) / MIB;
    const isRole = (ROLES as readonly string[]).includes(t.part);
    const verdict = isRole ? (growth <= LIMIT_MB ? 'met' : 'NOT met') : '(not a role)';
    if (isRole && growth > LIMIT_MB) exitCode = 1;
    rows.push([t.name, (t.base / MIB).toFixed(0), (t.peak / MIB).toFixed(0), growth.toFixed(1), verdict]);
  }
  const w = rows[0]!.map((_c, i) => Math.max(...rows.map((row) => row[i]!.length)));
  console.log(`\nResident memory, sampled every ${SAMPLE_MS} ms while the large messages were under way:`);
  for (const row of rows) console.log(`  ${row.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('  ')}`);
  for (const t of transports) t.close();
} catch (err) {
  exitCode = 1;
  if (!stopping) console.error(`bench:large failed: ${(err as Error).stack ?? String(err)}`);
}
if (!stopping) {
  await cleanup();
  process.exit(exitCode);
}
