/**
 * The fault-injection suite in reduced size (`npm run chaos` runs it in full): every message
 * that got a 250 reaches its local recipient exactly once and its remote recipient at least
 * once, whatever was killed; a remote copy can be doubled only by killing an outbound proxy
 * between the remote 250 and its record of it.
 */
import { expect, it } from 'vitest';
import { runChaos } from './chaos.ts';

it('delivers every acknowledged message exactly once while a seeded schedule SIGKILLs processes, NATS nodes and Redis', async () => {
  const report = await runChaos({ messages: 40, sessions: 4, seed: 20261124, killEveryMs: [800, 1600], paceMs: [500, 1500] });
  console.log(JSON.stringify({ ...report, kills: report.kills.join(', ') }));
  expect(report.kills.length).toBeGreaterThan(0);
  expect(report.acknowledged).toBeGreaterThan(0);
  expect(report.lost).toEqual([]);
  expect(report.duplicatesLocal).toEqual([]);
  expect(report.stuck).toBe(0);
  // The one window SMTP leaves open (see ChaosReport.duplicatesRemote): only an outbound-proxy kill can double a remote copy.
  if (report.outboundKills === 0) expect(report.duplicatesRemote).toEqual([]);
  else expect(report.duplicatesRemote.length).toBeLessThanOrEqual(report.outboundKills * 2);
}, 600_000);
