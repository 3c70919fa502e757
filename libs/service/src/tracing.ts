/**
 * OpenTelemetry tracing for a role, configured by the standard OTEL_* variables (exporter,
 * endpoint, protocol, sampler, resource attributes). Started only when an exporter is asked
 * for — OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or
 * OTEL_TRACES_EXPORTER (other than `none`) — so a node without a collector sends nothing
 * and pays nothing. Metrics stay with /metrics (prom-client) and logs with pino.
 */
import { NodeSDK } from '@opentelemetry/sdk-node';

export type Tracing = { shutdown(): Promise<void> };

export function startTracing(role: string, nodeName: string, env: NodeJS.ProcessEnv = process.env): Tracing | undefined {
  if (env.OTEL_SDK_DISABLED === 'true') return undefined;
  const exporter = env.OTEL_TRACES_EXPORTER;
  const endpoint = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? env.OTEL_EXPORTER_OTLP_ENDPOINT;
  if (exporter === 'none' || (!endpoint && !exporter)) return undefined;
  // The SDK would otherwise start OTLP metric and log exporters of its own.
  env.OTEL_METRICS_EXPORTER ??= 'none';
  env.OTEL_LOGS_EXPORTER ??= 'none';
  // Ours first: attributes the operator sets in OTEL_RESOURCE_ATTRIBUTES come later and win.
  env.OTEL_RESOURCE_ATTRIBUTES = [
    `service.instance.id=${encodeURIComponent(`${nodeName}/${process.pid}`)}`,
    `transit.role=${role}`,
    env.OTEL_RESOURCE_ATTRIBUTES,
  ]
    .filter(Boolean)
    .join(',');
  const sdk = new NodeSDK({ serviceName: env.OTEL_SERVICE_NAME ?? `transit-${role}`, instrumentations: [], metricReaders: [], logRecordProcessors: [] });
  sdk.start();
  return sdk;
}
