/**
 * DKIM signing on the way out (mailauth's signer, relaxed/relaxed): a message whose From
 * header is at a domain with an enabled signing configuration (or at a subdomain of one) is
 * signed with that domain's active key, in the outbound proxy, after every change Transit
 * makes to the message. The signature goes in front of the message as it is sent.
 */
import { Readable } from 'node:stream';
import { dkimSign } from 'mailauth/lib/dkim/sign.js';
import { activeKey, privateKeyOf, type DkimSigningConfig } from './keys.ts';

/** Header bytes read to find the From field; a header section longer than this is not signed. */
const MAX_HEADER_BYTES = 256 * 1024;

/** The domain of the first From header's address, lower-case; undefined without one. */
export function fromDomain(header: string): string | undefined {
  const unfolded = header.replace(/\r?\n[ \t]+/g, ' ');
  const line = /^from:(.*)$/im.exec(unfolded)?.[1];
  if (line === undefined) return undefined;
  const angle = /<([^<>]*)>/.exec(line)?.[1];
  const address = (angle ?? line.replace(/\([^()]*\)/g, '')).trim();
  const at = address.lastIndexOf('@');
  if (at < 0) return undefined;
  const domain = address
    .slice(at + 1)
    .trim()
    .replace(/[>\s,;].*$/, '')
    .toLowerCase();
  return domain || undefined;
}

/** The domain itself, then each parent down to the last two labels: the configurations that may sign mail from `domain`. */
export function signingCandidates(domain: string): string[] {
  const labels = domain.split('.');
  const out: string[] = [];
  for (let i = 0; i <= labels.length - 2; i++) out.push(labels.slice(i).join('.'));
  return out;
}

/** Where the signer finds configurations: the cluster's (DkimWatcher, store.ts) or a fixed set (`configsOf`). */
export type SigningConfigs = {
  get(domain: string): Promise<DkimSigningConfig | undefined>;
  /** Whether any configuration exists at all; without one, no message is read to look for its From domain. */
  any(): Promise<boolean>;
};

/** A fixed set of configurations, by domain. */
export function configsOf(...configs: DkimSigningConfig[]): SigningConfigs {
  const byDomain = new Map(configs.map((c) => [c.Domain, c]));
  return { get: (domain) => Promise.resolve(byDomain.get(domain.toLowerCase())), any: () => Promise.resolve(byDomain.size > 0) };
}

/** A message's DKIM-Signature header field (with its CRLF), and who signed. */
export type Signature = { header: string; domain: string; selector: string };

/** `message` with `signature` in front; destroying the result destroys `message`. */
export function withSignature(signature: Signature | undefined, message: Readable): Readable {
  if (!signature) return message;
  async function* signed(): AsyncGenerator<Buffer> {
    yield Buffer.from(signature!.header, 'latin1');
    for await (const chunk of message) yield chunk as Buffer;
  }
  return Readable.from(signed());
}

/** Splits a message stream into its header section (as read) and a stream of the whole message again. */
async function readHeader(body: Readable): Promise<{ header: Buffer; whole: Readable } | undefined> {
  const seen: Buffer[] = [];
  let size = 0;
  const it = body[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  for (;;) {
    const next = await it.next();
    if (next.done) break;
    const chunk = Buffer.isBuffer(next.value) ? next.value : Buffer.from(next.value);
    seen.push(chunk);
    size += chunk.length;
    const joined = Buffer.concat(seen);
    const end = joined.indexOf('\r\n\r\n');
    const endLf = joined.indexOf('\n\n');
    const at = end >= 0 ? end : endLf;
    if (at >= 0 || size > MAX_HEADER_BYTES) {
      async function* rest(): AsyncGenerator<Buffer> {
        yield joined;
        for (;;) {
          const more = await it.next();
          if (more.done) return;
          yield more.value;
        }
      }
      return at >= 0 ? { header: joined.subarray(0, at), whole: Readable.from(rest()) } : undefined;
    }
  }
  return undefined;
}

export class DkimSigner {
  readonly #configs: SigningConfigs;
  readonly #secret: string | undefined;
  /** Unsealed private keys by domain, selector and sealed value: unsealing is done once per key. */
  readonly #keys = new Map<string, string>();

  constructor(configs: SigningConfigs, secret: string | undefined) {
    this.#configs = configs;
    this.#secret = secret;
  }

  /** The configuration that signs mail from `domain`, if any is enabled. */
  async configFor(domain: string): Promise<DkimSigningConfig | undefined> {
    for (const candidate of signingCandidates(domain)) {
      const config = await this.#configs.get(candidate);
      if (config) return config.Enabled ? config : undefined;
    }
    return undefined;
  }

  /**
   * The DKIM-Signature for the message `open` gives, when its From domain has an enabled
   * configuration; undefined when it is not to be signed. The message is read as a stream, so
   * a large body is never held in memory; send it with `withSignature`. A configuration whose
   * key cannot be used (TRANSIT_CLUSTER_SECRET missing or different) throws: the attempt fails
   * and is retried, rather than mail going out unsigned that the domain's DMARC policy may
   * have receivers refuse.
   */
  async signature(open: () => Promise<Readable>): Promise<Signature | undefined> {
    if (!(await this.#configs.any())) return undefined;
    const body = await open();
    try {
      const parts = await readHeader(body);
      if (!parts) return undefined;
      const domain = fromDomain(parts.header.toString('latin1'));
      const config = domain ? await this.configFor(domain) : undefined;
      if (!config) return undefined;
      const key = activeKey(config);
      const cacheKey = `${config.Domain}/${key.Selector}/${key.SealedPrivateKey}`;
      let privateKey = this.#keys.get(cacheKey);
      if (privateKey === undefined) {
        privateKey = privateKeyOf(key, this.#secret ?? '');
        this.#keys.set(cacheKey, privateKey);
      }
      const signature = { signingDomain: config.Domain, selector: key.Selector, privateKey, algorithm: key.Algorithm, canonicalization: 'relaxed/relaxed' };
      const result = await dkimSign(parts.whole, { ...signature, signatureData: [signature] });
      if (result.errors.length || !result.signatures) {
        const why = result.errors.map((e: unknown) => (e as { message?: string }).message ?? String(e)).join('; ');
        throw new Error(`DKIM signing for ${config.Domain} failed: ${why || 'no signature made'}`);
      }
      return { header: result.signatures, domain: config.Domain, selector: key.Selector };
    } finally {
      body.destroy();
    }
  }
}
