/**
 * W3C trace context (https://www.w3.org/TR/trace-context/) as it travels in a
 * REQUEST frame: the `traceparent` string, version 00. Plain strings here; the
 * tracing layers on both sides turn them into OpenTelemetry span contexts.
 *
 * @module
 */

/** A parsed traceparent. */
export interface TraceParent {
  /** 32 lowercase hex digits, not all zero. */
  traceId: string;
  /** 16 lowercase hex digits, not all zero. */
  spanId: string;
  /** Bit 0 = sampled. */
  traceFlags: number;
}

const pattern = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;
const zeroTrace = "0".repeat(32);
const zeroSpan = "0".repeat(16);

/** `00-<trace id>-<span id>-<flags>`. */
export function formatTraceparent(traceId: string, spanId: string, traceFlags: number): string {
  return `00-${traceId}-${spanId}-${(traceFlags & 0xff).toString(16).padStart(2, "0")}`;
}

/** The parts of a version-00 traceparent, or undefined for anything else (an all-zero id included). */
export function parseTraceparent(text: string): TraceParent | undefined {
  const match = pattern.exec(text);
  if (!match || match[1] === zeroTrace || match[2] === zeroSpan) return undefined;
  return { traceId: match[1], spanId: match[2], traceFlags: parseInt(match[3], 16) };
}

/**
 * The part of an OpenTelemetry span that {@link endSpan} uses, structurally: the tracing layers on both
 * sides (observe/ and plugin/) share these helpers without the protocol layer depending on the API package.
 */
export interface EndableSpan {
  recordException(exception: Error): void;
  setStatus(status: { code: number; message?: string }): void;
  setAttribute(key: string, value: string): void;
  end(): void;
}

/** OpenTelemetry's `SpanStatusCode.ERROR` (a stable value of the API). */
const spanStatusError = 2;

/** Marks `span` failed with `error` (exception, status, and the error's `code` when it has one), then ends it. */
export function endSpan(span: EndableSpan, error?: unknown): void {
  if (error !== undefined) {
    const e = error instanceof Error ? error : new Error(String(error));
    span.recordException(e);
    span.setStatus({ code: spanStatusError, message: e.message });
    const code = (error as { code?: unknown } | null)?.code;
    if (typeof code === "string") span.setAttribute("plugin_shm.error_code", code);
  }
  span.end();
}

/**
 * Ends `span` when `result` settles: at once for a plain value, on settlement for a promise (which is
 * returned with the same outcome). For a `run()` that threw, call {@link endSpan} with the error instead.
 */
export function endSpanWhenSettled<T>(span: EndableSpan, result: T): T {
  if (typeof (result as { then?: unknown } | null)?.then !== "function") {
    endSpan(span);
    return result;
  }
  return (result as Promise<unknown>).then(
    (value) => (endSpan(span), value),
    (error) => {
      endSpan(span, error);
      throw error;
    },
  ) as T;
}
