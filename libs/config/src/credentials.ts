/**
 * Directory passwords as salted scrypt hashes: `$scrypt$N=16384,r=8,p=1$<salt>$<hash>`.
 * Plaintext never reaches the configuration store, a log or the CLI's output.
 */
import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';

const KEY_LENGTH = 32;
const DEFAULT_COST = { N: 16384, r: 8, p: 1 };

function derive(password: string, salt: Buffer, options: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(password.normalize('NFKC'), salt, KEY_LENGTH, { ...options, maxmem: 64 * 1024 * 1024 }, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

export async function hashPassword(password: string, cost: { N: number; r: number; p: number } = DEFAULT_COST): Promise<string> {
  const salt = randomBytes(16);
  const key = await derive(password, salt, cost);
  return `$scrypt$N=${cost.N},r=${cost.r},p=${cost.p}$${salt.toString('base64')}$${key.toString('base64')}`;
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const m = /^\$scrypt\$N=(\d+),r=(\d+),p=(\d+)\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)$/.exec(stored);
  if (!m) return false;
  const expected = Buffer.from(m[5]!, 'base64');
  const key = await derive(password, Buffer.from(m[4]!, 'base64'), { N: Number(m[1]), r: Number(m[2]), p: Number(m[3]) });
  return key.length === expected.length && timingSafeEqual(key, expected);
}

/**
 * `Password:` on the users and mailboxes of a document an administrator supplies (transitctl
 * apply, the admin API) becomes `PasswordHash:` in place, so plaintext never reaches the store.
 */
export async function hashPlaintextPasswords(doc: Record<string, unknown>): Promise<void> {
  for (const list of ['Mailboxes', 'Users']) {
    const items = doc[list];
    if (!Array.isArray(items)) continue;
    for (const item of items as unknown[]) {
      if (typeof item !== 'object' || item === null) continue;
      const entry = item as Record<string, unknown>;
      if (typeof entry.Password === 'string') {
        entry.PasswordHash = await hashPassword(entry.Password);
        delete entry.Password;
      }
    }
  }
}
