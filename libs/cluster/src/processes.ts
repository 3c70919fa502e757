/**
 * Starting and stopping the processes of a local cluster: nats-server, redis-server and
 * Transit's roles, each a child process ended only by its own PID.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync } from 'node:fs';
import { connect } from 'node:net';
import { join, resolve } from 'node:path';

/** The project's own binaries (scripts/fetch-nats-server.sh puts nats-server 2.10+ there), preferred over the system's. */
export const TOOLS_DIR = resolve(import.meta.dirname, '../../../.tools');

/**
 * A server binary: the one named by its environment variable (nats-server →
 * TRANSIT_NATS_SERVER), else the project's own in .tools, else the first candidate present,
 * else the first on PATH.
 */
export function findBinary(name: string, candidates: string[]): string {
  const variable = `TRANSIT_${name.replace(/-/g, '_').toUpperCase()}`;
  const chosen = process.env[variable];
  if (chosen) {
    if (existsSync(chosen)) return chosen;
    throw new Error(`${variable}=${chosen}: no such file`);
  }
  for (const c of [join(TOOLS_DIR, name), ...candidates]) if (existsSync(c)) return c;
  const onPath = (process.env.PATH ?? '')
    .split(':')
    .map((d) => `${d}/${name}`)
    .find((p) => existsSync(p));
  if (onPath) return onPath;
  throw new Error(`${name} not found: install it with "apt-get install ${name}" (or run "bash scripts/setup.sh")`);
}

/**
 * Waits until `host:port` accepts a connection and, with `greeting`, until the first line the
 * server sends passes it: a port another process holds accepts too, while the server being
 * waited for exits on its failed bind.
 */
export async function waitForPort(
  host: string,
  port: number,
  timeoutMs: number,
  what: string,
  alive: () => boolean = () => true,
  greeting?: (line: string) => boolean,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let answered = '';
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect({ host, port });
      const done = (result: boolean) => {
        s.destroy();
        resolve(result);
      };
      s.setTimeout(2000, () => done(false));
      s.once('error', () => done(false));
      s.once('close', () => done(false));
      if (!greeting) s.once('connect', () => done(true));
      else {
        let text = '';
        s.on('data', (chunk: Buffer) => {
          text += chunk.toString('latin1');
          const end = text.indexOf('\r\n');
          if (end < 0 && text.length < 4096) return;
          answered = text.slice(0, Math.min(end < 0 ? text.length : end, 200));
          done(greeting(text.slice(0, end < 0 ? text.length : end)));
        });
      }
    });
    if (ok) return;
    if (!alive()) throw new Error(`${what} exited before listening on ${host}:${port}`);
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs}ms waiting for ${what} on ${host}:${port}${answered ? ` (it answered ${JSON.stringify(answered)})` : ''}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A check of nats-server's INFO line for waitForPort: the server that answers is the one named. */
export function natsServerNamed(name: string): (line: string) => boolean {
  return (line) => {
    if (!line.startsWith('INFO ')) return false;
    try {
      return (JSON.parse(line.slice(5)) as { server_name?: unknown }).server_name === name;
    } catch {
      return false;
    }
  };
}

export type Supervised = { name: string; child: ChildProcess; exited: Promise<number | null>; alive(): boolean };

export function startProcess(name: string, command: string, args: string[], opts: { env?: NodeJS.ProcessEnv; logFile?: string; cwd?: string }): Supervised {
  const child = spawn(command, args, { env: opts.env ?? process.env, cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  if (opts.logFile) {
    const log = createWriteStream(opts.logFile, { flags: 'a' });
    child.stdout?.pipe(log);
    child.stderr?.pipe(log);
  } else {
    child.stdout?.resume();
    child.stderr?.resume();
  }
  let running = true;
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      running = false;
      resolve(code);
    }),
  );
  return { name, child, exited, alive: () => running };
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves when the process is gone. */
export async function stopProcess(p: Supervised, graceMs = 10_000): Promise<void> {
  if (!p.alive()) return;
  p.child.kill('SIGTERM');
  const timer = setTimeout(() => p.child.kill('SIGKILL'), graceMs);
  await p.exited;
  clearTimeout(timer);
}

export async function killProcess(p: Supervised): Promise<void> {
  if (!p.alive()) return;
  p.child.kill('SIGKILL');
  await p.exited;
}

/** "2.10.27": the version of the nats-server findBinary picks, or "?" when it does not answer. */
export function natsServerVersion(): string {
  try {
    const out = execFileSync(findBinary('nats-server', ['/usr/sbin/nats-server', '/usr/bin/nats-server']), ['--version'], { encoding: 'utf8' });
    return /v?(\d+\.\d+\.\d+)/.exec(out)?.[1] ?? out.trim();
  } catch {
    return '?';
  }
}
