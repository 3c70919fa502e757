/**
 * `npm run bench`: starts the local cluster (real processes) and sends N messages of 5 KiB
 * over SMTP with C parallel sessions, (1) to an accepted-domain mailbox and (2) through the
 * IP-scoped relay connector and the outbound proxy to a local SMTP sink. Prints accepted
 * msgs/s, delivered msgs/s and p50/p99 accept latency. Bounded in count and time.
 *   BENCH_MESSAGES (default 2000), BENCH_SESSIONS (default 20), BENCH_TIMEOUT_S (default 180)
 */
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { createTransport } from 'nodemailer';
import { parse, stringify } from 'yaml';
import { startLocalCluster } from '@transit/cluster';
import { freeClusterPorts, startSmtpSink } from '@transit/testkit';

const N = Number(process.env.BENCH_MESSAGES ?? 2000);
const C = Number(process.env.BENCH_SESSIONS ?? 20);
const deadline = Date.now() + Number(process.env.BENCH_TIMEOUT_S ?? 180) * 1000;

const dir = await mkdtemp(join(tmpdir(), 'transit-bench-'));
const sink = await startSmtpSink();
const base = parse(await readFile(new URL('../config/examples/contoso.yaml', import.meta.url), 'utf8')) as Record<string, unknown>;
await writeFile(
  join(dir, 'org.yaml'),
  stringify({ ...base, SendConnectors: [{ Name: 'Sink', AddressSpaces: ['*'], DNSRoutingEnabled: false, SmartHosts: [`${sink.host}:${sink.port}`] }] }),
);
const cluster = await startLocalCluster({
  varDir: join(dir, 'var'),
  configPath: join(dir, 'org.yaml'),
  ...(await freeClusterPorts()),
  env: { TRANSIT_LOG_LEVEL: 'warn' },
});

const filler = 'The quick brown fox jumps over the lazy dog. 0123456789 abcdefghij\r\n'.repeat(75); // ~5 KiB
const message = (i: number, to: string) => `From: bench@example.org\r\nTo: ${to}\r\nSubject: bench ${i}\r\nMessage-ID: <bench-${i}-${to}>\r\n\r\n${filler}`;
const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;

async function run(name: string, to: string, localAddress: string | undefined, delivered: () => Promise<number>) {
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
}

try {
  console.log(
    `Transit benchmark: ${N} messages of 5 KiB, ${C} parallel SMTP sessions (connections reused); ${cpus().length} CPUs (${cpus()[0]?.model ?? '?'}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB; Node ${process.versions.node}; client, cluster and sink share the machine.`,
  );
  const aliceNew = join(cluster.mailDir, 'contoso.test', 'alice', 'new');
  await run('mailbox (Maildir)', 'alice@contoso.test', undefined, async () => (await readdir(aliceNew).catch(() => [])).length);
  await run('relay (outbound proxy)', 'someone@example.net', '127.0.0.2', () => Promise.resolve(sink.messages.length));
} finally {
  await cluster.stop();
  await sink.close();
  await rm(dir, { recursive: true, force: true });
}
