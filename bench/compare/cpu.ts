/**
 * CPU accounting for `npm run bench:compare`: the CPU time of a whole process tree (an MTA
 * with every helper it runs), read from a cgroup made for it (v2 `cpu.stat`, else v1
 * `cpuacct.usage`) or, where no cgroup can be made, from /proc/<pid>/stat of every process
 * in the tree; and how busy the whole machine is (/proc/stat), to wait for an idle box.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const ticksPerSecond = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

type ProcStat = { pid: number; ppid: number; utime: number; stime: number; cutime: number; cstime: number };

function readStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined; // gone
  }
  // The command name (field 2) is in parentheses and may hold spaces: split after its last ')'.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const n = (i: number) => Number(rest[i - 3]);
  return { pid, ppid: n(4), utime: n(14), stime: n(15), cutime: n(16), cstime: n(17) };
}

function allStats(): ProcStat[] {
  const out: ProcStat[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const s = readStat(Number(name));
    if (s) out.push(s);
  }
  return out;
}

/** `roots` and every process descended from them, alive now. */
export function processTree(roots: readonly number[]): number[] {
  const stats = allStats();
  const children = new Map<number, number[]>();
  for (const s of stats) children.set(s.ppid, [...(children.get(s.ppid) ?? []), s.pid]);
  const alive = new Set(stats.map((s) => s.pid));
  const seen = new Set<number>();
  const queue = roots.filter((p) => alive.has(p));
  while (queue.length > 0) {
    const pid = queue.shift()!;
    if (seen.has(pid)) continue;
    seen.add(pid);
    queue.push(...(children.get(pid) ?? []));
  }
  return [...seen];
}

/** What a process is: a Transit role by its service directory, else its command name ("nats-server"); "?" once it exited. */
export function partOf(pid: number): string {
  try {
    const role = /services\/([^/]+)\/src\/main\.ts/.exec(readFileSync(`/proc/${pid}/cmdline`, 'utf8'));
    return role ? role[1]! : readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '?';
  }
}

/** "nats-server, redis-server, 2× frontend, ...": what the processes are. */
export function describeProcesses(pids: readonly number[]): string {
  const counts = new Map<string, number>();
  for (const pid of pids) {
    const part = partOf(pid);
    counts.set(part, (counts.get(part) ?? 0) + 1);
  }
  return [...counts].map(([name, n]) => (n > 1 ? `${n}× ${name}` : name)).join(', ');
}

/** CPU seconds used so far by each part (partOf) of these processes, all replicas of a part together. */
export function secondsByPart(parts: ReadonlyArray<{ pid: number; part: string }>): Map<string, number> {
  const out = new Map<string, number>();
  for (const { pid, part } of parts) out.set(part, (out.get(part) ?? 0) + processSeconds(pid));
  return out;
}

/** The direct children of this process. */
export function childrenOfSelf(): number[] {
  return allStats()
    .filter((s) => s.ppid === process.pid)
    .map((s) => s.pid);
}

export type CpuMeter = {
  /** How the figure is taken: "cgroup v2", "cgroup v1 cpuacct" or "/proc sums". */
  method: string;
  /** The cgroup's cgroup.procs file, for a process to write its own PID into before it execs (undefined with /proc sums). */
  procsFile: string | undefined;
  /** Puts these processes (and, with /proc sums, their descendants) under the meter. */
  add(pids: readonly number[]): void;
  /** CPU seconds (user + system) used so far by everything under the meter. */
  seconds(): number;
  /** Removes the cgroup (after its processes have exited). */
  close(): Promise<void>;
};

function cgroupMounts(): { v2?: string; cpuacct?: string } {
  const found: { v2?: string; cpuacct?: string } = {};
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    // mountinfo: id parent major:minor root mountpoint options ... - fstype source superoptions
    const [left, right] = line.split(' - ');
    if (!left || !right) continue;
    const mountpoint = left.split(' ')[4];
    const [fstype, , superOptions] = right.split(' ');
    if (!mountpoint) continue;
    if (fstype === 'cgroup2' && !found.v2) found.v2 = mountpoint;
    if (fstype === 'cgroup' && superOptions?.split(',').includes('cpuacct') && !found.cpuacct) found.cpuacct = mountpoint;
  }
  return found;
}

function tryCgroup(dir: string, counter: string, parse: (text: string) => number, method: string): CpuMeter | undefined {
  try {
    mkdirSync(dir);
  } catch {
    return undefined;
  }
  const counterFile = join(dir, counter);
  const procsFile = join(dir, 'cgroup.procs');
  try {
    parse(readFileSync(counterFile, 'utf8'));
  } catch {
    rmdirSync(dir);
    return undefined;
  }
  return {
    method,
    procsFile,
    add(pids) {
      for (const pid of pids) {
        try {
          writeFileSync(procsFile, `${pid}\n`);
        } catch (err) {
          // A process that exited meanwhile cannot be moved; anything else is a real failure.
          if (existsSync(`/proc/${pid}`)) throw err;
        }
      }
    },
    seconds: () => parse(readFileSync(counterFile, 'utf8')),
    async close() {
      // The last processes may still be leaving after their exit was seen.
      for (let i = 0; i < 50 && existsSync(dir); i++) {
        try {
          rmdirSync(dir);
        } catch {
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    },
  };
}

/** A CPU meter for one system under test, named for it; a cgroup when one can be made (and `procSums` is not asked for). */
export function cpuMeter(name: string, procSums = false): CpuMeter {
  const cgroupName = `transit-bench-compare-${process.pid}-${name}`;
  const mounts = procSums ? {} : cgroupMounts();
  if (mounts.v2) {
    const m = tryCgroup(join(mounts.v2, cgroupName), 'cpu.stat', (t) => Number(/^usage_usec (\d+)$/m.exec(t)?.[1] ?? Number.NaN) / 1e6, 'cgroup v2');
    if (m && Number.isFinite(m.seconds())) return m;
    if (m) rmdirSync(join(mounts.v2, cgroupName));
  }
  if (mounts.cpuacct) {
    const m = tryCgroup(join(mounts.cpuacct, cgroupName), 'cpuacct.usage', (t) => Number(t.trim()) / 1e9, 'cgroup v1 cpuacct');
    if (m) return m;
  }
  // /proc sums: utime + stime of every live process in the tree, plus cutime + cstime for
  // the children each has reaped (Postfix's master reaps its smtpd, cleanup, smtp ...).
  const roots: number[] = [];
  return {
    method: '/proc sums',
    procsFile: undefined,
    add: (pids) => void roots.push(...pids),
    seconds() {
      let ticks = 0;
      for (const pid of processTree(roots)) {
        const s = readStat(pid);
        if (s) ticks += s.utime + s.stime + s.cutime + s.cstime;
      }
      return ticks / ticksPerSecond;
    },
    close: () => Promise.resolve(),
  };
}

/** CPU seconds of one process; with `reaped`, also of the children it has waited for (this script's smtp-source runs). */
export function processSeconds(pid: number, reaped = false): number {
  const s = readStat(pid);
  if (!s) return 0;
  return (s.utime + s.stime + (reaped ? s.cutime + s.cstime : 0)) / ticksPerSecond;
}

/** CPU seconds the whole machine was busy between two machineTicks() readings. */
export function busySeconds(before: { busy: number }, after: { busy: number }): number {
  return (after.busy - before.busy) / ticksPerSecond;
}

/** Busy and total jiffies of the whole machine (every core) so far. */
export function machineTicks(): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal guest guest_nice; guest time is already in user.
  const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
  const idle = (v[3] ?? 0) + (v[4] ?? 0);
  return { busy: total - idle, total };
}

/** Cores busy on average between two machineTicks() readings. */
export function coresBusy(before: { busy: number; total: number }, after: { busy: number; total: number }, cores: number): number {
  const total = after.total - before.total;
  return total > 0 ? ((after.busy - before.busy) / total) * cores : 0;
}

/**
 * Waits until the machine has been idle (fewer than `maxBusy` cores busy on average over
 * `windowS` seconds), at most `timeoutS`. Returns how busy the last window was and whether
 * that was below the mark.
 */
export async function waitForIdle(
  cores: number,
  maxBusy: number,
  windowS: number,
  timeoutS: number,
): Promise<{ busy: number; idle: boolean; waitedS: number }> {
  const started = Date.now();
  const samples: Array<{ busy: number; total: number }> = [machineTicks()];
  for (;;) {
    await new Promise((r) => setTimeout(r, 1000));
    samples.push(machineTicks());
    if (samples.length > windowS + 1) samples.shift();
    const waitedS = (Date.now() - started) / 1000;
    if (samples.length === windowS + 1) {
      const busy = coresBusy(samples[0]!, samples.at(-1)!, cores);
      if (busy < maxBusy) return { busy, idle: true, waitedS };
      if (waitedS >= timeoutS) return { busy, idle: false, waitedS };
    }
  }
}
