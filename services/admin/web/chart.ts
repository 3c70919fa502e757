/**
 * A small line chart in inline SVG: a few series over the same buckets, an axis maximum
 * rounded up, and the first and last bucket times. Enough for a live view without a chart
 * library or anything fetched from outside.
 */
export type Series = { name: string; color: string; values: Array<number | null> };

const NS = 'http://www.w3.org/2000/svg';

function svg<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string | number>, text?: string): SVGElementTagNameMap[K] {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

function niceMax(v: number): number {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  return [1, 2, 5, 10].map((m) => m * p).find((m) => m >= v)!;
}

export function lineChart(title: string, labels: string[], series: Series[], unit: string): SVGSVGElement {
  const width = 560;
  const height = 180;
  const pad = { left: 48, right: 10, top: 20, bottom: 22 };
  const max = niceMax(Math.max(0, ...series.flatMap((s) => s.values.filter((v): v is number => v !== null))));
  const x = (i: number) => pad.left + (labels.length <= 1 ? 0 : (i * (width - pad.left - pad.right)) / (labels.length - 1));
  const y = (v: number) => height - pad.bottom - (v / max) * (height - pad.top - pad.bottom);
  const root = svg('svg', { viewBox: `0 0 ${width} ${height}`, width, height, role: 'img', 'aria-label': title });
  root.append(svg('text', { x: pad.left, y: 12, fill: '#1d2430' }, `${title} (${unit})`));
  for (const v of [0, max / 2, max]) {
    root.append(svg('line', { x1: pad.left, x2: width - pad.right, y1: y(v), y2: y(v), stroke: '#e3e6ec' }));
    root.append(svg('text', { x: 4, y: y(v) + 3, fill: '#667085' }, String(Math.round(v * 100) / 100)));
  }
  if (labels.length) {
    root.append(svg('text', { x: pad.left, y: height - 6, fill: '#667085' }, labels[0]));
    root.append(svg('text', { x: width - pad.right - 50, y: height - 6, fill: '#667085' }, labels[labels.length - 1]));
  }
  series.forEach((s, n) => {
    let d = '';
    s.values.forEach((v, i) => {
      if (v === null) return;
      d += `${d === '' || s.values[i - 1] === null ? 'M' : 'L'}${x(i).toFixed(1)},${y(v).toFixed(1)}`;
    });
    if (d) root.append(svg('path', { d, fill: 'none', stroke: s.color, 'stroke-width': 2, 'data-series': s.name }));
    // A dot per value, so a lone bucket with data (no line to draw yet) still shows.
    s.values.forEach((v, i) => {
      if (v !== null && v > 0) root.append(svg('circle', { cx: x(i).toFixed(1), cy: y(v).toFixed(1), r: 2.5, fill: s.color }));
    });
    root.append(svg('text', { x: 300 + n * 70, y: 12, fill: s.color }, s.name));
  });
  return root;
}
