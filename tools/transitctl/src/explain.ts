import type { Explanation } from '@transit/policy';

/** The test-connector report an administrator reads: candidates, the choice, the rights and their sources, each step's reply. */
export function renderExplanation(e: Explanation): string {
  const lines: string[] = ['Receive connectors with a binding on this port:'];
  for (const c of e.candidates) {
    const range = c.range ? `range ${c.range} (${c.rangeSize} addresses)` : 'no RemoteIPRanges entry contains the client';
    const binding = c.binding === 'none' ? 'binding does not match the local address' : `${c.binding} binding`;
    lines.push(`  ${c.chosen ? '*' : ' '} ${c.connector}${c.enabled ? '' : ' (disabled)'}: ${binding}; ${range}`);
  }
  if (e.candidates.length === 0) lines.push('  (none)');
  if (e.connector) {
    lines.push('', `Selected: ${e.connector.Name} (a specific local binding beats 0.0.0.0/[::], then the smallest matching remote range)`);
    lines.push(`Principal: ${e.principal}`, `Effective rights: ${e.rights.length ? e.rights.map((r) => `ms-Exch-${r}`).join(', ') : '(none)'}`, 'Granted by:');
    for (const s of e.sources) lines.push(`  ${s.deny ? 'DENY ' : ''}ms-Exch-${s.right} — ${s.connector}: ${s.via}`);
    if (e.sources.length === 0) lines.push('  (nothing)');
  }
  lines.push('', 'SMTP steps:');
  for (const step of e.steps) lines.push(`  ${step.command}\n    → ${step.reply}${step.reason ? `\n      because ${step.reason}` : ''}`);
  return lines.join('\n') + '\n';
}
