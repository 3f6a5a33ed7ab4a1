/**
 * The host's options, their defaults and their range checks. Every option is
 * checked when the host is made: a wrong value throws a RangeError (or a
 * TypeError for a wrong type) that names the option, the allowed range and
 * what was given, instead of misbehaving later (a heartbeat of 0 ms would get
 * every plugin killed as stalled).
 *
 * @module
 */

import { tmpdir } from "node:os";
import { join } from "node:path";
import { protocolVersions, type VersionRange } from "../protocol/handshake.ts";
import type { TransportKind } from "../transport/transport.ts";
import type { LogEntry } from "./process.ts";
import type { CallInstrumentation, CallPolicy, CallTracing, LaunchPlanner, PluginVerifier } from "./types.ts";
import type { Narrow, SandboxMode } from "./sandbox.ts";

/** Options for {@link PluginHost}. */
export interface PluginHostOptions {
  /** Directories to look in: each is a plugin directory or holds plugin directories. */
  dirs?: string[];
  /** Transport for plugins without an entry in `transports`. Default "shm". */
  transport?: TransportKind;
  /** Transport per plugin name. */
  transports?: Record<string, TransportKind>;
  /** Instances per plugin name (a pool); default 1, at most {@link instancesMax}. */
  instances?: Record<string, number>;
  /** Functions plugins may call with `this.callHost(name, ...args)`. */
  hostFunctions?: Record<string, (...args: never[]) => unknown>;
  /** Receives every line plugins write to stdout and stderr. Default: stderr, tagged. */
  logger?: (entry: LogEntry) => void;
  /** Protocol versions the host accepts. Default: this release's. */
  protocol?: VersionRange;
  /**
   * Heartbeat interval, both ways (sent to plugins in WELCOME). Default 2000 ms
   * ({@link hostHeartbeatIntervalMsDefault}); 10 ms – 10 min.
   */
  heartbeatIntervalMs?: number;
  /** Silence after which an instance is marked unresponsive. Default 3 × heartbeat (6 s); more than one heartbeat. */
  stallTimeoutMs?: number;
  /** Further silence before an unresponsive instance is killed and restarted. Default 1000 ms. */
  stallGraceMs?: number;
  /** Time for a started plugin to connect and complete the handshake. Default 10 s. */
  handshakeTimeoutMs?: number;
  /** Time a stopping plugin gets to drain, then again before SIGTERM, then SIGKILL. Default 3 s. */
  stopTimeoutMs?: number;
  /** Restart crashed instances. Default true. */
  restart?: boolean;
  /** First restart delay; doubles per consecutive crash, ±20 % jitter. Default 50 ms. */
  restartBackoffMs?: number;
  /** Largest restart delay. Default 10 s; at least `restartBackoffMs`. */
  restartBackoffMsMax?: number;
  /** Crashes within `crashWindowMs` after which a plugin is marked failed. Default 5. */
  crashLimit?: number;
  /** Default 60 s. */
  crashWindowMs?: number;
  /** Calls made while a plugin restarts or reloads: "wait" (default) up to their deadline or `callWaitMs`, or "fail" at once. */
  callPolicy?: CallPolicy;
  /** How long a waiting call waits when it has no deadline. Default 10 s. */
  callWaitMs?: number;
  /** Ring size per direction for shm plugins. */
  ringBytes?: number;
  /**
   * How a parked shm side is woken: "futex" (default) through the native waiter thread; "doorbell" through
   * a unix socket each runtime's own poller watches, set up per instance at launch: about 3× faster to wake
   * a parked plugin (≈ a unix socket), but half the throughput with 64 busy plugins (bench/RESULTS.md). A
   * plugin that does not connect the doorbell is woken through the futex either way (docs/protocol.md, "Doorbell").
   * "block": the futex, plus a bounded blocking park on both sides (the host while it awaits an answer, up to
   * 1 ms; a plugin that answered everything, up to 10 ms): a parked plugin is woken in one futex hop, at the
   * cost of the blocked side's timers and I/O waiting up to that bound (bench/wake_bench.ts, `wake.cross`).
   */
  wake?: "doorbell" | "futex" | "block";
  /**
   * How often each instance's memory (RSS of its process tree) and CPU time are read from /proc, for the
   * manifest's `limits.memorySoftMiB` / `limits.memoryMiB` and for "resource" listeners. Default 100 ms
   * (a crossing is acted on within about one interval); 10 ms – 1 min. Plugins without memory limits are
   * not sampled unless someone listens for "resource" events.
   */
  resourceSampleMs?: number;
  /** Environment variables every plugin gets on top of the scrubbed minimum (see launch_plan.ts). */
  env?: Record<string, string>;
  /** Config values per plugin name, checked against each manifest's `config` schema at load. */
  config?: Record<string, Record<string, unknown>>;
  /** A JSON file `{"<plugin>": {…}}` with config values for plugins without an entry in `config`. */
  configFile?: string;
  /** Says yes or no before every spawn; see {@link PluginVerifier}. */
  verifier?: PluginVerifier;
  /** Turns manifest grants into the launch plan (argv, env, cwd); see {@link LaunchPlanner}. */
  launchPlanner?: LaunchPlanner;
  /**
   * The OS sandbox every plugin starts in (pshm-launch: Landlock, seccomp, rlimits, a PID namespace; Deno
   * flags from the grants). Default `"required"`: a platform or kernel that lacks it refuses plugins with a
   * SandboxError saying so; `"best-effort"` runs them with what there is; `"off"` runs no launcher.
   * A `launchPlanner` that sandboxes itself (sandboxPlanner) takes its place. See docs/security.md.
   */
  sandbox?: SandboxMode;
  /**
   * Narrows each plugin's grants and limits (by name, or a function of the manifest): a grant kind given here
   * keeps only the entries listed that the manifest also asks for; a limit is the smaller of the two. Never widens.
   */
  narrow?: Narrow;
  /** Wraps every routed call; unset, the call path does no extra work. */
  instrumentation?: CallInstrumentation;
  /** Carries trace context into requests and host functions; unset, the call path does no extra work. */
  tracing?: CallTracing;
  /**
   * Blame for a stall: before killing an instance that went silent, take a CPU profile of it through its
   * runtime's inspector, pause it once to read its stack, save the profile under `profileDir` and name the
   * busy functions in the "stall" event and the "killed" lifecycle event. Default false. When on, every Deno
   * plugin starts with its inspector listening on a random loopback port that the sandbox lets it bind: an
   * unauthenticated port any local process could connect to (see docs/debugging.md). A Node plugin only gets
   * the port and opens it when the host sends SIGUSR1 at a stall. Bun's inspector cannot profile a busy
   * plugin, so Bun plugins start without one and their stall event says so.
   */
  blameStalls?: boolean;
  /** Where `blameStalls` saves `.cpuprofile` files. Default `<tmpdir>/plugin-shm-profiles`. */
  profileDir?: string;
  /** How long `blameStalls` samples a stalled instance before it is killed. Default 300 ms; 10 ms – 10 s. */
  blameSampleMs?: number;
}

/** Default {@link PluginHostOptions.blameSampleMs}. */
export const blameSampleMsDefault = 300;
/** Longest {@link PluginHostOptions.blameSampleMs}: the stalled plugin's calls wait that much longer to fail. */
export const blameSampleMsMax = 10_000;

/** Default {@link PluginHostOptions.handshakeTimeoutMs}. */
export const handshakeTimeoutMsDefault = 10_000;
/** Default {@link PluginHostOptions.stopTimeoutMs}. */
export const stopTimeoutMsDefault = 3_000;
/** Default {@link PluginHostOptions.stallGraceMs}. */
export const stallGraceMsDefault = 1_000;
/** Default {@link PluginHostOptions.restartBackoffMs}. */
export const restartBackoffMsDefault = 50;
/** Default {@link PluginHostOptions.restartBackoffMsMax}. */
export const restartBackoffMsMaxDefault = 10_000;
/** Default {@link PluginHostOptions.crashLimit}. */
export const crashLimitDefault = 5;
/** Default {@link PluginHostOptions.crashWindowMs}. */
export const crashWindowMsDefault = 60_000;
/** Default {@link PluginHostOptions.callWaitMs}. */
export const callWaitMsDefault = 10_000;
/** Most instances one plugin may run. */
export const instancesMax = 64;
/** Default of `resourceSampleMs`: memory limits are acted on within about this long of a crossing. */
export const resourceSampleMsDefault = 100;
/** Longest any of the host's durations may be: one day. */
export const durationMsMax = 86_400_000;
/**
 * Default {@link PluginHostOptions.heartbeatIntervalMs}: 2 s, so a hung plugin is marked unresponsive after 6 s.
 * Each heartbeat wakes every idle plugin once (it bumps its heartbeat word from its event loop), about 0.014 % of
 * a core per Deno plugin here: 64 idle plugins used 2.6 % of a core in all at 1 s, 1.8 % at 2 s (bench/RESULTS.md).
 */
export const hostHeartbeatIntervalMsDefault = 2000;
/** Shortest heartbeat: a faster one costs CPU for nothing. */
export const heartbeatIntervalMsMin = 10;
/** Longest heartbeat: ten minutes. */
export const heartbeatIntervalMsMax = 600_000;

/** Options with every default filled in and every value checked. */
export interface ResolvedOptions {
  dirs: string[];
  transport: TransportKind;
  transports: Record<string, TransportKind>;
  instances: Record<string, number>;
  hostFunctions: Record<string, (...args: never[]) => unknown>;
  logger: ((entry: LogEntry) => void) | undefined;
  protocol: VersionRange;
  heartbeatIntervalMs: number;
  stallTimeoutMs: number;
  stallGraceMs: number;
  handshakeTimeoutMs: number;
  stopTimeoutMs: number;
  restart: boolean;
  restartBackoffMs: number;
  restartBackoffMsMax: number;
  crashLimit: number;
  crashWindowMs: number;
  callPolicy: CallPolicy;
  callWaitMs: number;
  ringBytes: number | undefined;
  wake: "doorbell" | "futex" | "block" | undefined;
  resourceSampleMs: number;
  env: Record<string, string>;
  config: Record<string, Record<string, unknown>>;
  configFile: string | undefined;
  verifier: PluginVerifier | undefined;
  launchPlanner: LaunchPlanner | undefined;
  sandbox: SandboxMode;
  narrow: Narrow | undefined;
  instrumentation: CallInstrumentation | undefined;
  tracing: CallTracing | undefined;
  blameStalls: boolean;
  profileDir: string;
  blameSampleMs: number;
}

const transportKinds: readonly string[] = ["shm", "unix", "tcp"];

function range(name: string, value: number | undefined, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`PluginHost option ${name} must be an integer from ${min} to ${max}, got ${String(value)}`);
  }
  return value;
}

function transportKind(name: string, value: unknown): TransportKind {
  if (!transportKinds.includes(value as string)) {
    throw new TypeError(`PluginHost option ${name} must be "shm", "unix" or "tcp", got ${JSON.stringify(value)}`);
  }
  return value as TransportKind;
}

function record<T>(name: string, value: Record<string, T> | undefined, check: (key: string, v: T) => T) {
  if (value === undefined) return {};
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new TypeError(`PluginHost option ${name} must be an object keyed by plugin name`);
  }
  return Object.fromEntries(Object.entries(value).map(([key, v]) => [key, check(key, v)]));
}

function versions(value: VersionRange | undefined): VersionRange {
  if (value === undefined) return protocolVersions;
  const ok = Array.isArray(value) && value.length === 2 && value.every((v) => Number.isInteger(v) && v >= 0) &&
    value[0] <= value[1];
  if (!ok) {
    throw new RangeError(`PluginHost option protocol must be [oldest, newest] versions, got ${JSON.stringify(value)}`);
  }
  return value;
}

function ringBytes(value: number | undefined): number | undefined {
  if (value === undefined) return undefined;
  const ok = Number.isInteger(value) && value >= 4096 && value <= 2 ** 30 && (value & (value - 1)) === 0;
  if (!ok) {
    throw new RangeError(`PluginHost option ringBytes must be a power of two from 4096 to 2^30, got ${value}`);
  }
  return value;
}

function flag(name: string, value: unknown): boolean {
  if (value !== undefined && typeof value !== "boolean") {
    throw new TypeError(`PluginHost option ${name} must be true or false, got ${JSON.stringify(value)}`);
  }
  return value ?? false;
}

function directory(name: string, value: unknown): string | undefined {
  if (value !== undefined && (typeof value !== "string" || value === "")) {
    throw new TypeError(`PluginHost option ${name} must be a directory path, got ${JSON.stringify(value)}`);
  }
  return value;
}

function wakeOption(
  value: "doorbell" | "futex" | "block" | undefined,
): "doorbell" | "futex" | "block" | undefined {
  if (value === undefined || value === "doorbell" || value === "futex" || value === "block") return value;
  throw new TypeError(
    `PluginHost option wake must be "doorbell", "futex" or "block", got ${JSON.stringify(value)}`,
  );
}

function configFile(value: string | undefined): string | undefined {
  if (value !== undefined && (typeof value !== "string" || value === "")) {
    throw new TypeError(`PluginHost option configFile must be a file path, got ${JSON.stringify(value)}`);
  }
  return value;
}

/** Checks every option and fills in the defaults. */
export function resolveOptions(options: PluginHostOptions): ResolvedOptions {
  if (typeof options !== "object" || options === null) throw new TypeError("PluginHost options must be an object");
  const heartbeatIntervalMs = range(
    "heartbeatIntervalMs",
    options.heartbeatIntervalMs,
    hostHeartbeatIntervalMsDefault,
    heartbeatIntervalMsMin,
    heartbeatIntervalMsMax,
  );
  const restartBackoffMs = range(
    "restartBackoffMs",
    options.restartBackoffMs,
    restartBackoffMsDefault,
    0,
    durationMsMax,
  );
  const callPolicy = options.callPolicy ?? "wait";
  if (callPolicy !== "wait" && callPolicy !== "fail") {
    throw new TypeError(`PluginHost option callPolicy must be "wait" or "fail", got ${JSON.stringify(callPolicy)}`);
  }
  if (options.dirs !== undefined && (!Array.isArray(options.dirs) || options.dirs.some((d) => typeof d !== "string"))) {
    throw new TypeError("PluginHost option dirs must be an array of directory paths");
  }
  return {
    dirs: options.dirs ?? [],
    transport: options.transport === undefined ? "shm" : transportKind("transport", options.transport),
    transports: record("transports", options.transports, (k, v) => transportKind(`transports.${k}`, v)),
    instances: record("instances", options.instances, (k, v) => range(`instances.${k}`, v, 1, 1, instancesMax)),
    hostFunctions: record("hostFunctions", options.hostFunctions, (k, v) => {
      if (typeof v !== "function") throw new TypeError(`PluginHost option hostFunctions.${k} must be a function`);
      return v;
    }),
    logger: options.logger,
    protocol: versions(options.protocol),
    heartbeatIntervalMs,
    // Silence shorter than a heartbeat would call every healthy plugin stalled.
    stallTimeoutMs: range(
      "stallTimeoutMs",
      options.stallTimeoutMs,
      3 * heartbeatIntervalMs,
      heartbeatIntervalMs + 1,
      durationMsMax,
    ),
    stallGraceMs: range("stallGraceMs", options.stallGraceMs, stallGraceMsDefault, 0, durationMsMax),
    handshakeTimeoutMs: range(
      "handshakeTimeoutMs",
      options.handshakeTimeoutMs,
      handshakeTimeoutMsDefault,
      1,
      durationMsMax,
    ),
    stopTimeoutMs: range("stopTimeoutMs", options.stopTimeoutMs, stopTimeoutMsDefault, 0, durationMsMax),
    restart: options.restart ?? true,
    restartBackoffMs,
    restartBackoffMsMax: range(
      "restartBackoffMsMax",
      options.restartBackoffMsMax,
      Math.max(restartBackoffMs, restartBackoffMsMaxDefault),
      restartBackoffMs,
      durationMsMax,
    ),
    crashLimit: range("crashLimit", options.crashLimit, crashLimitDefault, 1, 1_000_000),
    crashWindowMs: range("crashWindowMs", options.crashWindowMs, crashWindowMsDefault, 1, durationMsMax),
    callPolicy,
    callWaitMs: range("callWaitMs", options.callWaitMs, callWaitMsDefault, 0, durationMsMax),
    ringBytes: ringBytes(options.ringBytes),
    wake: wakeOption(options.wake),
    resourceSampleMs: range("resourceSampleMs", options.resourceSampleMs, resourceSampleMsDefault, 10, 60_000),
    env: record("env", options.env, (k, v) => {
      if (typeof v !== "string") throw new TypeError(`PluginHost option env.${k} must be a string`);
      return v;
    }),
    config: record("config", options.config, (k, v) => {
      if (typeof v !== "object" || v === null || Array.isArray(v)) {
        throw new TypeError(`PluginHost option config.${k} must be an object of settings`);
      }
      return v;
    }),
    configFile: configFile(options.configFile),
    verifier: options.verifier,
    launchPlanner: options.launchPlanner,
    sandbox: sandboxMode(options.sandbox),
    narrow: narrowOption(options.narrow),
    instrumentation: options.instrumentation,
    tracing: options.tracing,
    blameStalls: flag("blameStalls", options.blameStalls),
    profileDir: directory("profileDir", options.profileDir) ?? join(tmpdir(), "plugin-shm-profiles"),
    blameSampleMs: range("blameSampleMs", options.blameSampleMs, blameSampleMsDefault, 10, blameSampleMsMax),
  };
}

const sandboxModes: readonly SandboxMode[] = ["required", "best-effort", "off"];

function sandboxMode(value: unknown): SandboxMode {
  if (value === undefined) return "required";
  if (!sandboxModes.includes(value as SandboxMode)) {
    throw new RangeError(
      `PluginHost option sandbox must be one of ${sandboxModes.map((m) => `"${m}"`).join(", ")}; got ${
        JSON.stringify(value)
      }`,
    );
  }
  return value as SandboxMode;
}

function narrowOption(value: unknown): Narrow | undefined {
  if (value === undefined || typeof value === "function") return value as Narrow | undefined;
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new TypeError(
      "PluginHost option narrow must be an object keyed by plugin name, or a function of the manifest",
    );
  }
  return value as Narrow;
}
