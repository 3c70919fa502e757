/**
 * The Transit operations dashboard: one page, hash routes, every figure from the admin API.
 * Login; the cluster map (roles, replicas, readiness); live throughput and latency; queues
 * with their actions; message tracking with a message's timeline; receive connectors and
 * the test-connector explanation. Views that show live data refresh on a timer that stops
 * when another view is opened. The answers' types are the server's own (src/api-types.ts).
 */
import type {
  ClusterHealth,
  ConnectorExplanation,
  ConnectorList,
  MessageTimeline,
  QueueList,
  QueueMessageList,
  ThroughputSummary,
  TrackingSearch,
} from '../src/api-types.ts';
import { ApiError, api, cell, errorBox, h, table } from './dom.ts';
import { lineChart } from './chart.ts';

const main = document.getElementById('app')!;
const nav = document.getElementById('nav')!;
const logout = document.getElementById('logout')!;
let timers: number[] = [];

/** Runs a live view's refresh now and every `ms`; a failed refresh shows why above the last good figures. */
function every(ms: number, fn: () => Promise<void>): void {
  const problem = h('p', { class: 'error', role: 'alert', hidden: true });
  main.prepend(problem);
  const run = () =>
    fn().then(
      () => {
        problem.hidden = true;
      },
      (err: unknown) => {
        if (err instanceof ApiError && err.status === 401) return loginView('Your session ended; log in again.');
        problem.hidden = false;
        problem.textContent = err instanceof Error ? err.message : String(err);
      },
    );
  void run();
  timers.push(window.setInterval(() => void run(), ms));
}

function show(...nodes: Node[]): void {
  main.replaceChildren(...nodes);
}

function loginView(message?: string): void {
  for (const t of timers) window.clearInterval(t);
  timers = [];
  nav.hidden = true;
  logout.hidden = true;
  const user = h('input', { name: 'user', autocomplete: 'username', value: 'admin', required: true });
  const password = h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const status = h('p', { class: 'error', role: 'alert', hidden: !message }, message ?? '');
  const form = h(
    'form',
    {
      class: 'stack',
      id: 'login',
      onsubmit: (ev) => {
        ev.preventDefault();
        api('POST', '/api/login', { user: user.value, password: password.value })
          .then(() => route())
          .catch((err: unknown) => {
            status.hidden = false;
            status.textContent = err instanceof Error ? err.message : String(err);
          });
      },
    },
    h('h2', {}, 'Log in to Transit admin'),
    h('label', {}, 'User', user),
    h('label', {}, 'Password', password),
    h('button', { type: 'submit' }, 'Log in'),
    status,
  );
  show(form);
}

function clusterView(): void {
  const body = h('div', {});
  show(h('h2', {}, 'Cluster'), body);
  every(5000, async () => {
    const health = await api<ClusterHealth>('GET', '/api/health');
    const rows = health.roles.map((r) => ({
      role: r.role,
      replicas: r.replicas,
      ready: r.ready,
      state: r.ready > 0 ? 'ready' : 'not ready',
      nodes: r.nodes.map((n) => `${n.node}/${n.pid} ${n.http}${n.ready ? '' : ' (not ready)'}`),
    }));
    const t = table(['role', 'replicas', 'ready', 'state', 'nodes'], rows, { testId: 'roles' });
    t.querySelectorAll('tbody tr').forEach((tr, i) => {
      tr.setAttribute('data-role', rows[i]!.role);
      tr.children[3]!.className = rows[i]!.ready > 0 ? 'ok' : 'bad';
    });
    body.replaceChildren(
      h('p', {}, 'Status: ', h('span', { class: health.status === 'healthy' ? 'ok' : 'bad', 'data-testid': 'cluster-status' }, health.status)),
      t,
    );
  });
}

function throughputView(): void {
  const body = h('div', {});
  show(h('h2', {}, 'Throughput and latency (last 15 minutes, from the event log)'), body);
  every(10_000, async () => {
    const t = await api<ThroughputSummary>('GET', '/api/throughput?minutes=15');
    const labels = t.buckets.map((b) => b.start.slice(11, 19));
    const perMinute = (v: number) => (v * 60) / t.bucketSeconds;
    const card = (label: string, value: string) => h('div', { class: 'card' }, h('div', { class: 'muted' }, label), h('div', { class: 'value' }, value));
    const ms = (v: number | null) => (v === null ? '–' : v < 1000 ? `${v} ms` : `${(v / 1000).toFixed(1)} s`);
    body.replaceChildren(
      h(
        'div',
        { class: 'cards' },
        card('received', String(t.totals.received)),
        card('delivered (recipients)', String(t.totals.delivered)),
        card('deferred', String(t.totals.deferred)),
        card('failed', String(t.totals.failed)),
        card('latency p50', ms(t.latencyMs.p50)),
        card('latency p95', ms(t.latencyMs.p95)),
      ),
      h(
        'div',
        { class: 'chart', 'data-testid': 'throughput-chart' },
        lineChart(
          'Messages per minute',
          labels,
          [
            { name: 'received', color: '#2f6fde', values: t.buckets.map((b) => perMinute(b.received)) },
            { name: 'delivered', color: '#17723a', values: t.buckets.map((b) => perMinute(b.delivered)) },
            { name: 'failed', color: '#b3261e', values: t.buckets.map((b) => perMinute(b.failed)) },
          ],
          'per min',
        ),
      ),
      h(
        'div',
        { class: 'chart', 'data-testid': 'latency-chart' },
        lineChart(
          'Delivery latency',
          labels,
          [
            { name: 'p50', color: '#2f6fde', values: t.buckets.map((b) => b.latencyP50Ms) },
            { name: 'p95', color: '#c77700', values: t.buckets.map((b) => b.latencyP95Ms) },
          ],
          'ms',
        ),
      ),
      t.truncated ? h('p', { class: 'muted' }, 'The window held more events than one read takes; the figures cover its start only.') : h('span'),
    );
  });
}

/** The fields the rows carry, but nested objects (arrays are shown joined): Get-Queue and Get-Message show whatever the server lists. */
function scalarColumns<R extends object>(rows: readonly R[]): Array<keyof R & string> {
  const keys = [...new Set(rows.flatMap((r) => Object.keys(r)))] as Array<keyof R & string>;
  return keys.filter((k) => typeof rows[0]?.[k] !== 'object' || Array.isArray(rows[0]?.[k]));
}

function actionButton(label: string, run: () => Promise<unknown>, after: () => Promise<void>, confirmText?: string): HTMLButtonElement {
  return h(
    'button',
    {
      type: 'button',
      'data-action': label.toLowerCase(),
      onclick: () => {
        if (confirmText && !window.confirm(confirmText)) return;
        run()
          .then(after)
          .catch((err: unknown) => window.alert(err instanceof Error ? err.message : String(err)));
      },
    },
    label,
  );
}

function queuesView(): void {
  const queuesBox = h('div', {});
  const messagesBox = h('div', {});
  show(h('h2', {}, 'Queues'), queuesBox, h('h3', {}, 'Messages'), messagesBox);
  const refresh = async () => {
    const { queues } = await api<QueueList>('GET', '/api/queues');
    const { messages } = await api<QueueMessageList>('GET', '/api/messages?limit=200');
    // A queue is acted on by its Identity (`Transit\\remote.sink`), a message by Transit's id (MessageId), as in transitctl.
    const enc = encodeURIComponent;
    queuesBox.replaceChildren(
      queues.length
        ? table(scalarColumns(queues), queues, {
            testId: 'queues',
            extra: (q) =>
              h(
                'span',
                {},
                actionButton('Retry', () => api('POST', `/api/queues/${enc(q.Identity)}/retry`), refresh),
                actionButton('Suspend', () => api('POST', `/api/queues/${enc(q.Identity)}/suspend`), refresh),
                actionButton('Resume', () => api('POST', `/api/queues/${enc(q.Identity)}/resume`), refresh),
              ),
          })
        : h('p', { class: 'muted' }, 'No queues.'),
    );
    messagesBox.replaceChildren(
      messages.length
        ? table(scalarColumns(messages), messages, {
            testId: 'queue-messages',
            extra: (m) =>
              h(
                'span',
                {},
                actionButton('Suspend', () => api('POST', `/api/messages/${enc(m.MessageId)}/suspend`), refresh),
                actionButton('Resume', () => api('POST', `/api/messages/${enc(m.MessageId)}/resume`), refresh),
                actionButton(
                  'Remove',
                  () => api('POST', `/api/messages/${enc(m.MessageId)}/remove`, { withNdr: true }),
                  refresh,
                  'Remove this message and send the sender a non-delivery report?',
                ),
              ),
          })
        : h('p', { class: 'muted' }, 'No messages waiting.'),
    );
  };
  every(5000, refresh);
}

async function timelineView(id: string): Promise<void> {
  const t = await api<MessageTimeline>('GET', `/api/messages/${encodeURIComponent(id)}/timeline`);
  const recipients = Object.values(t.state.recipients).map((r) => ({ recipient: r.address, status: r.status, hop: r.hop, lastError: r.lastError }));
  show(
    h('h2', {}, `Message ${t.id}`),
    h(
      'p',
      {},
      'Status: ',
      h('strong', { 'data-testid': 'message-status' }, t.state.status),
      t.state.received ? ` — from ${t.state.received.sender}${t.state.received.subject ? `, "${t.state.received.subject}"` : ''}` : '',
    ),
    h('h3', {}, 'Recipients'),
    table(['recipient', 'status', 'hop', 'lastError'], recipients),
    h('h3', {}, 'Timeline'),
    table(['Timestamp', 'EventId', 'Source', 'Recipients', 'RecipientStatus', 'ConnectorId', 'ServerHostname', 'Reference'], t.rows, { testId: 'timeline' }),
    h('p', {}, h('a', { href: '#/tracking' }, '← back to the search')),
  );
}

let lastSearch = '';

async function trackingView(): Promise<void> {
  const params = new URLSearchParams(lastSearch);
  const input = (name: string, label: string, placeholder: string) => h('label', {}, label, h('input', { name, placeholder, value: params.get(name) ?? '' }));
  const results = h('div', {});
  const form = h(
    'form',
    {
      class: 'inline',
      id: 'tracking-search',
      onsubmit: (ev) => {
        ev.preventDefault();
        const data = new FormData(form);
        const query = new URLSearchParams();
        for (const [k, v] of data.entries()) if (typeof v === 'string' && v.trim()) query.set(k, v.trim());
        lastSearch = query.toString();
        void search();
      },
    },
    input('recipient', 'Recipient', 'alice@contoso.test'),
    input('sender', 'Sender', 'x@example.org'),
    input('message-id', 'Message-ID', '<abc@example.org>'),
    input('start', 'Start (default: last 24 h)', '2026-11-24T09:00:00Z'),
    input('limit', 'Limit', '200'),
    h('button', { type: 'submit' }, 'Search'),
  );
  const search = async () => {
    results.replaceChildren(h('p', { class: 'muted' }, 'Searching…'));
    try {
      const { rows } = await api<TrackingSearch>('GET', `/api/tracking?${lastSearch}`);
      results.replaceChildren(
        rows.length
          ? table(['Timestamp', 'EventId', 'Source', 'Sender', 'Recipients', 'MessageSubject', 'NetworkMessageId'], rows, {
              testId: 'tracking-results',
              onRow: (row) => void timelineView(row.NetworkMessageId).catch((err: unknown) => results.replaceChildren(errorBox(err))),
            })
          : h('p', { class: 'muted' }, 'No tracking rows match.'),
      );
    } catch (err) {
      results.replaceChildren(errorBox(err));
    }
  };
  show(h('h2', {}, 'Message tracking'), form, results);
  if (lastSearch) await search();
}

async function connectorsView(): Promise<void> {
  const c = await api<ConnectorList>('GET', '/api/connectors');
  const receive = c.receiveConnectors.map((r) => ({
    ...r,
    permissions: r.permissions.map((p) => `${p.User}: ${cell(p.ExtendedRights)}${p.Deny ? ' (deny)' : ''}`),
  }));
  const field = (name: string, label: string, value = '', placeholder = '') => h('label', {}, label, h('input', { name, value, placeholder }));
  const output = h('div', {});
  const form = h(
    'form',
    {
      class: 'inline',
      id: 'test-connector',
      onsubmit: (ev) => {
        ev.preventDefault();
        const d = new FormData(form);
        const text = (k: string) => {
          const v = d.get(k);
          return typeof v === 'string' && v.trim() ? v.trim() : undefined;
        };
        const to = text('to')
          ?.split(',')
          .map((s) => s.trim())
          .filter(Boolean);
        const size = text('size');
        const request = {
          remoteIp: text('remoteIp') ?? '',
          local: text('local') ?? '0.0.0.0:25',
          user: text('user'),
          from: text('from'),
          to,
          size: size ? Number(size) : undefined,
          helo: text('helo'),
          tls: d.get('tls') === 'on',
        };
        api<ConnectorExplanation>('POST', '/api/test-connector', request)
          .then((e) => output.replaceChildren(renderExplanation(e)))
          .catch((err: unknown) => output.replaceChildren(errorBox(err)));
      },
    },
    field('remoteIp', 'Remote IP', '', '127.0.0.5'),
    field('local', 'Local ip:port', '0.0.0.0:25'),
    field('user', 'Logon (optional)'),
    field('from', 'MAIL FROM', '', 'x@example.org'),
    field('to', 'RCPT TO (comma separated)', '', 'someone@example.net'),
    field('size', 'Size (bytes)'),
    field('helo', 'HELO'),
    h('label', {}, 'STARTTLS', h('input', { name: 'tls', type: 'checkbox' })),
    h('button', { type: 'submit' }, 'Explain'),
  );
  show(
    h('h2', {}, 'Receive connectors'),
    table(['Name', 'TransportRole', 'Bindings', 'RemoteIPRanges', 'AuthMechanism', 'PermissionGroups', 'Enabled', 'permissions'], receive, {
      testId: 'receive-connectors',
    }),
    h('h3', {}, 'Send connectors'),
    table(['Name', 'AddressSpaces', 'SmartHosts', 'DNSRoutingEnabled', 'Enabled'], c.sendConnectors),
    h('h3', {}, 'Test a connection (the decisions the frontend would make)'),
    form,
    output,
  );
}

function renderExplanation(e: ConnectorExplanation): HTMLElement {
  const lines = ['Receive connectors with a binding on this port:'];
  for (const c of e.candidates)
    lines.push(
      `  ${c.chosen ? '*' : ' '} ${c.connector}${c.enabled ? '' : ' (disabled)'}: ${c.binding} binding; ${c.range ? `range ${c.range}` : 'no RemoteIPRanges entry contains the client'}`,
    );
  if (e.candidates.length === 0) lines.push('  (none)');
  if (e.connector) {
    lines.push(
      '',
      `Selected: ${e.connector.Name}`,
      `Principal: ${e.principal ?? ''}`,
      `Effective rights: ${e.rights.length ? e.rights.map((r) => `ms-Exch-${r}`).join(', ') : '(none)'}`,
      'Granted by:',
    );
    for (const s of e.sources) lines.push(`  ${s.deny ? 'DENY ' : ''}ms-Exch-${s.right} — ${s.connector}: ${s.via}`);
  }
  lines.push('', 'SMTP steps:');
  for (const step of e.steps) lines.push(`  ${step.command}\n    → ${step.reply}${step.reason ? `\n      because ${step.reason}` : ''}`);
  return h('pre', { class: 'explain', 'data-testid': 'explanation' }, lines.join('\n'));
}

const VIEWS: Record<string, () => Promise<void> | void> = {
  cluster: clusterView,
  throughput: throughputView,
  queues: queuesView,
  tracking: trackingView,
  connectors: connectorsView,
};

async function route(): Promise<void> {
  for (const t of timers) window.clearInterval(t);
  timers = [];
  try {
    await api('GET', '/api/session');
  } catch (err) {
    if (err instanceof ApiError && err.status === 503) {
      nav.hidden = true;
      show(errorBox(err));
      return;
    }
    loginView(err instanceof ApiError && err.status === 401 ? undefined : err instanceof Error ? err.message : String(err));
    return;
  }
  nav.hidden = false;
  logout.hidden = false;
  const name = location.hash.replace(/^#\//, '') || 'cluster';
  for (const a of nav.querySelectorAll('a')) a.classList.toggle('active', a.getAttribute('href') === `#/${name}`);
  const view = VIEWS[name] ?? clusterView;
  try {
    await view();
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return loginView('Your session ended; log in again.');
    show(errorBox(err));
  }
}

logout.addEventListener('click', () => {
  void api('POST', '/api/logout').finally(() => loginView());
});
window.addEventListener('hashchange', () => void route());
void route();
