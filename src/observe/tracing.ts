/**
 * Host-side tracing through `@opentelemetry/api`: every call the host routes
 * gets a CLIENT span whose W3C trace context travels in the request frame, and
 * every host function a plugin calls runs in a SERVER span under the context
 * the plugin sent, so calls it makes (to another plugin, say) join the trace.
 * Spans go wherever the application's registered OpenTelemetry SDK sends
 * them; with none registered the API's no-op tracer makes this nearly free.
 *
 * @module
 */

import {
  type Attributes,
  type Context,
  context,
  INVALID_SPAN_CONTEXT,
  isSpanContextValid,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  trace,
  type TraceFlags,
  type Tracer,
} from "@opentelemetry/api";
import type { CallSpan, CallTracing } from "../host/types.ts";
import { endSpan, endSpanWhenSettled, formatTraceparent, parseTraceparent } from "../protocol/trace_context.ts";

/** The instrumentation scope name of the host's spans. */
export const hostTracerName = "plugin-shm/host";

/** Options for {@link createHostTracing}. */
export interface HostTracingOptions {
  /** Default: `trace.getTracer(hostTracerName)` from the globally registered provider (a no-op without one). */
  tracer?: Tracer;
}

/** The OpenTelemetry context a traceparent names, as a remote parent. */
export function contextFromTraceparent(traceparent: string | undefined, base: Context = ROOT_CONTEXT): Context {
  const parsed = traceparent === undefined ? undefined : parseTraceparent(traceparent);
  if (!parsed) return base;
  return trace.setSpanContext(base, { ...parsed, traceFlags: parsed.traceFlags as TraceFlags, isRemote: true });
}

/** The traceparent of `span`, or undefined when it has no valid context (a no-op span without a parent). */
export function traceparentOf(span: Span): string | undefined {
  const c = span.spanContext();
  return isSpanContextValid(c) ? formatTraceparent(c.traceId, c.spanId, c.traceFlags) : undefined;
}

/**
 * The host's {@link CallTracing}: pass it as the host's `tracing` option.
 *
 * A host function's calls join its span through OpenTelemetry's active
 * context when a context manager is registered (any Node SDK registers an
 * AsyncLocalStorage one); without one, calls made synchronously by the host
 * function (the usual `(...a) => host.call(...)`) still do.
 *
 * @example
 * ```ts ignore
 * import { PluginHost } from "../../mod.ts";
 * import { createHostTracing } from "./tracing.ts";
 * const host = new PluginHost({ dirs: ["examples/plugins"], tracing: createHostTracing() });
 * ```
 */
export function createHostTracing(options: HostTracingOptions = {}): CallTracing {
  const tracer = options.tracer ?? trace.getTracer(hostTracerName);
  // The span of the host function running synchronously right now, for hosts without a context manager.
  let serving: Context | undefined;
  return {
    startCall(plugin: string, method: string): CallSpan | undefined {
      let parent = context.active();
      if (parent === ROOT_CONTEXT && serving) parent = serving;
      const attributes: Attributes = { "rpc.system": "plugin-shm", "rpc.service": plugin, "rpc.method": method };
      const span = tracer.startSpan(`${plugin}/${method}`, { kind: SpanKind.CLIENT, attributes }, parent);
      // The API's no-op tracer (no SDK registered, no parent) hands out the shared invalid context: nothing to
      // record or send, found without traceparentOf's validating regular expressions (~5 % of an echo call).
      if (!span.isRecording() && span.spanContext() === INVALID_SPAN_CONTEXT) return undefined;
      const traceparent = traceparentOf(span);
      if (traceparent === undefined && !span.isRecording()) return undefined;
      return { traceparent, end: (error?: unknown) => endSpan(span, error) };
    },
    serveHostFunction(plugin: string, name: string, traceparent: string | undefined, run: () => unknown): unknown {
      const parent = traceparent === undefined ? context.active() : contextFromTraceparent(traceparent);
      const attributes: Attributes = { "rpc.system": "plugin-shm", "rpc.service": "host", "rpc.method": name };
      attributes["plugin_shm.caller"] = plugin;
      const span = tracer.startSpan(`host/${name}`, { kind: SpanKind.SERVER, attributes }, parent);
      const active = trace.setSpan(parent, span);
      const previous = serving;
      serving = active;
      let result: unknown;
      try {
        result = context.with(active, run);
      } catch (error) {
        endSpan(span, error);
        throw error;
      } finally {
        serving = previous;
      }
      return endSpanWhenSettled(span, result);
    },
  };
}
