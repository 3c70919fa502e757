/**
 * Accepted domains, the directory and routing: pure lookups over the configuration.
 */
import type { AcceptedDomain, Mailbox, OrganizationConfig, SendConnector } from '@transit/config';

export function domainOf(address: string): string {
  const at = address.lastIndexOf('@');
  return at < 0 ? '' : address.slice(at + 1).toLowerCase();
}

/** The most specific accepted domain covering `domain`: exact beats `*.parent`, longer parents beat shorter. */
export function matchAcceptedDomain(domains: readonly AcceptedDomain[], domain: string): AcceptedDomain | undefined {
  const d = domain.toLowerCase();
  let best: AcceptedDomain | undefined;
  let bestScore = -1;
  for (const accepted of domains) {
    const name = accepted.DomainName.toLowerCase();
    let score = -1;
    if (name === d) score = Number.MAX_SAFE_INTEGER;
    else if (name.startsWith('*.')) {
      const parent = name.slice(2);
      if (d === parent || d.endsWith(`.${parent}`)) score = parent.length;
    }
    if (score > bestScore) {
      best = accepted;
      bestScore = score;
    }
  }
  return best;
}

/** An index of every address (primary and secondary) to its mailbox, case-insensitive. */
export class Directory {
  readonly #byAddress = new Map<string, Mailbox>();
  constructor(mailboxes: readonly Mailbox[]) {
    for (const m of mailboxes) {
      for (const a of [m.PrimarySmtpAddress, ...m.EmailAddresses]) this.#byAddress.set(a.toLowerCase(), m);
    }
  }
  find(address: string): Mailbox | undefined {
    return this.#byAddress.get(address.toLowerCase());
  }
}

const directories = new WeakMap<OrganizationConfig, Directory>();

/** The directory of one configuration snapshot, built once per snapshot. */
export function directoryFor(config: OrganizationConfig): Directory {
  let directory = directories.get(config);
  if (!directory) {
    directory = new Directory(config.Mailboxes);
    directories.set(config, directory);
  }
  return directory;
}

type AddressSpace = { pattern: string; cost: number };

export function parseAddressSpace(spec: string): AddressSpace {
  const withoutType = spec.replace(/^smtp:/i, '');
  const [pattern, cost] = withoutType.split(';');
  return { pattern: (pattern ?? '').trim().toLowerCase(), cost: cost ? Number(cost) : 1 };
}

/** How specific an address space is for `domain`: -1 no match, else larger is more specific. */
function addressSpaceScore(pattern: string, domain: string): number {
  if (pattern === '*') return 0;
  if (pattern === domain) return 2 * domain.length + 2;
  if (pattern.startsWith('*.')) {
    const parent = pattern.slice(2);
    if (domain === parent || domain.endsWith(`.${parent}`)) return 2 * parent.length + 1;
  }
  return -1;
}

/** Send connector selection (docs/exchange-behaviour.md §6): most specific address space, then lowest cost, then name. */
export function selectSendConnector(connectors: readonly SendConnector[], domain: string, size = 0): SendConnector | undefined {
  const d = domain.toLowerCase();
  let best: { c: SendConnector; score: number; cost: number } | undefined;
  for (const c of connectors) {
    if (!c.Enabled || size > c.MaxMessageSize) continue;
    for (const spec of c.AddressSpaces) {
      const space = parseAddressSpace(spec);
      const score = addressSpaceScore(space.pattern, d);
      if (score < 0) continue;
      const cand = { c, score, cost: space.cost };
      if (!best || cand.score > best.score || (cand.score === best.score && (cand.cost < best.cost || (cand.cost === best.cost && c.Name < best.c.Name)))) {
        best = cand;
      }
    }
  }
  return best?.c;
}

export type RecipientRoute =
  | { kind: 'mailbox'; mailbox: Mailbox }
  | { kind: 'smtp'; connector: SendConnector; domain: string }
  | { kind: 'unknown-recipient' }
  | { kind: 'unreachable'; domain: string };

/**
 * Where a recipient goes: a mailbox here, or out through a send connector. Authoritative
 * domains never relay; InternalRelay delivers known recipients here and relays the rest;
 * ExternalRelay and foreign domains always relay.
 */
export function routeRecipient(config: OrganizationConfig, directory: Directory, address: string, size = 0): RecipientRoute {
  const domain = domainOf(address);
  const accepted = matchAcceptedDomain(config.AcceptedDomains, domain);
  if (accepted && accepted.DomainType !== 'ExternalRelay') {
    const mailbox = directory.find(address);
    if (mailbox) return { kind: 'mailbox', mailbox };
    if (accepted.DomainType === 'Authoritative') return { kind: 'unknown-recipient' };
  }
  const connector = selectSendConnector(config.SendConnectors, domain, size);
  return connector ? { kind: 'smtp', connector, domain } : { kind: 'unreachable', domain };
}
