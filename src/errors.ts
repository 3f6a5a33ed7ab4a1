/**
 * Errors shared by every layer. Each failure domain has one class with a
 * stable `code`; messages say what happened and what to do about it.
 *
 * @module
 */

/** Status codes returned by libpluginshm, by name. Mirrors zig/status.zig. */
export const nativeStatusCodes = {
  1: "invalid_argument",
  2: "not_found",
  3: "permission_denied",
  4: "bad_magic",
  5: "bad_layout_version",
  6: "truncated",
  7: "token_mismatch",
  8: "already_attached",
  9: "too_many_handles",
  10: "out_of_memory",
  11: "system",
  12: "closed",
  13: "timed_out",
  14: "frame_corrupt",
  15: "message_too_large",
  16: "would_block",
  17: "unsupported",
} as const;

/** A status name from {@link nativeStatusCodes}, or "unknown". */
export type NativeStatus = (typeof nativeStatusCodes)[keyof typeof nativeStatusCodes] | "unknown";

/**
 * A segment could not be created or attached: wrong token, wrong magic, a
 * layout version from another release, a truncated segment, and so on.
 *
 * @example
 * ```ts
 * import { SegmentError } from "./errors.ts";
 * const err = new SegmentError("token_mismatch", "wrong token");
 * console.assert(err.code === "token_mismatch");
 * ```
 */
export class SegmentError extends Error {
  override name = "SegmentError";
  /** The native status name. */
  readonly code: NativeStatus;
  constructor(code: NativeStatus, message: string) {
    super(message);
    this.code = code;
  }
}

/** Why a channel closed. */
export type CloseReason = "local" | "peer-closed" | "peer-died" | "corrupt";

/**
 * The channel is closed: by this side, by the peer, because the peer process
 * died, or because the peer wrote a corrupt frame.
 *
 * @example
 * ```ts
 * import { ChannelClosedError } from "./errors.ts";
 * const err = new ChannelClosedError("peer-died", "peer 123 died");
 * console.assert(err.code === "peer-died");
 * ```
 */
export class ChannelClosedError extends Error {
  override name = "ChannelClosedError";
  /** Why it closed. */
  readonly code: CloseReason;
  constructor(code: CloseReason, message: string) {
    super(message);
    this.code = code;
  }
}

/**
 * A message is larger than the channel's `messageBytesMax`.
 *
 * @example
 * ```ts
 * import { MessageTooLargeError } from "./errors.ts";
 * console.assert(new MessageTooLargeError(10, 5).code === "message_too_large");
 * ```
 */
export class MessageTooLargeError extends RangeError {
  override name = "MessageTooLargeError";
  /** Always "message_too_large". */
  readonly code = "message_too_large";
  constructor(bytes: number, bytesMax: number) {
    super(
      `Message of ${bytes} bytes exceeds messageBytesMax (${bytesMax} bytes); ` +
        `split it, stream it, or raise messageBytesMax on both sides`,
    );
  }
}

/**
 * libpluginshm could not be found or loaded.
 *
 * @example
 * ```ts
 * import { NativeLibraryError } from "./errors.ts";
 * console.assert(new NativeLibraryError("x").code === "native_library");
 * ```
 */
export class NativeLibraryError extends Error {
  override name = "NativeLibraryError";
  /** Always "native_library". */
  readonly code = "native_library";
}

/** Why a handshake failed. */
export type HandshakeFailure = "bad_token" | "version_mismatch" | "timeout" | "exited" | "protocol" | "not_launched";

/**
 * Host and plugin could not agree to talk: wrong token, no common protocol
 * version, a plugin that exited or never answered during the handshake.
 *
 * @example
 * ```ts
 * import { HandshakeError } from "./errors.ts";
 * console.assert(new HandshakeError("timeout", "x").code === "timeout");
 * ```
 */
export class HandshakeError extends Error {
  override name = "HandshakeError";
  readonly code: HandshakeFailure;
  constructor(code: HandshakeFailure, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
  }
}

/**
 * The peer broke the protocol: a frame too short, an unknown frame kind or a
 * payload that is not valid MessagePack.
 *
 * @example
 * ```ts
 * import { ProtocolError } from "./errors.ts";
 * console.assert(new ProtocolError("x").code === "protocol");
 * ```
 */
export class ProtocolError extends Error {
  override name = "ProtocolError";
  readonly code = "protocol";
}

/**
 * The remote handler threw. Carries the remote error's code, message and the
 * stack as seen in the remote process.
 *
 * @example
 * ```ts
 * import { RemoteError } from "./errors.ts";
 * const e = new RemoteError("kv", "not_found", "no such key", "Error: no such key\n    at get");
 * console.assert(e.code === "not_found");
 * ```
 */
export class RemoteError extends Error {
  override name = "RemoteError";
  /** The remote error's code ("method_not_found", "bad_request", or the handler's own). */
  readonly code: string;
  /** Who threw: the plugin's name, or "host". */
  readonly peer: string;
  /** The stack trace in the remote process. */
  readonly remoteStack: string;
  constructor(peer: string, code: string, message: string, remoteStack: string) {
    super(`${peer}: ${message}`);
    this.peer = peer;
    this.code = code;
    this.remoteStack = remoteStack;
  }
}

/**
 * A call did not finish before its deadline; the remote handler was told to stop.
 *
 * @example
 * ```ts
 * import { DeadlineExceededError } from "./errors.ts";
 * console.assert(new DeadlineExceededError("x").code === "deadline_exceeded");
 * ```
 */
export class DeadlineExceededError extends Error {
  override name = "DeadlineExceededError";
  readonly code = "deadline_exceeded";
}

/**
 * A call was cancelled through its AbortSignal; the remote handler was told to stop.
 *
 * @example
 * ```ts
 * import { CancelledError } from "./errors.ts";
 * console.assert(new CancelledError("x").code === "cancelled");
 * ```
 */
export class CancelledError extends Error {
  override name = "CancelledError";
  readonly code = "cancelled";
}

/** One thing wrong with a manifest: the field's path ("" for the whole file) and what to do. */
export interface ManifestProblem {
  field: string;
  message: string;
}

/**
 * A plugin.json is missing, not JSON, or fails the schema. Names the file and
 * every offending field (`problems`); `field` is the first of them.
 *
 * @example
 * ```ts
 * import { ManifestError } from "./errors.ts";
 * const e = new ManifestError("/p/plugin.json", "runtime", "must be deno or bun");
 * console.assert(e.field === "runtime");
 * ```
 */
export class ManifestError extends Error {
  override name = "ManifestError";
  readonly code = "manifest";
  /** The manifest file. */
  readonly file: string;
  /** The first offending field's path ("" for the whole file). */
  readonly field: string;
  /** Every problem found, in order; at least one. */
  readonly problems: ManifestProblem[];
  constructor(file: string, field: string, problem: string, problems?: ManifestProblem[]) {
    const all = problems?.length ? problems : [{ field, message: problem }];
    const describe = (p: ManifestProblem) => `${p.field ? `field "${p.field}" ` : ""}${p.message}`;
    super(
      all.length === 1
        ? `${file}: ${describe(all[0])}`
        : `${file}: ${all.length} problems:\n  ${all.map(describe).join("\n  ")}`,
    );
    this.file = file;
    this.field = all[0].field;
    this.problems = all;
  }
}

/**
 * A plugin process exited while calls were pending or while it should have
 * been running. Carries the exit code or signal and its last stderr lines.
 *
 * @example
 * ```ts
 * import { PluginCrashedError } from "./errors.ts";
 * const e = new PluginCrashedError("kv", 1, null, ["boom"]);
 * console.assert(e.exitCode === 1);
 * ```
 */
export class PluginCrashedError extends Error {
  override name = "PluginCrashedError";
  readonly code = "plugin_crashed";
  readonly plugin: string;
  readonly exitCode: number | null;
  readonly signal: string | null;
  readonly stderrTail: string[];
  constructor(plugin: string, exitCode: number | null, signal: string | null, stderrTail: string[]) {
    const how = signal ? `was killed by ${signal}` : `exited with code ${exitCode}`;
    const tail = stderrTail.length
      ? `; last stderr lines:\n  ${stderrTail.join("\n  ")}`
      : "; it wrote nothing to stderr";
    super(`Plugin "${plugin}" ${how}${tail}`);
    this.plugin = plugin;
    this.exitCode = exitCode;
    this.signal = signal;
    this.stderrTail = stderrTail;
  }
}

/**
 * The named plugin is not known to the host, or not running.
 *
 * @example
 * ```ts
 * import { PluginNotFoundError } from "./errors.ts";
 * console.assert(new PluginNotFoundError("x").code === "plugin_not_found");
 * ```
 */
export class PluginNotFoundError extends Error {
  override name = "PluginNotFoundError";
  readonly code = "plugin_not_found";
}

/**
 * A plugin stopped answering (no heartbeat within the stall timeout) and was
 * killed; calls pending on it fail with this.
 *
 * @example
 * ```ts
 * import { PluginStalledError } from "./errors.ts";
 * console.assert(new PluginStalledError("kv", 4000).code === "plugin_stalled");
 * ```
 */
export class PluginStalledError extends Error {
  override name = "PluginStalledError";
  readonly code = "plugin_stalled";
  readonly plugin: string;
  constructor(plugin: string, silentMs: number) {
    super(
      `Plugin "${plugin}" sent nothing for ${Math.round(silentMs)} ms (not even a heartbeat) and was killed; ` +
        `it is probably stuck in a synchronous loop. It will be restarted`,
    );
    this.plugin = plugin;
  }
}

/**
 * A hot reload could not complete; the old instance keeps serving.
 *
 * @example
 * ```ts
 * import { ReloadError } from "./errors.ts";
 * console.assert(new ReloadError("x").code === "reload_failed");
 * ```
 */
export class ReloadError extends Error {
  override name = "ReloadError";
  readonly code = "reload_failed";
}
