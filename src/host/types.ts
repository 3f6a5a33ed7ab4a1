/**
 * The host's public vocabulary: lifecycle states and events, what `list()`
 * reports, and the collaborators a host takes as options (a verifier, a
 * launch planner, call instrumentation). Layers above the host (security,
 * observe, admin) import these types and are passed in; the host imports
 * none of them.
 *
 * @module
 */

import type { TransportKind, TransportStats } from "../transport/transport.ts";
import type { ManifestError } from "./errors.ts";
import type { Manifest } from "./manifest.ts";
import type { LogEntry } from "./process.ts";
import type { InspectEvent } from "./_inspect.ts";
import type { StallEvent } from "./_blame.ts";

export type { InspectEvent, StallEvent };

/** A plugin's state as a whole. */
export type PluginState =
  | "starting"
  | "running"
  | "restarting"
  | "reloading"
  | "draining"
  | "stopped"
  | "failed";

/** What a lifecycle event reports. */
export type LifecycleKind =
  | "starting"
  | "started"
  | "ready"
  | "unresponsive"
  | "crashed"
  | "restarting"
  | "reloading"
  | "reloaded"
  | "rolled-back"
  | "draining"
  | "failed"
  | "refused"
  | "paused"
  | "resumed"
  | "killed"
  | "stopped";

/** One lifecycle transition. */
export interface StateEvent {
  /** The plugin's name. */
  plugin: string;
  /** The instance concerned, or 0 for the plugin as a whole. */
  instance: number;
  /** What happened. */
  state: LifecycleKind;
  /** Milliseconds since the epoch. */
  at: number;
  /** Why, in words (an exit code, "asked", a file that changed, …). */
  reason: string;
}

/** An event a plugin emitted with `this.emit(name, data)`. */
export interface PluginEvent {
  /** The plugin that emitted it. */
  plugin: string;
  /** The event's name. */
  name: string;
  /** The event's data, as the plugin sent it (MessagePack-decoded). */
  data: unknown;
}

/** A listener threw; it was isolated and reported here. */
export interface ListenerErrorEvent {
  /** The event type the listener was subscribed to. */
  type: keyof HostEvents;
  /** What the listener threw. */
  error: unknown;
}

/** Something a plugin was not allowed to do (reported by the sandbox or the host). */
export interface PermissionDeniedEvent {
  /** The plugin's name. */
  plugin: string;
  /** The grant it lacked ("hostFunctions", "read", …). */
  permission: string;
  /** What it tried, with the grant to add to allow it. */
  detail: string;
  /** Milliseconds since the epoch. */
  at: number;
}

/** One reading of an instance's resources (RSS and CPU time of its whole process tree, from /proc). */
export interface ResourceEvent {
  /** The plugin's name. */
  plugin: string;
  /** The instance measured (ids are unique within this host process, from 1). */
  instance: number;
  /** The instance's process id. */
  pid: number;
  /** Resident memory of the instance's process and all its descendants, bytes. */
  rssBytes: number;
  /** User + system CPU time of those processes, seconds (descendants that already exited are not counted). */
  cpuSeconds: number;
  /** How many processes the tree has. */
  processes: number;
  /** True while the instance is paused for its soft memory limit. */
  paused: boolean;
  /** Milliseconds since the epoch. */
  at: number;
}

/** One serving instance's transport counters, as {@link PluginHost.transportStats} reads them. */
export interface InstanceTransportStats extends TransportStats {
  /** The plugin's name. */
  plugin: string;
  /** The instance (ids are unique within this host process, from 1). */
  instance: number;
  /** The instance's process id, when it has one. */
  pid: number | undefined;
  /** STREAM_DATA items the host sent to the instance (stream inputs). */
  streamItemsSent: number;
  /** STREAM_DATA items the host received from the instance (stream outputs). */
  streamItemsReceived: number;
  /** Frame bytes of those items, host to instance. */
  streamBytesSent: number;
  /** Frame bytes of those items, instance to host. */
  streamBytesReceived: number;
}

/** The round trip of one heartbeat (PING to PONG) of an instance. */
export interface HeartbeatEvent {
  /** The plugin's name. */
  plugin: string;
  /** The instance's process id, when it has one. */
  pid: number | undefined;
  /** The round trip from PING to PONG, in milliseconds. */
  rttMs: number;
  /** Milliseconds since the epoch. */
  at: number;
}

/** An instance crossed a memory limit of its manifest, and what the host did about it. */
export interface LimitEvent {
  /** The plugin's name. */
  plugin: string;
  /** The instance concerned (ids are unique within this host process, from 1). */
  instance: number;
  /** The instance's process id. */
  pid: number;
  /** `memorySoftMiB` or `memoryMiB`. */
  limit: "memorySoftMiB" | "memoryMiB";
  /** paused (SIGSTOP, above the soft limit), resumed (below it again, or asked), killed (above the hard limit). */
  action: "paused" | "resumed" | "killed";
  /** Resident memory of the instance's process tree when it crossed, in bytes. */
  rssBytes: number;
  /** The limit it crossed, in bytes. */
  limitBytes: number;
  /** Why it resumed: usage fell, or host.resume() asked. */
  reason?: "usage-fell" | "asked";
  /** Milliseconds since the epoch. */
  at: number;
}

/** A verifier refused a plugin before it was started. */
export interface RefusedEvent {
  /** The plugin's name. */
  plugin: string;
  /** Its directory. */
  dir: string;
  /** What the verifier threw (an IntegrityError, a SignatureError, …). */
  error: unknown;
  /** Milliseconds since the epoch. */
  at: number;
}

/** Every event type of {@link PluginHost.on} with its payload. */
export interface HostEvents {
  /** Every lifecycle transition of every plugin. */
  state: StateEvent;
  /** Every event a plugin emits. */
  "plugin-event": PluginEvent;
  /** Every line a plugin writes to stdout or stderr. */
  log: LogEntry;
  /** A listener of another event type threw. */
  "listener-error": ListenerErrorEvent;
  /** A plugin was refused something it was not granted. */
  "permission-denied": PermissionDeniedEvent;
  /** A verifier refused a plugin before it started. */
  refused: RefusedEvent;
  /** A resource reading of an instance, every resourceSampleMs. */
  resource: ResourceEvent;
  /** An instance crossed a memory limit. */
  limit: LimitEvent;
  /** The round trip of every heartbeat of every instance. */
  heartbeat: HeartbeatEvent;
  /** An instance started under its runtime's inspector (`load(name, {inspect})`): where to attach a debugger. */
  inspect: InspectEvent;
  /** An instance went silent past the stall timeout and grace and is being killed; with blame when profiled. */
  stall: StallEvent;
}

/** Options of {@link PluginHost.load}. */
export interface LoadOptions {
  /**
   * Start the plugin under its runtime's inspector on a loopback port: `true` for a free port, `{port}` for
   * that one. The "inspect" event carries the URL to attach Chrome DevTools or VS Code; while inspected, an
   * instance that is silent (paused at a breakpoint) is reported unresponsive but never killed as stalled.
   * Kept across restarts (crash restarts and `restart()`); a reload gets a fresh port while the old instance
   * still holds the given one.
   */
  inspect?: boolean | { port?: number };
}

/** A plugin's current picture, from {@link PluginHost.list}. */
export interface PluginInfo {
  /** The plugin's name, from its manifest. */
  name: string;
  /** The plugin's version, from its manifest. */
  version: string;
  /** The runtime it runs under. */
  runtime: Manifest["runtime"];
  /** Its lifecycle state now. */
  state: PluginState;
  /** Pid of the first serving instance. */
  pid: number | undefined;
  /** Pids of all its serving instances. */
  pids: number[];
  /** The transport its instances use. */
  transport: TransportKind;
  /** The method names its HELLO announced. */
  methods: string[];
  /** Its directory. */
  dir: string;
  /** Crashes since it was loaded. */
  crashes: number;
  /** The protocol version the first serving instance negotiated, or undefined. */
  protocolVersion?: number;
  /** Its recent lifecycle transitions, oldest first. */
  history: StateEvent[];
}

/** One directory the host looked at, with its manifest or what is wrong with it. */
export interface Discovered {
  /** The directory looked at. */
  dir: string;
  /** Its manifest, when plugin.json is valid. */
  manifest?: Manifest;
  /** What is wrong with plugin.json, when it is not. */
  error?: ManifestError;
}

/** What happens to a call made while its plugin restarts or reloads. */
export type CallPolicy = "wait" | "fail";

/** A verifier's answer: run, optionally from a private verified copy of the plugin's directory. */
export interface VerifyResult {
  /** A directory holding the verified bytes; the plugin runs from it instead of its own dir. */
  runDir?: string;
}

/**
 * Says yes or no before every spawn (load, restart, reload). A refusal is a
 * thrown error (e.g. an IntegrityError), which `load()` rethrows.
 */
export interface PluginVerifier {
  /** Checks the plugin before it is started; throws to refuse, returns to allow. */
  verify(manifest: Manifest): Promise<VerifyResult> | VerifyResult;
}

/** How to start one plugin process. */
export interface LaunchPlan {
  /** The program to run (the runtime binary, or the sandbox launcher). */
  command: string;
  /** Its arguments. */
  args: string[];
  /** The whole environment of the plugin: nothing of the host's is inherited. */
  env: Record<string, string>;
  /** The working directory (the plugin's directory, or its verified copy). */
  cwd: string;
  /**
   * Where the runtime's inspector listens, when the plugin is started under it (`args` then carry the
   * runtime's `--inspect` flag). The sandbox lets the plugin bind exactly this port; a planner that
   * rebuilds the arguments keeps the flag and this field together.
   */
  inspect?: InspectorEndpoint;
}

/** A loopback address an inspector listens on. */
export interface InspectorEndpoint {
  /** Always the loopback address 127.0.0.1. */
  host: string;
  /** The TCP port. */
  port: number;
  /** Bun only: the WebSocket path, a per-launch secret (Deno and Node choose theirs). */
  path?: string;
  /**
   * Node only: the port is set (`--inspect-port`) but nothing listens until the host sends SIGUSR1, which
   * Node answers even in a busy loop. Blame uses it so a Node plugin has no open inspector until it stalls.
   */
  onDemand?: boolean;
}

/** Turns a manifest's grants into a launch plan, starting from the host's default plan. */
export interface LaunchPlanner {
  /** Returns the plan to use for `manifest`, given the host's default `base` (which it may change or replace). */
  plan(manifest: Manifest, base: LaunchPlan): LaunchPlan;
  /**
   * True when this planner applies the OS sandbox itself (sandboxPlanner): the host's own sandbox
   * (option `sandbox`) then stays out. Any other planner runs first and the host sandboxes its plan.
   */
  readonly sandboxes?: boolean;
}

/**
 * Wraps every call the host routes. `begin` returns a state handed to `end`.
 * Unset, the call path does no extra work.
 */
export interface CallInstrumentation {
  /** Called when the host routes a call; what it returns is handed to `end`. */
  begin(plugin: string, method: string): unknown;
  /** Called once when that call settles: `state` is what `begin` returned, `error` is set when it failed. */
  end(plugin: string, method: string, state: unknown, error?: unknown): void;
}

/** A traced call's span, as the host sees it: what to send, and how to end it. */
export interface CallSpan {
  /** The W3C traceparent to send with the request; undefined sends none. */
  readonly traceparent: string | undefined;
  /** Ends the span once the call settled; `error` is set when it failed. */
  end(error?: unknown): void;
}

/**
 * Carries W3C trace context through the host (observe/tracing.ts implements
 * it with @opentelemetry/api). Unset, the call path does no extra work.
 */
export interface CallTracing {
  /**
   * A call the host routes to `plugin` is starting: its client span, or
   * undefined when nothing would record it (no SDK registered): the call then
   * costs nothing more than an untraced one.
   */
  startCall(plugin: string, method: string): CallSpan | undefined;
  /**
   * Runs host function `name`, called by `plugin` with `traceparent` (if the
   * plugin sent one), inside a span that calls made from `run` descend from.
   */
  serveHostFunction(plugin: string, name: string, traceparent: string | undefined, run: () => unknown): unknown;
}
