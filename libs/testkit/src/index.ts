/**
 * Test helpers over real components: free ports, an SMTP sink that records what arrived,
 * polling with a deadline, and raw SMTP dialogues for asserting exact reply lines.
 * (Real nats-server/redis-server/Transit processes come from @transit/cluster.)
 */
import { createServer as createNetServer, connect } from 'node:net';
import { SMTPServer } from 'smtp-server';

export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createNetServer();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const address = srv.address();
      srv.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

async function portFree(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createNetServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, host, () => srv.close(() => resolve(true)));
  });
}

/** An offset such that every `port + offset` is free on `host` (for TRANSIT_PORT_OFFSET). */
export async function freePortOffset(ports: readonly number[], host = '127.0.0.1'): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const offset = 20_000 + Math.floor(Math.random() * 20_000);
    const checks = await Promise.all(ports.map((p) => portFree(p + offset, host)));
    if (checks.every(Boolean)) return offset;
  }
  throw new Error('no free port offset found');
}

export async function waitFor<T>(probe: () => Promise<T | undefined> | T | undefined, opts: { timeoutMs: number; intervalMs?: number; what: string }): Promise<T> {
  const deadline = Date.now() + opts.timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${opts.timeoutMs}ms waiting for ${opts.what}`);
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 100));
  }
}

export type ReceivedMessage = { mailFrom: string; rcptTo: string[]; data: Buffer };
export type SinkReply = { code: number; message: string };
export type SmtpSink = { host: string; port: number; messages: ReceivedMessage[]; waitFor(count: number, timeoutMs?: number): Promise<ReceivedMessage[]>; close(): Promise<void> };

/** A real SMTP server that records every message; `rejectRecipient` can refuse chosen recipients. */
export async function startSmtpSink(opts: { host?: string; rejectRecipient?: (rcpt: string) => SinkReply | undefined } = {}): Promise<SmtpSink> {
  const host = opts.host ?? '127.0.0.1';
  const messages: ReceivedMessage[] = [];
  const server = new SMTPServer({
    logger: false,
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    disableReverseLookup: true,
    onRcptTo(address, _session, cb) {
      const reply = opts.rejectRecipient?.(address.address);
      if (reply) return cb(Object.assign(new Error(reply.message), { responseCode: reply.code }));
      cb();
    },
    onData(stream, session, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        messages.push({ mailFrom: session.envelope.mailFrom ? session.envelope.mailFrom.address : '', rcptTo: session.envelope.rcptTo.map((r) => r.address), data: Buffer.concat(chunks) });
        cb();
      });
    },
  });
  const port = await freePort(host);
  await new Promise<void>((resolve, reject) => {
    server.server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return {
    host,
    port,
    messages,
    waitFor: (count, timeoutMs = 20_000) => waitFor(() => (messages.length >= count ? messages : undefined), { timeoutMs, what: `${count} message(s) at the sink (have ${messages.length})` }),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/**
 * A raw SMTP dialogue: reads the greeting, then sends each line and reads one complete reply.
 * A line `DATA-BODY:<text>` sends text as is (it must end with CRLF.CRLF). Returns the replies.
 */
export async function smtpTranscript(opts: { host: string; port: number; localAddress?: string; lines: string[]; timeoutMs?: number }): Promise<string[]> {
  const socket = connect({ host: opts.host, port: opts.port, localAddress: opts.localAddress });
  socket.setTimeout(opts.timeoutMs ?? 10_000);
  let buffer = '';
  const waiters: Array<() => void> = [];
  socket.on('data', (d: Buffer) => {
    buffer += d.toString('latin1');
    waiters.splice(0).forEach((w) => w());
  });
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  socket.on('timeout', () => socket.destroy(new Error('SMTP dialogue timed out')));
  socket.on('error', () => waiters.splice(0).forEach((w) => w()));
  const readReply = async (): Promise<string> => {
    for (;;) {
      const m = /^((?:\d{3}-[^\n]*\n)*\d{3}(?: [^\n]*)?\r?\n)/.exec(buffer);
      if (m) {
        buffer = buffer.slice(m[1]!.length);
        return m[1]!.trimEnd().replace(/\r/g, '');
      }
      if (socket.destroyed) throw new Error(`connection closed; unread: ${JSON.stringify(buffer)}`);
      await new Promise<void>((r) => waiters.push(r));
    }
  };
  try {
    const replies = [await readReply()];
    for (const line of opts.lines) {
      socket.write(line.startsWith('DATA-BODY:') ? line.slice('DATA-BODY:'.length) : `${line}\r\n`);
      replies.push(await readReply());
    }
    return replies;
  } finally {
    socket.destroy();
    await closed;
  }
}
