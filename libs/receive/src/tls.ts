/**
 * The certificate STARTTLS offers. Production: TRANSIT_TLS_CERT / TRANSIT_TLS_KEY (PEM
 * files, e.g. a Kubernetes Secret). Local profile: a self-signed certificate for the node
 * name, made once under <var>/tls and reused, so `npm start` offers STARTTLS out of the box.
 *
 * Every role of a node starts at once and may find no certificate yet. Key and certificate
 * are therefore one file, written in full under a private name and then linked into place:
 * the first process to link wins, the others read its pair. No process ever reads half a
 * file, or one process's key with another's certificate.
 */
import { randomUUID } from 'node:crypto';
import { link, mkdir, readFile, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { RuntimeSettings } from '@transit/config';
import { generate } from 'selfsigned';

export type TlsMaterial = { cert: string; key: string; source: string };

const PEM_BLOCK = /-----BEGIN ([A-Z ]+)-----[\s\S]+?-----END \1-----\r?\n?/g;

/** The private key and the certificate of a PEM bundle; undefined unless both are there. */
export function splitPemBundle(text: string): { key: string; cert: string } | undefined {
  const blocks = [...text.matchAll(PEM_BLOCK)];
  const key = blocks.find((b) => b[1]!.endsWith('PRIVATE KEY'))?.[0];
  const cert = blocks.find((b) => b[1] === 'CERTIFICATE')?.[0];
  return key && cert ? { key, cert } : undefined;
}

export async function loadTlsMaterial(settings: Pick<RuntimeSettings, 'tlsCertPath' | 'tlsKeyPath' | 'varDir' | 'nodeName'>): Promise<TlsMaterial> {
  if (settings.tlsCertPath && settings.tlsKeyPath) {
    return { cert: await readFile(settings.tlsCertPath, 'utf8'), key: await readFile(settings.tlsKeyPath, 'utf8'), source: settings.tlsCertPath };
  }
  const dir = join(settings.varDir, 'tls');
  const bundlePath = join(dir, 'transit-selfsigned.pem');
  const existing = splitPemBundle(await readFile(bundlePath, 'utf8').catch(() => ''));
  if (existing) return { ...existing, source: bundlePath };

  const pems = await generate([{ name: 'commonName', value: settings.nodeName }], {
    keySize: 2048,
    algorithm: 'sha256',
    days: 825,
    extensions: [
      {
        name: 'subjectAltName',
        altNames: [
          { type: 2, value: settings.nodeName },
          { type: 2, value: 'localhost' },
          { type: 7, ip: '127.0.0.1' },
          { type: 7, ip: '::1' },
        ],
      },
    ],
  } as Parameters<typeof generate>[1]);
  await mkdir(dir, { recursive: true });
  const mine = `${bundlePath}.${process.pid}.${randomUUID()}.tmp`;
  const bundle = `${pems.private.trim()}\n${pems.cert.trim()}\n`;
  await writeFile(mine, bundle, { mode: 0o600 });
  try {
    await link(mine, bundlePath);
    // As every later reader will see it.
    return { ...splitPemBundle(bundle)!, source: bundlePath };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    // Another role of this node made the pair first: use that one, so all offer the same.
    const theirs = splitPemBundle(await readFile(bundlePath, 'utf8'));
    if (!theirs) throw new Error(`${bundlePath} holds no private key and certificate; remove it to have a new pair made`, { cause: err });
    return { ...theirs, source: bundlePath };
  } finally {
    await unlink(mine).catch(() => undefined);
  }
}
