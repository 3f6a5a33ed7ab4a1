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
  type Doorbell,
  messageBytesMaxDefault,
  messageBytesMaxLimit,
  ShmChannel,
  type ShmChannelOptions,
  socketDoorbell,
  spinMicrosDefault,
  viewsHeldMax,
} from "./src/transport/shm_channel.ts";
export { type CreatedSegment, getNative, libraryEnv, Native, type RuntimeName } from "./src/native/native.ts";
export {
  CancelledError,
  ChannelClosedError,
  type CloseReason,
  ConfigError,
  ConnectError,
  DeadlineExceededError,
  DependencyError,
  FrameCorruptError,
  HandshakeError,
  type HandshakeFailure,
  HookError,
  HostClosedError,
  InspectError,
  LoadInterruptedError,
  ManifestError,
  type ManifestProblem,
  MessageTooLargeError,
  NativeLibraryError,
  type NativeStatus,
  nativeStatusCodes,
  PermissionDeniedError,
  PluginCrashedError,
  PluginLimitError,
  PluginNotFoundError,
  PluginShmError,
  PluginStalledError,
  ProtocolError,
  ReloadError,
  RemoteError,
  SandboxError,
  SegmentError,
  ViewError,
  type ViewErrorCode,
} from "./src/errors.ts";
export type { Transport, TransportKind, TransportListener, TransportStats } from "./src/transport/transport.ts";
export { connectTransport, listenTransport, type TransportOptions } from "./src/transport/factory.ts";
export { StreamTransport } from "./src/transport/stream_transport.ts";
export { PluginHost, watchDebounceMsDefault } from "./src/host/host.ts";
export { type ConfigApplied, configApplyMs } from "./src/host/_configure.ts";
export { configBytesMax } from "./src/host/_config.ts";
export {
  hookDeadlineMsDefault,
  type HookFailure,
  type HookPolicy,
  type HookResult,
  type RunHookOptions,
} from "./src/host/_hooks.ts";
export { dependencyDepthMax } from "./src/host/_deps.ts";
export {
  blameSampleMsDefault,
  blameSampleMsMax,
  callWaitMsDefault,
  crashLimitDefault,
  crashWindowMsDefault,
  handshakeTimeoutMsDefault,
  type PluginHostOptions,
  resourceSampleMsDefault,
  restartBackoffMsDefault,
  restartBackoffMsMaxDefault,
  stallGraceMsDefault,
  stopTimeoutMsDefault,
} from "./src/host/options.ts";
export type {
  CallInstrumentation,
  CallPolicy,
  CallSpan,
  CallTracing,
  Discovered,
  HeartbeatEvent,
  HostEvents,
  InspectEvent,
  InspectorEndpoint,
  InstanceTransportStats,
  LaunchPlan,
  LaunchPlanner,
  LifecycleKind,
  LimitEvent,
  ListenerErrorEvent,
  LoadOptions,
  PermissionDeniedEvent,
  PluginEvent,
  PluginInfo,
  PluginState,
  PluginVerifier,
  RefusedEvent,
  ResourceEvent,
  StallEvent,
  StateEvent,
  VerifyResult,
} from "./src/host/types.ts";
export {
  type Blame,
  type BlameFrame,
  blameFramesMax,
  type BlameFunction,
  blameFunctionsMax,
} from "./src/host/_blame.ts";
export { defaultLaunchPlan, inheritedEnv, launchEntry, launchEntryFor, pathMinimal } from "./src/host/launch_plan.ts";
export { exitCodeNotLaunched, launchEnv, reservedMethods } from "./src/protocol/launch.ts";
export {
  loadManifest,
  type Manifest,
  manifestFile,
  type ManifestSchemaOptions,
  type PluginRuntime,
  runtimes,
} from "./src/host/manifest.ts";
export type { Limits, Permissions } from "./src/host/permissions_schema.ts";
export type { Narrow, SandboxMode, SandboxNarrowing } from "./src/host/sandbox.ts";
export type { LogEntry } from "./src/host/process.ts";
export {
  type CallObserver,
  type CallOptions,
  type Handler,
  type HandlerContext,
  type PluginClient,
  RpcPeer,
  type RpcPeerOptions,
  type StreamHandler,
  type StreamStats,
} from "./src/protocol/rpc.ts";
export { negotiateVersion, protocolVersions, type VersionRange } from "./src/protocol/handshake.ts";
