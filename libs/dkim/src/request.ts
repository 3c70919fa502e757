/**
 * What `transitctl dkim ...` and the DKIM cmdlets of `transitctl ems` ask of the cluster
 * (Exchange Online's New-, Rotate-, Set- and Get-DkimSigningConfig), and running it on the
 * signing configurations in KV. The rows never hold a private key, sealed or not.
 */
import {
  DkimError,
  activeKey,
  checkDomain,
  newSigningConfig,
  rotate,
  txtRecord,
  zoneLine,
  type DkimAlgorithm,
  type DkimKey,
  type DkimSigningConfig,
} from './keys.ts';
import type { DkimStore } from './store.ts';

export type DkimRequest =
  | { op: 'new'; domain: string; algorithm?: DkimAlgorithm; keySize?: number; selectors?: [string, string]; enabled?: boolean }
  | { op: 'rotate'; domain: string; keySize?: number }
  | { op: 'set'; domain: string; enabled: boolean }
  | { op: 'get'; domain?: string }
  | { op: 'remove'; domain: string };

/** Get-DkimSigningConfig's object: Exchange Online's names where it has one, and the records to publish. */
export type DkimRow = {
  Identity: string;
  Domain: string;
  Enabled: boolean;
  Status: 'Valid' | 'Disabled';
  Selector: string;
  Algorithm: DkimAlgorithm;
  KeySize: number;
  Selector1: string;
  Selector1KeyCreationTime: string;
  Selector1Record: string;
  Selector2: string;
  Selector2KeyCreationTime: string;
  Selector2Record: string;
  LastRotatedAt: string;
};

export function dkimRow(c: DkimSigningConfig): DkimRow {
  const [k1, k2] = c.Keys;
  const active = activeKey(c);
  const record = (k: DkimKey) => {
    const r = txtRecord(c.Domain, k);
    return `${r.name} TXT ${r.value}`;
  };
  return {
    Identity: c.Domain,
    Domain: c.Domain,
    Enabled: c.Enabled,
    Status: c.Enabled ? 'Valid' : 'Disabled',
    Selector: active.Selector,
    Algorithm: active.Algorithm,
    KeySize: active.KeySize ?? 256,
    Selector1: k1.Selector,
    Selector1KeyCreationTime: k1.CreatedAt,
    Selector1Record: record(k1),
    Selector2: k2.Selector,
    Selector2KeyCreationTime: k2.CreatedAt,
    Selector2Record: record(k2),
    LastRotatedAt: c.LastRotatedAt ?? '',
  };
}

export type DkimResult = { rows: DkimRow[]; configs: DkimSigningConfig[]; notes: string[] };

export async function runDkimRequest(store: DkimStore, req: DkimRequest, secret: string | undefined, now = new Date()): Promise<DkimResult> {
  const existing = async (domain: string) => {
    const d = checkDomain(domain);
    const c = await store.get(d);
    if (!c) throw new DkimError(`no DKIM signing configuration for ${d} (New-DkimSigningConfig -DomainName ${d} makes one)`);
    return c;
  };
  const done = (c: DkimSigningConfig, notes: string[]): DkimResult => ({ rows: [dkimRow(c)], configs: [c], notes });
  switch (req.op) {
    case 'new': {
      const d = checkDomain(req.domain);
      if (await store.get(d)) throw new DkimError(`${d} already has a DKIM signing configuration (Rotate-DkimSigningConfig ${d} makes a new key)`);
      const c = newSigningConfig(d, secret ?? '', now, {
        ...(req.algorithm ? { algorithm: req.algorithm } : {}),
        ...(req.keySize ? { keySize: req.keySize } : {}),
        ...(req.selectors ? { selectors: req.selectors } : {}),
        ...(req.enabled !== undefined ? { enabled: req.enabled } : {}),
      });
      await store.put(c);
      return done(c, [
        `publish both records in DNS, then mail from ${d} is signed with ${c.ActiveSelector}${c.Enabled ? '' : ' once enabled'}:`,
        ...c.Keys.map((k) => zoneLine(d, k)),
      ]);
    }
    case 'rotate': {
      const c = rotate(await existing(req.domain), secret ?? '', now, req.keySize);
      await store.put(c);
      const retired = c.Keys.find((k) => k.Selector !== c.ActiveSelector)!;
      return done(c, [
        `signing with ${c.ActiveSelector} now; ${retired.Selector} has a new key. Keep its old record for a few days (mail signed with it is still being read), then publish:`,
        zoneLine(c.Domain, retired),
      ]);
    }
    case 'set': {
      const c = { ...(await existing(req.domain)), Enabled: req.enabled };
      await store.put(c);
      return done(c, []);
    }
    case 'get': {
      const configs = req.domain === undefined ? await store.list() : [await existing(req.domain)];
      return { rows: configs.map(dkimRow), configs, notes: [] };
    }
    case 'remove': {
      const c = await existing(req.domain);
      await store.remove(c.Domain);
      return { rows: [], configs: [], notes: [`removed ${c.Domain}: its mail is no longer signed; its DNS records can go`] };
    }
  }
}

/** Zone-file lines for the records of `configs`, both selectors each. */
export function zoneLines(configs: readonly DkimSigningConfig[]): string[] {
  return configs.flatMap((c) => c.Keys.map((k) => zoneLine(c.Domain, k)));
}
