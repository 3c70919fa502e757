/**
 * `npm run chaos`: the full fault-injection run. CHAOS_MESSAGES (1000), CHAOS_SESSIONS (8),
 * CHAOS_SEED (a new one each run, printed so a failure can be replayed). CHAOS_SCHEDULE=rolling
 * runs a rolling restart (SIGTERM, wait, start; every replica of every role) instead of kills.
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
  log: (line) => console.log(`[chaos ${seed}] ${line}`),
});
console.log(JSON.stringify({ seed, ...report }, null, 2));
process.exitCode = report.lost.length === 0 && report.duplicatesLocal.length === 0 && report.stuck === 0 && report.eventLogsInconsistent.length === 0 ? 0 : 1;
