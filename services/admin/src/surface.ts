/**
 * The admin HTTP surface as one route on the role's HTTP server (which answers /healthz,
 * /readyz and /metrics itself, without authentication): the dashboard's static files, the
 * login and logout, and the JSON API behind authentication.
 *
 * Rules, in order: without a configured credential everything here answers 503 and says
 * which variable to set. The dashboard's files are public (they hold no data; the page asks
 * for a login). Every /api call but /api/login needs a session cookie or HTTP Basic. Every
 * request that changes something needs the `X-Transit-Request` header and, when the browser
 * sends an Origin, the same origin: a cross-site page can send neither, so a logged-in
 * browser cannot be made to act (CSRF). Basic answers carry WWW-Authenticate only for
 * clients without that header, so the dashboard never triggers the browser's login dialog.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { HttpRoute, Logger } from '@transit/service';
import { ADMIN_USER, CSRF_HEADER, SESSION_COOKIE, basicCredentials, cookieValue, type AdminAuth, type AuthResult } from './auth.ts';
import type { DashboardAssets } from './assets.ts';
import { HttpError, readJson, send, sendError, sendRaw, type Sendable } from './http.ts';
import type { ApiRequest } from './api.ts';
import type { LoggedOut, LoginSession, SessionUser } from './api-types.ts';

export type SurfaceOptions = {
  /** Undefined when no credential is configured: then `disabledReason` is what every answer says. */
  auth: AdminAuth | undefined;
  disabledReason: string;
  assets: DashboardAssets;
  api: (r: ApiRequest) => Promise<boolean>;
  log: Logger;
};

const UNSAFE = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

function clientOf(req: IncomingMessage): string {
  return req.socket.remoteAddress ?? 'unknown';
}

function sameOrigin(req: IncomingMessage): boolean {
  const origin = req.headers.origin;
  if (origin === undefined) return true;
  try {
    return new URL(origin).host === req.headers.host;
  } catch {
    return false;
  }
}

function sessionCookie(token: string, maxAgeSeconds: number, secure: boolean): string {
  return `${SESSION_COOKIE}=${token}; HttpOnly; SameSite=Strict; Path=/; Max-Age=${maxAgeSeconds}${secure ? '; Secure' : ''}`;
}

const isHttps = (req: IncomingMessage) => req.headers['x-forwarded-proto'] === 'https' || 'encrypted' in req.socket;

function disabledPage(reason: string): string {
  const text = reason.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Transit admin: disabled</title></head><body><h1>Transit admin is disabled</h1><p id="disabled">${text}</p></body></html>`;
}

export function adminSurface(opts: SurfaceOptions): HttpRoute {
  return async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://admin.invalid');
    const path = url.pathname;
    const isApi = path === '/api' || path.startsWith('/api/');
    const asset = opts.assets.lookup(path);
    if (!isApi && !asset) return false;

    if (!opts.auth) {
      if (isApi) sendError(res, new HttpError(503, 'ADMIN_DISABLED', opts.disabledReason));
      else sendRaw(res, 503, 'text/html; charset=utf-8', disabledPage(opts.disabledReason), { 'cache-control': 'no-store' });
      return true;
    }
    const auth = opts.auth;

    try {
      if (!isApi) {
        const file = await asset!();
        sendRaw(res, 200, file.contentType, file.body, { 'cache-control': 'no-cache' });
        return true;
      }
      const method = req.method ?? 'GET';
      const fromOurPage = req.headers[CSRF_HEADER] !== undefined;
      if (UNSAFE.has(method) && (!fromOurPage || !sameOrigin(req))) {
        throw new HttpError(403, 'CSRF_REFUSED', `a ${method} needs the ${CSRF_HEADER} header and, from a browser, the same origin`);
      }
      const client = clientOf(req);

      if (path === '/api/login') {
        if (method !== 'POST') throw new HttpError(405, 'METHOD_NOT_ALLOWED', 'log in with POST');
        const body = (await readJson(req, 4096)) as { user?: unknown; password?: unknown };
        const result = await auth.verify(client, typeof body.user === 'string' ? body.user : '', typeof body.password === 'string' ? body.password : '');
        if (!result.ok) {
          if (result.status === 401) opts.log.info({ client }, 'admin login refused');
          return refuse(res, result, client, true);
        }
        const session = auth.openSession(result.user);
        opts.log.info({ user: result.user, client }, 'admin login');
        send(res, 200, { user: result.user, expires: new Date(session.expires).toISOString() } satisfies Sendable<LoginSession>, {
          'set-cookie': sessionCookie(session.token, Math.floor(auth.sessionTtlMs / 1000), isHttps(req)),
        });
        return true;
      }
      if (path === '/api/logout') {
        if (method !== 'POST') throw new HttpError(405, 'METHOD_NOT_ALLOWED', 'log out with POST');
        auth.closeSession(cookieValue(req.headers.cookie, SESSION_COOKIE));
        send(res, 200, { loggedOut: true } satisfies Sendable<LoggedOut>, { 'set-cookie': sessionCookie('', 0, isHttps(req)) });
        return true;
      }

      let user = auth.session(cookieValue(req.headers.cookie, SESSION_COOKIE));
      if (!user) {
        const basic = basicCredentials(req.headers.authorization);
        if (!basic)
          return refuse(
            res,
            { ok: false, status: 401, message: 'log in first (POST /api/login) or send HTTP Basic credentials for user admin' },
            client,
            fromOurPage,
          );
        const result = await auth.verify(client, basic.user, basic.password);
        if (!result.ok) return refuse(res, result, client, fromOurPage);
        user = result.user;
      }
      if (path === '/api/session') {
        send(res, 200, { user } satisfies Sendable<SessionUser>);
        return true;
      }
      if (await opts.api({ req, res, url, user })) return true;
      throw new HttpError(404, 'NOT_FOUND', `no API at ${path}`);
    } catch (err) {
      if (err instanceof HttpError) {
        sendError(res, err);
        return true;
      }
      opts.log.error({ err: (err as Error).message, path }, 'admin request failed');
      sendError(res, new HttpError(500, 'INTERNAL', (err as Error).message));
      return true;
    }
  };

  function refuse(res: ServerResponse, result: Extract<AuthResult, { ok: false }>, client: string, quiet: boolean): true {
    if (result.status === 429) opts.log.warn({ client }, 'admin logins throttled after repeated failures');
    const headers: Record<string, string> = {};
    if (result.retryAfterSeconds !== undefined) headers['retry-after'] = String(result.retryAfterSeconds);
    if (result.status === 401 && !quiet) headers['www-authenticate'] = `Basic realm="Transit admin (user ${ADMIN_USER})", charset="UTF-8"`;
    sendError(res, new HttpError(result.status, result.status === 429 ? 'TOO_MANY_FAILURES' : 'UNAUTHENTICATED', result.message), headers);
    return true;
  }
}
