/**
 * `npm run chaos`: the full fault-injection run. CHAOS_MESSAGES (1000), CHAOS_SESSIONS (8),
 * CHAOS_SEED (a new one each run, printed so a failure can be replayed), CHAOS_RECOVERY_SECONDS
 * (120: the bound on the time from the last kill until every acknowledged message arrived),
 * CHAOS_KEEP=1 (keep the run's directory, with every process's log in var/log).
 * CHAOS_SCHEDULE=rolling runs a rolling restart (SIGTERM, wait, start; every replica of every
 * role) instead of kills. See docs/operations.md for long soaks.
 */
import { runChaos } from '../test/chaos.ts';

const seed = Number(process.env.CHAOS_SEED ?? Math.floor(Math.random() * 2 ** 31));
const report = await runChaos({
  messages: Number(process.env.CHAOS_MESSAGES ?? 1000),
  sessions: Number(process.env.CHAOS_SESSIONS ?? 8),
  seed,
  schedule: process.env.CHAOS_SCHEDULE === 'rolling' ? 'rolling' : 'chaos',
  killEveryMs: [1000, 2500],
  paceMs: [50, 250],
  recoveryBoundSeconds: Number(process.env.CHAOS_RECOVERY_SECONDS ?? 120),
  keepDir: process.env.CHAOS_KEEP === '1',
  log: (line) => console.log(`[chaos ${seed}] ${line}`),
});
const { queueDepth, ...rest } = report;
// The queue depth is printed as it was sampled; the summary keeps its peak.
const peak = Math.max(0, ...queueDepth.map((s) => (s.outbound ? s.outbound.pending + s.outbound.ackPending : 0)));
console.log(JSON.stringify({ seed, ...rest, outboundQueuePeak: peak, queueSamples: queueDepth.length }, null, 2));
const passed =
  report.lost.length === 0 &&
  report.duplicatesLocal.length === 0 &&
  report.duplicatesRemoteUnexplained.length === 0 &&
  report.stuck === 0 &&
  report.eventLogsInconsistent.length === 0 &&
  report.recoverySeconds !== undefined;
if (!passed) console.log(`[chaos ${seed}] FAILED${report.recoverySeconds === undefined ? `: recovery took longer than ${report.recoveryBoundSeconds} s` : ''}`);
process.exitCode = passed ? 0 : 1;
