/**
 * The deployment artifacts, checked without a Docker engine or a Kubernetes cluster:
 * - docker-compose.yml as Compose reads it (`docker-compose config -q`), the services the
 *   deployment promises, and the HAProxy, Prometheus and Grafana files it mounts;
 * - every object the Kustomize base and the example overlay render (`kubectl kustomize`),
 *   against the Kubernetes API schema and with no field the API does not know, and the
 *   operational rules of deploy/README.md: probes, resources, drain time, disruption
 *   budgets, autoscalers, the LoadBalancer and the network policies.
 *
 * The schema comes from kubernetes-models: its JSON-schema validators (types, required
 * fields, formats) and its TypeScript interfaces. The validators allow fields they do not
 * know, as the OpenAPI schema does, while `kubectl apply` refuses them (strict field
 * validation); so the rendered objects are also type-checked as object literals against
 * the interfaces, where the compiler's excess-property check names every unknown field.
 *
 * kubectl, docker-compose and haproxy must be installed: a missing tool fails the test
 * with its name, it never skips.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigMap, Namespace, PersistentVolumeClaim, Service, type IConfigMap, type IService } from 'kubernetes-models/v1';
import { Deployment, StatefulSet, type IDeployment, type IStatefulSet } from 'kubernetes-models/apps/v1';
import { HorizontalPodAutoscaler, type IHorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import { NetworkPolicy, type INetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { PodDisruptionBudget, type IPodDisruptionBudget } from 'kubernetes-models/policy/v1';
import ts from 'typescript';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { ROLE_NODE_FLAGS } from '@transit/cluster';
import { runtimeSettings } from '@transit/config';
import { collectProcessMetrics, exportedSeriesNames, promqlMetricNames } from '@transit/metrics';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const ROLES = ['frontend', 'hub', 'mailbox-delivery', 'submission', 'outbound-proxy', 'admin'];

const INSTALL: Record<string, string> = {
  kubectl: 'kubectl renders deploy/k8s with its built-in kustomize; install a kubectl of 1.27 or later on PATH',
  'docker-compose': 'scripts/setup.sh installs it (apt-get install docker-compose)',
  haproxy: 'scripts/setup.sh installs it (apt-get install haproxy)',
};

type Run = { status: number | null; stdout: string; stderr: string };

function run(command: string, args: string[], env: NodeJS.ProcessEnv = {}): Run {
  const r = spawnSync(command, args, { cwd: ROOT, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, env: { ...process.env, ...env } });
  if (r.error) throw new Error(`${command} ${args.join(' ')} could not run (${r.error.message}): ${INSTALL[command] ?? 'install it'}`);
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');

// --- Docker Compose -----------------------------------------------------------------------

type ComposeService = {
  image?: string;
  command?: string[];
  environment?: Record<string, string>;
  ports?: string[];
  volumes?: string[];
  networks?: Record<string, { ipv4_address?: string } | null>;
  stop_grace_period?: string;
};
type ComposeFile = { services: Record<string, ComposeService>; networks?: { default?: { ipam?: { config?: Array<{ subnet?: string }> } } } };

/** "60s", "1m30s" → seconds. */
function durationSeconds(text: string | undefined): number {
  let seconds = 0;
  for (const m of (text ?? '').matchAll(/(\d+)(h|m|s)/g)) seconds += Number(m[1]) * { h: 3600, m: 60, s: 1 }[m[2] as 'h' | 'm' | 's'];
  return seconds;
}

function ipv4InSubnet(ip: string, cidr: string): boolean {
  const toInt = (a: string) => a.split('.').reduce((n, octet) => n * 256 + Number(octet), 0);
  const [net, bits] = cidr.split('/');
  const size = 2 ** (32 - Number(bits));
  return Math.floor(toInt(ip) / size) === Math.floor(toInt(net!) / size);
}

describe('deploy/docker/entrypoint.sh', () => {
  it('starts a role with the Node flags the local cluster gives it', () => {
    const exec = /^exec node (.*) "\$main" "\$@"$/m.exec(read('deploy/docker/entrypoint.sh'));
    expect(exec?.[1]?.split(' ')).toEqual([...ROLE_NODE_FLAGS]);
  });
});

describe('docker-compose.yml', () => {
  // Compose's own syntax: `<<:` merge keys, as Compose resolves them.
  const compose = parse(read('docker-compose.yml'), { merge: true }) as ComposeFile;
  const services = compose.services;
  const roleOf = (s: ComposeService) => (ROLES.includes(s.command?.[0] ?? '') ? s.command![0]! : undefined);
  const transit = Object.entries(services).filter(([, s]) => roleOf(s) !== undefined);
  const drainSeconds = runtimeSettings({}).drainTimeoutMs / 1000;

  it('is valid for Compose (docker-compose config -q)', () => {
    // The admin password is required from the environment (never written in the file): a placeholder stands in.
    const r = run('docker-compose', ['-f', 'docker-compose.yml', 'config', '-q'], { TRANSIT_ADMIN_PASSWORD: 'placeholder-for-config-check' });
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: '' });
  });

  it('has the NATS cluster, Redis, HAProxy, every role and the observability stack', () => {
    expect(Object.keys(services)).toEqual(
      expect.arrayContaining([
        'nats-1',
        'nats-2',
        'nats-3',
        'redis',
        'haproxy',
        'frontend-1',
        'frontend-2',
        'hub-1',
        'hub-2',
        'mailbox-delivery',
        'submission',
        'outbound-proxy',
        'admin',
        'jaeger',
        'prometheus',
        'grafana',
      ]),
    );
    const replicas = (role: string) => transit.filter(([, s]) => roleOf(s) === role).length;
    expect(Object.fromEntries(ROLES.map((role) => [role, replicas(role)]))).toEqual({
      frontend: 2,
      hub: 2,
      'mailbox-delivery': 1,
      submission: 1,
      'outbound-proxy': 1,
      admin: 1,
    });
  });

  it('runs NATS as one three-node JetStream cluster and Redis with the append-only file', () => {
    for (const name of ['nats-1', 'nats-2', 'nats-3']) {
      const args = services[name]!.command!;
      expect(args).toContain('-js');
      expect(args[args.indexOf('--routes') + 1]!.split(',').sort()).toEqual(['nats://nats-1:6222', 'nats://nats-2:6222', 'nats://nats-3:6222']);
    }
    const redis = services.redis!.command!;
    expect(redis[redis.indexOf('--appendonly') + 1]).toBe('yes');
  });

  it('gives every role the cluster, three stream replicas, tracing settings and time to drain', () => {
    for (const [name, s] of transit) {
      const env = s.environment ?? {};
      expect(env.NATS_URL?.split(','), name).toHaveLength(3);
      expect(env.TRANSIT_STREAM_REPLICAS, name).toBe('3');
      expect(env.OTEL_EXPORTER_OTLP_ENDPOINT, name).toMatch(/^http:\/\/jaeger:43(17|18)$/);
      expect(env.OTEL_SERVICE_NAME, name).toBe(`transit-${roleOf(s)}`);
      expect(durationSeconds(s.stop_grace_period), name).toBeGreaterThan(drainSeconds);
    }
  });

  it('puts HAProxy on 25 and 587 in front of both frontends with PROXY protocol v2, from a fixed address', () => {
    const haproxy = services.haproxy!;
    expect(haproxy.ports?.map((p) => p.split(':').at(-1))).toEqual(['25', '587']);
    const subnet = compose.networks?.default?.ipam?.config?.[0]?.subnet ?? '';
    const address = haproxy.networks?.default?.ipv4_address ?? '';
    expect(ipv4InSubnet(address, subnet), `${address} in ${subnet}`).toBe(true);

    const cfg = read('deploy/haproxy/haproxy.cfg');
    const servers = cfg.split('\n').filter((l) => /^\s*server\s/.test(l));
    expect(servers.map((l) => l.trim().split(/\s+/)[2])).toEqual(['frontend-1:25', 'frontend-2:25', 'frontend-1:587', 'frontend-2:587']);
    for (const line of servers) expect(line).toMatch(/\ssend-proxy-v2(\s|$)/);
    // HAProxy's own check; it warns that frontend-N does not resolve outside Docker.
    const check = run('haproxy', ['-c', '-f', 'deploy/haproxy/haproxy.cfg']);
    expect(check.status, check.stderr).toBe(0);
  });

  it('has Prometheus scrape /metrics on every role container, and Grafana provisioned from deploy/observability', () => {
    const prometheus = parse(read('deploy/observability/prometheus.yml')) as {
      scrape_configs: Array<{ job_name: string; metrics_path?: string; static_configs: Array<{ targets: string[] }> }>;
    };
    const job = prometheus.scrape_configs.find((j) => j.job_name === 'transit')!;
    expect(job.metrics_path).toBe('/metrics');
    const targets = job.static_configs.flatMap((c) => c.targets).sort();
    expect(targets).toEqual(transit.map(([name, s]) => `${name}:${s.environment?.TRANSIT_HTTP_PORT}`).sort());

    const datasources = parse(read('deploy/observability/grafana/provisioning/datasources/datasources.yml')) as {
      datasources: Array<{ type: string; url: string }>;
    };
    expect(datasources.datasources.map((d) => `${d.type} ${d.url}`).sort()).toEqual(['jaeger http://jaeger:16686', 'prometheus http://prometheus:9090']);
    const providers = parse(read('deploy/observability/grafana/provisioning/dashboards/dashboards.yml')) as { providers: Array<{ options: { path: string } }> };
    const grafanaMounts = services.grafana!.volumes ?? [];
    expect(grafanaMounts).toContain('./deploy/observability/grafana/provisioning:/etc/grafana/provisioning:ro');
    expect(grafanaMounts).toContain(`./deploy/observability/grafana/dashboards:${providers.providers[0]!.options.path}:ro`);
  });

  it('mounts only files and directories that exist in the repository', () => {
    const binds = Object.values(services)
      .flatMap((s) => s.volumes ?? [])
      .filter((v) => v.startsWith('./'))
      .map((v) => v.split(':')[0]!);
    expect(binds.filter((path) => !existsSync(join(ROOT, path)))).toEqual([]);
  });
});

// --- Dashboards and alert rules -----------------------------------------------------------

type Panel = {
  id?: number;
  type: string;
  title: string;
  datasource?: { uid?: string };
  targets?: Array<{ expr?: string; datasource?: { uid?: string } }>;
  panels?: Panel[];
};
type AlertRule = { alert?: string; record?: string; expr: string; for?: string; labels?: Record<string, string>; annotations?: Record<string, string> };

describe('deploy/observability: the Grafana dashboard and the alert rules name only metrics Transit exports', () => {
  // What the code defines (libs/metrics, process metrics included), and what Prometheus adds to every target.
  let exported: Set<string>;
  const SCRAPE_SERIES = ['up', 'scrape_duration_seconds', 'scrape_samples_scraped'];
  beforeAll(async () => {
    collectProcessMetrics();
    exported = new Set([...(await exportedSeriesNames()), ...SCRAPE_SERIES]);
  });
  const unknownIn = (expr: string) => promqlMetricNames(expr).filter((name) => !exported.has(name));

  const dashboard = JSON.parse(read('deploy/observability/grafana/dashboards/transit.json')) as { uid: string; title: string; panels: Panel[] };
  const panels = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
  const alerts = parse(read('deploy/observability/alerts.yml')) as { groups: Array<{ name: string; rules: AlertRule[] }> };
  const rules = alerts.groups.flatMap((g) => g.rules);

  it('has a dashboard with unique panel ids, each query on the provisioned Prometheus data source', () => {
    expect(dashboard.uid).toBe('transit-overview');
    const ids = panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    const queries = panels.filter((p) => p.type !== 'row');
    expect(queries.length).toBeGreaterThan(10);
    for (const p of queries) {
      expect(p.targets?.length, p.title).toBeGreaterThan(0);
      for (const t of p.targets!) expect([t.datasource?.uid, p.datasource?.uid, t.expr !== undefined], p.title).toEqual(['prometheus', 'prometheus', true]);
    }
  });

  it('covers throughput, latency quantiles, queues, rejections, sessions and health', () => {
    const used = new Set(panels.flatMap((p) => (p.targets ?? []).flatMap((t) => promqlMetricNames(t.expr ?? ''))));
    for (const name of [
      'up',
      'transit_jetstream_up',
      'transit_redis_up',
      'transit_messages_received_total',
      'transit_messages_routed_total',
      'transit_messages_delivered_total',
      'transit_messages_deferred_total',
      'transit_messages_failed_total',
      'transit_message_accept_seconds_bucket',
      'transit_delivery_latency_seconds_bucket',
      'transit_queue_messages',
      'transit_queue_oldest_age_seconds',
      'transit_smtp_rejections_total',
      'transit_smtp_sessions_open',
      'transit_smtp_sessions_total',
    ])
      expect(used, name).toContain(name);
    expect(panels.some((p) => p.targets?.some((t) => t.expr?.startsWith('histogram_quantile(')))).toBe(true);
  });

  it('queries only exported metrics in every dashboard panel', () => {
    const unknown = panels.flatMap((p) => (p.targets ?? []).flatMap((t) => unknownIn(t.expr ?? '').map((name) => `${p.title}: ${name}`)));
    expect(unknown).toEqual([]);
  });

  it('has alert rules for a role down, queues, delivery failures, JetStream, Redis and event-loop lag, on exported metrics only', () => {
    const names = rules.map((r) => r.alert);
    expect(new Set(names).size).toBe(names.length);
    for (const rule of rules) {
      expect(rule.alert, rule.expr).toMatch(/^Transit[A-Za-z]+$/);
      expect(['critical', 'warning', 'info'], rule.alert).toContain(rule.labels?.severity);
      expect(rule.annotations?.summary, rule.alert).toBeTruthy();
      expect(unknownIn(rule.expr), rule.alert).toEqual([]);
    }
    const watched = (name: string) => rules.filter((r) => promqlMetricNames(r.expr).includes(name)).map((r) => r.alert);
    for (const name of [
      'up',
      'transit_queue_messages',
      'transit_queue_oldest_age_seconds',
      'transit_messages_failed_total',
      'transit_jetstream_up',
      'transit_redis_up',
      'nodejs_eventloop_lag_p99_seconds',
    ])
      expect(watched(name), name).not.toEqual([]);
  });

  it('is loaded by Prometheus: rule_files names where docker-compose.yml mounts alerts.yml', () => {
    const prometheus = parse(read('deploy/observability/prometheus.yml')) as { rule_files?: string[] };
    const compose = parse(read('docker-compose.yml'), { merge: true }) as ComposeFile;
    const mount = (compose.services.prometheus!.volumes ?? []).find((v) => v.startsWith('./deploy/observability/alerts.yml:'));
    expect(mount?.split(':')[1]).toBeDefined();
    expect(prometheus.rule_files).toEqual([mount!.split(':')[1]]);
  });
});

// --- Kubernetes ---------------------------------------------------------------------------

type KubeObject = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string> } };
type Rendered = { overlay: string; objects: KubeObject[] };

const OVERLAYS = ['deploy/k8s/base', 'deploy/k8s/overlays/example'];

function render(dir: string): Rendered {
  const r = run('kubectl', ['kustomize', dir]);
  if (r.status !== 0) throw new Error(`kubectl kustomize ${dir} failed:\n${r.stderr}`);
  return { overlay: dir, objects: parseAllDocuments(r.stdout).map((d) => d.toJS() as KubeObject) };
}

const label = (o: KubeObject) => `${o.kind}/${o.metadata.name}`;

/** Every kind the manifests use, with its schema; an object of another kind fails the test until it is added here. */
type ModelClass = { apiVersion: string; kind: string; new (data: never): { validate(): void } };
const MODELS = new Map(
  (
    [Namespace, ConfigMap, Service, PersistentVolumeClaim, Deployment, StatefulSet, HorizontalPodAutoscaler, PodDisruptionBudget, NetworkPolicy] as ModelClass[]
  ).map((m) => [`${m.apiVersion}/${m.kind}`, m]),
);

/** Schema violations (types, required fields, formats), one line per object. */
function schemaErrors(objects: KubeObject[]): string[] {
  const errors: string[] = [];
  for (const o of objects) {
    const Model = MODELS.get(`${o.apiVersion}/${o.kind}`);
    if (!Model) {
      errors.push(`${label(o)}: no schema for ${o.apiVersion} ${o.kind} in test/deploy.test.ts`);
      continue;
    }
    try {
      new Model(o as never).validate();
    } catch (err) {
      errors.push(`${label(o)}: ${(err as Error).message}`);
    }
  }
  return errors;
}

/**
 * Fields the Kubernetes API does not know (and type errors), by compiling each object as an
 * object literal typed with its kubernetes-models interface. One line per diagnostic, with
 * the object and the offending source line.
 */
function unknownFieldErrors(objects: KubeObject[]): string[] {
  const file = join(ROOT, 'test', '.rendered-manifests.ts');
  const ranges: Array<{ object: KubeObject; firstLine: number }> = [];
  const imports: string[] = [];
  const statements: string[] = [];
  objects.forEach((o, i) => {
    imports.push(`import type { I${o.kind} as T${i} } from 'kubernetes-models/${o.apiVersion}';`);
  });
  let line = imports.length;
  objects.forEach((o, i) => {
    const statement = `export const o${i}: T${i} = ${JSON.stringify(o, null, 2)};`;
    ranges.push({ object: o, firstLine: line });
    statements.push(statement);
    line += statement.split('\n').length;
  });
  const source = [...imports, ...statements].join('\n');
  const options: ts.CompilerOptions = {
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    types: [],
  };
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile.bind(host);
  const fileExists = host.fileExists.bind(host);
  host.getSourceFile = (name, languageVersion, ...rest) =>
    name === file ? ts.createSourceFile(name, source, languageVersion) : getSourceFile(name, languageVersion, ...rest);
  host.fileExists = (name) => name === file || fileExists(name);
  const program = ts.createProgram([file], options, host);
  const lines = source.split('\n');
  return ts.getPreEmitDiagnostics(program).map((d) => {
    const message = ts.flattenDiagnosticMessageText(d.messageText, ' ');
    if (d.file?.fileName !== file || d.start === undefined) return message;
    const at = d.file.getLineAndCharacterOfPosition(d.start).line;
    const owner = ranges.findLast((r) => r.firstLine <= at);
    return `${owner ? label(owner.object) : 'imports'}: ${message} (at: ${lines[at]!.trim()})`;
  });
}

type Workload = IDeployment | IStatefulSet;

const ofKind = <T>(r: Rendered, kind: string) => r.objects.filter((o) => o.kind === kind) as T[];
const workloads = (r: Rendered) => [...ofKind<IDeployment>(r, 'Deployment'), ...ofKind<IStatefulSet>(r, 'StatefulSet')];
const podLabels = (w: Workload) => w.spec?.template.metadata?.labels ?? {};
const selects = (matchLabels: Record<string, string> | undefined, labels: Record<string, string>) =>
  Object.entries(matchLabels ?? {}).every(([k, v]) => labels[k] === v);
const componentOf = (w: { metadata?: { labels?: Record<string, string> } }) => w.metadata?.labels?.['app.kubernetes.io/component'];

describe.each(OVERLAYS)('kubectl kustomize %s', (overlay) => {
  let rendered: Rendered;
  beforeAll(() => {
    rendered = render(overlay);
  });

  it('renders objects that all satisfy the Kubernetes API schema', () => {
    expect(rendered.objects.length).toBeGreaterThan(0);
    expect(schemaErrors(rendered.objects)).toEqual([]);
  });

  it('renders no field the Kubernetes API does not know', () => {
    expect(unknownFieldErrors(rendered.objects)).toEqual([]);
  });

  it('gives every workload readiness and liveness probes and resource requests and limits', () => {
    const problems: string[] = [];
    for (const w of workloads(rendered)) {
      for (const c of w.spec?.template.spec?.containers ?? []) {
        const where = `${w.kind}/${w.metadata?.name} container ${c.name}`;
        if (!c.readinessProbe) problems.push(`${where}: no readinessProbe`);
        if (!c.livenessProbe) problems.push(`${where}: no livenessProbe`);
        for (const kind of ['requests', 'limits'] as const) {
          for (const resource of ['cpu', 'memory']) if (c.resources?.[kind]?.[resource] === undefined) problems.push(`${where}: no ${kind}.${resource}`);
        }
      }
    }
    expect(problems).toEqual([]);
  });

  it('gives every Transit pod more time to stop than its preStop pause and drain take', () => {
    const env = ofKind<IConfigMap>(rendered, 'ConfigMap').find((c) => c.metadata?.name === 'transit-env')!;
    const drainSeconds = runtimeSettings({ TRANSIT_DRAIN_TIMEOUT_MS: env.data?.TRANSIT_DRAIN_TIMEOUT_MS }).drainTimeoutMs / 1000;
    const deployments = ofKind<IDeployment>(rendered, 'Deployment');
    expect(deployments.map((d) => componentOf(d)).sort()).toEqual([...ROLES].sort());
    for (const d of deployments) {
      const spec = d.spec!.template.spec!;
      const preStop = spec.containers.map((c) => c.lifecycle?.preStop?.exec?.command ?? []).find((cmd) => cmd[0] === 'sleep');
      const needed = drainSeconds + Number(preStop?.[1] ?? 0);
      expect(spec.terminationGracePeriodSeconds ?? 30, `${d.metadata?.name}: terminationGracePeriodSeconds > ${needed}`).toBeGreaterThan(needed);
    }
  });

  it('has a PodDisruptionBudget for every workload with more than one replica, and autoscalers for frontends and outbound proxies', () => {
    const hpas = ofKind<IHorizontalPodAutoscaler>(rendered, 'HorizontalPodAutoscaler');
    expect(hpas.map((h) => `${h.apiVersion} ${h.spec?.scaleTargetRef.kind}/${h.spec?.scaleTargetRef.name}`).sort()).toEqual([
      'autoscaling/v2 Deployment/frontend',
      'autoscaling/v2 Deployment/outbound-proxy',
    ]);
    for (const h of hpas) {
      const spec = h.spec;
      expect(spec.minReplicas, h.metadata?.name).toBeGreaterThanOrEqual(2);
      // An autoscaled Deployment leaves `replicas` to its HPA, or every apply would reset it.
      const target = ofKind<IDeployment>(rendered, 'Deployment').find((d) => d.metadata?.name === spec.scaleTargetRef.name)!;
      expect(target.spec?.replicas, `${target.metadata?.name} replicas`).toBeUndefined();
    }
    const replicas = (w: Workload) =>
      Math.max(w.spec?.replicas ?? 1, hpas.find((h) => h.spec?.scaleTargetRef.name === w.metadata?.name)?.spec?.minReplicas ?? 1);
    const pdbs = ofKind<IPodDisruptionBudget>(rendered, 'PodDisruptionBudget');
    const multi = workloads(rendered).filter((w) => replicas(w) > 1);
    expect(multi.map((w) => w.metadata?.name).sort()).toEqual(['frontend', 'hub', 'nats', 'outbound-proxy']);
    for (const w of multi) {
      const budget = pdbs.find((p) => selects(p.spec?.selector?.matchLabels, podLabels(w)));
      expect(budget, `PodDisruptionBudget for ${w.kind}/${w.metadata?.name}`).toBeDefined();
      // A budget that forbids every eviction would block node drains.
      expect(budget!.spec?.maxUnavailable ?? 0, `${budget!.metadata?.name} maxUnavailable`).toBeGreaterThanOrEqual(1);
    }
  });

  it('exposes 25 and 587 on the frontends through a LoadBalancer that keeps client addresses', () => {
    const lbs = ofKind<IService>(rendered, 'Service').filter((s) => s.spec?.type === 'LoadBalancer');
    expect(lbs).toHaveLength(1);
    const lb = lbs[0]!;
    expect(lb.spec?.ports?.map((p) => p.port)).toEqual([25, 587]);
    expect(lb.spec?.externalTrafficPolicy).toBe('Local');
    const frontend = ofKind<IDeployment>(rendered, 'Deployment').find((d) => d.metadata?.name === 'frontend')!;
    expect(selects(lb.spec?.selector, podLabels(frontend))).toBe(true);
  });

  it('runs NATS as a three-replica JetStream StatefulSet with storage, and Redis with the append-only file on a volume', () => {
    const statefulSet = (name: string) => ofKind<IStatefulSet>(rendered, 'StatefulSet').find((s) => s.metadata?.name === name)!;
    const nats = statefulSet('nats');
    expect(nats.spec?.replicas).toBe(3);
    const natsArgs = nats.spec!.template.spec!.containers[0]!.args ?? [];
    expect(natsArgs).toContain('-js');
    const storeDir = natsArgs[natsArgs.indexOf('-sd') + 1];
    expect(nats.spec!.template.spec!.containers[0]!.volumeMounts?.find((m) => m.mountPath === storeDir)?.name).toBe(
      nats.spec?.volumeClaimTemplates?.[0]?.metadata?.name,
    );
    const env = ofKind<IConfigMap>(rendered, 'ConfigMap').find((c) => c.metadata?.name === 'transit-env')!;
    expect(env.data?.TRANSIT_STREAM_REPLICAS).toBe('3');
    expect(env.data?.NATS_URL?.split(',')).toHaveLength(3);

    const redis = statefulSet('redis');
    const redisArgs = redis.spec!.template.spec!.containers[0]!.args ?? [];
    expect(redisArgs[redisArgs.indexOf('--appendonly') + 1]).toBe('yes');
    expect(redis.spec?.volumeClaimTemplates).toHaveLength(1);
  });

  it('references the TLS certificate from a Secret and renders no secret material', () => {
    expect(rendered.objects.filter((o) => o.kind === 'Secret').map(label)).toEqual([]);
    for (const name of ['frontend', 'hub', 'outbound-proxy']) {
      const d = ofKind<IDeployment>(rendered, 'Deployment').find((x) => x.metadata?.name === name)!;
      const spec = d.spec!.template.spec!;
      const tls = spec.volumes?.find((v) => v.secret?.secretName === 'transit-tls');
      expect(tls, `${name} mounts the Secret transit-tls`).toBeDefined();
      const container = spec.containers[0]!;
      const mount = container.volumeMounts?.find((m) => m.name === tls!.name);
      const env = Object.fromEntries((container.env ?? []).map((e) => [e.name, e.value]));
      expect(env.TRANSIT_TLS_CERT, name).toBe(`${mount?.mountPath}/tls.crt`);
      expect(env.TRANSIT_TLS_KEY, name).toBe(`${mount?.mountPath}/tls.key`);
    }
  });

  it('lets only frontends (25, 587 in) and outbound proxies (25 out) reach outside the namespace, besides DNS', () => {
    const policies = ofKind<INetworkPolicy>(rendered, 'NetworkPolicy');
    const isEmptySelector = (s: { matchLabels?: Record<string, string>; matchExpressions?: unknown[] } | undefined) =>
      Object.keys(s?.matchLabels ?? {}).length === 0 && (s?.matchExpressions ?? []).length === 0;
    const denyAll = policies.find((p) => isEmptySelector(p.spec?.podSelector) && p.spec?.ingress === undefined && p.spec?.egress === undefined);
    expect(denyAll?.spec?.policyTypes?.sort()).toEqual(['Egress', 'Ingress']);

    // Every rule that admits a peer outside the namespace, as "direction pods peer port".
    type Peer = { podSelector?: unknown; namespaceSelector?: { matchLabels?: Record<string, string> }; ipBlock?: { cidr: string } };
    type Rule = { ports?: Array<{ protocol?: string; port?: number | string }> };
    const openings: string[] = [];
    for (const p of policies) {
      const pods = isEmptySelector(p.spec?.podSelector)
        ? 'all'
        : (p.spec?.podSelector?.matchLabels?.['app.kubernetes.io/component'] ?? JSON.stringify(p.spec?.podSelector));
      const rules: Array<[string, Rule, Peer[] | undefined]> = [
        ...(p.spec?.ingress ?? []).map((r): [string, Rule, Peer[] | undefined] => ['ingress', r, r.from]),
        ...(p.spec?.egress ?? []).map((r): [string, Rule, Peer[] | undefined] => ['egress', r, r.to]),
      ];
      for (const [direction, rule, peers] of rules) {
        const outside =
          peers === undefined || peers.length === 0
            ? ['anywhere']
            : peers
                .filter((x) => x.ipBlock || x.namespaceSelector)
                .map((x) => x.ipBlock?.cidr ?? `namespace ${x.namespaceSelector?.matchLabels?.['kubernetes.io/metadata.name'] ?? 'any'}`);
        const ports = rule.ports?.map((x) => `${x.protocol ?? 'TCP'}/${x.port ?? 'any'}`) ?? ['any port'];
        for (const peer of outside) for (const port of ports) openings.push(`${direction} ${pods} ${peer} ${port}`);
      }
    }
    expect(openings.sort()).toEqual([
      'egress all namespace kube-system TCP/53',
      'egress all namespace kube-system UDP/53',
      'egress outbound-proxy anywhere TCP/25',
      'ingress frontend anywhere TCP/25',
      'ingress frontend anywhere TCP/587',
    ]);
  });
});

describe('the example overlay', () => {
  it('puts every object in its namespace and pins the image', () => {
    const { objects } = render('deploy/k8s/overlays/example');
    const namespaced = objects.filter((o) => o.kind !== 'Namespace');
    expect(namespaced.filter((o) => o.metadata.namespace !== 'transit-example').map(label)).toEqual([]);
    expect(objects.filter((o) => o.kind === 'Namespace').map((o) => o.metadata.name)).toEqual(['transit-example']);
    const images = ofKind<IDeployment>({ overlay: '', objects }, 'Deployment').flatMap((d) => d.spec!.template.spec!.containers.map((c) => c.image));
    expect(new Set(images)).toEqual(new Set(['registry.example.com/transit:0.1.0']));
  });
});

describe('the manifest checks themselves', () => {
  // Without these, a check that accepted everything would pass unnoticed.
  it('refuse a wrong type and an unknown field', () => {
    const { objects } = render('deploy/k8s/base');
    const frontend = structuredClone(objects.find((o) => o.kind === 'Deployment' && o.metadata.name === 'frontend')!) as IDeployment & KubeObject;
    const wrongType = structuredClone(frontend);
    (wrongType.spec as unknown as Record<string, unknown>).replicas = 'two';
    expect(schemaErrors([wrongType])).toEqual(['Deployment/frontend: data/spec/replicas must be integer']);

    const unknownField = structuredClone(frontend);
    (unknownField.spec!.template.spec!.containers[0] as unknown as Record<string, unknown>).imagePullPolcy = 'Always';
    expect(schemaErrors([unknownField])).toEqual([]); // the OpenAPI schema itself allows unknown fields
    const errors = unknownFieldErrors([unknownField]);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(
      /^Deployment\/frontend: Object literal may only specify known properties, and '"imagePullPolcy"' does not exist in type 'IContainer'/,
    );
  });
});
