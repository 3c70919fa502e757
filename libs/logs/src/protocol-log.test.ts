import { mkdir, mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ProtocolLog, type ProtocolLogOptions } from './index.ts';

const base = await mkdtemp(join(tmpdir(), 'protocol-log-'));
afterAll(() => rm(base, { recursive: true, force: true }));

let dirs = 0;
const freshDir = (): string => join(base, `d${++dirs}`);

/** A clock the test moves by hand; each reading is 1 ms after the previous one. */
const clock = (iso: string): { now: () => Date; set: (iso: string) => void } => {
  let t = Date.parse(iso);
  return { now: () => new Date(t++), set: (next) => void (t = Date.parse(next)) };
};

// Files written here get real mtimes while the log reads a fixed clock, so age-based
// retention is off unless a test asks for it.
const open = (dir: string, extra: Partial<ProtocolLogOptions> = {}): ProtocolLog =>
  new ProtocolLog({ dir, kind: 'Receive', now: clock('2026-11-24T10:00:00Z').now, maxAgeDays: 1e6, ...extra });

const lines = async (path: string): Promise<string[]> => {
  const text = await readFile(path, 'utf8');
  expect(text.endsWith('\r\n')).toBe(true);
  return text.slice(0, -2).split('\r\n');
};
const events = async (path: string): Promise<string[]> => (await lines(path)).filter((l) => !l.startsWith('#'));
const data = async (path: string): Promise<string[]> => (await events(path)).map((l) => l.split(',')[7] ?? '');

const FIELDS = '#Fields: date-time,connector-id,session-id,sequence-number,local-endpoint,remote-endpoint,event,data,context';

describe('ProtocolLog format', () => {
  it('starts each file with the Exchange header lines and writes the fields in order', async () => {
    const dir = freshDir();
    const log = open(dir);
    const s = log.session('EX01\\Default Frontend', '10.0.0.1:25', '192.0.2.7:50123', '08DD1A2B3C4D5E6F');
    s.connect();
    s.sent('220 EX01 Microsoft ESMTP MAIL Service ready');
    s.received('EHLO client.example');
    s.info('SMTPSubmit SMTPAcceptAnySender', 'Set Session Permissions');
    s.disconnect('Local');
    await log.close();

    expect(await readdir(dir)).toEqual(['RECV20261124-1.log']);
    expect(await lines(join(dir, 'RECV20261124-1.log'))).toEqual([
      '#Software: Transit',
      '#Version: 0.1.0',
      '#Log-type: SMTP Receive Protocol Log',
      '#Date: 2026-11-24T10:00:00.000Z',
      FIELDS,
      '2026-11-24T10:00:00.000Z,EX01\\Default Frontend,08DD1A2B3C4D5E6F,0,10.0.0.1:25,192.0.2.7:50123,+,,',
      '2026-11-24T10:00:00.001Z,EX01\\Default Frontend,08DD1A2B3C4D5E6F,1,10.0.0.1:25,192.0.2.7:50123,>,220 EX01 Microsoft ESMTP MAIL Service ready,',
      '2026-11-24T10:00:00.002Z,EX01\\Default Frontend,08DD1A2B3C4D5E6F,2,10.0.0.1:25,192.0.2.7:50123,<,EHLO client.example,',
      '2026-11-24T10:00:00.003Z,EX01\\Default Frontend,08DD1A2B3C4D5E6F,3,10.0.0.1:25,192.0.2.7:50123,*,SMTPSubmit SMTPAcceptAnySender,Set Session Permissions',
      '2026-11-24T10:00:00.004Z,EX01\\Default Frontend,08DD1A2B3C4D5E6F,4,10.0.0.1:25,192.0.2.7:50123,-,,Local',
    ]);
  });

  it('names Send logs SEND… with their own log type and honours software and version', async () => {
    const dir = freshDir();
    const log = open(dir, { kind: 'Send', software: 'Transit Hub', version: '1.2.3' });
    log.session('EX01\\Internet', '10.0.0.1:41000', '198.51.100.9:25').connect();
    await log.close();
    expect(await readdir(dir)).toEqual(['SEND20261124-1.log']);
    expect((await lines(join(dir, 'SEND20261124-1.log'))).slice(0, 3)).toEqual([
      '#Software: Transit Hub',
      '#Version: 1.2.3',
      '#Log-type: SMTP Send Protocol Log',
    ]);
  });

  it('numbers events from 0 per session, even when sessions interleave, and gives each session a distinct 16-hex-digit id', async () => {
    const dir = freshDir();
    const log = open(dir);
    const a = log.session('EX01\\A', '10.0.0.1:25', '192.0.2.1:1000');
    const b = log.session('EX01\\A', '10.0.0.1:25', '192.0.2.2:2000');
    a.connect();
    b.connect();
    a.received('EHLO a');
    b.received('EHLO b');
    a.disconnect();
    await log.close();

    expect(a.id).toMatch(/^[0-9A-F]{16}$/);
    expect(b.id).toMatch(/^[0-9A-F]{16}$/);
    expect(a.id).not.toBe(b.id);
    const rows = (await events(join(dir, 'RECV20261124-1.log'))).map((l) => l.split(','));
    expect(rows.map((r) => [r[2], r[3], r[6]])).toEqual([
      [a.id, '0', '+'],
      [b.id, '0', '+'],
      [a.id, '1', '<'],
      [b.id, '1', '<'],
      [a.id, '2', '-'],
    ]);
  });

  it('quotes fields with commas or quotes, doubling inner quotes, and keeps every event on one line', async () => {
    const dir = freshDir();
    const log = open(dir);
    const s = log.session('EX01\\Default, Frontend', '10.0.0.1:25', '192.0.2.7:50123', 'S1');
    s.received('MAIL FROM:<"a,b"@example.com>');
    s.info('TLS protocol SP_PROT_TLS1_2_SERVER', 'say "hi", then go');
    s.received('NOOP\r\n');
    s.info('one\r\ntwo', 'three\nfour');
    await log.close();

    expect(await events(join(dir, 'RECV20261124-1.log'))).toEqual([
      '2026-11-24T10:00:00.000Z,"EX01\\Default, Frontend",S1,0,10.0.0.1:25,192.0.2.7:50123,<,"MAIL FROM:<""a,b""@example.com>",',
      '2026-11-24T10:00:00.001Z,"EX01\\Default, Frontend",S1,1,10.0.0.1:25,192.0.2.7:50123,*,TLS protocol SP_PROT_TLS1_2_SERVER,"say ""hi"", then go"',
      '2026-11-24T10:00:00.002Z,"EX01\\Default, Frontend",S1,2,10.0.0.1:25,192.0.2.7:50123,<,NOOP,',
      '2026-11-24T10:00:00.003Z,"EX01\\Default, Frontend",S1,3,10.0.0.1:25,192.0.2.7:50123,*,onetwo,threefour',
    ]);
  });
});

describe('ProtocolLog credential masking', () => {
  const USER = 'YWxpY2VAY29udG9zby50ZXN0'; // alice@contoso.test
  const PASS = 'UzNjcmV0IVBhc3M='; // S3cret!Pass
  const PLAIN = 'AGFsaWNlQGNvbnRvc28udGVzdABTM2NyZXQhUGFzcw==';

  const run = async (script: (s: ReturnType<ProtocolLog['session']>) => void): Promise<{ data: string[]; text: string }> => {
    const dir = freshDir();
    const log = open(dir);
    script(log.session('EX01\\Client Frontend', '10.0.0.1:587', '192.0.2.7:50123'));
    await log.close();
    const path = join(dir, 'RECV20261124-1.log');
    return { data: await data(path), text: await readFile(path, 'utf8') };
  };

  it.each([
    ['AUTH PLAIN with an initial response', `AUTH PLAIN ${PLAIN}`, 'AUTH PLAIN ****'],
    ['AUTH LOGIN with an initial response', `AUTH LOGIN ${USER}`, 'AUTH LOGIN ****'],
    ['lower-case auth', `auth plain ${PLAIN}`, 'auth plain ****'],
  ])('masks %s', async (_name, command, logged) => {
    const { data: rows, text } = await run((s) => {
      s.received(command);
      s.sent('235 2.7.0 Authentication successful');
      s.received('MAIL FROM:<alice@contoso.test>');
    });
    expect(rows).toEqual([logged, '235 2.7.0 Authentication successful', 'MAIL FROM:<alice@contoso.test>']);
    expect(text).not.toContain(PLAIN);
    expect(text).not.toContain(USER);
  });

  it('masks the AUTH PLAIN response sent after an empty 334 challenge', async () => {
    const { data: rows, text } = await run((s) => {
      s.received('AUTH PLAIN');
      s.sent('334 ');
      s.received(PLAIN);
      s.sent('235 2.7.0 Authentication successful');
    });
    expect(rows).toEqual(['AUTH PLAIN', '334 <authentication response>', '****', '235 2.7.0 Authentication successful']);
    expect(text).not.toContain(PLAIN);
  });

  it('masks both steps of AUTH LOGIN and the 334 challenges, then logs normally again', async () => {
    const { data: rows, text } = await run((s) => {
      s.received('AUTH LOGIN');
      s.sent('334 VXNlcm5hbWU6');
      s.received(USER);
      s.sent('334 UGFzc3dvcmQ6');
      s.received(PASS);
      s.sent('535 5.7.3 Authentication unsuccessful');
      s.received('QUIT');
    });
    expect(rows).toEqual([
      'AUTH LOGIN',
      '334 <authentication response>',
      '****',
      '334 <authentication response>',
      '****',
      '535 5.7.3 Authentication unsuccessful',
      'QUIT',
    ]);
    for (const secret of [USER, PASS, 'VXNlcm5hbWU6', 'UGFzc3dvcmQ6']) expect(text).not.toContain(secret);
  });

  it('masks the client line after any 334, and a client cancel (*) during the exchange', async () => {
    const { data: rows } = await run((s) => {
      s.sent('334 VXNlcm5hbWU6');
      s.received(USER);
      s.sent('334 UGFzc3dvcmQ6');
      s.received('*');
      s.sent('501 5.0.0 Authentication cancelled');
      s.received('RSET');
    });
    expect(rows).toEqual(['334 <authentication response>', '****', '334 <authentication response>', '****', '501 5.0.0 Authentication cancelled', 'RSET']);
  });
});

describe('ProtocolLog rotation and retention', () => {
  it('rolls to -2 before a line would exceed maxFileSize, with a header in each file', async () => {
    const dir = freshDir();
    const log = open(dir, { maxFileSize: 1000 });
    const s = log.session('EX01\\A', '10.0.0.1:25', '192.0.2.1:1000', 'S1');
    for (let i = 0; i < 8; i++) s.received(`RCPT TO:<user${i}@contoso.test> ${'x'.repeat(60)}`);
    await log.close();

    expect((await readdir(dir)).sort()).toEqual(['RECV20261124-1.log', 'RECV20261124-2.log']);
    const first = join(dir, 'RECV20261124-1.log');
    const second = join(dir, 'RECV20261124-2.log');
    expect((await stat(first)).size).toBeLessThanOrEqual(1000);
    expect((await lines(second))[0]).toBe('#Software: Transit');
    expect((await lines(second))[4]).toBe(FIELDS);
    const seqs = [...(await events(first)), ...(await events(second))].map((l) => l.split(',')[3]);
    expect(seqs).toEqual(['0', '1', '2', '3', '4', '5', '6', '7']);
  });

  it('starts a new file series when the UTC day changes', async () => {
    const dir = freshDir();
    const c = clock('2026-11-24T23:59:59.998Z');
    const log = open(dir, { now: c.now });
    const s = log.session('EX01\\A', '10.0.0.1:25', '192.0.2.1:1000', 'S1');
    s.connect();
    c.set('2026-11-25T00:00:00.000Z');
    s.received('QUIT');
    await log.close();

    expect((await readdir(dir)).sort()).toEqual(['RECV20261124-1.log', 'RECV20261125-1.log']);
    expect(await data(join(dir, 'RECV20261125-1.log'))).toEqual(['QUIT']);
    expect((await lines(join(dir, 'RECV20261125-1.log')))[3]).toBe('#Date: 2026-11-25T00:00:00.000Z');
  });

  it('continues after the highest existing n for the day when re-opened, leaving earlier files intact', async () => {
    const dir = freshDir();
    for (const run of ['first', 'second', 'third']) {
      const log = open(dir);
      log.session('EX01\\A', '10.0.0.1:25', '192.0.2.1:1000', run).connect();
      await log.close();
    }
    expect((await readdir(dir)).sort()).toEqual(['RECV20261124-1.log', 'RECV20261124-2.log', 'RECV20261124-3.log']);
    for (const [n, run] of [
      [1, 'first'],
      [2, 'second'],
      [3, 'third'],
    ] as const) {
      const rows = await events(join(dir, `RECV20261124-${n}.log`));
      expect(rows.map((l) => l.split(',')[2])).toEqual([run]);
    }
  });

  it('deletes files of its kind older than maxAgeDays at open, and nothing else', async () => {
    const dir = freshDir();
    await mkdir(dir);
    const now = Date.parse('2026-11-24T10:00:00Z');
    const aged = async (name: string, days: number): Promise<void> => {
      await writeFile(join(dir, name), 'x');
      const t = new Date(now - days * 86_400_000);
      await utimes(join(dir, name), t, t);
    };
    await aged('RECV20261020-1.log', 35);
    await aged('RECV20261023-4.log', 31.5);
    await aged('RECV20261026-1.log', 29);
    await aged('SEND20261020-1.log', 35);
    await aged('notes.txt', 35);
    const log = open(dir, { maxAgeDays: 30 });
    await log.flush();
    expect((await readdir(dir)).sort()).toEqual(['RECV20261026-1.log', 'SEND20261020-1.log', 'notes.txt']);
    await log.close();
  });

  it('deletes the oldest files of its kind beyond maxDirectorySize, at open and at a roll, never the current file', async () => {
    const dir = freshDir();
    await mkdir(dir);
    const past = Date.parse('2000-01-01T00:00:00Z'); // older than anything written below
    for (const [i, name] of ['RECV20261121-1.log', 'RECV20261122-1.log', 'RECV20261123-1.log', 'SEND20261120-1.log'].entries()) {
      await writeFile(join(dir, name), 'x'.repeat(400));
      const t = new Date(past + i * 86_400_000);
      await utimes(join(dir, name), t, t);
    }
    const log = open(dir, { maxDirectorySize: 900, maxFileSize: 1000 });
    await log.flush();
    // 1200 bytes of RECV files: the oldest goes, 800 remain; SEND files are not this log's.
    expect((await readdir(dir)).sort()).toEqual(['RECV20261122-1.log', 'RECV20261123-1.log', 'SEND20261120-1.log']);

    // ~200-byte lines: three fill -1 (with its header), the next two roll to -2. Then -2
    // alone is within the limit, so every older file of its kind goes, -1 included.
    const s = log.session('EX01\\A', '10.0.0.1:25', '192.0.2.1:1000', 'S1');
    for (let i = 0; i < 5; i++) s.received(`RCPT TO:<user${i}@contoso.test> ${'x'.repeat(100)}`);
    await log.close();
    const left = (await readdir(dir)).sort();
    expect(left).toEqual(['RECV20261124-2.log', 'SEND20261120-1.log']);
    expect((await events(join(dir, 'RECV20261124-2.log'))).map((l) => l.split(',')[3])).toEqual(['3', '4']);
  });
});

describe('ProtocolLog writing', () => {
  it('flush() resolves with every line logged so far on disk, in order', async () => {
    const dir = freshDir();
    const log = open(dir);
    const sessions = Array.from({ length: 10 }, (_, i) => log.session('EX01\\A', '10.0.0.1:25', `192.0.2.${i}:1000`, `S${i}`));
    for (let round = 0; round < 100; round++) {
      for (const s of sessions) s.received(`NOOP ${round}`);
      if (round === 50) await Promise.resolve(); // let a batch start mid-stream
    }
    await log.flush();
    const rows = (await events(join(dir, 'RECV20261124-1.log'))).map((l) => l.split(','));
    expect(rows).toHaveLength(1000);
    for (const s of sessions) {
      expect(rows.filter((r) => r[2] === s.id).map((r) => r[3])).toEqual(Array.from({ length: 100 }, (_, i) => String(i)));
    }
    await log.close();
  });

  it('reports a write error once through onError, never throws, and recovers with a fresh file', async () => {
    const dir = freshDir();
    const errors: Error[] = [];
    const log = open(dir, { onError: (err) => errors.push(err) });
    const s = log.session('EX01\\A', '10.0.0.1:25', '192.0.2.1:1000', 'S1');
    s.connect();
    await log.flush();
    expect(errors).toEqual([]);

    await rm(dir, { recursive: true });
    await writeFile(dir, 'not a directory');
    expect(() => s.received('EHLO a')).not.toThrow();
    await log.flush();
    expect(() => s.received('MAIL FROM:<>')).not.toThrow();
    await expect(log.flush()).resolves.toBeUndefined();
    expect(errors).toHaveLength(1);
    expect((errors[0] as NodeJS.ErrnoException).code).toMatch(/^(ENOTDIR|EEXIST)$/);

    await rm(dir);
    s.received('QUIT');
    await log.close();
    expect(await readdir(dir)).toEqual(['RECV20261124-1.log']);
    expect((await lines(join(dir, 'RECV20261124-1.log')))[0]).toBe('#Software: Transit');
    expect(await data(join(dir, 'RECV20261124-1.log'))).toEqual(['QUIT']);
  });
});
