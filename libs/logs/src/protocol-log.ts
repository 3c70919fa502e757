/**
 * SMTP protocol log in Exchange's CSV shape (docs/exchange-behaviour.md §11): files RECVyyyymmdd-n.log /
 * SENDyyyymmdd-n.log, each starting with #Software/#Version/#Log-type/#Date/#Fields
 * header lines, then one line per event.
 *
 * Promises: AUTH payloads and responses are never written (see Session); lines are
 * appended in order, in batches, off the caller's path; a write error is reported once
 * per failure streak through onError and never thrown, so logging cannot break a session.
 * Files roll at a new UTC day and before a line would exceed maxFileSize; a process
 * continues after the highest n already on disk for the day. Retention (age, directory
 * size) runs at open and at each roll and deletes only this kind's files, never the
 * current one.
 */
import { randomInt } from 'node:crypto';
import { appendFile, mkdir, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';

export type ProtocolLogKind = 'Receive' | 'Send';

export type ProtocolLogOptions = {
  dir: string;
  kind: ProtocolLogKind;
  maxFileSize?: number;
  maxDirectorySize?: number;
  maxAgeDays?: number;
  software?: string;
  version?: string;
  now?: () => Date;
  /** Called once per failure streak; without it the error becomes a process warning. */
  onError?: (err: Error) => void;
};

export type ProtocolLogSession = {
  readonly id: string;
  connect(context?: string): void;
  disconnect(context?: string): void;
  received(line: string): void;
  sent(line: string): void;
  info(data: string, context?: string): void;
};

type Event = '+' | '-' | '<' | '>' | '*';
type Emit = (event: Event, data: string, context: string) => void;
type Entry = { at: Date; line: string };
type CurrentFile = { day: string; n: number; path: string; size: number; headerSize: number };

const FIELDS = 'date-time,connector-id,session-id,sequence-number,local-endpoint,remote-endpoint,event,data,context';
const MIB = 1024 * 1024;
const DAY_MS = 86_400_000;
// Exchange's files are CRLF-terminated; tools written for them split on it.
const EOL = '\r\n';

const oneLine = (s: string): string => s.replace(/[\r\n]+/g, '');
const csv = (s: string): string => (/[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s);
const dayOf = (at: Date): string => at.toISOString().slice(0, 10).replaceAll('-', '');

// Monotonic within a process and seeded from the clock, so ids also sort across restarts.
let nextSessionId = (BigInt(Date.now()) << 16n) | BigInt(randomInt(0x10000));
const newSessionId = (): string => (nextSessionId++).toString(16).toUpperCase().padStart(16, '0');

export class ProtocolLog {
  readonly #dir: string;
  readonly #prefix: string;
  readonly #logType: string;
  readonly #pattern: RegExp;
  readonly #maxFileSize: number;
  readonly #maxDirectorySize: number;
  readonly #maxAgeMs: number;
  readonly #software: string;
  readonly #version: string;
  readonly #now: () => Date;
  readonly #onError: (err: Error) => void;
  #pending: Entry[] = [];
  #chain: Promise<void>;
  #draining = false;
  #failing = false;
  #closed = false;
  #file: CurrentFile | undefined;

  constructor(opts: ProtocolLogOptions) {
    this.#dir = opts.dir;
    this.#prefix = opts.kind === 'Receive' ? 'RECV' : 'SEND';
    this.#logType = `SMTP ${opts.kind} Protocol Log`;
    this.#pattern = new RegExp(`^${this.#prefix}(\\d{8})-(\\d+)\\.log$`);
    this.#maxFileSize = opts.maxFileSize ?? 10 * MIB;
    this.#maxDirectorySize = opts.maxDirectorySize ?? 250 * MIB;
    this.#maxAgeMs = (opts.maxAgeDays ?? 30) * DAY_MS;
    this.#software = opts.software ?? 'Transit';
    this.#version = opts.version ?? '0.1.0';
    this.#now = opts.now ?? (() => new Date());
    this.#onError = opts.onError ?? ((err) => process.emitWarning(err));
    this.#chain = this.#guard(async () => {
      await mkdir(this.#dir, { recursive: true });
      await this.#enforceRetention();
    });
  }

  session(connectorId: string, localEndpoint: string, remoteEndpoint: string, sessionId: string = newSessionId()): ProtocolLogSession {
    const head = `,${csv(oneLine(connectorId))},${csv(oneLine(sessionId))},`;
    const endpoints = `,${csv(oneLine(localEndpoint))},${csv(oneLine(remoteEndpoint))},`;
    let sequence = 0;
    return new Session(sessionId, (event, data, context) => {
      if (this.#closed) return;
      const at = this.#now();
      const line = `${at.toISOString()}${head}${sequence++}${endpoints}${event},${csv(oneLine(data))},${csv(oneLine(context))}${EOL}`;
      this.#enqueue({ at, line });
    });
  }

  /** Resolves once every event logged before the call is on disk (or reported as failed). */
  flush(): Promise<void> {
    return this.#chain;
  }

  /** Writes what is pending; later events are dropped. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#chain;
  }

  #enqueue(entry: Entry): void {
    this.#pending.push(entry);
    if (this.#draining) return;
    this.#draining = true;
    this.#chain = this.#chain.then(() => this.#drain());
  }

  // Everything logged while an append is in flight goes out together in the next one.
  async #drain(): Promise<void> {
    while (this.#pending.length > 0) {
      const batch = this.#pending;
      this.#pending = [];
      await this.#guard(() => this.#write(batch));
    }
    this.#draining = false;
  }

  async #guard(work: () => Promise<void>): Promise<void> {
    try {
      await work();
      this.#failing = false;
    } catch (err) {
      // What reached the disk is unknown: the next batch starts a fresh file with a header.
      this.#file = undefined;
      if (this.#failing) return;
      this.#failing = true;
      try {
        this.#onError(err instanceof Error ? err : new Error(String(err)));
      } catch {
        // A throwing handler must not break the writer either.
      }
    }
  }

  async #write(batch: Entry[]): Promise<void> {
    let file = this.#file;
    let chunk = '';
    let rolled = false;
    for (const { at, line } of batch) {
      const day = dayOf(at);
      const bytes = Buffer.byteLength(line);
      // A line bigger than maxFileSize still goes into a fresh file rather than rolling forever.
      const full = file !== undefined && file.size + bytes > this.#maxFileSize && file.size > file.headerSize;
      if (file === undefined || file.day !== day || full) {
        if (file && chunk) await appendFile(file.path, chunk);
        file = await this.#startFile(day, at, file?.day === day ? file.n + 1 : undefined);
        chunk = this.#header(at);
        rolled = true;
      }
      chunk += line;
      file.size += bytes;
    }
    if (file && chunk) await appendFile(file.path, chunk);
    if (rolled) await this.#enforceRetention();
  }

  async #startFile(day: string, at: Date, n: number | undefined): Promise<CurrentFile> {
    await mkdir(this.#dir, { recursive: true });
    // Continue after whatever an earlier process left for the day, so nothing is overwritten.
    n ??= (await this.#existing()).reduce((max, f) => (f.day === day ? Math.max(max, f.n) : max), 0) + 1;
    const headerSize = Buffer.byteLength(this.#header(at));
    this.#file = { day, n, path: join(this.#dir, `${this.#prefix}${day}-${n}.log`), size: headerSize, headerSize };
    return this.#file;
  }

  #header(at: Date): string {
    const lines = [
      `#Software: ${this.#software}`,
      `#Version: ${this.#version}`,
      `#Log-type: ${this.#logType}`,
      `#Date: ${at.toISOString()}`,
      `#Fields: ${FIELDS}`,
    ];
    return lines.join(EOL) + EOL;
  }

  async #existing(): Promise<{ name: string; day: string; n: number }[]> {
    const files = [];
    for (const name of await readdir(this.#dir)) {
      const m = this.#pattern.exec(name);
      if (m) files.push({ name, day: m[1] ?? '', n: Number(m[2]) });
    }
    return files;
  }

  async #enforceRetention(): Promise<void> {
    const current = this.#file?.path;
    const cutoff = this.#now().getTime() - this.#maxAgeMs;
    const kept = [];
    for (const f of await this.#existing()) {
      const path = join(this.#dir, f.name);
      if (path === current) continue;
      const st = await stat(path).catch(() => undefined); // another process may have removed it
      if (!st) continue;
      if (st.mtimeMs < cutoff) await rm(path, { force: true });
      else kept.push({ ...f, path, size: st.size, mtimeMs: st.mtimeMs });
    }
    // The current file counts towards the limit but is never a candidate.
    let total = kept.reduce((sum, f) => sum + f.size, this.#file?.size ?? 0);
    kept.sort((a, b) => a.mtimeMs - b.mtimeMs || a.day.localeCompare(b.day) || a.n - b.n);
    for (const f of kept) {
      if (total <= this.#maxDirectorySize) break;
      await rm(f.path, { force: true });
      total -= f.size;
    }
  }
}

/**
 * Keeps credentials out of the log: the initial response on an AUTH line, every client
 * line while an exchange is open (from AUTH, or any 334, until a reply with another code),
 * and the 334 challenges themselves.
 */
class Session implements ProtocolLogSession {
  readonly id: string;
  readonly #emit: Emit;
  #inAuth = false;

  constructor(id: string, emit: Emit) {
    this.id = id;
    this.#emit = emit;
  }

  connect(context = ''): void {
    this.#emit('+', '', context);
  }

  disconnect(context = ''): void {
    this.#emit('-', '', context);
  }

  received(line: string): void {
    line = oneLine(line);
    const auth = /^(\s*AUTH\s+\S+)\s*(.*)$/i.exec(line);
    if (this.#inAuth) {
      this.#emit('<', '****', '');
    } else if (auth) {
      this.#inAuth = true;
      this.#emit('<', auth[2] ? `${auth[1]} ****` : line, '');
    } else {
      this.#emit('<', line, '');
    }
  }

  sent(line: string): void {
    const code = /^(\d{3})(?:[ -]|$)/.exec(line)?.[1];
    if (code === '334') {
      this.#inAuth = true;
      this.#emit('>', '334 <authentication response>', '');
      return;
    }
    if (code !== undefined) this.#inAuth = false;
    this.#emit('>', line, '');
  }

  info(data: string, context = ''): void {
    this.#emit('*', data, context);
  }
}
