/**
 * Every plugin-shm error, from every layer, in one place. Each class extends
 * {@link PluginShmError} and has a stable `code`; the classes live beside the
 * layer that throws them.
 *
 * @example
 * ```ts
 * import { PluginCrashedError, PluginShmError } from "./errors.ts";
 * const error = new PluginCrashedError("kv", 1, null, []);
 * console.assert(error instanceof PluginShmError && error.code === "plugin_crashed");
 * ```
 *
 * @module
 */

export { PluginShmError } from "./plugin_shm_error.ts";
export { NativeLibraryError, type NativeStatus, nativeStatusCodes, SegmentError } from "./native/errors.ts";
export {
  ChannelClosedError,
  type CloseReason,
  ConnectError,
  FrameCorruptError,
  MessageTooLargeError,
  ViewError,
  type ViewErrorCode,
} from "./transport/errors.ts";
export {
  CancelledError,
  DeadlineExceededError,
  HandshakeError,
  type HandshakeFailure,
  ProtocolError,
  RemoteError,
} from "./protocol/errors.ts";
export {
  ConfigError,
  DependencyError,
  HookError,
  HostClosedError,
  InspectError,
  LoadInterruptedError,
  ManifestError,
  type ManifestProblem,
  PermissionDeniedError,
  PluginCrashedError,
  PluginLimitError,
  PluginNotFoundError,
  PluginStalledError,
  ReloadError,
  SandboxError,
} from "./host/errors.ts";
