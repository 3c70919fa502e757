/**
 * One trace per message across services: the W3C trace context travels in the NATS headers
 * of every work item (traceparent, tracestate), written by publishDurable from the active
 * span and read by the worker loop, which runs each handler inside a consumer span that is
 * the publisher's child. Only @opentelemetry/api is used here: without a configured SDK
 * (libs/service starts it from OTEL_* variables) every call is a no-op.
 */
import {
  context,
  propagation,
  trace,
  SpanKind,
  SpanStatusCode,
  type Attributes,
  type Context,
  type Span,
  type TextMapGetter,
  type TextMapSetter,
} from '@opentelemetry/api';
import type { MsgHdrs } from '@nats-io/transport-node';

export const tracer = trace.getTracer('transit');

const setter: TextMapSetter<MsgHdrs> = { set: (carrier, key, value) => carrier.set(key, value) };
const getter: TextMapGetter<MsgHdrs | undefined> = {
  // MsgHdrs.get answers '' for a missing key; the propagator wants undefined.
  get: (carrier, key) => carrier?.get(key) || undefined,
  keys: (carrier) => (carrier ? carrier.keys() : []),
};

/** Writes the active trace context into NATS headers (nothing when no span is active). */
export function injectTrace(hdrs: MsgHdrs): void {
  propagation.inject(context.active(), hdrs, setter);
}

/** The context a message's headers carry (the active one when they carry none). */
export function extractTrace(hdrs: MsgHdrs | undefined): Context {
  return propagation.extract(context.active(), hdrs, getter);
}

/** Runs `fn` in a new span (a child of `parent`, default the active context), ending it when `fn` settles. */
export async function inSpan<T>(
  name: string,
  opts: { kind?: SpanKind; attributes?: Attributes; parent?: Context },
  fn: (span: Span) => Promise<T>,
): Promise<T> {
  const parent = opts.parent ?? context.active();
  const span = tracer.startSpan(name, { kind: opts.kind ?? SpanKind.INTERNAL, ...(opts.attributes ? { attributes: opts.attributes } : {}) }, parent);
  try {
    return await context.with(trace.setSpan(parent, span), () => fn(span));
  } catch (err) {
    span.recordException(err as Error);
    span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error).message });
    throw err;
  } finally {
    span.end();
  }
}

/** Attributes on the span of the work under way (the handler's consumer span, the SMTP session's span). */
export function annotate(attributes: Attributes): void {
  trace.getActiveSpan()?.setAttributes(attributes);
}

export { SpanKind };
