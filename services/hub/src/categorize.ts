/**
 * The categorizer's decision for one envelope: resolve each recipient against the
 * directory, route it, and group recipients by next hop. Pure, so it is unit-tested
 * exhaustively; the hub's worker only publishes what this returns.
 */
import type { OrganizationConfig } from '@transit/config';
import type { Envelope, NextHop, Recipient } from '@transit/envelope';
import { routeRecipient, type Directory } from '@transit/policy';
import { SUBJECTS } from '@transit/bus';

export type HopGroup = { key: string; subject: string; hop: NextHop; recipients: Recipient[] };
export type Unroutable = { recipient: Recipient; reason: string; code: string };
/** A recipient the directory resolved to another address (an alias to its mailbox's primary address). */
export type Resolution = { address: string; original: string };
export type Categorized = { groups: HopGroup[]; unroutable: Unroutable[]; resolved: Resolution[] };

export function categorize(config: OrganizationConfig, directory: Directory, envelope: Envelope): Categorized {
  const groups = new Map<string, HopGroup>();
  const unroutable: Unroutable[] = [];
  const resolved: Resolution[] = [];
  const seen = new Set<string>();
  for (const recipient of envelope.recipients) {
    const route = routeRecipient(config, directory, recipient.address, envelope.size);
    if (route.kind === 'mailbox') {
      const primary = route.mailbox.PrimarySmtpAddress;
      if (primary.toLowerCase() !== recipient.address.toLowerCase()) resolved.push({ address: primary, original: recipient.address });
      if (seen.has(primary.toLowerCase())) continue; // an alias and its primary: one delivery
      seen.add(primary.toLowerCase());
      const key = `mailbox:${route.mailbox.Database}`;
      const group = groups.get(key) ?? {
        key,
        subject: SUBJECTS.mailbox(route.mailbox.Database),
        hop: { type: 'mailbox', database: route.mailbox.Database },
        recipients: [],
      };
      group.recipients.push({
        ...recipient,
        address: primary,
        original: recipient.original ?? (primary === recipient.address ? undefined : recipient.address),
      });
      groups.set(key, group);
    } else if (route.kind === 'smtp') {
      if (seen.has(recipient.address.toLowerCase())) continue;
      seen.add(recipient.address.toLowerCase());
      const c = route.connector;
      // Smart hosts: one hop per connector. DNS routing: one hop per destination domain.
      const dest = c.DNSRoutingEnabled ? route.domain : c.SmartHosts.join(',');
      const key = `smtp:${c.Name}:${dest}`;
      const hop: NextHop = c.DNSRoutingEnabled
        ? { type: 'smtp', connector: c.Name, domain: route.domain, port: c.Port }
        : { type: 'smtp', connector: c.Name, domain: route.domain, smartHosts: c.SmartHosts, port: c.Port };
      const group = groups.get(key) ?? { key, subject: SUBJECTS.remote(`${c.Name}.${dest}`), hop, recipients: [] };
      group.recipients.push(recipient);
      groups.set(key, group);
    } else if (route.kind === 'unknown-recipient') {
      unroutable.push({ recipient, code: '5.1.10', reason: 'RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup' });
    } else {
      unroutable.push({ recipient, code: '5.4.4', reason: `Unable to route: no send connector for ${route.domain}` });
    }
  }
  return { groups: [...groups.values()], unroutable, resolved };
}
