/**
 * The SMTP ends of `npm run bench:compare`: Postfix's `smtp-sink` (accepts and discards,
 * counts what it received), Postfix's `smtp-source` (the load), and a small latency probe
 * that times its own transactions, since smtp-source reports no per-message latency.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { connect, type Socket } from 'node:net';

export function binary(name: string): string {
  for (const dir of ['/usr/sbin', '/usr/bin', ...(process.env.PATH ?? '').split(':')]) {
    if (dir && existsSync(`${dir}/${name}`)) return `${dir}/${name}`;
  }
  throw new Error(`${name} not found (it comes with Debian's postfix package)`);
}

async function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

/** SIGTERM, then SIGKILL after `graceMs`, by this child's own PID. */
export async function stopChild(child: ChildProcess, graceMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited(child);
  clearTimeout(timer);
}

export type Sink = { host: string; port: number; pid: number; received(): number; stop(): Promise<void> };

/**
 * `smtp-sink -c -u <user> host:port backlog`: with -c it prints `sess=N quit=N mesg=N` after
 * every session end, QUIT and final dot, so `mesg` is an exact count of messages received.
 */
export async function startSink(host: string, port: number, user: string): Promise<Sink> {
  const child = spawn(binary('smtp-sink'), ['-c', '-u', user, `${host}:${port}`, '1000'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let tail = '';
  let count = 0;
  let errors = '';
  child.stdout.setEncoding('latin1');
  child.stdout.on('data', (chunk: string) => {
    tail = (tail + chunk).slice(-4096);
    const all = [...tail.matchAll(/mesg=(\d+)/g)];
    const last = all.at(-1);
    if (last) count = Math.max(count, Number(last[1]));
    tail = tail.slice(-200);
  });
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => void (errors = (errors + chunk).slice(-2000)));
  const deadline = Date.now() + 10_000;
  while (!(await canConnect(host, port))) {
    if (child.exitCode !== null) throw new Error(`smtp-sink exited at start: ${errors}`);
    if (Date.now() > deadline) {
      await stopChild(child);
      throw new Error(`smtp-sink not listening on ${host}:${port} after 10 s: ${errors}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  // The probe connection above is a session without a message: it does not move `mesg`.
  return { host, port, pid: child.pid!, received: () => count, stop: () => stopChild(child) };
}

export async function canConnect(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host, port });
    s.once('connect', () => {
      s.end();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export type SourceRun = { code: number | null; stderr: string; timedOut: boolean };

/**
 * One smtp-source process: `-s sessions -m messages -l size`, a new connection per message
 * (no -d), one recipient. It exits non-zero at the first reply it did not expect.
 */
export function startSource(opts: {
  host: string;
  port: number;
  sessions: number;
  messages: number;
  size: number;
  from: string;
  to: string;
  deadline: number;
  onStart?: (child: ChildProcess) => void;
}): Promise<SourceRun> {
  const args = [
    '-s',
    String(opts.sessions),
    '-m',
    String(opts.messages),
    '-l',
    String(opts.size),
    '-f',
    opts.from,
    '-t',
    opts.to,
    '-M',
    'bench-client.test',
    `${opts.host}:${opts.port}`,
  ];
  const child = spawn(binary('smtp-source'), args, { stdio: ['ignore', 'ignore', 'pipe'] });
  opts.onStart?.(child);
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => void (stderr = (stderr + chunk).slice(-2000)));
  let timedOut = false;
  const timer = setTimeout(
    () => {
      timedOut = true;
      void stopChild(child);
    },
    Math.max(0, opts.deadline - Date.now()),
  );
  return exited(child).then((code) => {
    clearTimeout(timer);
    return { code, stderr: stderr.trim(), timedOut };
  });
}

/** A message like smtp-source's: a few headers, then `size` bytes of 78-character lines. */
export function probeMessage(size: number, from: string, to: string, id: string): string {
  const head = `From: <${from}>\r\nTo: <${to}>\r\nDate: ${new Date().toUTCString()}\r\nMessage-Id: <${id}@bench-probe.test>\r\nSubject: latency probe\r\n\r\n`;
  let body = '';
  while (body.length < size) {
    const line = 'X'.repeat(Math.min(78, Math.max(1, size - body.length - 2)));
    body += `${line}\r\n`;
  }
  return `${head}${body}.\r\n`;
}

class Replies {
  private buffer = '';
  private lines: string[] = [];
  private waiting: Array<(reply: string) => void> = [];
  private failure: Error | undefined;

  constructor(socket: Socket) {
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      this.buffer += chunk;
      let i: number;
      while ((i = this.buffer.indexOf('\n')) >= 0) {
        const line = this.buffer.slice(0, i).replace(/\r$/, '');
        this.buffer = this.buffer.slice(i + 1);
        this.lines.push(line);
        if (/^\d{3}(?: |$)/.test(line)) {
          const reply = this.lines.join('\n');
          this.lines = [];
          this.waiting.shift()?.(reply);
        }
      }
    });
    const fail = (err: Error) => {
      this.failure = err;
      for (const w of this.waiting.splice(0)) w(`000 ${err.message}`);
    };
    socket.on('error', fail);
    socket.on('close', () => fail(new Error('connection closed')));
  }

  next(): Promise<string> {
    if (this.failure) return Promise.resolve(`000 ${this.failure.message}`);
    return new Promise((resolve) => this.waiting.push(resolve));
  }
}

export type ProbeResult = {
  /** Transactions that got 250 after the final dot. */
  accepted: number;
  failed: number;
  firstError: string | undefined;
  /** Milliseconds from the final dot to the 250 reply (the MTA's durable write and its reply). */
  acceptMs: number[];
  /** Milliseconds from connect to that 250: the whole transaction of a new connection. */
  transactionMs: number[];
  /** performance.now() of each 250 after the final dot. */
  acceptedAt: number[];
};

async function transaction(
  host: string,
  port: number,
  message: string,
  from: string,
  to: string,
  timeoutMs: number,
): Promise<{ acceptMs: number; transactionMs: number; at: number } | string> {
  const t0 = performance.now();
  const socket = connect({ host, port, noDelay: true });
  const replies = new Replies(socket);
  const timer = setTimeout(() => socket.destroy(new Error(`no reply within ${timeoutMs} ms`)), timeoutMs);
  const expect = async (code: string, what: string) => {
    const reply = await replies.next();
    if (!reply.startsWith(code)) throw new Error(`${what}: ${reply.split('\n').at(-1)}`);
  };
  const send = (line: string) => socket.write(line);
  try {
    await expect('220', 'greeting');
    send('EHLO bench-probe.test\r\n');
    await expect('250', 'EHLO');
    send(`MAIL FROM:<${from}>\r\n`);
    await expect('250', 'MAIL');
    send(`RCPT TO:<${to}>\r\n`);
    await expect('250', 'RCPT');
    send('DATA\r\n');
    await expect('354', 'DATA');
    const tDot = performance.now();
    send(message);
    await expect('250', 'end of data');
    const tAccepted = performance.now();
    send('QUIT\r\n');
    await replies.next();
    return { acceptMs: tAccepted - tDot, transactionMs: tAccepted - t0, at: tAccepted };
  } catch (err) {
    return (err as Error).message;
  } finally {
    clearTimeout(timer);
    socket.destroy();
  }
}

/**
 * One more session beside the load: sends one message at a time, each on a new connection
 * like smtp-source, round robin over `targets`, until stop() is called.
 */
export function startProbe(targets: ReadonlyArray<{ host: string; port: number }>, size: number, from: string, to: string): { stop(): Promise<ProbeResult> } {
  const result: ProbeResult = { accepted: 0, failed: 0, firstError: undefined, acceptMs: [], transactionMs: [], acceptedAt: [] };
  let running = true;
  let n = 0;
  const loop = (async () => {
    while (running) {
      const target = targets[n % targets.length]!;
      const r = await transaction(target.host, target.port, probeMessage(size, from, to, `probe-${process.pid}-${Date.now()}-${n++}`), from, to, 60_000);
      if (typeof r === 'string') {
        result.failed++;
        result.firstError ??= r;
        await new Promise((res) => setTimeout(res, 100));
      } else {
        result.accepted++;
        result.acceptMs.push(r.acceptMs);
        result.transactionMs.push(r.transactionMs);
        result.acceptedAt.push(r.at);
      }
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return result;
    },
  };
}
