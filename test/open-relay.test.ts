/**
 * nmap's smtp-open-relay script (16 relay tricks: percent hack, bang paths, quoted
 * local parts, source routes, IP literals...) against the Default Frontend of the example
 * organisation, from an address no relay connector covers.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';
import { useHarness } from './use-harness.ts';

const run = promisify(execFile);
const h = useHarness();

it('nmap smtp-open-relay finds no open relay on the Default Frontend', async () => {
  const port = String(h.cluster.port(25));
  // `+` runs the script whatever port the service is on; -Pn: loopback needs no ping.
  const { stdout } = await run(
    'nmap',
    ['-Pn', '-n', '-p', port, '--script', '+smtp-open-relay', '--script-args', 'smtp-open-relay.domain=example.net,smtp-open-relay.ip=127.0.0.1', '127.0.0.1'],
    { timeout: 120_000 },
  );
  expect(stdout).toMatch(/smtp-open-relay: Server doesn't seem to be an open relay, all tests failed/);
  expect(stdout).not.toMatch(/Server is an open relay/);
});
