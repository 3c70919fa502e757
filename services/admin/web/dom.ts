/**
 * DOM and HTTP helpers of the dashboard. Text goes in through textContent only: addresses,
 * subjects and SMTP replies come from the outside world and must never become markup.
 */
type Child = Node | string | number | null | undefined | false;
type Attrs = Record<string, string | boolean | ((ev: Event) => void) | undefined>;

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: Array<Child | Child[]>): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === false) continue;
    if (typeof value === 'function') el.addEventListener(name.replace(/^on/, ''), value);
    else if (value === true) el.setAttribute(name, '');
    else el.setAttribute(name, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(typeof child === 'string' || typeof child === 'number' ? String(child) : child);
  }
  return el;
}

export class ApiError extends Error {
  readonly status: number;
  readonly body: Record<string, unknown>;
  constructor(status: number, body: Record<string, unknown>) {
    super(typeof body.error === 'string' ? body.error : `HTTP ${status}`);
    this.name = 'ApiError';
    this.status = status;
    this.body = body;
  }
}

/**
 * Every call carries X-Transit-Request: the server refuses changes without it (a cross-site
 * page cannot add it), and with it a 401 comes without a Basic challenge, so the browser never
 * pops its own login dialog.
 */
export async function api<T>(method: 'GET' | 'POST' | 'PUT', path: string, body?: unknown): Promise<T> {
  const res = await fetch(path, {
    method,
    credentials: 'same-origin',
    headers: { 'x-transit-request': '1', ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const parsed = (await res.json().catch(() => ({}))) as Record<string, unknown>;
  // /api/health answers 503 with the full report when the cluster is degraded: that is data, not an error.
  if (!res.ok && !(res.status === 503 && path === '/api/health')) throw new ApiError(res.status, parsed);
  return parsed as T;
}

/** One column per named field of the rows (the names are checked against the row type, e.g. an API wire type). */
export function table<R extends object>(
  columns: ReadonlyArray<keyof R & string>,
  rows: readonly R[],
  opts: { onRow?: (row: R) => void; extra?: (row: R) => Node; testId?: string } = {},
): HTMLTableElement {
  return h(
    'table',
    { 'data-testid': opts.testId },
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        columns.map((c) => h('th', {}, c)),
        opts.extra ? h('th', {}, '') : null,
      ),
    ),
    h(
      'tbody',
      {},
      rows.map((row) =>
        h(
          'tr',
          opts.onRow ? { class: 'clickable', onclick: () => opts.onRow!(row) } : {},
          columns.map((c) => h('td', {}, cell(row[c]))),
          opts.extra ? h('td', {}, opts.extra(row)) : null,
        ),
      ),
    ),
  );
}

export function cell(v: unknown): string {
  if (v === undefined || v === null) return '';
  if (Array.isArray(v)) return v.map(cell).join('; ');
  if (typeof v === 'object') return JSON.stringify(v);
  if (typeof v === 'string') return v;
  return typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint' ? String(v) : '';
}

export function errorBox(err: unknown): HTMLElement {
  const message = err instanceof Error ? err.message : String(err);
  return h('p', { class: 'error', role: 'alert' }, message);
}
