/**
 * The handshake: the plugin speaks first (HELLO), the host answers WELCOME
 * or ERROR. The plugin proves it was launched by this host with a one-time
 * token it got out of band (an environment variable, never stdout); both
 * sides offer protocol version ranges and the newest common version wins.
 *
 * @module
 */

import { timingSafeEqual } from "node:crypto";
import { HandshakeError, ProtocolError } from "./errors.ts";
import type { Transport } from "../transport/transport.ts";
import { decodeHeader, decodePayload, encodeFrame, FrameKind } from "./frame.ts";
import { type CompressionPayload, validateError, validateHello, validateWelcome } from "./_payload.ts";

/** Protocol versions this release speaks, oldest and newest. */
export const protocolVersions: VersionRange = [1, 1];

/** An inclusive range of protocol versions, [oldest, newest]. */
export type VersionRange = readonly [number, number];

/** What a plugin says about itself in HELLO. */
export interface Hello {
  token: string;
  versions: VersionRange;
  name: string;
  version: string;
  runtime: string;
  methods: string[];
  /** Compression algorithms the plugin decodes (frame.ts compressionAlgorithms); absent: none. */
  compression?: string[];
}

/**
 * Smallest payload a host that turns compression on asks to be compressed:
 * below a few KiB DEFLATE saves little and its per-call cost shows.
 */
export const compressionThresholdBytesDefault = 4096;

/** The host's answer. */
export interface Welcome {
  version: number;
  heartbeatIntervalMs: number;
  /** Compression both sides use from now on; absent: none. */
  compression?: CompressionPayload;
}

/**
 * The newest version both ranges contain, or undefined.
 *
 * @example
 * ```ts
 * import { negotiateVersion } from "./handshake.ts";
 * console.assert(negotiateVersion([1, 3], [2, 5]) === 3);
 * ```
 */
export function negotiateVersion(ours: VersionRange, theirs: VersionRange): number | undefined {
  const newest = Math.min(ours[1], theirs[1]);
  const oldest = Math.max(ours[0], theirs[0]);
  return newest >= oldest ? newest : undefined;
}

const handshakeFailures: readonly HandshakeError["code"][] = [
  "bad_token",
  "version_mismatch",
  "timeout",
  "exited",
  "protocol",
  "not_launched",
];

function parseHello(value: unknown): Hello {
  try {
    return validateHello(value);
  } catch (error) {
    throw new HandshakeError(
      "protocol",
      `${(error as Error).message}; the plugin does not speak plugin-shm's protocol`,
      { cause: error },
    );
  }
}

function tokensEqual(a: string, b: string): boolean {
  const x = new TextEncoder().encode(a);
  const y = new TextEncoder().encode(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

async function receiveWithin(transport: Transport, timeoutMs: number, what: string): Promise<Uint8Array> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new HandshakeError("timeout", `No ${what} within ${timeoutMs} ms`)),
      timeoutMs,
    );
  });
  const receiving = transport.receive();
  receiving.catch(() => {}); // It may fail after the timeout won; that is reported already.
  try {
    return await Promise.race([receiving, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Host side: reads HELLO, checks token and versions, sends WELCOME or ERROR. */
export async function acceptHello(
  transport: Transport,
  expected: {
    token: string;
    versions: VersionRange;
    heartbeatIntervalMs: number;
    timeoutMs: number;
    /** Compression the host wants; used only when the plugin's HELLO lists the algorithm. */
    compression?: CompressionPayload;
  },
): Promise<{ hello: Hello; version: number; compression?: CompressionPayload }> {
  const bytes = await receiveWithin(transport, expected.timeoutMs, "HELLO from the plugin");
  const header = decodeHeader(bytes);
  if (header.kind !== FrameKind.hello) {
    throw new HandshakeError("protocol", `expected HELLO, got frame kind ${header.kind}`);
  }
  const hello = parseHello(decodePayload(bytes));
  const refuse = async (error: HandshakeError): Promise<never> => {
    await transport.send(encodeFrame(FrameKind.error, 0, { code: error.code, message: error.message, stack: "" }));
    throw error;
  };
  if (!tokensEqual(hello.token, expected.token)) {
    return await refuse(
      new HandshakeError(
        "bad_token",
        `Plugin "${hello.name}" presented a wrong token; it was not launched by this host (start plugins through PluginHost or cli.ts)`,
      ),
    );
  }
  const version = negotiateVersion(expected.versions, hello.versions);
  if (version === undefined) {
    const upgrade = hello.versions[1] < expected.versions[0] ? `plugin "${hello.name}"` : "the host";
    return await refuse(
      new HandshakeError(
        "version_mismatch",
        `Plugin "${hello.name}" speaks protocol ${hello.versions.join("–")}, the host ${
          expected.versions.join("–")
        }; upgrade ${upgrade}'s plugin-shm`,
      ),
    );
  }
  const welcome: Welcome = { version, heartbeatIntervalMs: expected.heartbeatIntervalMs };
  // A plugin without compression (older, or another implementation) lists none and gets none.
  const compression = expected.compression && hello.compression?.includes(expected.compression.algorithm)
    ? expected.compression
    : undefined;
  if (compression) welcome.compression = compression;
  await transport.send(encodeFrame(FrameKind.welcome, 0, welcome));
  return compression ? { hello, version, compression } : { hello, version };
}

/** Plugin side: sends HELLO and waits for WELCOME; throws HandshakeError on ERROR. */
export async function sendHello(transport: Transport, hello: Hello, timeoutMs: number): Promise<Welcome> {
  await transport.send(encodeFrame(FrameKind.hello, 0, hello));
  const bytes = await receiveWithin(transport, timeoutMs, "WELCOME from the host");
  const header = decodeHeader(bytes);
  if (header.kind === FrameKind.error) {
    const payload = validateError(decodePayload(bytes));
    const code = handshakeFailures.includes(payload.code as HandshakeError["code"])
      ? payload.code as HandshakeError["code"]
      : "protocol";
    throw new HandshakeError(code, payload.message || "the host refused the handshake");
  }
  if (header.kind !== FrameKind.welcome) {
    throw new ProtocolError(`expected WELCOME, got frame kind ${header.kind}`);
  }
  return validateWelcome(decodePayload(bytes));
}
