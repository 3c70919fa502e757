/**
 * What a scrape of GET /metrics does: refresh the gauges that need a round trip (JetStream
 * stream info, Redis PING) and render the registry. A dependency that does not answer must
 * not make the scrape hang (Prometheus would mark the whole target down and lose every other
 * series with it), so each probe gets a deadline and its answer is cached for a moment:
 * a scrape waits at most the deadline, and a dependency is asked at most once per TTL
 * however many scrapers there are.
 */
import { exportRedisUp, metrics, registry } from './metrics.ts';

export type ProbeResult<T> = { ok: true; value: T } | { ok: false; error: Error };

export type ProbeOptions<T> = {
  /** The round trip (e.g. stream info). */
  fetch: () => Promise<T>;
  /** Sets the gauges from an answer, or from a failure or a missed deadline. */
  apply: (result: ProbeResult<T>) => void;
  /** An answer younger than this is reused without asking again. */
  ttlMs?: number;
  /** How long a scrape waits for the answer; past it, apply() gets a failure. */
  timeoutMs?: number;
  now?: () => number;
};

export type Probe = () => Promise<void>;

export class ProbeTimeoutError extends Error {
  readonly code = 'PROBE_TIMEOUT';
  constructor(timeoutMs: number) {
    super(`no answer within ${timeoutMs} ms`);
    this.name = 'ProbeTimeoutError';
  }
}

/** A cached probe with a deadline. At most one fetch is in flight; a late answer still updates the gauges. */
export function cachedProbe<T>(opts: ProbeOptions<T>): Probe {
  const ttlMs = opts.ttlMs ?? 2_000;
  const timeoutMs = opts.timeoutMs ?? 800;
  const now = opts.now ?? Date.now;
  let answeredAt = -Infinity;
  let inflight: Promise<void> | undefined;
  return async () => {
    if (now() - answeredAt < ttlMs) return;
    inflight ??= opts
      .fetch()
      .then(
        (value) => opts.apply({ ok: true, value }),
        (err: unknown) => opts.apply({ ok: false, error: err instanceof Error ? err : new Error(String(err)) }),
      )
      .finally(() => {
        answeredAt = now();
        inflight = undefined;
      });
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), timeoutMs);
      timer.unref();
    });
    const outcome = await Promise.race([inflight.then(() => 'answered' as const), deadline]);
    clearTimeout(timer);
    if (outcome === 'late') opts.apply({ ok: false, error: new ProbeTimeoutError(timeoutMs) });
  };
}

/** For roles that use Redis: `transit_redis_up` from a PING on each scrape. */
export function watchRedis(ping: () => Promise<unknown>): () => void {
  exportRedisUp();
  return onScrape(cachedProbe({ fetch: ping, apply: (r) => metrics.redisUp.set(r.ok ? 1 : 0) }));
}

const probes = new Set<Probe>();

/** Runs `probe` before every scrape; the returned function removes it. */
export function onScrape(probe: Probe): () => void {
  probes.add(probe);
  return () => probes.delete(probe);
}

/** The body and content type of GET /metrics, after the probes (in parallel, each bounded by its deadline). */
export async function renderMetrics(): Promise<{ contentType: string; body: string }> {
  await Promise.allSettled([...probes].map((p) => p()));
  return { contentType: registry.contentType, body: await registry.metrics() };
}
