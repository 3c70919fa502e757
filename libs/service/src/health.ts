/**
 * Liveness and readiness over HTTP for every role: `/healthz` says the process is alive,
 * `/readyz` says it can take work (connected to NATS, listeners open), `/metrics` is the
 * process's Prometheus registry (libs/metrics).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { renderMetrics } from '@transit/metrics';

export type HealthChecks = {
  ready(): boolean;
  details(): Record<string, unknown>;
};

export type HttpRoute = (req: IncomingMessage, res: ServerResponse) => Promise<boolean> | boolean;

export async function startHttpServer(host: string, port: number, checks: HealthChecks, routes: HttpRoute[] = []): Promise<Server> {
  const server = createServer((req, res) => {
    void (async () => {
      const send = (status: number, body: unknown) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
      };
      try {
        const path = (req.url ?? '/').split('?')[0];
        if (path === '/healthz') return send(200, { status: 'alive', ...checks.details() });
        if (path === '/readyz') {
          const ready = checks.ready();
          return send(ready ? 200 : 503, { status: ready ? 'ready' : 'not ready', ...checks.details() });
        }
        if (path === '/metrics' && req.method === 'GET') {
          const { contentType, body } = await renderMetrics();
          res.writeHead(200, { 'content-type': contentType });
          res.end(body);
          return;
        }
        for (const route of routes) if (await route(req, res)) return;
        send(404, { error: 'not found' });
      } catch (err) {
        send(500, { error: (err as Error).message });
      }
    })();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return server;
}
