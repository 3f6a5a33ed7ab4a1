/**
 * plugin-shm: a plugin runtime for Deno and Bun over shared-memory rings.
 *
 * This entry re-exports the public API. The channel is the foundation: two
 * processes exchange messages through a shared segment at about a microsecond
 * per round trip.
 *
 * @example
 * ```ts
 * import { ShmChannel } from "./mod.ts";
 * const a = ShmChannel.create();
 * const b = ShmChannel.attach(a.name, a.token);
 * await a.send(new TextEncoder().encode("ping"));
 * console.log(new TextDecoder().decode(await b.receive()));
 * b.close();
 * a.close();
 * ```
 *
 * @module
 */

export {
  messageBytesMaxDefault,
  messageBytesMaxLimit,
  ShmChannel,
  type ShmChannelOptions,
  spinMicrosDefault,
} from "./src/transport/shm_channel.ts";
export { getNative, libraryEnv, Native } from "./src/native/native.ts";
export {
  ChannelClosedError,
  type CloseReason,
  MessageTooLargeError,
  NativeLibraryError,
  SegmentError,
} from "./src/errors.ts";
export { FrameCorruptError } from "./src/transport/_ring.ts";
