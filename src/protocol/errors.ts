/**
 * Errors of the protocol layer: handshakes, broken frames, remote failures, deadlines. Every class extends
 * {@link PluginShmError} and carries a stable `code`; messages say what
 * happened and what to do.
 *
 * @module
 */

import { PluginShmError } from "../plugin_shm_error.ts";

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
export class HandshakeError extends PluginShmError {
  /** The class name, "HandshakeError", as stack traces and `error.name` show it. */
  override name = "HandshakeError";
  /** Which failure this is (a HandshakeFailure): the stable identifier to check instead of the message. */
  readonly code: HandshakeFailure;
  /** Creates a HandshakeError; plugin-shm throws these itself, and tests or adapters may construct one too. */
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
export class ProtocolError extends PluginShmError {
  /** The class name, "ProtocolError", as stack traces and `error.name` show it. */
  override name = "ProtocolError";
  /** Always `"protocol"`: the stable identifier to check instead of the message. */
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
export class RemoteError extends PluginShmError {
  /** The class name, "RemoteError", as stack traces and `error.name` show it. */
  override name = "RemoteError";
  /** The remote error's code ("method_not_found", "bad_request", or the handler's own). */
  readonly code: string;
  /** Who threw: the plugin's name, or "host". */
  readonly peer: string;
  /** The stack trace in the remote process. */
  readonly remoteStack: string;
  /** Creates a RemoteError; plugin-shm throws these itself, and tests or adapters may construct one too. */
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
export class DeadlineExceededError extends PluginShmError {
  /** The class name, "DeadlineExceededError", as stack traces and `error.name` show it. */
  override name = "DeadlineExceededError";
  /** Always `"deadline_exceeded"`: the stable identifier to check instead of the message. */
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
export class CancelledError extends PluginShmError {
  /** The class name, "CancelledError", as stack traces and `error.name` show it. */
  override name = "CancelledError";
  /** Always `"cancelled"`: the stable identifier to check instead of the message. */
  readonly code = "cancelled";
}
