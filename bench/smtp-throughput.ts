/**
 * `npm run bench`: starts the local cluster (real processes) and sends N messages of 5 KiB
 * over SMTP with C parallel sessions, (1) to an accepted-domain mailbox and (2) through the
 * IP-scoped relay connector and the outbound proxy to a local SMTP sink. Prints accepted
 * msgs/s, delivered msgs/s and p50/p99 accept latency; the relay again with a per-destination
 * message rate counted in Redis (too high to hold anything back); then the relay again with the
 * sender's domain signing with DKIM (RSA 2048, then Ed25519), and the CPU time of one signature
 * measured in this process. Bounded in count and time.
 *   BENCH_MESSAGES (default 2000), BENCH_SESSIONS (default 20), BENCH_TIMEOUT_S (default 180 per run)
 */
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { createTransport } from 'nodemailer';
import { parse, stringify } from 'yaml';
import { Readable } from 'node:stream';
import { connectBus } from '@transit/bus';
import { startLocalCluster } from '@transit/cluster';
import { DkimSigner, DkimStore, configsOf, newSigningConfig, type DkimAlgorithm } from '@transit/dkim';
import { freeClusterPorts, startSmtpSink } from '@transit/testkit';

const N = Number(process.env.BENCH_MESSAGES ?? 2000);
const C = Number(process.env.BENCH_SESSIONS ?? 20);
const runTimeoutMs = Number(process.env.BENCH_TIMEOUT_S ?? 180) * 1000;
let deadline = Date.now() + runTimeoutMs;
const SECRET = 'bench-cluster-secret';

const dir = await mkdtemp(join(tmpdir(), 'transit-bench-'));
const sink = await startSmtpSink();
const base = parse(await readFile(new URL('../config/examples/contoso.yaml', import.meta.url), 'utf8')) as Record<string, unknown>;
await writeFile(
  join(dir, 'org.yaml'),
  stringify({
    ...base,
    SendConnectors: [
      { Name: 'Sink', AddressSpaces: ['*'], DNSRoutingEnabled: false, SmartHosts: [`${sink.host}:${sink.port}`] },
      // The same sink, with a message rate limit too high to hold anything back: what counting every message in Redis costs.
      {
        Name: 'Rated sink',
        AddressSpaces: ['rated.example.net'],
        DNSRoutingEnabled: false,
        SmartHosts: [`${sink.host}:${sink.port}`],
        MaxPerDomainOutboundMessagesPerMinute: 1_000_000,
      },
    ],
  }),
);
const cluster = await startLocalCluster({
  varDir: join(dir, 'var'),
  configPath: join(dir, 'org.yaml'),
  ...(await freeClusterPorts()),
  env: { TRANSIT_LOG_LEVEL: 'warn', TRANSIT_CLUSTER_SECRET: SECRET },
});

const filler = 'The quick brown fox jumps over the lazy dog. 0123456789 abcdefghij\r\n'.repeat(75); // ~5 KiB
const message = (i: number, to: string) => `From: bench@example.org\r\nTo: ${to}\r\nSubject: bench ${i}\r\nMessage-ID: <bench-${i}-${to}>\r\n\r\n${filler}`;
const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;

async function run(name: string, to: string, localAddress: string | undefined, delivered: () => Promise<number>): Promise<number> {
  deadline = Date.now() + runTimeoutMs;
  const transport = createTransport({
    host: '127.0.0.1',
    port: cluster.port(25),
    secure: false,
    ignoreTLS: true,
    pool: true,
    maxConnections: C,
    maxMessages: Infinity,
    localAddress,
  });
  const latencies: number[] = [];
  let next = 0;
  let failed = 0;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: C }, async () => {
      while (next < N && Date.now() < deadline) {
        const i = next++;
        const t0 = performance.now();
        try {
          await transport.sendMail({ envelope: { from: 'bench@example.org', to: [to] }, raw: message(i, to) });
          latencies.push(performance.now() - t0);
        } catch {
          failed++;
        }
      }
    }),
  );
  const acceptedAt = performance.now();
  transport.close();
  let got = await delivered();
  while (got < latencies.length && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    got = await delivered();
  }
  const doneAt = performance.now();
  latencies.sort((a, b) => a - b);
  const acceptS = (acceptedAt - start) / 1000;
  console.log(
    `${name.padEnd(22)} accepted ${latencies.length}/${N} (failed ${failed}) in ${acceptS.toFixed(2)} s = ${(latencies.length / acceptS).toFixed(0)} msgs/s; ` +
      `delivered ${got} = ${(got / ((doneAt - start) / 1000)).toFixed(0)} msgs/s end to end; accept latency p50 ${pct(latencies, 50).toFixed(1)} ms, p99 ${pct(latencies, 99).toFixed(1)} ms`,
  );
  return got / ((doneAt - start) / 1000);
}

/** CPU milliseconds of one signature of the bench message, in this process (the outbound proxy does the same work). */
async function signatureCost(algorithm: DkimAlgorithm): Promise<number> {
  const config = newSigningConfig('example.org', SECRET, new Date(), { algorithm });
  const signer = new DkimSigner(configsOf(config), SECRET);
  const raw = Buffer.from(message(0, 'someone@example.net'));
  await signer.signature(() => Promise.resolve(Readable.from([raw]))); // warm-up (unsealing, JIT)
  const rounds = 300;
  const before = process.cpuUsage();
  for (let i = 0; i < rounds; i++) await signer.signature(() => Promise.resolve(Readable.from([raw])));
  const used = process.cpuUsage(before);
  return (used.user + used.system) / 1000 / rounds;
}

/** The relay run again, with example.org (the bench sender's domain) signing with `algorithm`. */
async function signedRun(store: DkimStore, algorithm: DkimAlgorithm, plain: number): Promise<void> {
  await store.remove('example.org');
  await store.put(newSigningConfig('example.org', SECRET, new Date(), { algorithm }));
  // The outbound proxies follow the bucket through a KV watch; a moment lets the change land before the load.
  await new Promise((r) => setTimeout(r, 1000));
  const before = sink.messages.length;
  const rate = await run(`relay, DKIM ${algorithm === 'rsa-sha256' ? 'RSA 2048' : 'Ed25519'}`.padEnd(22), 'someone@example.net', '127.0.0.2', () =>
    Promise.resolve(sink.messages.length - before),
  );
  const signed = sink.messages.slice(before).filter((m) => m.data.subarray(0, 15).toString() === 'DKIM-Signature:').length;
  console.log(
    `  ${signed} of ${sink.messages.length - before} delivered were signed; end to end ${(rate / plain).toFixed(2)}x the unsigned relay; one signature costs ${(await signatureCost(algorithm)).toFixed(2)} ms of CPU`,
  );
}

try {
  console.log(
    `Transit benchmark: ${N} messages of 5 KiB, ${C} parallel SMTP sessions (connections reused); ${cpus().length} CPUs (${cpus()[0]?.model ?? '?'}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB; Node ${process.versions.node}; client, cluster and sink share the machine.`,
  );
  const aliceNew = join(cluster.mailDir, 'contoso.test', 'alice', 'new');
  await run('mailbox (Maildir)', 'alice@contoso.test', undefined, async () => (await readdir(aliceNew).catch(() => [])).length);
  const plain = await run('relay (outbound proxy)', 'someone@example.net', '127.0.0.2', () => Promise.resolve(sink.messages.length));
  const beforeRated = sink.messages.length;
  const rated = await run('relay, rate counted', 'someone@rated.example.net', '127.0.0.2', () => Promise.resolve(sink.messages.length - beforeRated));
  console.log(
    `  every message counted against MaxPerDomainOutboundMessagesPerMinute in Redis: end to end ${(rated / plain).toFixed(2)}x the relay without a rate limit`,
  );
  const bus = await connectBus([cluster.natsUrl], 'bench');
  try {
    const store = await DkimStore.open(bus);
    await signedRun(store, 'rsa-sha256', plain);
    await signedRun(store, 'ed25519-sha256', plain);
  } finally {
    await bus.close();
  }
} finally {
  await cluster.stop();
  await sink.close();
  await rm(dir, { recursive: true, force: true });
}
