/**
 * `node bench/profile-summary.ts <dir> [messages]`: where each Transit role spends its CPU,
 * from the V8 CPU profiles (`--cpu-prof`) its processes wrote into <dir>. Each profile is
 * attributed to the role whose `services/<role>/` sources it ran; its samples are summed by
 * where the code lives (a Transit library, a package in node_modules, Node's internals,
 * garbage collection) and printed per role as a share of its busy time and, given the number
 * of messages the profiled run carried, as milliseconds per message.
 *
 * How to take the profiles under the bench:compare load is in docs/performance.md
 * ("Profiles per role").
 */
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';

type ProfileNode = { id: number; callFrame: { functionName: string; url: string }; children?: number[] };
type Profile = { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[]; startTime: number; endTime: number };

/** Where a function lives: "libs/bus", "@nats-io/nats-core", "node:internal", "(garbage collector)", "(idle)"... */
export function placeOf(frame: { functionName: string; url: string }): string {
  const { url, functionName } = frame;
  if (!url) return functionName.startsWith('(') ? functionName : '(native)';
  const modules = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (modules) return modules[1]!;
  const own = /\/(libs|services)\/([^/]+)\//.exec(url);
  if (own) return `${own[1]}/${own[2]}`;
  if (url.startsWith('node:')) return url.split('/')[0]!.replace(/^node:internal.*/, 'node:internal');
  return url.replace(/^file:\/\//, '');
}

/** The role a profile belongs to: the `services/<role>/` its samples touched most. */
function roleOf(profile: Profile, byNode: Map<number, ProfileNode>): string | undefined {
  const counts = new Map<string, number>();
  for (const id of profile.samples) {
    const role = /\/services\/([^/]+)\//.exec(byNode.get(id)?.callFrame.url ?? '')?.[1];
    if (role) counts.set(role, (counts.get(role) ?? 0) + 1);
  }
  if (counts.size === 0) {
    // No sample in a role's own code: name it by the role's sources the profile knows of.
    for (const n of profile.nodes) {
      const role = /\/services\/([^/]+)\//.exec(n.callFrame.url)?.[1];
      if (role) return role;
    }
    return undefined;
  }
  return [...counts].sort((a, b) => b[1] - a[1])[0]![0];
}

/** Self time by place, in ms, and the busy total (everything but "(idle)"). */
export function selfTimeByPlace(profile: Profile): { byPlace: Map<string, number>; busyMs: number } {
  const byNode = new Map(profile.nodes.map((n) => [n.id, n]));
  const byPlace = new Map<string, number>();
  let busyMs = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    const node = byNode.get(profile.samples[i]!);
    const ms = (profile.timeDeltas[i] ?? 0) / 1000;
    const place = node ? placeOf(node.callFrame) : '(unknown)';
    if (place === '(idle)') continue;
    busyMs += ms;
    byPlace.set(place, (byPlace.get(place) ?? 0) + ms);
  }
  return { byPlace, busyMs };
}

async function main(): Promise<void> {
  const [dir, messagesArg] = process.argv.slice(2);
  if (!dir) {
    console.error('usage: node bench/profile-summary.ts <directory of .cpuprofile files> [messages carried]');
    process.exit(2);
  }
  const messages = messagesArg ? Number(messagesArg) : undefined;
  if (messages !== undefined && !(messages > 0)) {
    console.error(`messages: expected a positive number, got "${messagesArg}"`);
    process.exit(2);
  }
  const byRole = new Map<string, { processes: number; busyMs: number; byPlace: Map<string, number> }>();
  for (const file of (await readdir(dir)).filter((f) => f.endsWith('.cpuprofile'))) {
    const profile = JSON.parse(await readFile(join(dir, file), 'utf8')) as Profile;
    const role = roleOf(profile, new Map(profile.nodes.map((n) => [n.id, n])));
    if (!role) continue; // the load generator or another Node process, not a role
    const { byPlace, busyMs } = selfTimeByPlace(profile);
    const acc = byRole.get(role) ?? { processes: 0, busyMs: 0, byPlace: new Map() };
    acc.processes++;
    acc.busyMs += busyMs;
    for (const [place, ms] of byPlace) acc.byPlace.set(place, (acc.byPlace.get(place) ?? 0) + ms);
    byRole.set(role, acc);
  }
  if (byRole.size === 0) {
    console.error(`no profile of a Transit role in ${dir}`);
    process.exit(1);
  }
  for (const [role, acc] of [...byRole].sort((a, b) => b[1].busyMs - a[1].busyMs)) {
    const perMsg = (ms: number) => (messages ? ` ${(ms / messages).toFixed(3)} ms/msg` : '');
    console.log(`${role} (${acc.processes} process${acc.processes === 1 ? '' : 'es'}): busy ${(acc.busyMs / 1000).toFixed(1)} s${perMsg(acc.busyMs)}`);
    for (const [place, ms] of [...acc.byPlace].sort((a, b) => b[1] - a[1]).slice(0, 12)) {
      console.log(`  ${((100 * ms) / acc.busyMs).toFixed(1).padStart(5)} %  ${place}${perMsg(ms)}`);
    }
  }
}

if (import.meta.main) await main();
