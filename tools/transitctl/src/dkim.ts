/**
 * `transitctl dkim new|rotate|set|get|remove`: DKIM signing configurations in transitctl's
 * own verbs. The same DkimRequest comes from libs/ems for New-/Rotate-/Set-/Get-DkimSigningConfig
 * lines; `printDkim` prints either. Private keys are sealed with TRANSIT_CLUSTER_SECRET,
 * which transitctl needs in its environment to make or rotate a key.
 */
import { parseArgs } from 'node:util';
import type { Bus } from '@transit/bus';
import { runtimeSettings } from '@transit/config';
import { DkimStore, RSA_KEY_SIZES, runDkimRequest, zoneLines, type DkimRequest, type DkimResult } from '@transit/dkim';
import { CliError, renderTable } from './objects.ts';

export const DKIM_USAGE = `  transitctl dkim new --domain <d> [--algorithm rsa-sha256|ed25519-sha256] [--key-size 2048] [--selectors s1,s2] [--disabled]
  transitctl dkim rotate --domain <d> [--key-size <n>]   signing moves to the standby selector; the retired one gets a new key
  transitctl dkim set --domain <d> --enabled true|false
  transitctl dkim get [--domain <d>] [--records]          --records: the DNS TXT records to publish, as zone-file lines
  transitctl dkim remove --domain <d>
                                                      DKIM signing of outgoing mail by From domain (New-/Rotate-/Set-/
                                                      Get-DkimSigningConfig in ems); keys sealed with TRANSIT_CLUSTER_SECRET`;

export type DkimCommand = { request: DkimRequest; records: boolean };

export function parseDkimCommand(args: string[]): DkimCommand {
  const [op, ...rest] = args;
  let parsed;
  try {
    parsed = parseArgs({
      args: rest,
      options: {
        domain: { type: 'string' },
        algorithm: { type: 'string' },
        'key-size': { type: 'string' },
        selectors: { type: 'string' },
        disabled: { type: 'boolean' },
        enabled: { type: 'string' },
        records: { type: 'boolean' },
      },
    }).values;
  } catch (err) {
    throw new CliError(`dkim ${op ?? ''}: ${(err as Error).message}`);
  }
  const domain = () => {
    if (!parsed.domain) throw new CliError(`dkim ${op}: --domain is required`);
    return parsed.domain;
  };
  const keySize = (): number | undefined => {
    const text = parsed['key-size'];
    if (text === undefined) return undefined;
    const n = Number(text);
    if (!(RSA_KEY_SIZES as readonly number[]).includes(n)) throw new CliError(`dkim ${op}: --key-size must be one of ${RSA_KEY_SIZES.join(', ')}`);
    return n;
  };
  const records = parsed.records === true;
  switch (op) {
    case 'new': {
      const algorithm = parsed.algorithm;
      if (algorithm !== undefined && algorithm !== 'rsa-sha256' && algorithm !== 'ed25519-sha256')
        throw new CliError(`dkim new: --algorithm must be rsa-sha256 or ed25519-sha256, not ${algorithm}`);
      const selectors = parsed.selectors?.split(',').map((s) => s.trim());
      if (selectors && selectors.length !== 2) throw new CliError('dkim new: --selectors takes two names, e.g. --selectors s2026a,s2026b');
      const size = keySize();
      if (algorithm === 'ed25519-sha256' && size !== undefined) throw new CliError('dkim new: --key-size applies to rsa-sha256 keys only');
      return {
        records,
        request: {
          op: 'new',
          domain: domain(),
          enabled: parsed.disabled !== true,
          ...(algorithm ? { algorithm } : {}),
          ...(size !== undefined ? { keySize: size } : {}),
          ...(selectors ? { selectors: selectors as [string, string] } : {}),
        },
      };
    }
    case 'rotate': {
      const size = keySize();
      return { records, request: { op: 'rotate', domain: domain(), ...(size !== undefined ? { keySize: size } : {}) } };
    }
    case 'set': {
      if (parsed.enabled !== 'true' && parsed.enabled !== 'false') throw new CliError('dkim set: --enabled true or --enabled false');
      return { records, request: { op: 'set', domain: domain(), enabled: parsed.enabled === 'true' } };
    }
    case 'get':
      return { records, request: { op: 'get', ...(parsed.domain ? { domain: parsed.domain } : {}) } };
    case 'remove':
      return { records, request: { op: 'remove', domain: domain() } };
    default:
      throw new CliError(`dkim: unknown command ${JSON.stringify(op ?? '')} (new, rotate, set, get, remove)\n\n${DKIM_USAGE}`);
  }
}

/** Runs `request` on the cluster's signing configurations, sealing keys with this process's TRANSIT_CLUSTER_SECRET. */
export async function runDkim(bus: Bus, request: DkimRequest): Promise<DkimResult> {
  return runDkimRequest(await DkimStore.open(bus), request, runtimeSettings().clusterSecret);
}

/** The table (or the zone-file lines with `records`), then what to do next on stderr. */
export function printDkim(result: DkimResult, records: boolean, json: boolean, out: (t: string) => void, note: (t: string) => void): void {
  if (json) out(JSON.stringify(result.rows, null, 2) + '\n');
  else if (records)
    out(
      zoneLines(result.configs)
        .map((l) => l + '\n')
        .join(''),
    );
  else if (result.rows.length) out(renderTable(result.rows, ['Domain', 'Enabled', 'Selector', 'Algorithm', 'KeySize', 'LastRotatedAt']));
  for (const n of result.notes) note(n + '\n');
}
