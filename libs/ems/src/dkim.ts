/**
 * Exchange Online's DKIM cmdlets: New-, Rotate-, Set- and Get-DkimSigningConfig. Their data
 * is the cluster's signing configurations (libs/dkim, in NATS KV), not the organisation
 * file, so here they only bind and check their parameters into a DkimRequest (libs/ems stays
 * pure); transitctl runs it and hands the rows back to print, as for the queue cmdlets.
 */
import type { DkimRequest } from '@transit/dkim';
import { RSA_KEY_SIZES } from '@transit/dkim/keys';
import { requireString, stringArg, type Args, type Cmdlet } from './binding.ts';
import { EmsError } from './errors.ts';

const notHere = (name: string) => () => {
  throw new EmsError(`${name} works on the cluster's DKIM keys, not the configuration: run it with transitctl ems`);
};

const cmdlet = (name: string, params: Cmdlet['params'], positional: string, output: boolean): Cmdlet => ({
  name,
  params,
  positional,
  ...(output ? { output: 'DkimSigningConfig' as const } : {}),
  run: notHere(name),
});

// -Algorithm is Transit's: Exchange Online signs with RSA only.
export const NEW_DKIM = cmdlet(
  'New-DkimSigningConfig',
  { DomainName: 'string', Enabled: 'bool', KeySize: 'int', Algorithm: { one: ['rsa-sha256', 'ed25519-sha256'] } },
  'DomainName',
  true,
);
export const ROTATE_DKIM = cmdlet('Rotate-DkimSigningConfig', { Identity: 'string', KeySize: 'int', Confirm: 'bool' }, 'Identity', true);
export const SET_DKIM = cmdlet('Set-DkimSigningConfig', { Identity: 'string', Enabled: 'bool', Confirm: 'bool' }, 'Identity', false);
export const GET_DKIM = cmdlet('Get-DkimSigningConfig', { Identity: 'string' }, 'Identity', true);

export const DKIM_CMDLETS: Cmdlet[] = [NEW_DKIM, ROTATE_DKIM, SET_DKIM, GET_DKIM];

const keySize = (c: Cmdlet, args: Args): number | undefined => {
  const v = args.get('KeySize');
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !(RSA_KEY_SIZES as readonly number[]).includes(v))
    throw new EmsError(`${c.name}: -KeySize must be ${RSA_KEY_SIZES.slice(0, -1).join(', ')} or ${RSA_KEY_SIZES.at(-1)}`);
  return v;
};

export function dkimRequest(c: Cmdlet, args: Args): DkimRequest {
  switch (c.name) {
    case NEW_DKIM.name: {
      const enabled = args.get('Enabled');
      // Exchange Online requires -Enabled on New-DkimSigningConfig.
      if (typeof enabled !== 'boolean') throw new EmsError(`${c.name}: -Enabled is required ($true to sign at once, $false to publish the records first)`);
      const size = keySize(c, args);
      const algorithm = stringArg(args, 'Algorithm') as 'rsa-sha256' | 'ed25519-sha256' | undefined;
      if (algorithm === 'ed25519-sha256' && size !== undefined) throw new EmsError(`${c.name}: -KeySize applies to rsa-sha256 keys only`);
      return {
        op: 'new',
        domain: requireString(c.name, args, 'DomainName'),
        enabled,
        ...(size !== undefined ? { keySize: size } : {}),
        ...(algorithm ? { algorithm } : {}),
      };
    }
    case ROTATE_DKIM.name: {
      const size = keySize(c, args);
      return { op: 'rotate', domain: requireString(c.name, args, 'Identity'), ...(size !== undefined ? { keySize: size } : {}) };
    }
    case SET_DKIM.name: {
      const enabled = args.get('Enabled');
      if (typeof enabled !== 'boolean') throw new EmsError(`${c.name}: -Enabled is the one setting it changes: give -Enabled $true or $false`);
      return { op: 'set', domain: requireString(c.name, args, 'Identity'), enabled };
    }
    default: {
      const identity = stringArg(args, 'Identity');
      return { op: 'get', ...(identity !== undefined ? { domain: identity } : {}) };
    }
  }
}
