/**
 * The certificate STARTTLS offers. Production: TRANSIT_TLS_CERT / TRANSIT_TLS_KEY (PEM
 * files, e.g. a Kubernetes Secret). Local profile: a self-signed certificate for the node
 * name, made once under <var>/tls and reused, so `npm start` offers STARTTLS out of the box.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { RuntimeSettings } from '@transit/config';
import { generate } from 'selfsigned';

export type TlsMaterial = { cert: string; key: string; source: string };

export async function loadTlsMaterial(settings: Pick<RuntimeSettings, 'tlsCertPath' | 'tlsKeyPath' | 'varDir' | 'nodeName'>): Promise<TlsMaterial> {
  if (settings.tlsCertPath && settings.tlsKeyPath) {
    return { cert: await readFile(settings.tlsCertPath, 'utf8'), key: await readFile(settings.tlsKeyPath, 'utf8'), source: settings.tlsCertPath };
  }
  const dir = join(settings.varDir, 'tls');
  const certPath = join(dir, 'transit-selfsigned.crt');
  const keyPath = join(dir, 'transit-selfsigned.key');
  try {
    return { cert: await readFile(certPath, 'utf8'), key: await readFile(keyPath, 'utf8'), source: certPath };
  } catch {
    const pems = await generate([{ name: 'commonName', value: settings.nodeName }], {
      keySize: 2048,
      algorithm: 'sha256',
      days: 825,
      extensions: [{ name: 'subjectAltName', altNames: [{ type: 2, value: settings.nodeName }, { type: 2, value: 'localhost' }, { type: 7, ip: '127.0.0.1' }, { type: 7, ip: '::1' }] }],
    } as Parameters<typeof generate>[1]);
    await mkdir(dir, { recursive: true });
    // Written key first, 0600, and only then the certificate that marks the pair complete.
    await writeFile(keyPath, pems.private, { mode: 0o600 });
    await writeFile(certPath, pems.cert);
    return { cert: pems.cert, key: pems.private, source: certPath };
  }
}
