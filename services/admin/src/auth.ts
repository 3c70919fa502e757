/**
 * Who may use the admin API and dashboard. One bootstrap account, `admin`, whose password
 * comes from TRANSIT_ADMIN_PASSWORD or the file named by TRANSIT_ADMIN_PASSWORD_FILE (a
 * Kubernetes or Compose secret). Without either the surface stays shut: never open by default.
 *
 * The password is kept only as a salted scrypt hash (libs/config credentials), so a check is
 * constant-time and slow, and plaintext lives no longer than start-up. A login gives a
 * random session token in an HttpOnly, SameSite=Strict cookie; API clients may send HTTP
 * Basic instead. Failed logins are counted per client address and refused for a while past
 * a threshold, so guessing costs time. Sessions live in this process (admin runs one replica):
 * a restart logs everyone out, which is the safe direction.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { hashPassword, verifyPassword } from '@transit/config';

export const ADMIN_USER = 'admin';
export const SESSION_COOKIE = 'transit_admin';
/** Browsers cannot add a custom header to a cross-site request without a CORS preflight, which this server never grants: its presence proves the request came from our own page or an API client. */
export const CSRF_HEADER = 'x-transit-request';
const MIN_PASSWORD_LENGTH = 8;

export type CredentialSource = { configured: true; hash: string; from: string } | { configured: false; reason: string };

/** Reads the bootstrap credential; the reason names the variables to set when there is none (or it is unusable). */
export async function loadAdminCredential(env: NodeJS.ProcessEnv): Promise<CredentialSource> {
  let password: string | undefined;
  let from: string;
  if (env.TRANSIT_ADMIN_PASSWORD_FILE) {
    from = `TRANSIT_ADMIN_PASSWORD_FILE (${env.TRANSIT_ADMIN_PASSWORD_FILE})`;
    try {
      // A trailing newline is how `echo` and most secret tools write files; it is not part of the password.
      password = (await readFile(env.TRANSIT_ADMIN_PASSWORD_FILE, 'utf8')).replace(/\r?\n$/, '');
    } catch (err) {
      return { configured: false, reason: `cannot read ${from}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` };
    }
  } else if (env.TRANSIT_ADMIN_PASSWORD !== undefined && env.TRANSIT_ADMIN_PASSWORD !== '') {
    from = 'TRANSIT_ADMIN_PASSWORD';
    password = env.TRANSIT_ADMIN_PASSWORD;
  } else {
    return {
      configured: false,
      reason: 'no admin credential: set TRANSIT_ADMIN_PASSWORD or TRANSIT_ADMIN_PASSWORD_FILE (user "admin") to enable the admin API and dashboard',
    };
  }
  if (password.length < MIN_PASSWORD_LENGTH)
    return {
      configured: false,
      reason: `the admin password from ${from} is shorter than ${MIN_PASSWORD_LENGTH} characters; the admin API and dashboard stay disabled`,
    };
  return { configured: true, hash: await hashPassword(password), from };
}

export type LoginThrottle = { failures: number; windowStart: number };

export type AuthOptions = {
  sessionTtlMs?: number;
  maxFailures?: number;
  failureWindowMs?: number;
  now?: () => number;
};

export type AuthResult = { ok: true; user: string; via: 'session' | 'basic' } | { ok: false; status: 401 | 429; message: string; retryAfterSeconds?: number };

const tokenKey = (token: string) => createHash('sha256').update(token).digest('base64url');

export class AdminAuth {
  readonly #hash: string;
  readonly #sessions = new Map<string, { user: string; expires: number }>();
  readonly #failures = new Map<string, LoginThrottle>();
  readonly #ttl: number;
  readonly #maxFailures: number;
  readonly #window: number;
  readonly #now: () => number;

  constructor(hash: string, opts: AuthOptions = {}) {
    this.#hash = hash;
    this.#ttl = opts.sessionTtlMs ?? 8 * 3600_000;
    this.#maxFailures = opts.maxFailures ?? 5;
    this.#window = opts.failureWindowMs ?? 15 * 60_000;
    this.#now = opts.now ?? Date.now;
  }

  get sessionTtlMs(): number {
    return this.#ttl;
  }

  /** Seconds the client must wait before another try, or 0. */
  throttled(client: string): number {
    const t = this.#failures.get(client);
    if (!t) return 0;
    const left = t.windowStart + this.#window - this.#now();
    if (left <= 0) {
      this.#failures.delete(client);
      return 0;
    }
    return t.failures >= this.#maxFailures ? Math.ceil(left / 1000) : 0;
  }

  #fail(client: string): void {
    const now = this.#now();
    const t = this.#failures.get(client);
    if (!t || now - t.windowStart > this.#window) this.#failures.set(client, { failures: 1, windowStart: now });
    else t.failures++;
    // Bounded memory under a spray of addresses: forget the oldest windows first.
    if (this.#failures.size > 10_000) for (const key of [...this.#failures.keys()].slice(0, 1000)) this.#failures.delete(key);
  }

  /** Checks a user and password (counted against the client's failures); the user name is compared too, in the same constant-time way. */
  async verify(client: string, user: string, password: string): Promise<AuthResult> {
    const wait = this.throttled(client);
    if (wait > 0) return { ok: false, status: 429, message: `too many failed logins from this address; try again in ${wait} s`, retryAfterSeconds: wait };
    // Always run scrypt, whatever the user name, so the answer's timing says nothing about it.
    const passwordOk = await verifyPassword(password, this.#hash);
    if (passwordOk && user === ADMIN_USER) {
      this.#failures.delete(client);
      return { ok: true, user, via: 'basic' };
    }
    this.#fail(client);
    return { ok: false, status: 401, message: 'wrong user name or password' };
  }

  /** A new session for a verified user; the token goes to the client only, the map keeps its hash. */
  openSession(user: string): { token: string; expires: number } {
    const now = this.#now();
    for (const [key, s] of this.#sessions) if (s.expires <= now) this.#sessions.delete(key);
    const token = randomBytes(32).toString('base64url');
    const expires = now + this.#ttl;
    this.#sessions.set(tokenKey(token), { user, expires });
    return { token, expires };
  }

  session(token: string | undefined): string | undefined {
    if (!token) return undefined;
    const key = tokenKey(token);
    const s = this.#sessions.get(key);
    if (!s) return undefined;
    if (s.expires <= this.#now()) {
      this.#sessions.delete(key);
      return undefined;
    }
    return s.user;
  }

  closeSession(token: string | undefined): void {
    if (token) this.#sessions.delete(tokenKey(token));
  }
}

/** The value of one cookie from a Cookie header. */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/** User and password of an `Authorization: Basic` header, or undefined. */
export function basicCredentials(header: string | undefined): { user: string; password: string } | undefined {
  const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header ?? '');
  if (!m) return undefined;
  const decoded = Buffer.from(m[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon < 0 ? undefined : { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}
