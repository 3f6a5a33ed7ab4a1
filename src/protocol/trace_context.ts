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
