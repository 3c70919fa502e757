export { collectProcessMetrics, countDelivered, exportedSeriesNames, hopLabel, metrics, registry } from './metrics.ts';
export { ProbeTimeoutError, cachedProbe, onScrape, renderMetrics, watchRedis, type Probe, type ProbeOptions, type ProbeResult } from './scrape.ts';
export { ExpositionError, parseExposition, promqlMetricNames, sampleSum, type Exposition, type Sample } from './exposition.ts';
