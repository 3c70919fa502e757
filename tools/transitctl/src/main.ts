/**
 * transitctl: the administrator's command line. Reads and writes the live configuration in
 * NATS KV (every service applies a change within seconds), explains connector decisions
 * with the frontend's own policy code, and runs Exchange Management Shell lines.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { parse as parseYaml, stringify } from 'yaml';
import { ConfigConflictError, ConfigStore, connectBus, listPoison, resubmitFromSafetyNet, type Bus } from '@transit/bus';
import {
  ConfigError,
  hashPassword,
  hashPlaintextPasswords,
  parseOrganizationConfig,
  runtimeSettings,
  type ConfigSnapshot,
  type OrganizationConfig,
} from '@transit/config';
import { DkimError } from '@transit/dkim';
import { EmsError, emsDkimRequest, emsQueueRequest, emsTrackingRequest, runEmsLine, splitEmsScript, type EmsOutput } from '@transit/ems';
import { QueueError } from '@transit/queues';
import { explainSession } from '@transit/policy';
import { LeaseStore, rebuildShadowFromEvents } from '@transit/leases';
import { msgtrkFiles, readTracking, trackingCsv, trackingJson, trackingTable } from '@transit/tracking';
import {
  CliError,
  TRANSPORT_CONFIG_COLUMNS,
  findKind,
  getObjects,
  isTransportConfig,
  newObject,
  parseFields,
  removeObject,
  renderTable,
  setObject,
  setTransportSettings,
  transportConfigRows,
} from './objects.ts';
import { renderExplanation } from './explain.ts';
import { parseTrackArgs } from './track.ts';
import { parseQueueCommand, redisLeases, runQueueRequest } from './queue.ts';
import { DKIM_USAGE, parseDkimCommand, printDkim, runDkim } from './dkim.ts';

const USAGE = `transitctl — administer a Transit cluster (configuration lives in NATS KV; NATS_URL or --nats)

  transitctl get <kind> [name-pattern] [--json]       kinds: receiveconnector (rc), sendconnector (sc),
  transitctl new <kind> --Field value ...                    accepteddomain, mailbox, user, group, permission,
                                                             loadbalancer (lb)
  transitctl set <kind> <name> --Field value ...      lists are comma-separated: --Bindings 0.0.0.0:25,[::]:25
  transitctl remove <kind> <name>                     permissions are named "<connector>|<principal>"
  transitctl password <user-or-mailbox>               reads the new password from stdin, stores a scrypt hash
  transitctl get transportconfig [name-pattern]       every setting: TransportSettings (live, from KV) and the
                                                      environment variables as this process reads them, with
                                                      each one's source (default, environment, organisation)
  transitctl set transportconfig --Field value ...    change TransportSettings, e.g. --MessageExpirationTimeout 3.00:00:00
  transitctl apply -f <file.yaml>                     validate and replace the whole configuration
  transitctl export [-f <file.yaml>]
  transitctl ems '<Exchange Management Shell line>'   e.g. 'Get-ReceiveConnector "default frontend*" | fl'
  transitctl ems                                      runs lines from stdin
  transitctl ems 'Get-MessageTrackingLog -Recipients x@y -EventId DELIVER -Start "11/24/2026 09:00" -ResultSize 10'
  transitctl track [--sender <addr>] [--recipient <addr>]... [--message-id <id>] [--internal-id <n>]
                   [--network-id <id>] [--event <EVENTID>] [--source <SOURCE>] [--subject <text>]
                   [--start <time>] [--end <time>] [--limit <n>|unlimited] [--json|--csv] [--log-dir <dir>]
                                                      message tracking (Exchange's rows, from the event log);
                                                      --log-dir also writes daily MSGTRK<yyyymmdd>-<n>.LOG files
  transitctl safetynet resubmit --recipient <addr|domain> --since <time> [--until <time>]
                                                      resubmit delivered mail kept in the Safety Net
  transitctl poison list                              messages parked after crashing workers (never retried automatically)
  transitctl queue get [<identity>] [--filter "Status -eq 'Retry'"]   queues (Get-Queue): Submission, per next hop,
                                                      Unreachable, Poison, SafetyNet, Shadow (REDIS_URL)
  transitctl queue retry|suspend|resume <identity>    Retry-Queue (deferred items go now), Suspend-/Resume-Queue
  transitctl message get [--queue <identity>] [--sender <addr>] [--status <s>] [--id <id>] [--filter ...] [--limit <n>]
  transitctl message suspend|resume <id>              Suspend-/Resume-Message, on every node
  transitctl message remove <id> [--without-ndr]      Remove-Message (an NDR to the sender unless --without-ndr)
  transitctl message export <id> --path <file.eml>    Export-Message (a suspended message, replayable)
  transitctl ems 'Get-Queue' | 'Get-Message -Queue ...' | 'Remove-Message <id> -WithNDR $true' ...
${DKIM_USAGE}
  transitctl shadow rebuild                           rebuild Redis shadow state from the event log (REDIS_URL)
  transitctl test-connector --remote-ip <ip> [--local <ip:port>] [--user <login>] [--from <addr>]
                            [--to <addr>]... [--size <bytes>] [--tls] [--helo <name>] [--json]
`;

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

type Session = { bus: Bus; store: ConfigStore; snapshot: ConfigSnapshot | undefined };

async function open(natsUrl: string | undefined): Promise<Session> {
  const servers = (natsUrl ?? runtimeSettings().natsServers.join(',')).split(',');
  let bus: Bus;
  try {
    bus = await connectBus(servers, 'transitctl', 'once');
  } catch (err) {
    throw new CliError(`cannot reach NATS at ${servers.join(', ')}: ${(err as Error).message} (set NATS_URL or --nats)`);
  }
  const store = await ConfigStore.open(bus);
  return { bus, store, snapshot: await store.read() };
}

function current(s: Session): OrganizationConfig {
  if (!s.snapshot) throw new CliError('the cluster has no configuration yet; start a service (it seeds TRANSIT_CONFIG) or run transitctl apply -f <file>');
  return s.snapshot.config;
}

async function write(s: Session, next: unknown): Promise<ConfigSnapshot> {
  const written = await s.store.write(next, s.snapshot?.revision ?? 0);
  s.snapshot = written;
  return written;
}

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: false,
    options: {
      nats: { type: 'string' },
      json: { type: 'boolean' },
      file: { type: 'string', short: 'f' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const [verb, ...rest] = positionals;
  if (!verb || values.help) {
    process.stdout.write(USAGE);
    return values.help ? 0 : 2;
  }
  const json = values.json === true;
  const out = (text: string) => process.stdout.write(text);
  const flagArgs = argv.filter((a) => a !== '--json' && !a.startsWith('--nats')).slice(argv.indexOf(verb) + 1);

  if (verb === 'test-connector') {
    const t = parseArgs({
      args: flagArgs,
      options: {
        'remote-ip': { type: 'string' },
        local: { type: 'string' },
        user: { type: 'string' },
        from: { type: 'string' },
        to: { type: 'string', multiple: true },
        size: { type: 'string' },
        tls: { type: 'boolean' },
        helo: { type: 'string' },
      },
    }).values;
    if (!t['remote-ip']) throw new CliError('test-connector needs --remote-ip <ip>');
    const local = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(t.local ?? '0.0.0.0:25');
    if (!local) throw new CliError(`--local must be ip:port or [ipv6]:port (got "${t.local}")`);
    const s = await open(values.nats as string | undefined);
    try {
      const explanation = explainSession(current(s), {
        remoteIp: t['remote-ip'],
        localIp: (local[1] ?? local[2])!,
        localPort: Number(local[3]),
        ...(t.user ? { user: t.user } : {}),
        ...(t.from !== undefined ? { from: t.from } : {}),
        ...(t.to ? { to: t.to } : {}),
        ...(t.size ? { size: Number(t.size) } : {}),
        ...(t.helo ? { helo: t.helo } : {}),
        tls: t.tls === true,
      });
      out(json ? JSON.stringify(explanation, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), 2) + '\n' : renderExplanation(explanation));
      return explanation.steps.every((step) => step.ok) ? 0 : 1;
    } finally {
      await s.bus.close();
    }
  }

  if (verb === 'track') {
    // Checked before connecting, so a mistyped option is named without waiting for NATS.
    const command = parseTrackArgs(argv.slice(argv.indexOf(verb) + 1));
    const s = await open(values.nats as string | undefined);
    try {
      const rows = await readTracking(s.bus, command.query);
      out(command.output === 'json' ? trackingJson(rows) : command.output === 'csv' ? trackingCsv(rows) : trackingTable(rows));
      if (command.logDir !== undefined) {
        await mkdir(command.logDir, { recursive: true });
        const files = msgtrkFiles(rows);
        for (const [name, content] of files) await writeFile(join(command.logDir, name), content);
        process.stderr.write(`wrote ${files.size} message tracking log file(s) to ${command.logDir}\n`);
      }
      return 0;
    } finally {
      await s.bus.close();
    }
  }

  if (verb === 'dkim') {
    // Checked before connecting, as queue is.
    const command = parseDkimCommand(argv.slice(argv.indexOf(verb) + 1).filter((a) => a !== '--json' && !a.startsWith('--nats')));
    const s = await open(values.nats as string | undefined);
    try {
      const result = await runDkim(s.bus, command.request);
      printDkim(result, command.records, json, out, (t) => process.stderr.write(t));
      return 0;
    } finally {
      await s.bus.close();
    }
  }

  if (verb === 'queue' || verb === 'message') {
    // Checked before connecting, as track is.
    const request = parseQueueCommand(
      verb,
      argv.slice(argv.indexOf(verb) + 1).filter((a) => a !== '--json' && !a.startsWith('--nats')),
    );
    const s = await open(values.nats as string | undefined);
    const shadow = redisLeases(runtimeSettings().redisUrl, (w) => process.stderr.write(`WARNING: ${w}\n`));
    try {
      const output = await runQueueRequest(
        { bus: s.bus, node: runtimeSettings().nodeName, leases: shadow.leases, ...(s.snapshot ? { config: s.snapshot.config } : {}) },
        request,
      );
      out(json ? JSON.stringify(output.objects, null, 2) + '\n' : output.text);
      return 0;
    } finally {
      await shadow.close();
      await s.bus.close();
    }
  }

  const s = await open(values.nats as string | undefined);
  try {
    switch (verb) {
      case 'get': {
        if (isTransportConfig(rest[0])) {
          const rows = transportConfigRows(s.snapshot?.config, process.env, rest[1]);
          out(
            json
              ? JSON.stringify(rows, null, 2) + '\n'
              : renderTable(
                  rows.map((r) => ({ ...r, Value: r.Value ?? '(unset)' })),
                  TRANSPORT_CONFIG_COLUMNS,
                ),
          );
          return 0;
        }
        const kind = findKind(rest[0]);
        const rows = getObjects(current(s), kind, rest[1]);
        out(json ? JSON.stringify(rows, null, 2) + '\n' : renderTable(rows, kind.columns));
        return 0;
      }
      case 'new':
      case 'set':
      case 'remove': {
        if (verb === 'set' && isTransportConfig(rest[0])) {
          const written = await write(s, setTransportSettings(current(s), parseFields(flagArgs.slice(1))));
          out(`updated TransportSettings; configuration revision ${written.revision}\n`);
          return 0;
        }
        const kind = findKind(rest[0]);
        const config = current(s);
        const fieldArgs = flagArgs.slice(verb === 'new' ? 1 : 2);
        const next =
          verb === 'new'
            ? newObject(config, kind, parseFields(fieldArgs))
            : verb === 'set'
              ? setObject(config, kind, rest[1] ?? '', parseFields(fieldArgs))
              : removeObject(config, kind, rest[1] ?? '');
        const written = await write(s, next);
        out(`${verb === 'new' ? 'created' : verb === 'set' ? 'updated' : 'removed'} ${kind.name}; configuration revision ${written.revision}\n`);
        if (verb !== 'remove' && fieldArgs.some((a) => /Integrated/i.test(a)))
          out('note: Integrated (NTLM/Kerberos) is accepted for compatibility but not offered; clients use BasicAuth over TLS\n');
        return 0;
      }
      case 'password': {
        const name = rest[0];
        if (!name) throw new CliError('password needs the name of a user or mailbox');
        const password = (await readStdin()).replace(/\r?\n$/, '');
        if (password.length < 8) throw new CliError('the password read from stdin must have at least 8 characters');
        const config = current(s);
        const kind = config.Users.some((u) => u.Name.toLowerCase() === name.toLowerCase()) ? findKind('user') : findKind('mailbox');
        const written = await write(s, setObject(config, kind, name, { PasswordHash: await hashPassword(password) }));
        out(`password set for ${name}; configuration revision ${written.revision}\n`);
        return 0;
      }
      case 'apply': {
        if (typeof values.file !== 'string') throw new CliError('apply needs -f <file.yaml>');
        const doc = parseYaml(await readFile(values.file, 'utf8')) as Record<string, unknown>;
        await hashPlaintextPasswords(doc);
        parseOrganizationConfig(doc, values.file);
        const written = await write(s, doc);
        out(`applied ${values.file}; configuration revision ${written.revision}\n`);
        return 0;
      }
      case 'export': {
        const text = stringify(current(s));
        if (typeof values.file === 'string') await writeFile(values.file, text);
        else out(text);
        return 0;
      }
      case 'safetynet': {
        if (rest[0] !== 'resubmit') throw new CliError('safetynet has one verb: resubmit');
        const o = parseArgs({
          args: flagArgs.slice(1),
          options: { recipient: { type: 'string' }, since: { type: 'string' }, until: { type: 'string' } },
        }).values;
        const time = (name: string, v: string | undefined) => {
          const d = v === undefined ? undefined : new Date(v);
          if (d && Number.isNaN(d.getTime())) throw new CliError(`--${name} must be a date and time, e.g. 2026-11-24T10:00:00Z (got "${v}")`);
          return d;
        };
        if (!o.recipient) throw new CliError('safetynet resubmit needs --recipient <address or domain>');
        const since = time('since', o.since);
        if (!since) throw new CliError('safetynet resubmit needs --since <time>');
        const until = time('until', o.until);
        const r = await resubmitFromSafetyNet(s.bus, { recipient: o.recipient, since, ...(until ? { until } : {}), node: 'transitctl' });
        out(
          `resubmitted ${r.messages} message(s) for ${r.recipients} recipient(s) (${r.scanned} Safety Net entries scanned); copies already in a mailbox are skipped\n`,
        );
        return 0;
      }
      case 'poison': {
        if (rest[0] !== 'list') throw new CliError('poison has one verb: list');
        const rows = await listPoison(s.bus);
        out(
          json
            ? JSON.stringify(rows, null, 2) + '\n'
            : rows.length
              ? renderTable(rows, ['Id', 'Stage', 'Crashes', 'Sender', 'Recipients', 'ParkedAt'])
              : 'no poison messages\n',
        );
        return 0;
      }
      case 'shadow': {
        if (rest[0] !== 'rebuild') throw new CliError('shadow has one verb: rebuild');
        // The rebuilt sets expire as the outbound proxies' do (TRANSIT_DELIVERED_TTL_SECONDS): run it with their environment.
        const settings = runtimeSettings();
        const store = new LeaseStore(settings.redisUrl, settings.deliveredTtlSeconds);
        try {
          await store.connect();
          const r = await rebuildShadowFromEvents(s.bus, store);
          out(`shadow state rebuilt: ${r.recipients} delivered recipient(s) of ${r.messages} message(s)\n`);
        } catch (err) {
          throw new CliError(`could not rebuild the shadow state: ${(err as Error).message} (set REDIS_URL)`);
        } finally {
          await store.close();
        }
        return 0;
      }
      case 'ems': {
        const lines = rest.length > 0 ? [rest.join(' ')] : splitEmsScript(await readStdin());
        let config = current(s);
        let changed = false;
        const warn = (warnings: readonly string[]) => {
          for (const w of warnings) process.stderr.write(`WARNING: ${w}\n`);
        };
        const show = (output: EmsOutput) => {
          if (json) out(JSON.stringify(output.objects, null, 2) + '\n');
          else if (output.text) out(output.text + '\n');
        };
        for (const line of lines) {
          // Get-MessageTrackingLog reads the event log: libs/ems binds it, the rows come from the bus.
          const tracking = emsTrackingRequest(line);
          if (tracking) {
            warn(tracking.warnings);
            show(tracking.render(await readTracking(s.bus, tracking.query)));
            continue;
          }
          // And the DKIM cmdlets, on the signing configurations in KV.
          const dkim = emsDkimRequest(line);
          if (dkim) {
            warn(dkim.warnings);
            const result = await runDkim(s.bus, dkim.request);
            show(dkim.render(result.rows));
            for (const n of result.notes) process.stderr.write(n + '\n');
            continue;
          }
          // So do the queue cmdlets: libs/ems binds them, transitctl runs them on the cluster.
          const queue = emsQueueRequest(line);
          if (queue) {
            warn(queue.warnings);
            const shadow = redisLeases(runtimeSettings().redisUrl, (w) => process.stderr.write(`WARNING: ${w}\n`));
            const result = await runQueueRequest({ bus: s.bus, node: runtimeSettings().nodeName, config, leases: shadow.leases }, queue.request).finally(() =>
              shadow.close(),
            );
            show(queue.render(result.objects));
            continue;
          }
          // Get-TransportConfig shows the environment settings as this process reads them.
          const result = runEmsLine(line, config, process.env);
          warn(result.warnings);
          if (json) out(JSON.stringify(result.output.objects, null, 2) + '\n');
          else if (result.output.text) out(result.output.text);
          config = result.config;
          changed ||= result.changed;
        }
        if (changed) {
          const written = await write(s, config);
          process.stderr.write(`configuration revision ${written.revision}\n`);
        }
        return 0;
      }
      default:
        throw new CliError(`unknown command "${verb}"\n\n${USAGE}`);
    }
  } finally {
    await s.bus.close();
  }
}

try {
  process.exitCode = await main(process.argv.slice(2));
} catch (err) {
  if (
    err instanceof CliError ||
    err instanceof ConfigError ||
    err instanceof EmsError ||
    err instanceof ConfigConflictError ||
    err instanceof QueueError ||
    err instanceof DkimError
  ) {
    process.stderr.write(`transitctl: ${err.message}\n`);
    process.exitCode = 1;
  } else {
    process.stderr.write(`transitctl: unexpected error: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 70;
  }
}
