/**
 * Errors of the transport layer: closed channels and oversized messages. Every class extends
 * {@link PluginShmError} and carries a stable `code`; messages say what
 * happened and what to do.
 *
 * @module
 */

import { PluginShmError } from "../plugin_shm_error.ts";

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
export class ChannelClosedError extends PluginShmError {
  /** The class name, "ChannelClosedError", as stack traces and `error.name` show it. */
  override name = "ChannelClosedError";
  /** Why it closed. */
  readonly code: CloseReason;
  /** Creates a ChannelClosedError; plugin-shm throws these itself, and tests or adapters may construct one too. */
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
export class MessageTooLargeError extends PluginShmError {
  /** The class name, "MessageTooLargeError", as stack traces and `error.name` show it. */
  override name = "MessageTooLargeError";
  /** Always "message_too_large". */
  readonly code = "message_too_large";
  /** Creates a MessageTooLargeError; plugin-shm throws these itself, and tests or adapters may construct one too. */
  constructor(bytes: number, bytesMax: number) {
    super(
      `Message of ${bytes} bytes exceeds messageBytesMax (${bytesMax} bytes); ` +
        `split it, stream it, or raise messageBytesMax on both sides`,
    );
  }
}

/**
 * The peer wrote a frame this side cannot trust (a length past the ring, a
 * frame that straddles the wrap point): the channel is closed.
 *
 * @example
 * ```ts
 * import { FrameCorruptError } from "./errors.ts";
 * console.assert(new FrameCorruptError("x").code === "frame_corrupt");
 * ```
 */
export class FrameCorruptError extends PluginShmError {
  /** The class name, "FrameCorruptError", as stack traces and `error.name` show it. */
  override name = "FrameCorruptError";
  /** Always `"frame_corrupt"`: the stable identifier to check instead of the message. */
  readonly code = "frame_corrupt";
}

/**
 * A socket transport could not connect to the host's listener.
 *
 * @example
 * ```ts
 * import { ConnectError } from "./errors.ts";
 * console.assert(new ConnectError("x").code === "connect_failed");
 * ```
 */
export class ConnectError extends PluginShmError {
  /** The class name, "ConnectError", as stack traces and `error.name` show it. */
  override name = "ConnectError";
  /** Always `"connect_failed"`: the stable identifier to check instead of the message. */
  readonly code = "connect_failed";
}

/** What went wrong with a zero-copy view (see ShmChannel.receiveView). */
export type ViewErrorCode = "view_released" | "view_foreign" | "views_exhausted";

/**
 * A zero-copy view was misused: released twice, not a view this channel
 * handed out, or too many held at once. The channel stays open.
 *
 * @example
 * ```ts
 * import { ViewError } from "./errors.ts";
 * console.assert(new ViewError("view_foreign", "x").code === "view_foreign");
 * ```
 */
export class ViewError extends PluginShmError {
  /** The class name, "ViewError", as stack traces and `error.name` show it. */
  override name = "ViewError";
  /** What went wrong. */
  readonly code: ViewErrorCode;
  /** Creates a ViewError; plugin-shm throws these itself, and tests or adapters may construct one too. */
  constructor(code: ViewErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}
