/**
 * Plugin-side tracing through `@opentelemetry/api`, used only for requests
 * that carry a W3C traceparent: the method runs in a SERVER span under the
 * caller's context, and each `callHost` from it gets a CLIENT span whose
 * context travels on to the host. With no OpenTelemetry SDK registered in the
 * plugin the spans are no-ops and the caller's context is passed on as is, so
 * the trace still joins up on the host's side.
 *
 * @module
 */

import {
  type Attributes,
  context,
  isSpanContextValid,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  trace,
  type TraceFlags,
} from "@opentelemetry/api";
import { endSpan, endSpanWhenSettled, formatTraceparent, parseTraceparent } from "../protocol/trace_context.ts";

/** The instrumentation scope name of a plugin's spans. */
export const pluginTracerName = "plugin-shm/plugin";

function traceparentOf(span: Span, fallback: string): string {
  const c = span.spanContext();
  return isSpanContextValid(c) ? formatTraceparent(c.traceId, c.spanId, c.traceFlags) : fallback;
}

function traced<T>(span: Span, run: () => T): T {
  let result: T;
  try {
    result = run();
  } catch (error) {
    endSpan(span, error);
    throw error;
  }
  return endSpanWhenSettled(span, result);
}

/**
 * Runs method `method` of `plugin` in a SERVER span under `traceparent`;
 * `run` gets the traceparent its host calls should carry on.
 */
export function serveTraced<T>(plugin: string, method: string, traceparent: string, run: (inner: string) => T): T {
  const parsed = parseTraceparent(traceparent);
  const parent = parsed
    ? trace.setSpanContext(ROOT_CONTEXT, { ...parsed, traceFlags: parsed.traceFlags as TraceFlags, isRemote: true })
    : ROOT_CONTEXT;
  const attributes: Attributes = { "rpc.system": "plugin-shm", "rpc.service": plugin, "rpc.method": method };
  const span = trace.getTracer(pluginTracerName).startSpan(
    `${plugin}/${method}`,
    { kind: SpanKind.SERVER, attributes },
    parent,
  );
  const inner = traceparentOf(span, traceparent);
  return traced(span, () => context.with(trace.setSpan(parent, span), () => run(inner)));
}

/** Calls host function `name` in a CLIENT span under `traceparent`, carrying the span's context to the host. */
export function callHostTraced(
  name: string,
  traceparent: string,
  call: (traceparent: string) => Promise<unknown>,
): Promise<unknown> {
  const parsed = parseTraceparent(traceparent);
  const parent = parsed
    ? trace.setSpanContext(ROOT_CONTEXT, { ...parsed, traceFlags: parsed.traceFlags as TraceFlags, isRemote: false })
    : ROOT_CONTEXT;
  const attributes: Attributes = { "rpc.system": "plugin-shm", "rpc.service": "host", "rpc.method": name };
  const span = trace.getTracer(pluginTracerName).startSpan(
    `host/${name}`,
    { kind: SpanKind.CLIENT, attributes },
    parent,
  );
  return traced(span, () => call(traceparentOf(span, traceparent)));
}
