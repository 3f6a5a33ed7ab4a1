/**
 * One pure validator per frame kind: each takes the decoded MessagePack value
 * and returns the typed payload or throws a {@link ProtocolError} whose
 * message names the frame kind and what was wrong. A peer in another
 * language is held to exactly these rules; docs/protocol.md ("Payload
 * schemas") states them as tables and must change with this file.
 *
 * The limits bound what one hostile frame can make this side hold or walk;
 * the frame itself is already bounded by the transport's messageBytesMax.
 *
 * @module
 */

import { ProtocolError } from "./errors.ts";

/** Longest method or stream method name, in UTF-16 code units. */
export const methodNameCharsMax = 256;
/** Longest event name, in UTF-16 code units. */
export const eventNameCharsMax = 256;
/** Most positional arguments in one REQUEST or STREAM_OPEN. */
export const argsCountMax = 1024;
/** Deepest nesting of arrays and maps in one payload, counting the payload's own top level as 1. */
export const payloadDepthMax = 64;
/** Longest HELLO token, plugin name, version or runtime string, in UTF-16 code units. */
export const helloFieldCharsMax = 256;
/** Most method names a HELLO may list. */
export const helloMethodsCountMax = 4096;
/** Most compression algorithms a HELLO may list. */
export const helloCompressionCountMax = 8;
/** Longest algorithm name in HELLO's `compression`, in UTF-16 code units. */
export const compressionNameCharsMax = 32;
/** Largest `thresholdBytes` WELCOME may set: 1 GiB, the largest message any transport carries. */
export const compressionThresholdBytesMax = 1 << 30;
/** Longest error code in ERROR or STREAM_END, in UTF-16 code units. */
export const errorCodeCharsMax = 128;
/** Longest error message or stack in ERROR or STREAM_END, in UTF-16 code units. */
export const errorTextCharsMax = 1024 * 1024;
/** Largest credit one STREAM_CREDIT may grant, in items. */
export const streamCreditItemsMax = 0x7fff_ffff;
/** Largest protocol version number. */
export const protocolVersionMax = 0xffff;
/** Largest heartbeat interval a WELCOME may announce, in milliseconds (one day). */
export const heartbeatIntervalMsMax = 86_400_000;
/** Length of a W3C traceparent (version 00): `00-<32 hex trace id>-<16 hex span id>-<2 hex flags>`. */
export const traceparentChars = 55;
/** Largest deadline a REQUEST may carry, in milliseconds (the largest timer delay JavaScript runtimes honour). */
export const deadlineMsMax = 0x7fff_ffff;

/** A REQUEST payload: `[method, args, deadlineMs | nil]` or `[method, args, deadlineMs | nil, traceparent | nil]`. */
export interface RequestPayload {
  /** The method to call. */
  method: string;
  /** Its positional arguments. */
  args: unknown[];
  /** How long the caller waits, in ms; null: no deadline. */
  deadlineMs: number | null;
  /** The caller's W3C trace context, when it traces (an optional fourth element). */
  traceparent?: string;
}

/** A STREAM_OPEN payload: `[method, args, hasInput]`. */
export interface StreamOpenPayload {
  method: string;
  args: unknown[];
  hasInput: boolean;
  /** The opener's W3C trace context, when it sent one. */
  traceparent?: string;
}

/** An ERROR payload, also STREAM_END's when the stream failed. */
export interface ErrorPayload {
  code: string;
  message: string;
  stack: string;
}

/** A HELLO payload. */
export interface HelloPayload {
  token: string;
  versions: readonly [number, number];
  name: string;
  version: string;
  runtime: string;
  methods: string[];
  /** Compression algorithms the plugin decodes; absent from plugins older than compression. */
  compression?: string[];
}

/** Compression as WELCOME settles it: the algorithm both use and the smallest payload compressed. */
export interface CompressionPayload {
  algorithm: "deflate";
  thresholdBytes: number;
}

/** A WELCOME payload. */
export interface WelcomePayload {
  version: number;
  heartbeatIntervalMs: number;
  /** Absent: no compression either way. */
  compression?: CompressionPayload;
}

/** An EVENT payload: `[name, data]`. */
export interface EventPayload {
  name: string;
  data: unknown;
}

/**
 * Thrown for a REQUEST or STREAM_OPEN whose shape is wrong but whose id is
 * known: only that request fails (ERROR / STREAM_END `bad_request`).
 */
export class BadRequestError extends ProtocolError {
  override name = "BadRequestError";
}

function fail(kind: string, what: string): never {
  throw new ProtocolError(`${kind} payload ${what}; the peer does not follow docs/protocol.md`);
}

function describe(value: unknown): string {
  if (value === null || value === undefined) return "nil";
  if (Array.isArray(value)) return `an array of ${value.length}`;
  if (value instanceof Uint8Array) return "binary";
  const type = typeof value;
  return type === "object" ? "a map" : `a ${type}`;
}

/** Characters of a peer's bad value quoted in an error message. */
const shownCharsMax = 40;

/**
 * A peer's bad value for an error message: numbers and booleans as they are,
 * short strings quoted, anything else by its shape. Never String(value) on a
 * peer's map: `{toString: ""}` makes that throw a TypeError (found by make fuzz).
 */
function show(value: unknown): string {
  if (typeof value === "number" || typeof value === "boolean" || typeof value === "bigint") return `${value}`;
  if (typeof value === "string") {
    return JSON.stringify(value.length > shownCharsMax ? `${value.slice(0, shownCharsMax)}…` : value);
  }
  return describe(value);
}

function checkString(kind: string, field: string, value: unknown, charsMax: number): string {
  if (typeof value !== "string") fail(kind, `${field} must be a string, got ${describe(value)}`);
  if (value.length > charsMax) fail(kind, `${field} is ${value.length} characters long, over ${charsMax}`);
  return value;
}

function isMap(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value) && !(value instanceof Uint8Array);
}

/**
 * Throws unless `value` nests arrays and maps at most `depthMax` deep.
 * Recursive, but never deeper than `depthMax` + 1 calls (it stops at the
 * first value too deep), so a hostile value cannot exhaust the stack here;
 * it allocates nothing for arrays and plain maps (a work list cost two
 * arrays per call, on every request and response).
 */
export function checkDepth(kind: string, value: unknown, depthMax: number = payloadDepthMax): void {
  if (typeof value === "object" && value !== null && !nestsWithin(value, depthMax)) {
    fail(kind, `nests arrays and maps more than ${depthMax} deep`);
  }
}

/** True when `item` (at depth 1) and what it holds nest arrays and maps at most `depthLeft` deep. */
function nestsWithin(item: object, depthLeft: number): boolean {
  if (Array.isArray(item)) {
    if (depthLeft < 1) return false;
    for (let i = 0; i < item.length; i++) {
      const child = item[i];
      if (typeof child === "object" && child !== null && !nestsWithin(child, depthLeft - 1)) return false;
    }
    return true;
  }
  if (!isMap(item)) return true;
  if (depthLeft < 1) return false;
  if (item instanceof Map) {
    for (const child of item.values()) {
      if (typeof child === "object" && child !== null && !nestsWithin(child, depthLeft - 1)) return false;
    }
    return true;
  }
  for (const key in item) {
    if (!Object.hasOwn(item, key)) continue;
    const child = item[key];
    if (typeof child === "object" && child !== null && !nestsWithin(child, depthLeft - 1)) return false;
  }
  return true;
}

/** Any value: RESPONSE, STREAM_DATA, and EVENT data. Only its depth is limited. */
export function validateValue(kind: string, value: unknown): unknown {
  checkDepth(kind, value);
  return value;
}

function checkCall(kind: string, value: unknown): { method: string; args: unknown[] } {
  // A REQUEST or STREAM_OPEN may carry a fourth element, the caller's trace context.
  if (!Array.isArray(value) || (value.length !== 3 && value.length !== 4)) {
    throw new BadRequestError(
      `${kind} payload must be [method, args, ${kind === "REQUEST" ? "deadline" : "hasInput"}, traceparent?], got ${
        describe(value)
      }`,
    );
  }
  const [method, args] = value;
  if (typeof method !== "string" || method.length > methodNameCharsMax) {
    throw new BadRequestError(
      `${kind} method must be a string of at most ${methodNameCharsMax} characters, got ${describe(method)}`,
    );
  }
  if (!Array.isArray(args) || args.length > argsCountMax) {
    throw new BadRequestError(
      `${kind} ${method}: args must be an array of at most ${argsCountMax}, got ${describe(args)}`,
    );
  }
  try {
    checkDepth(kind, value);
  } catch (error) {
    throw new BadRequestError(`${kind} ${method}: ${(error as Error).message}`);
  }
  return { method, args };
}

const traceparentPattern = /^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/;

/**
 * REQUEST: `[method: str, args: array, deadlineMs: uint | nil, traceparent?: str | nil]`.
 * Throws {@link BadRequestError}.
 */
export function validateRequest(value: unknown): RequestPayload {
  const request = validateCall(value);
  const traceparent = checkTraceparent("REQUEST", request.method, (value as unknown[])[3]);
  if (traceparent !== undefined) request.traceparent = traceparent;
  return request;
}

/** The optional fourth element of REQUEST and STREAM_OPEN: nil or a W3C traceparent. */
function checkTraceparent(kind: string, method: string, traceparent: unknown): string | undefined {
  if (traceparent === undefined || traceparent === null) return undefined;
  if (typeof traceparent !== "string" || !traceparentPattern.test(traceparent)) {
    throw new BadRequestError(
      `${kind} ${method}: traceparent must be nil or a W3C traceparent (${traceparentChars} characters, ` +
        `00-<trace id>-<span id>-<flags> in lowercase hex), got ${describe(traceparent)}`,
    );
  }
  return traceparent;
}

/** REQUEST without its optional trace context. */
function validateCall(value: unknown): RequestPayload {
  const { method, args } = checkCall("REQUEST", value);
  const deadlineMs = (value as unknown[])[2];
  if (deadlineMs !== null && deadlineMs !== undefined) {
    if (
      typeof deadlineMs !== "number" || !Number.isInteger(deadlineMs) || deadlineMs < 0 || deadlineMs > deadlineMsMax
    ) {
      throw new BadRequestError(
        `REQUEST ${method}: deadline must be nil or an integer from 0 to ${deadlineMsMax} ms, got ${show(deadlineMs)}`,
      );
    }
    return { method, args, deadlineMs };
  }
  return { method, args, deadlineMs: null };
}

/** STREAM_OPEN: `[method: str, args: array, hasInput: bool]`. Throws {@link BadRequestError}. */
export function validateStreamOpen(value: unknown): StreamOpenPayload {
  const { method, args } = checkCall("STREAM_OPEN", value);
  const hasInput = (value as unknown[])[2];
  if (typeof hasInput !== "boolean") {
    throw new BadRequestError(`STREAM_OPEN ${method}: hasInput must be a boolean, got ${describe(hasInput)}`);
  }
  const traceparent = checkTraceparent("STREAM_OPEN", method, (value as unknown[])[3]);
  return traceparent === undefined ? { method, args, hasInput } : { method, args, hasInput, traceparent };
}

/** ERROR (and a failed STREAM_END): `{code: str, message: str, stack?: str}`. */
export function validateError(value: unknown, kind = "ERROR"): ErrorPayload {
  if (!isMap(value)) fail(kind, `must be a map {code, message, stack}, got ${describe(value)}`);
  const code = checkString(kind, "code", value.code, errorCodeCharsMax);
  const message = checkString(kind, "message", value.message, errorTextCharsMax);
  const stack = value.stack === undefined || value.stack === null
    ? ""
    : checkString(kind, "stack", value.stack, errorTextCharsMax);
  return { code, message, stack };
}

/** STREAM_END: nil (the stream ended) or an error map (it failed). */
export function validateStreamEnd(value: unknown): ErrorPayload | null {
  if (value === null || value === undefined) return null;
  return validateError(value, "STREAM_END");
}

/** STREAM_CREDIT: an integer from 1 to {@link streamCreditItemsMax}. */
export function validateStreamCredit(value: unknown): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1 || value > streamCreditItemsMax) {
    fail(
      "STREAM_CREDIT",
      `must be an integer from 1 to ${streamCreditItemsMax}, got ${show(value)}`,
    );
  }
  return value;
}

/** EVENT: `[name: str, data: any]`. */
export function validateEvent(value: unknown): EventPayload {
  if (!Array.isArray(value) || value.length !== 2) fail("EVENT", `must be [name, data], got ${describe(value)}`);
  const name = checkString("EVENT", "name", value[0], eventNameCharsMax);
  checkDepth("EVENT", value);
  return { name, data: value[1] };
}

/** PING and PONG: a number (the sender's clock; echoed back) or nil. */
export function validatePing(value: unknown, kind = "PING"): number | null {
  if (value === null || value === undefined) return null;
  if (typeof value !== "number") fail(kind, `must be a number or nil, got ${describe(value)}`);
  return value;
}

/** CANCEL and GOODBYE: nil or absent. */
export function validateEmpty(value: unknown, kind: string): void {
  if (value !== null && value !== undefined) fail(kind, `must be nil, got ${describe(value)}`);
}

function isVersion(value: unknown): value is number {
  return typeof value === "number" && Number.isInteger(value) && value >= 0 && value <= protocolVersionMax;
}

/** HELLO: `{token, versions: [oldest, newest], name, version, runtime, methods: [str]}`; other keys are ignored. */
export function validateHello(value: unknown): HelloPayload {
  const kind = "HELLO";
  if (!isMap(value)) fail(kind, `must be a map, got ${describe(value)}`);
  const token = checkString(kind, "token", value.token, helloFieldCharsMax);
  const versions = value.versions;
  if (!Array.isArray(versions) || versions.length !== 2 || !isVersion(versions[0]) || !isVersion(versions[1])) {
    fail(kind, `versions must be [oldest, newest] integers from 0 to ${protocolVersionMax}`);
  }
  if (versions[0] > versions[1]) fail(kind, `versions [${versions[0]}, ${versions[1]}] has oldest after newest`);
  const name = checkString(kind, "name", value.name, helloFieldCharsMax);
  const version = checkString(kind, "version", value.version, helloFieldCharsMax);
  const runtime = checkString(kind, "runtime", value.runtime, helloFieldCharsMax);
  const methods = value.methods;
  if (!Array.isArray(methods) || methods.length > helloMethodsCountMax) {
    fail(kind, `methods must be an array of at most ${helloMethodsCountMax} names, got ${describe(methods)}`);
  }
  for (const method of methods) checkString(kind, "each of methods", method, methodNameCharsMax);
  const hello: HelloPayload = { token, versions: [versions[0], versions[1]], name, version, runtime, methods };
  const compression = value.compression;
  if (compression !== undefined) {
    if (!Array.isArray(compression) || compression.length > helloCompressionCountMax) {
      fail(
        kind,
        `compression must be an array of at most ${helloCompressionCountMax} algorithm names, got ${
          describe(compression)
        }`,
      );
    }
    for (const name of compression) checkString(kind, "each of compression", name, compressionNameCharsMax);
    hello.compression = compression as string[];
  }
  return hello;
}

/** WELCOME: `{version: uint, heartbeatIntervalMs: uint}`; other keys are ignored. */
export function validateWelcome(value: unknown): WelcomePayload {
  const kind = "WELCOME";
  if (!isMap(value)) fail(kind, `must be a map {version, heartbeatIntervalMs}, got ${describe(value)}`);
  if (!isVersion(value.version)) fail(kind, `version must be an integer from 0 to ${protocolVersionMax}`);
  const interval = value.heartbeatIntervalMs;
  if (
    typeof interval !== "number" || !Number.isInteger(interval) || interval < 0 || interval > heartbeatIntervalMsMax
  ) {
    fail(kind, `heartbeatIntervalMs must be an integer from 0 to ${heartbeatIntervalMsMax}`);
  }
  const welcome: WelcomePayload = { version: value.version, heartbeatIntervalMs: interval };
  const compression = value.compression;
  if (compression !== undefined) {
    // Only what a plugin offers can come back: this side offers deflate alone.
    if (!isMap(compression) || compression.algorithm !== "deflate") {
      fail(kind, `compression must be a map {algorithm: "deflate", thresholdBytes}, got ${describe(compression)}`);
    }
    const threshold = compression.thresholdBytes;
    if (
      typeof threshold !== "number" || !Number.isInteger(threshold) || threshold < 0 ||
      threshold > compressionThresholdBytesMax
    ) {
      fail(kind, `compression.thresholdBytes must be an integer from 0 to ${compressionThresholdBytesMax}`);
    }
    welcome.compression = { algorithm: "deflate", thresholdBytes: threshold };
  }
  return welcome;
}
