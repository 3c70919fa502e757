import { describe, expect, it } from 'vitest';
import { ExpositionError, parseExposition, promqlMetricNames, sampleSum } from './exposition.ts';
import { collectProcessMetrics, countDelivered, exportedSeriesNames, hopLabel, metrics, registry } from './metrics.ts';
import { ProbeTimeoutError, cachedProbe, renderMetrics, type ProbeResult } from './scrape.ts';

describe('parseExposition', () => {
  const good = [
    '# HELP a_total Things.',
    '# TYPE a_total counter',
    'a_total{connector="Default Frontend",code="5.7.54"} 3',
    'a_total 1.5e2',
    '# HELP h Latency.',
    '# TYPE h histogram',
    'h_bucket{le="0.5"} 1',
    'h_bucket{le="+Inf"} 2',
    'h_sum 0.7',
    'h_count 2',
    '# TYPE g gauge',
    'g{x="a \\"quoted\\" \\\\ value"} -Inf',
    '',
  ].join('\n');

  it('reads HELP, TYPE and samples with their labels and values', () => {
    const e = parseExposition(good);
    expect(e.types.get('h')).toBe('histogram');
    expect(e.help.get('a_total')).toBe('Things.');
    expect(sampleSum(e, 'a_total')).toBe(153);
    expect(sampleSum(e, 'a_total', { code: '5.7.54' })).toBe(3);
    expect(sampleSum(e, 'h_bucket', { le: '+Inf' })).toBe(2);
    expect(e.samples.find((s) => s.name === 'g')).toEqual({ name: 'g', labels: { x: 'a "quoted" \\ value' }, value: -Infinity });
  });

  it.each([
    ['a sample without a TYPE', 'x 1\n'],
    ['a histogram series under the wrong suffix', '# TYPE h histogram\nh_total 1\n'],
    ['an unquoted label value', '# TYPE x gauge\nx{a=b} 1\n'],
    ['a missing value', '# TYPE x gauge\nx{a="b"}\n'],
    ['a value that is not a number', '# TYPE x gauge\nx 1,5\n'],
    ['an unknown type', '# TYPE x meter\nx 1\n'],
    ['a second TYPE line', '# TYPE x gauge\n# TYPE x gauge\nx 1\n'],
    ['a bad metric name', '# TYPE 1x gauge\n1x 1\n'],
  ])('refuses %s', (_what, text) => {
    expect(() => parseExposition(text)).toThrow(ExpositionError);
  });
});

describe('promqlMetricNames', () => {
  it.each([
    ['sum by (connector) (rate(transit_smtp_sessions_total[5m]))', ['transit_smtp_sessions_total']],
    [
      'histogram_quantile(0.99, sum by (le, kind) (rate(transit_delivery_latency_seconds_bucket{kind="remote"}[$__rate_interval])))',
      ['transit_delivery_latency_seconds_bucket'],
    ],
    ['max by (stream) (transit_queue_messages{stream=~"MAIL_.*"}) > 1e3', ['transit_queue_messages']],
    ['up{job="transit"} == 0', ['up']],
    ['sum(rate(a_total[5m])) / ignoring(hop) group_left sum(rate(b_total[5m] offset 1h)) and on (role) c', ['a_total', 'b_total', 'c']],
    ['min_over_time(transit_jetstream_up[2m]) < 1 or absent(transit_redis_up)', ['transit_jetstream_up', 'transit_redis_up']],
  ])('%s', (expr, names) => {
    expect(promqlMetricNames(expr)).toEqual(names);
  });
});

describe('cachedProbe', () => {
  it('asks once per TTL and applies the answer', async () => {
    let now = 0;
    let calls = 0;
    const seen: Array<ProbeResult<number>> = [];
    const probe = cachedProbe({ fetch: () => Promise.resolve(++calls), apply: (r) => seen.push(r), ttlMs: 1000, now: () => now });
    await probe();
    await probe();
    expect(calls).toBe(1);
    now = 1500;
    await probe();
    expect(calls).toBe(2);
    expect(seen).toEqual([
      { ok: true, value: 1 },
      { ok: true, value: 2 },
    ]);
  });

  it('gives up at the deadline with a failure, keeps one request in flight, and applies the late answer', async () => {
    let release!: (v: string) => void;
    let calls = 0;
    const seen: Array<ProbeResult<string>> = [];
    const probe = cachedProbe({
      fetch: () => {
        calls++;
        return new Promise<string>((r) => (release = r));
      },
      apply: (r) => seen.push(r),
      timeoutMs: 30,
    });
    const started = performance.now();
    await probe();
    await probe();
    expect(performance.now() - started).toBeLessThan(1000);
    expect(calls).toBe(1);
    expect(seen.map((r) => (r.ok ? r.value : r.error))).toEqual([expect.any(ProbeTimeoutError), expect.any(ProbeTimeoutError)]);
    release('late');
    await new Promise((r) => setTimeout(r, 0));
    expect(seen.at(-1)).toEqual({ ok: true, value: 'late' });
  });

  it('turns a rejected fetch into a failure', async () => {
    const seen: Array<ProbeResult<never>> = [];
    await cachedProbe<never>({ fetch: () => Promise.reject(new Error('down')), apply: (r) => seen.push(r) })();
    expect(seen).toEqual([{ ok: false, error: new Error('down') }]);
  });
});

describe('the registry', () => {
  it('labels next hops by mailbox database or send connector, never by destination domain', () => {
    expect(hopLabel({ type: 'mailbox', database: 'DB01' })).toBe('mailbox:DB01');
    expect(hopLabel({ type: 'smtp', connector: 'Internet', domain: 'example.net', port: 25 })).toBe('smtp:Internet');
  });

  it('renders valid exposition text with the Transit and process metrics', async () => {
    collectProcessMetrics();
    countDelivered('remote', { type: 'smtp', connector: 'Sink', domain: 'example.net', port: 25 }, 2, Date.now() - 3000);
    metrics.smtpRejections.inc({ connector: 'Default Frontend', code: '5.7.54' });
    const { contentType, body } = await renderMetrics();
    expect(contentType).toBe(registry.contentType);
    const e = parseExposition(body);
    expect(sampleSum(e, 'transit_messages_delivered_total', { hop: 'smtp:Sink' })).toBe(2);
    expect(sampleSum(e, 'transit_delivery_latency_seconds_count', { kind: 'remote' })).toBe(2);
    expect(sampleSum(e, 'transit_delivery_latency_seconds_bucket', { kind: 'remote', le: '1' })).toBe(0);
    expect(sampleSum(e, 'transit_delivery_latency_seconds_bucket', { kind: 'remote', le: '5' })).toBe(2);
    expect(sampleSum(e, 'transit_smtp_rejections_total', { code: '5.7.54' })).toBe(1);
    const names = await exportedSeriesNames();
    expect(names).toEqual(
      expect.arrayContaining([
        'transit_message_accept_seconds_bucket',
        'transit_queue_oldest_age_seconds',
        'nodejs_eventloop_lag_p99_seconds',
        'process_resident_memory_bytes',
      ]),
    );
    // Every family the text declares is one the name list knows, and the other way round.
    for (const s of e.samples) expect(names).toContain(s.name);
  });
});
