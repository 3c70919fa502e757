/**
 * One trace per message: the frontend's SMTP transaction is the root span, the hub's
 * categorisation its child (the context rides in the NATS headers of the submit item), and
 * mailbox delivery the hub's child. Spans are exported by each process's OpenTelemetry SDK,
 * configured only through OTEL_* variables, to an OTLP/HTTP (JSON) collector in this test.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, expect, it } from 'vitest';
import { smtpTranscript, waitFor } from '@transit/testkit';
import { useHarness } from './use-harness.ts';

type OtlpValue = { stringValue?: string; intValue?: string | number; boolValue?: boolean };
type OtlpAttribute = { key: string; value: OtlpValue };
type OtlpSpan = { traceId: string; spanId: string; parentSpanId?: string; name: string; kind: number; attributes?: OtlpAttribute[] };
type Export = { resourceSpans?: Array<{ resource?: { attributes?: OtlpAttribute[] }; scopeSpans?: Array<{ spans?: OtlpSpan[] }> }> };
type Span = OtlpSpan & { service: string; attrs: Record<string, string | number | boolean | undefined> };

const spans: Span[] = [];
let collector: Server | undefined;

const flatten = (attributes: OtlpAttribute[] = []) =>
  Object.fromEntries(attributes.map((a) => [a.key, a.value.stringValue ?? (a.value.intValue !== undefined ? Number(a.value.intValue) : a.value.boolValue)]));

async function startCollector(): Promise<string> {
  collector = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.url === '/v1/traces') {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Export;
        for (const rs of body.resourceSpans ?? []) {
          const service = String(flatten(rs.resource?.attributes)['service.name']);
          for (const ss of rs.scopeSpans ?? []) for (const span of ss.spans ?? []) spans.push({ ...span, service, attrs: flatten(span.attributes) });
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => collector!.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(collector.address() as AddressInfo).port}`;
}

const h = useHarness(async () => ({
  env: { OTEL_EXPORTER_OTLP_ENDPOINT: await startCollector(), OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', OTEL_BSP_SCHEDULE_DELAY: '200' },
}));
afterAll(async () => {
  await new Promise((resolve) => collector?.close(resolve));
});

it('traces one message from the SMTP session through the hub to mailbox delivery as one parent-child chain', async () => {
  const marker = `traced-${Date.now()}`;
  const replies = await smtpTranscript({
    host: '127.0.0.1',
    port: h.cluster.port(25),
    lines: [
      'EHLO client.example.org',
      'MAIL FROM:<someone@example.org>',
      'RCPT TO:<alice@contoso.test>',
      'DATA',
      `DATA-BODY:Subject: ${marker}\r\n\r\n${marker}\r\n.\r\n`,
      'QUIT',
    ],
  });
  expect(replies[5]).toMatch(/^250 2\.6\.0 /);

  const chain = await waitFor(
    () => {
      const root = spans.find((s) => s.name === 'SMTP DATA' && s.service === 'transit-frontend' && s.attrs['smtp.reply_code'] === 250);
      if (!root) return Promise.resolve(undefined);
      const trace = spans.filter((s) => s.traceId === root.traceId);
      const hub = trace.find((s) => s.service === 'transit-hub' && s.name === 'process MAIL_SUBMIT');
      const mailbox = trace.find((s) => s.service === 'transit-mailbox-delivery' && s.name === 'process MAIL_DELIVER');
      return Promise.resolve(hub && mailbox ? { root, hub, mailbox, trace } : undefined);
    },
    { timeoutMs: 20_000, what: 'spans of the frontend, the hub and mailbox delivery in one trace' },
  );
  const { root, hub, mailbox } = chain;
  const id = root.attrs['transit.message_id'];
  expect(id).toBeTruthy();
  // The SMTP transaction starts the trace; each stage is the child of the one that queued its work.
  expect(root.parentSpanId || undefined).toBeUndefined();
  expect(root.kind).toBe(2); // SERVER
  expect(root.attrs).toMatchObject({ 'transit.connector': 'Default Frontend', 'client.address': '127.0.0.1', 'smtp.recipient_count': 1 });
  expect(hub.parentSpanId).toBe(root.spanId);
  expect(hub.kind).toBe(5); // CONSUMER
  expect(hub.attrs).toMatchObject({ 'transit.message_id': id, 'messaging.system': 'nats', 'transit.outcome': 'ack' });
  expect(mailbox.parentSpanId).toBe(hub.spanId);
  expect(mailbox.attrs).toMatchObject({ 'transit.message_id': id, 'transit.outcome': 'ack' });
  expect(String(mailbox.attrs['transit.next_hop'])).toMatch(/^mailbox:/);
  // Exactly one trace for this message: no stage started a trace of its own.
  expect(new Set(spans.filter((s) => s.attrs['transit.message_id'] === id).map((s) => s.traceId)).size).toBe(1);
});
