/**
 * Exchange's receive-connector security model over real SMTP, driven the way the seed
 * articles drive it: Exchange Management Shell lines through `transitctl ems`, applied to
 * running services without a restart, and clients (swaks, nodemailer, raw dialogues) from
 * distinct loopback source addresses so IP-scoped connectors are really chosen by address.
 */
import { execFile } from 'node:child_process';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createTransport } from 'nodemailer';
import { describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { hashPassword } from '@transit/config';
import { openSmtpDialogue, smtpTranscript, waitFor, type SmtpDialogue } from '@transit/testkit';
import { runTransitctl, waitForMaildirMessage } from './harness.ts';
import { useHarness } from './use-harness.ts';

const run = promisify(execFile);
const RELAY_PASSWORD = 'Office-Relay-2026!';
const BOB_PASSWORD = 'Bob-Secret-2026!';
const CLUSTER_SECRET = 'cluster-secret-for-tests';
const h = useHarness(async () => {
  const cost = { N: 1024, r: 8, p: 1 }; // cheap hashes keep the test fast; production uses N=16384
  const relayHash = await hashPassword(RELAY_PASSWORD, cost);
  const bobHash = await hashPassword(BOB_PASSWORD, cost);
  return {
    env: { TRANSIT_CLUSTER_SECRET: CLUSTER_SECRET },
    prepare: (config) => {
      const mailboxes = config.Mailboxes as Record<string, unknown>[];
      Object.assign(
        mailboxes.find((m) => m.Name === 'Bob')!,
        { UserPrincipalName: 'bob@contoso.test', SamAccountName: 'bob', PasswordHash: bobHash },
      );
      config.Users = [{ Name: 'relay-office1', SamAccountName: 'relay-office1', UserPrincipalName: 'relay-office1@contoso.test', PasswordHash: relayHash }];
      config.Groups = [{ Name: 'Relay Accounts', Members: ['relay-office1'] }];
      (config.SendConnectors as Record<string, unknown>[])[0]!.ProtocolLoggingLevel = 'Verbose';
      (config.ReceiveConnectors as Record<string, unknown>[]).push({
        Name: 'Limits',
        TransportRole: 'FrontendTransport',
        Bindings: ['0.0.0.0:25'],
        // The per-source and timeout tests each have their own address, so sessions other tests just closed cannot count against them.
        RemoteIPRanges: ['127.0.0.9', '127.0.0.14-127.0.0.16'],
        PermissionGroups: ['AnonymousUsers'],
        MaxInboundConnectionPerSource: 2,
        MaxProtocolErrors: 3,
        RequireEHLODomain: true,
        MaxMessageSize: 65536,
        MaxRecipientsPerMessage: 2,
        ConnectionInactivityTimeout: 2,
        ConnectionTimeout: 4,
        TarpitInterval: 0,
      });
    },
  };
});

const port25 = () => h.cluster.port(25);
const port587 = () => h.cluster.port(587);

const transitctl = (args: string[], stdin?: string, env: NodeJS.ProcessEnv = {}) => runTransitctl(h.cluster, args, stdin, env);

const ems = async (line: string) => {
  const r = await transitctl(['ems', line]);
  expect(r.stderr + r.stdout, `transitctl ems ${line}`).not.toMatch(/^transitctl:/m);
  expect(r.code).toBe(0);
  return r;
};

/** The reply a fresh anonymous session from `source` gets for RCPT TO:<rcpt>. */
async function rcptReply(source: string, rcpt: string, sender = 'app@example.org'): Promise<string> {
  const replies = await smtpTranscript({
    host: '127.0.0.1',
    port: port25(),
    localAddress: source,
    lines: ['EHLO app.example.org', `MAIL FROM:<${sender}>`, `RCPT TO:<${rcpt}>`, 'QUIT'],
    allowClose: true,
  });
  return replies[3] ?? replies.at(-1)!;
}

/** Within 2 s every service runs the new configuration: poll a fresh session until it sees it. */
const applied = (check: () => Promise<boolean>) =>
  waitFor(async () => ((await check()) ? true : undefined), { timeoutMs: 2000, intervalMs: 100, what: 'the configuration change to apply' });

/** An SMTP session kept open across steps, from `source`, that must have been greeted with 220. */
async function dialogue(source: string): Promise<SmtpDialogue> {
  const d = await openSmtpDialogue({ host: '127.0.0.1', port: port25(), localAddress: source });
  if (!d.greeting.startsWith('220 ')) throw new Error(`expected a 220 greeting from ${source}, got ${d.greeting}`);
  return d;
}

describe('Default Frontend (anonymous, Internet-facing)', () => {
  it('takes mail for local mailboxes and refuses to relay with 550 5.7.54', async () => {
    expect(await rcptReply('127.0.0.3', 'someone@example.net')).toBe('550 5.7.54 SMTP; Unable to relay recipient in non-accepted domain');
    expect(await rcptReply('127.0.0.3', 'alice@contoso.test')).toBe('250 2.1.5 Recipient OK');
    expect(await rcptReply('127.0.0.3', 'nobody@contoso.test')).toBe('550 5.1.1 User unknown');
  });

  it('offers STARTTLS, and AUTH only after it (BasicAuthRequireTLS)', async () => {
    const replies = await smtpTranscript({
      host: '127.0.0.1',
      port: port25(),
      localAddress: '127.0.0.3',
      lines: ['EHLO app.example.org', 'AUTH LOGIN', 'QUIT'],
    });
    expect(replies[1]).toMatch(/^250-\S+ Hello \[127\.0\.0\.3\]/);
    expect(replies[1]).toContain('250-STARTTLS');
    expect(replies[1]).not.toMatch(/AUTH/);
    expect(replies[2]).toBe('530 5.7.0 Must issue a STARTTLS command first');
  });

  it('writes a Verbose protocol log in Exchange CSV shape, with the session permissions', async () => {
    await rcptReply('127.0.0.3', 'someone@example.net');
    const dir = join(h.cluster.varDir, 'logs', 'ProtocolLog', 'FrontEnd', 'SmtpReceive');
    const text = await waitFor(
      async () => {
        const files = (await readdir(dir).catch(() => [] as string[])).filter((f) => /^RECV\d{8}-\d+\.log$/.test(f));
        const all = (await Promise.all(files.map((f) => readFile(join(dir, f), 'utf8')))).join('');
        return all.includes('550 5.7.54') ? all : undefined;
      },
      { timeoutMs: 5000, what: 'the protocol log' },
    );
    expect(text).toMatch(/^#Log-type: SMTP Receive Protocol Log$/m);
    expect(text).toMatch(/^#Fields: date-time,connector-id,session-id,sequence-number,local-endpoint,remote-endpoint,event,data,context$/m);
    expect(text).toMatch(
      /\\Default Frontend,\w+,\d+,127\.0\.0\.1:\d+,127\.0\.0\.3:\d+,\*,SMTPSubmit SMTPAcceptAnySender SMTPAcceptAuthoritativeDomainSender AcceptRoutingHeaders,Set Session Permissions/,
    );
    expect(text).toMatch(/,<,RCPT TO:<someone@example\.net>,/);
    expect(text).toMatch(/,>,550 5\.7\.54 SMTP; Unable to relay recipient in non-accepted domain,/);
  });
});

describe('seed 001: a dedicated relay connector, externally secured (EAC "Externally secured")', () => {
  it('relays for the listed server only, applied live without restart', async () => {
    expect(await rcptReply('127.0.0.4', 'someone@example.net')).toMatch(/^550 5\.7\.54/);
    await ems(
      'New-ReceiveConnector -Name "SMTP Relay EXCH01" -Server EXCH01 -TransportRole FrontendTransport -Custom -Bindings 0.0.0.0:25 -RemoteIpRanges 127.0.0.4',
    );
    await ems('Set-ReceiveConnector "EXCH01\\SMTP Relay EXCH01" -AuthMechanism ExternalAuthoritative -PermissionGroups ExchangeServers');
    await applied(async () => (await rcptReply('127.0.0.4', 'someone@example.net')) === '250 2.1.5 Recipient OK');
    // "When trying to relay from another server (which is not listed in the Remote Network Settings) it will fail"
    expect(await rcptReply('127.0.0.5', 'someone@example.net')).toBe('550 5.7.54 SMTP; Unable to relay recipient in non-accepted domain');

    const marker = `seed001-${Date.now()}`;
    await createTransport({ host: '127.0.0.1', port: port25(), localAddress: '127.0.0.4', ignoreTLS: true } as Parameters<typeof createTransport>[0]).sendMail({
      from: 'scanner@example.org',
      to: 'partner@example.net',
      subject: marker,
      text: 'relayed',
    });
    await waitFor(() => Promise.resolve(h.sink.messages.find((m) => m.data.toString('latin1').includes(marker))), {
      timeoutMs: 20_000,
      what: 'the relayed message at the sink',
    });

    // The send connector is Verbose: the outbound proxy's SMTP Send protocol log shows the dialogue, not the content.
    const dir = join(h.cluster.varDir, 'logs', 'ProtocolLog', 'OutboundProxy', 'SmtpSend');
    const send = await waitFor(
      async () => {
        const files = (await readdir(dir).catch(() => [] as string[])).filter((f) => /^SEND\d{8}-\d+\.log$/.test(f));
        const all = (await Promise.all(files.map((f) => readFile(join(dir, f), 'utf8')))).join('');
        return all.includes('RCPT TO:<partner@example.net>') ? all : undefined;
      },
      { timeoutMs: 5000, what: 'the SMTP Send protocol log' },
    );
    expect(send).toMatch(/^#Log-type: SMTP Send Protocol Log$/m);
    expect(send).toMatch(/\\Sink,\w+,\d+,127\.0\.0\.1:\d+,127\.0\.0\.1:\d+,>,MAIL FROM:<scanner@example\.org>/);
    expect(send).toMatch(/,<,250 /);
    expect(send).not.toContain(marker);
  });
});

describe('seed 003 / 004: anonymous relay with Add-ADPermission', () => {
  it('grants ms-Exch-SMTP-Accept-Any-Recipient to ANONYMOUS LOGON on an IP-scoped connector', async () => {
    // TarpitInterval 0 keeps each probe below quick while the change is on its way (the 5 s default delays every 5xx to anonymous clients).
    await ems(
      'New-ReceiveConnector -Name "CRM Application" -Usage Custom -Bindings 0.0.0.0:25 -RemoteIPRanges 127.0.0.6 -PermissionGroups AnonymousUsers -TarpitInterval 00:00:00',
    );
    await applied(async () => (await rcptReply('127.0.0.6', 'alice@contoso.test')) === '250 2.1.5 Recipient OK');
    expect(await rcptReply('127.0.0.6', 'someone@example.net')).toMatch(/^550 5\.7\.54/);
    await ems(
      'Get-ReceiveConnector “CRM Application” | Add-ADPermission -User “NT AUTHORITY\\ANONYMOUS LOGON” -ExtendedRights “ms-Exch-SMTP-Accept-Any-Recipient”',
    );
    await applied(async () => (await rcptReply('127.0.0.6', 'someone@example.net')) === '250 2.1.5 Recipient OK');
  });

  it('keeps an open session on the snapshot it started with, while new sessions see the change', async () => {
    const old = await dialogue('127.0.0.6');
    expect(await old.say('EHLO crm.example.org')).toMatch(/^250 /);
    await ems(
      'Get-ReceiveConnector "CRM Application" | Remove-ADPermission -User "NT AUTHORITY\\ANONYMOUS LOGON" -ExtendedRights ms-Exch-SMTP-Accept-Any-Recipient -Confirm:$false',
    );
    await applied(async () => (await rcptReply('127.0.0.6', 'someone@example.net')).startsWith('550 5.7.54'));
    expect(await old.say('MAIL FROM:<crm@example.org>')).toBe('250 2.1.0 Sender OK');
    expect(await old.say('RCPT TO:<someone@example.net>')).toBe('250 2.1.5 Recipient OK');
    old.socket.destroy();
  });
});

describe('seed 000: authenticated relay for a group of relay accounts', () => {
  it('needs the article three commands, then relays for a relay account with AUTH LOGIN', async () => {
    // Before: Default Frontend allows AUTH only after STARTTLS.
    const before = await smtpTranscript({
      host: '127.0.0.1',
      port: port25(),
      localAddress: '127.0.0.7',
      lines: ['EHLO office1.example.org', 'AUTH LOGIN', 'QUIT'],
    });
    expect(before[2]).toBe('530 5.7.0 Must issue a STARTTLS command first');

    await ems('Get-ReceiveConnector "default frontend*" | Add-ADPermission -User "contoso\\relay accounts" -ExtendedRights ms-Exch-SMTP-Submit');
    await ems(
      'Get-ReceiveConnector "client proxy*" | Add-ADPermission -User "contoso\\relay accounts" -ExtendedRights ms-Exch-SMTP-Submit,ms-Exch-SMTP-Accept-Any-Recipient,ms-Exch-SMTP-Accept-Any-Sender,ms-Exch-SMTP-Accept-Authoritative-Domain-Sender,ms-Exch-Accept-Headers-Routing',
    );
    await ems('Get-ReceiveConnector "default frontend*" | Set-ReceiveConnector -AuthMechanism Tls,Integrated,BasicAuth,ExchangeServer');
    const auth = (user: string, password: string) => [Buffer.from(user).toString('base64'), Buffer.from(password).toString('base64')];
    await applied(async () => {
      const r = await smtpTranscript({
        host: '127.0.0.1',
        port: port25(),
        localAddress: '127.0.0.7',
        lines: ['EHLO office1.example.org', 'AUTH LOGIN', ...auth('relay-office1@contoso.test', RELAY_PASSWORD), 'QUIT'],
      });
      return r[4] === '235 2.7.0 Authentication successful';
    });

    const marker = `seed000-${Date.now()}`;
    const { stdout } = await run('swaks', [
      '--server',
      `127.0.0.1:${port25()}`,
      '--local-interface',
      '127.0.0.7',
      '--timeout',
      '20',
      '--auth',
      'LOGIN',
      '--auth-user',
      'CONTOSO\\relay-office1',
      '--auth-password',
      RELAY_PASSWORD,
      '--from',
      'printer@example.org',
      '--to',
      'someone@example.net',
      '--header',
      `Subject: ${marker}`,
    ]).catch((e: { stdout: string }) => ({ stdout: e.stdout }));
    expect(stdout).toMatch(/<- {2}235 2\.7\.0 Authentication successful/);
    expect(stdout).toMatch(/<- {2}250 2\.6\.0 /);
    await waitFor(() => Promise.resolve(h.sink.messages.find((m) => m.data.toString('latin1').includes(marker))), {
      timeoutMs: 20_000,
      what: 'the relayed message at the sink',
    });

    // The protocol log never holds the credentials.
    const dir = join(h.cluster.varDir, 'logs', 'ProtocolLog', 'FrontEnd', 'SmtpReceive');
    const logs = (await Promise.all((await readdir(dir)).map((f) => readFile(join(dir, f), 'utf8')))).join('');
    expect(logs).not.toContain(Buffer.from(RELAY_PASSWORD).toString('base64'));
    expect(logs).not.toContain(RELAY_PASSWORD);
    expect(logs).toMatch(/,>,334 <authentication response>,/);
  });

  it('answers a wrong password with 535 5.7.3 and drops the session at MaxLogonFailures (3)', async () => {
    const bad = Buffer.from('\0relay-office1@contoso.test\0wrong-password').toString('base64');
    const replies = await smtpTranscript({
      host: '127.0.0.1',
      port: port25(),
      localAddress: '127.0.0.8',
      lines: ['EHLO office1.example.org', `AUTH PLAIN ${bad}`, `AUTH PLAIN ${bad}`, `AUTH PLAIN ${bad}`, 'NOOP'],
      allowClose: true,
    });
    expect(replies.slice(2, 5)).toEqual([
      '535 5.7.3 Authentication unsuccessful',
      '535 5.7.3 Authentication unsuccessful',
      '535 5.7.3 Authentication unsuccessful',
    ]);
    expect(replies[5]).toBe('421 4.7.0 Too many errors on this connection, closing transmission channel');
  });

  it('explains the decision with transitctl test-connector, from the live configuration', async () => {
    const r = await transitctl([
      'test-connector',
      '--remote-ip',
      '127.0.0.7',
      '--user',
      'CONTOSO\\relay-office1',
      '--from',
      'printer@example.org',
      '--to',
      'someone@example.net',
    ]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/\* Default Frontend: wildcard binding; range 0\.0\.0\.0-255\.255\.255\.255/);
    expect(r.stdout).toContain('Principal: CONTOSO\\relay-office1');
    expect(r.stdout).toMatch(/ms-Exch-SMTP-Accept-Any-Recipient — Client Proxy: Allow contoso\\relay accounts \(Add-ADPermission\)/i);
    expect(r.stdout).toContain('RCPT TO:<someone@example.net>\n    → 250 2.1.5 Recipient OK');

    const anon = await transitctl(['test-connector', '--remote-ip', '127.0.0.5', '--from', 'x@example.org', '--to', 'someone@example.net']);
    expect(anon.code).toBe(1);
    expect(anon.stdout).toContain('→ 550 5.7.54 SMTP; Unable to relay recipient in non-accepted domain');
    expect(anon.stdout).toContain('lacks SMTP-Accept-Any-Recipient');
    const relay = await transitctl(['test-connector', '--remote-ip', '127.0.0.4', '--to', 'someone@example.net']);
    expect(relay.stdout).toMatch(/\* SMTP Relay EXCH01: wildcard binding; range 127\.0\.0\.4 \(1 addresses\)/);
    expect(relay.stdout).toContain('Principal: MS Exchange\\Externally Secured Servers');
  });
});

describe('bad input gets standard replies', () => {
  it.each([
    ['MAIL before EHLO', ['MAIL FROM:<a@example.org>'], '503 5.5.2 Send hello first'],
    ['RCPT before MAIL', ['EHLO c.example.org', 'RCPT TO:<alice@contoso.test>'], '503 5.5.2 Need mail command'],
    ['DATA before RCPT', ['EHLO c.example.org', 'MAIL FROM:<a@example.org>', 'DATA'], '503 5.5.2 Need rcpt command'],
    ['a second MAIL', ['EHLO c.example.org', 'MAIL FROM:<a@example.org>', 'MAIL FROM:<b@example.org>'], '503 5.5.2 Sender already specified'],
    ['a malformed sender', ['EHLO c.example.org', 'MAIL FROM:<a@@example.org>'], '501 5.1.7 Invalid address'],
    ['a malformed recipient', ['EHLO c.example.org', 'MAIL FROM:<a@example.org>', 'RCPT TO:<bob@contoso..test>'], '501 5.1.3 Invalid address'],
    ['an unknown command', ['EHLO c.example.org', 'XYZZY'], '500 5.3.3 Unrecognized command'],
  ])('%s', async (_name, lines, reply) => {
    const replies = await smtpTranscript({ host: '127.0.0.1', port: port25(), localAddress: '127.0.0.17', lines: [...lines, 'QUIT'] });
    expect(replies[lines.length]).toBe(reply);
  });
});

describe('Client Frontend (587): authenticated submission', () => {
  it('refuses anonymous mail with 530 5.7.1 and AUTH before STARTTLS with 530 5.7.0', async () => {
    const replies = await smtpTranscript({
      host: '127.0.0.1',
      port: port587(),
      localAddress: '127.0.0.10',
      lines: ['EHLO laptop.example.org', 'MAIL FROM:<bob@contoso.test>', 'AUTH PLAIN AGJvYgBwdw==', 'QUIT'],
    });
    expect(replies[2]).toBe('530 5.7.1 Client was not authenticated');
    expect(replies[3]).toBe('530 5.7.0 Must issue a STARTTLS command first');
  });

  it('submits over STARTTLS with AUTH as the mailbox owner, and refuses to send as someone else', async () => {
    const transport = createTransport({
      host: '127.0.0.1',
      port: port587(),
      localAddress: '127.0.0.10',
      requireTLS: true,
      tls: { rejectUnauthorized: false },
      auth: { user: 'bob@contoso.test', pass: BOB_PASSWORD },
    } as Parameters<typeof createTransport>[0]);
    const marker = `submission-${Date.now()}`;
    const info = (await transport.sendMail({ from: 'bob@contoso.test', to: 'alice@contoso.test', subject: marker, text: 'hi' })) as { response: string };
    expect(info.response).toMatch(/^250 2\.6\.0 /);
    await waitForMaildirMessage(h, 'alice@contoso.test', marker);
    await expect(transport.sendMail({ from: 'alice@contoso.test', to: 'alice@contoso.test', subject: 'spoof', text: 'x' })).rejects.toThrow(
      /550 5\.7\.1 Client does not have permissions to send as this sender/,
    );
    const wrong = createTransport({
      host: '127.0.0.1',
      port: port587(),
      localAddress: '127.0.0.10',
      requireTLS: true,
      tls: { rejectUnauthorized: false },
      auth: { user: 'CONTOSO\\bob', pass: 'nope-nope' },
    } as Parameters<typeof createTransport>[0]);
    await expect(wrong.sendMail({ from: 'bob@contoso.test', to: 'alice@contoso.test', text: 'x' })).rejects.toThrow(/535 5\.7\.3 Authentication unsuccessful/);
  });
});

describe('Hub "Default" (2525): ExchangeServer authentication of Transit nodes', () => {
  it('makes a node that logs on with the cluster secret a Hub Transport server, and refuses anyone else', async () => {
    const plain = (user: string, pass: string) => `AUTH PLAIN ${Buffer.from(`\0${user}\0${pass}`).toString('base64')}`;
    const hub = (lines: string[]) => smtpTranscript({ host: '127.0.0.1', port: h.cluster.port(2525), localAddress: '127.0.0.13', lines, allowClose: true });
    const anonymous = await hub(['EHLO fe1.contoso.test', 'MAIL FROM:<x@example.org>', 'QUIT']);
    expect(anonymous[2]).toBe('530 5.7.1 Client was not authenticated');
    const wrong = await hub(['EHLO fe1.contoso.test', plain('FE1$', 'not-the-secret'), 'QUIT']);
    expect(wrong[2]).toBe('535 5.7.3 Authentication unsuccessful');
    const node = await hub(['EHLO fe1.contoso.test', plain('FE1$', CLUSTER_SECRET), 'MAIL FROM:<alice@contoso.test>', 'RCPT TO:<someone@example.net>', 'QUIT']);
    expect(node.slice(2, 5)).toEqual(['235 2.7.0 Authentication successful', '250 2.1.0 Sender OK', '250 2.1.5 Recipient OK']);
  });
});

describe('connector limits (a connector scoped to 127.0.0.9)', () => {
  const limited = (lines: string[]) => smtpTranscript({ host: '127.0.0.1', port: port25(), localAddress: '127.0.0.9', lines, allowClose: true });

  it('RequireEHLODomain, SIZE, MaxRecipientsPerMessage', async () => {
    const replies = await limited([
      'EHLO localhost',
      'EHLO client.example.org',
      'MAIL FROM:<a@example.org> SIZE=70000',
      'MAIL FROM:<a@example.org> SIZE=1000',
      'RCPT TO:<alice@contoso.test>',
      'RCPT TO:<bob@contoso.test>',
      'RCPT TO:<alice.smith@contoso.test>',
      'QUIT',
    ]);
    expect(replies[1]).toBe('501 5.5.4 Invalid domain name');
    expect(replies[2]).toMatch(/^250-/);
    expect(replies[3]).toBe('552 5.3.4 Message size exceeds fixed maximum message size');
    expect(replies.slice(4, 8)).toEqual(['250 2.1.0 Sender OK', '250 2.1.5 Recipient OK', '250 2.1.5 Recipient OK', '452 4.5.3 Too many recipients']);
  });

  it('closes after MaxProtocolErrors with 421 4.7.0', async () => {
    const replies = await limited(['EHLO client.example.org', 'FOO', 'BAR', 'BAZ', 'NOOP']);
    expect(replies.slice(2, 4)).toEqual(['500 5.3.3 Unrecognized command', '500 5.3.3 Unrecognized command']);
    expect(replies.slice(4)).toEqual(['500 5.3.3 Unrecognized command', '421 4.7.0 Too many errors on this connection, closing transmission channel']);
  });

  it('refuses a connection over MaxInboundConnectionPerSource with 421 4.3.2', async () => {
    const a = await dialogue('127.0.0.14');
    const b = await dialogue('127.0.0.14');
    const third = await smtpTranscript({ host: '127.0.0.1', port: port25(), localAddress: '127.0.0.14', lines: [], allowClose: true });
    expect(third[0]).toBe('421 4.3.2 The maximum number of concurrent server connections has exceeded a limit, closing transmission channel');
    // Another source is not affected.
    expect((await smtpTranscript({ host: '127.0.0.1', port: port25(), localAddress: '127.0.0.11', lines: ['QUIT'] }))[0]).toMatch(/^220 /);
    a.socket.destroy();
    b.socket.destroy();
  });

  it('closes an idle session after ConnectionInactivityTimeout with 451 4.7.0', async () => {
    const d = await dialogue('127.0.0.15');
    let text = '';
    d.socket.on('data', (b: Buffer) => (text += b.toString()));
    await waitFor(() => Promise.resolve(text.includes('451 4.7.0 Timeout waiting for client input') ? true : undefined), {
      timeoutMs: 6000,
      what: 'the inactivity timeout',
    });
    d.socket.destroy();
  });

  it('ends a session at ConnectionTimeout however busy it is, with 421 4.4.1', async () => {
    const d = await dialogue('127.0.0.16');
    let text = '';
    d.socket.on('data', (b: Buffer) => (text += b.toString()));
    const keepBusy = setInterval(() => d.socket.write('NOOP\r\n'), 500);
    try {
      await waitFor(() => Promise.resolve(text.includes('421 4.4.1 Connection timed out') ? true : undefined), {
        timeoutMs: 8000,
        what: 'the absolute connection timeout',
      });
    } finally {
      clearInterval(keepBusy);
      d.socket.destroy();
    }
    expect(text).not.toContain('451 4.7.0');
  });
});

describe('header rights', () => {
  it('removes Received and Resent-* headers from a session without Accept-Headers-Routing, keeps them otherwise', async () => {
    await ems('New-ReceiveConnector -Name "No Routing Headers" -Usage Custom -Bindings 0.0.0.0:25 -RemoteIPRanges 127.0.0.12 -PermissionGroups None');
    await ems(
      'Add-ADPermission -Identity "No Routing Headers" -User "NT AUTHORITY\\ANONYMOUS LOGON" -ExtendedRights ms-Exch-SMTP-Submit,ms-Exch-SMTP-Accept-Authoritative-Domain-Sender,ms-Exch-SMTP-Accept-Any-Sender',
    );
    const send = async (source: string, marker: string) => {
      const body = `Received: from forged.example by forged.example; Mon, 1 Jan 2024 00:00:00 +0000\r\nResent-From: forged@example.org\r\nFrom: app@example.org\r\nSubject: ${marker}\r\n\r\nbody\r\n.\r\n`;
      return smtpTranscript({
        host: '127.0.0.1',
        port: port25(),
        localAddress: source,
        lines: ['EHLO app.example.org', 'MAIL FROM:<app@example.org>', 'RCPT TO:<bob@contoso.test>', 'DATA', `DATA-BODY:${body}`, 'QUIT'],
      });
    };
    const stripped = `strip-${Date.now()}`;
    await applied(async () => (await send('127.0.0.12', stripped))[5]!.startsWith('250 2.6.0'));
    const kept = `keep-${Date.now()}`;
    expect((await send('127.0.0.3', kept))[5]).toMatch(/^250 2\.6\.0/);
    const a = await waitForMaildirMessage(h, 'bob@contoso.test', stripped);
    expect(a).not.toContain('forged.example');
    expect(a).not.toContain('Resent-From');
    expect(a).toMatch(/^Received: from app\.example\.org \(\[127\.0\.0\.12\]\)/m); // Transit's own Received is added
    const b = await waitForMaildirMessage(h, 'bob@contoso.test', kept);
    expect(b).toContain('Received: from forged.example');
    expect(b).toContain('Resent-From: forged@example.org');
  });
});

describe('listeners follow the configuration', () => {
  it('opens a listener for a new binding and closes it when its connector is removed, without a restart', async () => {
    const greeting = () =>
      smtpTranscript({ host: '127.0.0.1', port: h.cluster.port(26), lines: ['QUIT'], timeoutMs: 1000 }).then(
        (r) => r[0]!,
        () => 'refused',
      );
    expect(await greeting()).toBe('refused');
    await ems('New-ReceiveConnector -Name "Port 26" -Usage Internet -Bindings 0.0.0.0:26 -TransportRole FrontendTransport');
    await applied(async () => (await greeting()).startsWith('220 '));
    await ems('Remove-ReceiveConnector "Port 26" -Confirm:$false');
    await applied(async () => (await greeting()) === 'refused');
  });
});

describe('configuration is validated at write time', () => {
  it('refuses an invalid change, naming the field, and leaves the running configuration alone', async () => {
    const before = await transitctl(['export']);
    const r = await transitctl(['set', 'receiveconnector', 'Default Frontend', '--AuthMechanism', 'None,Tls']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/ReceiveConnectors\.\d+\.AuthMechanism: None cannot be combined with other mechanisms/);
    const twin = await transitctl([
      'ems',
      'New-ReceiveConnector -Name "Twin" -Bindings 0.0.0.0:25 -RemoteIPRanges 127.0.0.9,127.0.0.14-127.0.0.16 -TransportRole FrontendTransport -PermissionGroups AnonymousUsers',
    ]);
    expect(twin.code).toBe(1);
    expect(twin.stderr).toMatch(/Twin and Limits have the same binding and the same RemoteIPRanges/);
    expect((await transitctl(['export'])).stdout).toBe(before.stdout);
  });

  it('applies a whole file, storing Password fields only as hashes, and runs ems lines from stdin', async () => {
    const doc = parse((await transitctl(['export'])).stdout) as { Users: Record<string, unknown>[] };
    doc.Users.push({ Name: 'kiosk', SamAccountName: 'kiosk', Password: 'Kiosk-Password-1' });
    const file = join(h.dir, 'apply.yaml');
    await writeFile(file, stringify(doc));
    const applyResult = await transitctl(['apply', '-f', file]);
    expect(applyResult.code, applyResult.stderr).toBe(0);
    const after = (await transitctl(['export'])).stdout;
    expect(after).toMatch(/Name: kiosk\n\s+SamAccountName: kiosk\n\s+PasswordHash: \$scrypt\$N=16384,r=8,p=1\$/);
    expect(after).not.toContain('Kiosk-Password-1');

    const script = await transitctl(['ems'], 'Get-AcceptedDomain\nNew-AcceptedDomain -Name Fabrikam -DomainName fabrikam.test -DomainType InternalRelay\n');
    expect(script.code, script.stderr).toBe(0);
    expect(script.stdout).toMatch(/contoso\.test\s+Authoritative\s+True/);
    await applied(async () => (await rcptReply('127.0.0.3', 'anyone@fabrikam.test')) === '250 2.1.5 Recipient OK');
  });
});

describe('transport settings (Get-/Set-TransportConfig, Set-TransportService)', () => {
  type Row = { Name: string; Value: unknown; Source: string; Scope: string };
  const setting = async (name: string, env: NodeJS.ProcessEnv = {}) => {
    const r = await transitctl(['get', 'transportconfig', name, '--json'], undefined, env);
    expect(r.code, r.stderr).toBe(0);
    return (JSON.parse(r.stdout) as Row[])[0]!;
  };

  it('shows every setting with its source, and changes the organisation ones through the validated store', async () => {
    const table = await transitctl(['get', 'transportconfig'], undefined, { TRANSIT_DRAIN_TIMEOUT_MS: '5000' });
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout).toMatch(/^MessageExpirationTimeout +172800 +s +default +Set-TransportService -MessageExpirationTimeout$/m);
    expect(table.stdout).toMatch(/^TRANSIT_DRAIN_TIMEOUT_MS +5000 +ms +environment +environment, read at start$/m);
    expect(table.stdout).toMatch(/^TRANSIT_ACK_WAIT_SECONDS +15 +s +default /m);

    await ems('Set-TransportService EXCH01 -MessageExpirationTimeout 3.00:00:00 -DelayNotificationTimeout 02:00:00');
    expect(await setting('MessageExpirationTimeout')).toMatchObject({ Value: 259_200, Source: 'organisation', Scope: 'organisation' });
    const shell = await ems('Get-TransportConfig MessageExpirationTimeout,DelayNotificationTimeout');
    expect(shell.stdout.split('\n').slice(2, 4)).toEqual([
      'MessageExpirationTimeout 3.00:00:00 organisation',
      'DelayNotificationTimeout 02:00:00   organisation',
    ]);
    await ems('Set-TransportConfig -TransientRetrySchedule 60,300');
    expect(parse((await transitctl(['export'])).stdout)).toMatchObject({
      TransportSettings: { MessageExpirationTimeout: 259_200, DelayNotificationTimeout: 7200, TransientRetrySchedule: [60, 300] },
    });

    // The cluster keeps bodies and events 7 days: an expiry of 10 is refused at write time, and nothing changes.
    const before = (await transitctl(['export'])).stdout;
    const tooLong = await transitctl(['ems', 'Set-TransportService -MessageExpirationTimeout 10.00:00:00']);
    expect(tooLong.code).toBe(1);
    expect(tooLong.stderr).toContain(
      "transitctl: configuration refused:\n  TransportSettings.MessageExpirationTimeout (10.00:00:00) is too long for TRANSIT_BODY_RETENTION_SECONDS in the cluster's streams (604800 s = 7.00:00:00)",
    );
    const viaSet = await transitctl(['set', 'transportconfig', '--MessageExpirationTimeout', '10.00:00:00']);
    expect(viaSet.code).toBe(1);
    expect(viaSet.stderr).toMatch(/too long for TRANSIT_EVENT_RETENTION_SECONDS in the cluster's streams/);
    expect((await transitctl(['export'])).stdout).toBe(before);

    const restored = await transitctl(['set', 'transportconfig', '--MessageExpirationTimeout', '172800', '--DelayNotificationTimeout', '14400']);
    expect(restored.code, restored.stderr).toBe(0);
    await ems('Set-TransportConfig -TransientRetrySchedule $null');
    expect(await setting('MessageExpirationTimeout')).toMatchObject({ Value: 172_800, Source: 'default' });
    expect(await setting('TransientRetrySchedule')).toMatchObject({ Source: 'default' });
  });
});
