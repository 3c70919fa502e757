/**
 * Small HTTP helpers of the admin surface: JSON bodies with a size cap, replies with the
 * security headers every answer carries, and errors as values with a status and a code.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ApiErrorBody } from './api-types.ts';

export class HttpError extends Error {
  readonly status: number;
  readonly code: string;
  readonly details: Omit<ApiErrorBody, 'error' | 'code'>;
  constructor(status: number, code: string, message: string, details: Omit<ApiErrorBody, 'error' | 'code'> = {}) {
    super(message);
    this.name = 'HttpError';
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

/** No framing by other sites, no sniffing, no referrer leaks, scripts and styles only from this server. */
const SECURITY_HEADERS = {
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'content-security-policy': "default-src 'self'; img-src 'self' data:; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
};

/**
 * What the server may hold for a wire type W of api-types.ts, given how `send` encodes it:
 * JSON.stringify writes a Date as its ISO string and drops undefined properties, and the
 * replacer below writes a bigint as a decimal string. A handler states what it answers with
 * `body satisfies Sendable<W>`, and the type check holds it to that.
 */
export type Sendable<W> = W extends string
  ? string extends W
    ? string | Date | bigint
    : W
  : W extends ReadonlyArray<infer E>
    ? ReadonlyArray<Sendable<E>>
    : W extends object
      ? { [K in keyof W]: Sendable<W[K]> }
      : W;

export function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { ...SECURITY_HEADERS, 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', ...headers });
  // Sizes of address ranges are bigints in the connector explanation.
  res.end(JSON.stringify(body, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)));
}

export function sendError(res: ServerResponse, err: HttpError, headers: Record<string, string> = {}): void {
  send(res, err.status, { error: err.message, code: err.code, ...err.details } satisfies Sendable<ApiErrorBody>, headers);
}

export function sendRaw(res: ServerResponse, status: number, contentType: string, body: string | Uint8Array, headers: Record<string, string> = {}): void {
  res.writeHead(status, { ...SECURITY_HEADERS, 'content-type': contentType, ...headers });
  res.end(body);
}

export async function readJson(req: IncomingMessage, maxBytes: number): Promise<unknown> {
  const type = req.headers['content-type'] ?? '';
  if (!/^application\/json\b/i.test(type)) throw new HttpError(415, 'UNSUPPORTED_MEDIA_TYPE', 'send the body as application/json');
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > maxBytes) throw new HttpError(413, 'BODY_TOO_LARGE', `the body is larger than ${maxBytes} bytes`);
    chunks.push(chunk as Buffer);
  }
  if (size === 0) return {};
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
  } catch {
    throw new HttpError(400, 'BAD_JSON', 'the body is not valid JSON');
  }
}
