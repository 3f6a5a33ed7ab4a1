/**
 * The host's public vocabulary: lifecycle states and events, what `list()`
 * reports, and the collaborators a host takes as options (a verifier, a
 * launch planner, call instrumentation). Layers above the host (security,
 * observe, admin) import these types and are passed in; the host imports
 * none of them.
 *
 * @module
 */

import type { TransportKind } from "../transport/transport.ts";
import type { ManifestError } from "./errors.ts";
import type { Manifest } from "./manifest.ts";
import type { LogEntry } from "./process.ts";

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
  plugin: string;
  /** The instance concerned, or 0 for the plugin as a whole. */
  instance: number;
  state: LifecycleKind;
  /** Milliseconds since the epoch. */
  at: number;
  reason: string;
}

/** An event a plugin emitted with `this.emit(name, data)`. */
export interface PluginEvent {
  plugin: string;
  name: string;
  data: unknown;
}

/** A listener threw; it was isolated and reported here. */
export interface ListenerErrorEvent {
  /** The event type the listener was subscribed to. */
  type: keyof HostEvents;
  error: unknown;
}

/** Something a plugin was not allowed to do (reported by the sandbox or the host). */
export interface PermissionDeniedEvent {
  plugin: string;
  permission: string;
  detail: string;
  at: number;
}

/** One reading of an instance's resources (RSS and CPU time of its whole process tree, from /proc). */
export interface ResourceEvent {
  plugin: string;
  instance: number;
  pid: number;
  /** Resident memory of the instance's process and all its descendants, bytes. */
  rssBytes: number;
  /** User + system CPU time of those processes, seconds (descendants that already exited are not counted). */
  cpuSeconds: number;
  /** How many processes the tree has. */
  processes: number;
  /** True while the instance is paused for its soft memory limit. */
  paused: boolean;
  at: number;
}

/** The round trip of one heartbeat (PING to PONG) of an instance. */
export interface HeartbeatEvent {
  plugin: string;
  pid: number | undefined;
  rttMs: number;
  at: number;
}

/** An instance crossed a memory limit of its manifest, and what the host did about it. */
export interface LimitEvent {
  plugin: string;
  instance: number;
  pid: number;
  /** `memorySoftMiB` or `memoryMiB`. */
  limit: "memorySoftMiB" | "memoryMiB";
  /** paused (SIGSTOP, above the soft limit), resumed (below it again, or asked), killed (above the hard limit). */
  action: "paused" | "resumed" | "killed";
  rssBytes: number;
  limitBytes: number;
  /** Why it resumed: usage fell, or host.resume() asked. */
  reason?: "usage-fell" | "asked";
  at: number;
}

/** A verifier refused a plugin before it was started. */
export interface RefusedEvent {
  plugin: string;
  dir: string;
  error: unknown;
  at: number;
}

/** Every event type of {@link PluginHost.on} with its payload. */
export interface HostEvents {
  state: StateEvent;
  "plugin-event": PluginEvent;
  log: LogEntry;
  "listener-error": ListenerErrorEvent;
  "permission-denied": PermissionDeniedEvent;
  refused: RefusedEvent;
  resource: ResourceEvent;
  limit: LimitEvent;
  heartbeat: HeartbeatEvent;
}

/** A plugin's current picture, from {@link PluginHost.list}. */
export interface PluginInfo {
  name: string;
  version: string;
  runtime: Manifest["runtime"];
  state: PluginState;
  /** Pid of the first serving instance. */
  pid: number | undefined;
  pids: number[];
  transport: TransportKind;
  methods: string[];
  dir: string;
  crashes: number;
  /** The protocol version the first serving instance negotiated, or undefined. */
  protocolVersion?: number;
  history: StateEvent[];
}

/** One directory the host looked at, with its manifest or what is wrong with it. */
export interface Discovered {
  dir: string;
  manifest?: Manifest;
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
  verify(manifest: Manifest): Promise<VerifyResult> | VerifyResult;
}

/** How to start one plugin process. */
export interface LaunchPlan {
  command: string;
  args: string[];
  /** The whole environment of the plugin: nothing of the host's is inherited. */
  env: Record<string, string>;
  cwd: string;
}

/** Turns a manifest's grants into a launch plan, starting from the host's default plan. */
export interface LaunchPlanner {
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
  begin(plugin: string, method: string): unknown;
  end(plugin: string, method: string, state: unknown, error?: unknown): void;
}

/** A traced call's span, as the host sees it: what to send, and how to end it. */
export interface CallSpan {
  /** The W3C traceparent to send with the request; undefined sends none. */
  readonly traceparent: string | undefined;
  end(error?: unknown): void;
}

/**
 * Carries W3C trace context through the host (observe/tracing.ts implements
 * it with @opentelemetry/api). Unset, the call path does no extra work.
 */
export interface CallTracing {
  /** A call the host routes to `plugin` is starting: its client span. */
  startCall(plugin: string, method: string): CallSpan;
  /**
   * Runs host function `name`, called by `plugin` with `traceparent` (if the
   * plugin sent one), inside a span that calls made from `run` descend from.
   */
  serveHostFunction(plugin: string, name: string, traceparent: string | undefined, run: () => unknown): unknown;
}
