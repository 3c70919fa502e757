/**
 * DKIM signing keys (RFC 6376, and RFC 8463 for Ed25519): generating a domain's key pairs,
 * the DNS TXT record that publishes each public key, rotation between a domain's two
 * selectors, and the sealing that keeps private keys unreadable at rest. Pure, apart from
 * the randomness of key generation and sealing.
 *
 * A domain has two selectors, as Exchange Online's DKIM signing configurations do
 * (`selector1`, `selector2` unless named otherwise): one signs, the other stands by with a
 * key that is published before it is used. Rotating switches signing to the standby key and
 * gives the retired selector a fresh key, to be published (replacing the retired one) before
 * the next rotation, once mail signed with the retired key has been read.
 */
import { createCipheriv, createDecipheriv, createPublicKey, generateKeyPairSync, hkdfSync, randomBytes } from 'node:crypto';

export type DkimAlgorithm = 'rsa-sha256' | 'ed25519-sha256';

export type DkimKey = {
  Selector: string;
  Algorithm: DkimAlgorithm;
  /** RSA modulus bits; absent for Ed25519 (always 256). */
  KeySize?: number;
  /** The p= value of the TXT record: base64 of the SubjectPublicKeyInfo (RSA) or of the raw 32-byte key (Ed25519). */
  PublicKey: string;
  /** The PKCS#8 PEM private key, sealed with the cluster secret (see `seal`). */
  SealedPrivateKey: string;
  /** ISO time the key was made. */
  CreatedAt: string;
};

export type DkimSigningConfig = {
  /** The signing domain (d=), lower-case: mail whose From header is at this domain is signed. */
  Domain: string;
  Enabled: boolean;
  /** The selector whose key signs now. */
  ActiveSelector: string;
  /** Both selectors' keys, in selector order. */
  Keys: [DkimKey, DkimKey];
  /** ISO time of the last rotation, absent before the first. */
  LastRotatedAt?: string;
};

export class DkimError extends Error {}

export const DEFAULT_SELECTORS: [string, string] = ['selector1', 'selector2'];
export const RSA_KEY_SIZES = [1024, 2048, 3072, 4096] as const;

const SELECTOR = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/i;
const DOMAIN = /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+$/i;

export function checkDomain(domain: string): string {
  const d = domain.trim().toLowerCase().replace(/\.$/, '');
  if (!DOMAIN.test(d)) throw new DkimError(`DomainName: ${JSON.stringify(domain)} is not a domain name`);
  return d;
}

/** A new key pair for `selector`, its private key sealed with `secret`. */
export function generateKey(selector: string, algorithm: DkimAlgorithm, keySize: number, secret: string, now: Date): DkimKey {
  if (!SELECTOR.test(selector)) throw new DkimError(`selector ${JSON.stringify(selector)} is not a DNS label`);
  if (algorithm === 'ed25519-sha256') {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    // RFC 8463: p= is the raw public key, the last 32 bytes of its SubjectPublicKeyInfo.
    const spki = publicKey.export({ type: 'spki', format: 'der' });
    return {
      Selector: selector,
      Algorithm: algorithm,
      PublicKey: spki.subarray(spki.length - 32).toString('base64'),
      SealedPrivateKey: seal(secret, privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()),
      CreatedAt: now.toISOString(),
    };
  }
  if (!(RSA_KEY_SIZES as readonly number[]).includes(keySize)) throw new DkimError(`KeySize: ${keySize} is not one of ${RSA_KEY_SIZES.join(', ')}`);
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: keySize });
  return {
    Selector: selector,
    Algorithm: algorithm,
    KeySize: keySize,
    PublicKey: publicKey.export({ type: 'spki', format: 'der' }).toString('base64'),
    SealedPrivateKey: seal(secret, privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()),
    CreatedAt: now.toISOString(),
  };
}

export type NewConfigOptions = { algorithm?: DkimAlgorithm; keySize?: number; selectors?: [string, string]; enabled?: boolean };

/** A domain's signing configuration with a fresh key on each selector; the first selector signs. */
export function newSigningConfig(domain: string, secret: string, now: Date, opts: NewConfigOptions = {}): DkimSigningConfig {
  const selectors = opts.selectors ?? DEFAULT_SELECTORS;
  if (selectors[0].toLowerCase() === selectors[1].toLowerCase()) throw new DkimError('the two selectors must differ');
  const algorithm = opts.algorithm ?? 'rsa-sha256';
  const keySize = opts.keySize ?? 2048;
  return {
    Domain: checkDomain(domain),
    Enabled: opts.enabled ?? true,
    ActiveSelector: selectors[0],
    Keys: [generateKey(selectors[0], algorithm, keySize, secret, now), generateKey(selectors[1], algorithm, keySize, secret, now)],
  };
}

/** The key that signs now. */
export function activeKey(config: DkimSigningConfig): DkimKey {
  return config.Keys.find((k) => k.Selector === config.ActiveSelector) ?? config.Keys[0];
}

/**
 * Signing moves to the standby selector (its key was published with the configuration), and
 * the retired selector gets a fresh key of the same kind (or of `keySize`), which the next
 * rotation will use.
 */
export function rotate(config: DkimSigningConfig, secret: string, now: Date, keySize?: number): DkimSigningConfig {
  const retired = activeKey(config);
  const standby = config.Keys.find((k) => k !== retired)!;
  const fresh = generateKey(retired.Selector, retired.Algorithm, keySize ?? retired.KeySize ?? 2048, secret, now);
  const keys = config.Keys.map((k) => (k === retired ? fresh : k)) as [DkimKey, DkimKey];
  return { ...config, ActiveSelector: standby.Selector, Keys: keys, LastRotatedAt: now.toISOString() };
}

/** The DNS name and TXT value that publish `key` for `domain`. */
export function txtRecord(domain: string, key: DkimKey): { name: string; value: string } {
  const k = key.Algorithm === 'ed25519-sha256' ? 'ed25519' : 'rsa';
  return { name: `${key.Selector}._domainkey.${domain}`, value: `v=DKIM1; k=${k}; p=${key.PublicKey}` };
}

/** The record as a zone-file line; TXT strings are at most 255 bytes, so a long value is split into several. */
export function zoneLine(domain: string, key: DkimKey): string {
  const { name, value } = txtRecord(domain, key);
  const parts: string[] = [];
  for (let i = 0; i < value.length; i += 255) parts.push(`"${value.slice(i, i + 255)}"`);
  return `${name}. IN TXT ( ${parts.join(' ')} )`;
}

/** A private key sealed with the cluster secret: AES-256-GCM under a key derived from it (HKDF-SHA256), as `v1.<iv>.<tag>.<ciphertext>` in base64. */
export function seal(secret: string, plaintext: string): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', sealingKey(secret), iv);
  const data = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return ['v1', iv.toString('base64'), cipher.getAuthTag().toString('base64'), data.toString('base64')].join('.');
}

export function unseal(secret: string, sealed: string): string {
  const [version, iv, tag, data] = sealed.split('.');
  if (version !== 'v1' || !iv || !tag || data === undefined) throw new DkimError('a sealed DKIM key is not in a form Transit wrote');
  try {
    const decipher = createDecipheriv('aes-256-gcm', sealingKey(secret), Buffer.from(iv, 'base64'));
    decipher.setAuthTag(Buffer.from(tag, 'base64'));
    return Buffer.concat([decipher.update(Buffer.from(data, 'base64')), decipher.final()]).toString('utf8');
  } catch {
    throw new DkimError('a DKIM private key cannot be unsealed: TRANSIT_CLUSTER_SECRET differs from the one it was sealed with');
  }
}

function sealingKey(secret: string): Buffer {
  if (!secret) throw new DkimError('TRANSIT_CLUSTER_SECRET is not set: DKIM private keys are sealed with it');
  return Buffer.from(hkdfSync('sha256', secret, 'transit', 'transit-dkim-private-key-v1', 32));
}

/** Checks that a sealed key opens with `secret` and matches its public key (a configuration read back before use). */
export function privateKeyOf(key: DkimKey, secret: string): string {
  const pem = unseal(secret, key.SealedPrivateKey);
  const spki = createPublicKey(pem).export({ type: 'spki', format: 'der' });
  const published = key.Algorithm === 'ed25519-sha256' ? spki.subarray(spki.length - 32).toString('base64') : spki.toString('base64');
  if (published !== key.PublicKey) throw new DkimError(`the private key of selector ${key.Selector} does not match its public key`);
  return pem;
}
