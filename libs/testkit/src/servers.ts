/**
 * Throwaway nats-server and redis-server processes on loopback ports, for tests and the
 * benchmark. Each handle signals only the process it spawned, by that child's PID, and
 * only while it is still running (so a recycled PID is never hit). A start resolves once
 * the server answers on its port, or rejects with the tail of the server's own output.
 * "Answers" means our process, not whoever else holds the port: nats-server must also
 * have logged that it listens there, redis-server must report our PID in INFO. When the
 * port was picked here and another process took it first, a new port is tried.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findBinary } from '@transit/cluster';
import { TestkitError } from './errors.ts';
import { freePort } from './ports.ts';
import { sleep } from './wait.ts';

const HOST = '127.0.0.1';
const READY_TIMEOUT_MS = 10_000;
const STOP_GRACE_MS = 5_000;
const OUTPUT_TAIL_CHARS = 2_000;

export type NatsOptions = { jetstream?: boolean; port?: number; storeDir?: string };
export type NatsHandle = {
  readonly url: string;
  readonly port: number;
  /** The PID of the current nats-server; changes after restart(). */
  readonly pid: number;
  readonly storeDir: string;
  /** SIGTERM, SIGKILL after 5 s; resolves once the process has exited. Idempotent. */
  stop(): Promise<void>;
  /** SIGKILL; resolves once the process has exited. */
  kill(): Promise<void>;
  /** Starts nats-server again on the same port and store, so JetStream data survives. */
  restart(): Promise<void>;
  /** stop(), then removes storeDir (also a storeDir the caller passed in). */
  cleanup(): Promise<void>;
};

export type RedisOptions = { port?: number };
export type RedisHandle = {
  readonly url: string;
  readonly port: number;
  readonly pid: number;
  stop(): Promise<void>;
  kill(): Promise<void>;
  /** stop(), then removes the scratch directory given to redis-server as --dir. */
  cleanup(): Promise<void>;
};

export async function startNats(opts: NatsOptions = {}): Promise<NatsHandle> {
  const bin = binary('nats-server', '/usr/sbin/nats-server');
  const storeDir = opts.storeDir ?? (await mkdtemp(join(tmpdir(), 'transit-nats-')));
  let server: ServerProcess;
  try {
    server = await startOnPort(opts.port, (port) => {
      const args = ['-a', HOST, '-p', String(port)];
      if (opts.jetstream ?? true) args.push('-js', '-sd', storeDir);
      const listening = `Listening for client connections on ${HOST}:${port}`;
      return new ServerProcess('nats-server', bin, args, port, async (run) => run.output().includes(listening) && (await tcpAccepts(port)));
    });
  } catch (err) {
    if (opts.storeDir === undefined) await rm(storeDir, { recursive: true, force: true });
    throw err;
  }
  const port = server.port;
  return {
    url: `nats://${HOST}:${port}`,
    port,
    get pid() {
      return server.pid;
    },
    storeDir,
    stop: () => server.stop(),
    kill: () => server.kill(),
    restart: async () => {
      await server.stop();
      await server.start();
    },
    cleanup: async () => {
      await server.stop();
      await rm(storeDir, { recursive: true, force: true });
    },
  };
}

export async function startRedis(opts: RedisOptions = {}): Promise<RedisHandle> {
  const bin = binary('redis-server', '/usr/bin/redis-server');
  const dir = await mkdtemp(join(tmpdir(), 'transit-redis-'));
  let server: ServerProcess;
  try {
    server = await startOnPort(opts.port, (port) => {
      // `--save ''` (an empty argument) turns RDB snapshots off: nothing is ever written to dir.
      const args = ['--port', String(port), '--bind', HOST, '--save', '', '--appendonly', 'no', '--dir', dir];
      return new ServerProcess('redis-server', bin, args, port, (run) => redisPongs(port, run.pid));
    });
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  const port = server.port;
  return {
    url: `redis://${HOST}:${port}`,
    port,
    get pid() {
      return server.pid;
    },
    stop: () => server.stop(),
    kill: () => server.kill(),
    cleanup: async () => {
      await server.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Starts on `port`, or on a fresh free port, retried a few times if another process wins the race for it. */
async function startOnPort(port: number | undefined, make: (port: number) => ServerProcess): Promise<ServerProcess> {
  for (let attempt = 1; ; attempt++) {
    const server = make(port ?? (await freePort(HOST)));
    try {
      await server.start();
      return server;
    } catch (err) {
      if (port !== undefined || attempt >= 3 || !(err instanceof TestkitError) || err.code !== 'EXITED') throw err;
    }
  }
}

type Run = { child: ChildProcess; running: boolean; exited: Promise<void> };
type ReadyProbe = (run: { pid: number; output(): string }) => Promise<boolean>;

/** One server binary that can be started again with the same arguments after it ended. */
class ServerProcess {
  private run: Run | undefined;
  private output = '';
  private readonly name: string;
  private readonly bin: string;
  private readonly args: readonly string[];
  readonly port: number;
  private readonly ready: ReadyProbe;

  constructor(name: string, bin: string, args: readonly string[], port: number, ready: ReadyProbe) {
    this.name = name;
    this.bin = bin;
    this.args = args;
    this.port = port;
    this.ready = ready;
  }

  get pid(): number {
    return this.run?.child.pid ?? -1;
  }

  async start(): Promise<void> {
    if (this.run?.running) throw new TestkitError('NOT_READY', `${this.name} (pid ${this.pid}) is already running`);
    this.output = '';
    const child = spawn(this.bin, this.args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const keep = (chunk: Buffer) => {
      this.output = (this.output + chunk.toString('utf8')).slice(-OUTPUT_TAIL_CHARS);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    const run: Run = { child, running: true, exited: Promise.resolve() };
    run.exited = new Promise<void>((resolve) => {
      const ended = () => {
        run.running = false;
        resolve();
      };
      // 'close' comes after the exit and after the last output; 'error' alone when spawn failed.
      child.once('close', ended);
      child.once('error', (err) => {
        keep(Buffer.from(`\n${err.message}`));
        ended();
      });
    });
    this.run = run;

    const deadline = Date.now() + READY_TIMEOUT_MS;
    for (;;) {
      if (!run.running) throw new TestkitError('EXITED', `${this.name} exited before answering on ${HOST}:${this.port}; its output ends:\n${this.output}`);
      if ((await this.ready({ pid: this.pid, output: () => this.output })) && run.running) return;
      if (Date.now() >= deadline) {
        await this.kill();
        throw new TestkitError(
          'NOT_READY',
          `${this.name} did not answer on ${HOST}:${this.port} within ${READY_TIMEOUT_MS}ms; its output ends:\n${this.output}`,
        );
      }
      await sleep(50);
    }
  }

  async stop(): Promise<void> {
    const run = this.run;
    if (!run?.running) return;
    run.child.kill('SIGTERM');
    const escalate = setTimeout(() => {
      if (run.running) run.child.kill('SIGKILL');
    }, STOP_GRACE_MS);
    await run.exited;
    clearTimeout(escalate);
  }

  async kill(): Promise<void> {
    const run = this.run;
    if (!run?.running) return;
    run.child.kill('SIGKILL');
    await run.exited;
  }
}

/** One attempt: does something accept a TCP connection on the port? */
function tcpAccepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: HOST, port, timeout: 1_000 });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.once('connect', () => done(true));
    socket.once('timeout', () => done(false));
    socket.once('error', () => done(false));
  });
}

/**
 * One attempt: does Redis answer PING with +PONG (not -LOADING or a refused connection),
 * and is it the redis-server with this pid?
 */
function redisPongs(port: number, pid: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: HOST, port, timeout: 1_000 });
    let reply = '';
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.once('connect', () => socket.write('PING\r\nINFO server\r\n'));
    socket.on('data', (chunk: Buffer) => {
      reply += chunk.toString('latin1');
      if (reply.startsWith('-')) return done(false);
      if (!reply.startsWith('+PONG\r\n')) return;
      const owner = /\r\nprocess_id:(\d+)\r\n/.exec(reply);
      if (owner) done(Number(owner[1]) === pid);
    });
    socket.once('timeout', () => done(false));
    socket.once('error', () => done(false));
    socket.once('close', () => done(false));
  });
}

/** findBinary (libs/cluster/src/processes.ts), failing as the testkit fails. */
function binary(name: string, preferred: string): string {
  try {
    return findBinary(name, [preferred]);
  } catch (err) {
    throw new TestkitError('BINARY_NOT_FOUND', `${name}: ${(err as Error).message}`);
  }
}
