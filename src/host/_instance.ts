/**
 * One running instance of a plugin: its process, its connection and the
 * handshake that joins them. The host decides what to do with instances;
 * this file only makes them.
 *
 * @module
 */

import { randomBytes } from "node:crypto";
import { PluginCrashedError, SandboxError } from "./errors.ts";
import { HandshakeError } from "../protocol/errors.ts";
import { acceptHello, compressionThresholdBytesDefault, type VersionRange } from "../protocol/handshake.ts";
import { type Handler, RpcPeer } from "../protocol/rpc.ts";
import { listenTransport } from "../transport/factory.ts";
import type { Transport, TransportKind } from "../transport/transport.ts";
import { launchEnv } from "../protocol/launch.ts";
import type { Manifest } from "./manifest.ts";
import { type ExitStatus, type LogEntry, PluginProcess } from "./process.ts";
import type { InspectorEndpoint, LaunchPlan } from "./types.ts";
import { inspectorTarget } from "./_inspect.ts";

/**
 * How often a host's parked channel checks on its own that its plugin lives. The host learns of a plugin's
 * death from its exit (supervisor's onExit), so this is only a backstop; the default 1 s woke each idle
 * plugin's waiter thread in the host once a second for nothing.
 */
const hostLivenessCheckMs = 30_000;

/** What starting an instance needs. */
export interface InstanceOptions {
  transport: TransportKind;
  versions: VersionRange;
  heartbeatIntervalMs: number;
  handshakeTimeoutMs: number;
  ringBytes?: number;
  /** How a parked side of an shm connection is woken (see TransportOptions.wake). */
  wake?: "doorbell" | "futex" | "block";
  handlers: Record<string, Handler>;
  logger: (entry: LogEntry) => void;
  onEvent: (name: string, data: unknown) => void;
  /** The round trip of each heartbeat, in ms. */
  onHeartbeat?: (rttMs: number) => void;
  /** Reports an `onEvent` listener that threw (the connection stays up). */
  onListenerError: (error: unknown) => void;
  /** Builds the launch plan from the connection's launch variables. */
  plan: (launchEnv: Record<string, string>) => LaunchPlan;
  /** Called when the process has been spawned, before the handshake. */
  onSpawned?: (pid: number | undefined) => void;
  /** The runtime's inspector listens here (the plan carries the flag); see {@link InstanceInspector}. */
  inspect?: { endpoint: InspectorEndpoint; debugging: boolean };
}

/** An instance's inspector, when it was started under one. */
export interface InstanceInspector {
  readonly endpoint: InspectorEndpoint;
  /**
   * Asked for by a human (`load(name, {inspect})`): silence may be a breakpoint, so the instance is
   * never killed as stalled. False when the inspector is there for blame only (`blameStalls`).
   */
  readonly debugging: boolean;
  /** Where a debugger connects; resolved at start when debugging, else when first needed. */
  webSocketUrl?: string;
  devtoolsUrl?: string;
}

/**
 * A started, handshaken instance, as supervision sees it: a connection and
 * something that can exit and be signalled. An OS process is one kind; a
 * sandboxed or remote instance can stand in.
 */
export interface Instance {
  readonly id: number;
  /** The OS process id, when the instance is a local process. */
  readonly pid: number | undefined;
  /** Settles once, with how the instance ended. */
  readonly exited: Promise<ExitStatus>;
  /** How it ended, once it has. */
  readonly exitStatus: ExitStatus | undefined;
  /** The last lines it wrote to stderr, for crash reports. */
  readonly stderrTail: string[];
  /**
   * Asks it to end (SIGTERM), ends it (SIGKILL), or (SIGUSR1, a Node plugin started with an on-demand
   * inspector) opens its inspector; nothing once it has exited.
   */
  kill(signal: "SIGTERM" | "SIGKILL" | "SIGUSR1"): void;
  /** Waits up to `timeoutMs` for the exit; true if it exited. */
  waitForExit(timeoutMs: number): Promise<boolean>;
  /** The negotiated protocol version. */
  readonly protocolVersion: number;
  readonly peer: RpcPeer;
  /** The connection under `peer`; read by PluginHost.transportStats() for metrics. */
  readonly transport: Transport;
  readonly methods: string[];
  readonly description: string;
  /** The connection's read loop, started at once; settles when the connection ends. */
  readonly readLoop: Promise<void>;
  /** "running" until it is being stopped or has died. */
  state: "running" | "unresponsive" | "dying" | "stopping" | "dead";
  /** Memory-budget state, kept by _limits.ts. */
  readonly limits: InstanceLimits;
  /** Its runtime's inspector, when started under one. */
  readonly inspector?: InstanceInspector;
  /** True while the supervisor profiles it before a stall kill (_blame.ts). */
  blaming?: boolean;
}

/** Where an instance stands against its memory budget (see _limits.ts). */
export interface InstanceLimits {
  /** Stopped (SIGSTOP) for going over `memorySoftMiB`. */
  paused: boolean;
  /** The processes that were stopped, to continue exactly those. */
  pausedPids: number[];
  /** performance.now() of the last resume: silence while paused is not a stall. */
  resumedAt: number;
  /** host.resume() asked: not paused again until usage has fallen below the soft limit once. */
  pauseWaived: boolean;
  /** RSS of the tree at the last sample, bytes. */
  lastRssBytes: number;
}

let nextInstanceId = 1;

/** How long a lost connection waits for the process exit before failing calls without it. */
export const crashReportWaitMs = 1000;

/** Spawns the plugin, waits for it to connect and complete the handshake. */
export async function startInstance(manifest: Manifest, options: InstanceOptions): Promise<Instance> {
  const listener = await listenTransport(options.transport, {
    ringBytes: options.ringBytes,
    wake: options.wake,
    livenessCheckMs: hostLivenessCheckMs,
  });
  const token = randomBytes(32).toString("hex");
  let plan: LaunchPlan;
  try {
    plan = options.plan({
      [launchEnv.transport]: options.transport,
      [launchEnv.address]: listener.address,
      [launchEnv.secret]: listener.secret,
      [launchEnv.token]: token,
      [launchEnv.name]: manifest.name,
      ...(listener.doorbell
        ? { [launchEnv.doorbell]: listener.doorbell.path, [launchEnv.doorbellKey]: listener.doorbell.key }
        : {}),
      ...(listener.blockMicros ? { [launchEnv.blockMicros]: String(listener.blockMicros) } : {}),
    });
  } catch (error) {
    listener.close();
    throw error;
  }
  const process = new PluginProcess(manifest.name, plan, options.logger);
  options.onSpawned?.(process.pid);
  try {
    const accepted = listener.accept(options.handshakeTimeoutMs).catch((cause) => {
      throw new HandshakeError("timeout", `plugin did not connect: ${(cause as Error).message}`, { cause });
    });
    const transport = await raceExit(manifest, process, accepted, "connecting", options.handshakeTimeoutMs);
    const { hello, version, compression } = await raceExit(
      manifest,
      process,
      hello_(transport, token, options),
      "handshaking",
      options.handshakeTimeoutMs,
    );
    const inspector = options.inspect && await inspectorOf(manifest, process, options).catch((error) => {
      transport.close();
      throw error;
    });
    const peer = new RpcPeer(transport, {
      remoteName: manifest.name,
      handlers: options.handlers,
      heartbeatIntervalMs: options.heartbeatIntervalMs,
      heartbeatTimer: false, // The host's watchdog checks every instance from one timer (checkStalls).
      protocolVersion: version,
      compression,
      onEvent: options.onEvent,
      onHeartbeat: options.onHeartbeat,
      onListenerError: options.onListenerError,
      // A lost connection usually means the process died: report it as the
      // crash it is, with exit status and stderr, once the exit is seen.
      explainLoss: async (error) => {
        if (!(await process.waitForExit(crashReportWaitMs))) return error;
        const status = process.exitStatus!;
        return new PluginCrashedError(manifest.name, status.code, status.signal, process.stderrTail);
      },
    });
    return {
      id: nextInstanceId++,
      pid: process.pid,
      exited: process.exited,
      get exitStatus() {
        return process.exitStatus;
      },
      get stderrTail() {
        return process.stderrTail;
      },
      kill: (signal) => process.kill(signal),
      waitForExit: (timeoutMs) => process.waitForExit(timeoutMs),
      protocolVersion: version,
      peer,
      transport,
      readLoop: peer.run(),
      methods: hello.methods,
      description: `${hello.name} ${hello.version} on ${hello.runtime}, pid ${process.pid}`,
      state: "running",
      limits: { paused: false, pausedPids: [], resumedAt: 0, pauseWaived: false, lastRssBytes: 0 },
      ...(inspector ? { inspector } : {}),
    };
  } catch (error) {
    process.kill("SIGKILL");
    await process.exited;
    throw error;
  } finally {
    listener.close();
  }
}

/** The instance's inspector; a debugging one must answer now (its URL is what the user asked for). */
async function inspectorOf(
  manifest: Manifest,
  process: PluginProcess,
  options: InstanceOptions,
): Promise<InstanceInspector> {
  const { endpoint, debugging } = options.inspect!;
  if (!debugging) return { endpoint, debugging };
  const target = inspectorTarget(manifest.runtime, endpoint, options.handshakeTimeoutMs);
  return {
    endpoint,
    debugging,
    ...await raceExit(manifest, process, target, "starting its inspector", options.handshakeTimeoutMs),
  };
}

function hello_(transport: Transport, token: string, options: InstanceOptions) {
  return acceptHello(transport, {
    token,
    versions: options.versions,
    heartbeatIntervalMs: options.heartbeatIntervalMs,
    timeoutMs: options.handshakeTimeoutMs,
    // On by default where bytes cost time on the wire (TCP), off where a copy costs less than compressing (shm, unix).
    compression: options.transport === "tcp"
      ? { algorithm: "deflate", thresholdBytes: compressionThresholdBytesDefault }
      : undefined,
  }).catch((error) => {
    transport.close();
    throw error;
  });
}

/** pshm-launch's exit status when the sandbox could not be set up (zig/launcher/main.zig). */
export const launcherSetupFailedCode = 125;

/**
 * The kernel features the launcher reported missing with `"fatal":true` (one stderr line each:
 * `pshm-sandbox {"missing":"landlock","errno":38,"fatal":true}`), as "landlock (errno 38)".
 */
export function missingKernelFeatures(stderrLines: readonly string[]): string[] {
  const missing: string[] = [];
  for (const line of stderrLines) {
    if (!line.startsWith("pshm-sandbox {")) continue;
    try {
      const report = JSON.parse(line.slice("pshm-sandbox ".length));
      if (report.fatal === true) missing.push(`${report.missing} (errno ${report.errno})`);
    } catch {
      // Not the launcher's report: left to the crash message.
    }
  }
  return missing;
}

/** Fails fast when the plugin exits before `step` completes. */
async function raceExit<T>(
  manifest: Manifest,
  process: PluginProcess,
  step: Promise<T>,
  what: string,
  timeoutMs: number,
): Promise<T> {
  const exited = process.exited.then((status) => {
    const tail = process.stderrTail;
    const missing = status.code === launcherSetupFailedCode ? missingKernelFeatures(tail) : [];
    if (missing.length) {
      throw new SandboxError(
        "kernel_unsupported",
        `Plugin "${manifest.name}" cannot start sandboxed: this kernel lacks ${missing.join(", ")} ` +
          `(see docs/security.md for what the sandbox needs); upgrade the kernel or enable the feature, or pass ` +
          `sandbox: "best-effort" to PluginHost to run plugins with what the kernel has`,
      );
    }
    const how = status.signal ? `was killed by ${status.signal}` : `exited with code ${status.code}`;
    throw new HandshakeError(
      "exited",
      `Plugin "${manifest.name}" ${how} while ${what}` +
        (tail.length ? `; last stderr lines:\n  ${tail.join("\n  ")}` : "; it wrote nothing to stderr"),
    );
  });
  // Whichever loses the race settles later with nobody listening; mark both handled.
  step.catch(() => {});
  exited.catch(() => {});
  try {
    return await Promise.race([step, exited]);
  } catch (error) {
    if (error instanceof HandshakeError && error.code === "timeout") {
      throw new HandshakeError(
        "timeout",
        `Plugin "${manifest.name}" did not complete the handshake within ${timeoutMs} ms; ` +
          `check that its entry calls definePlugin()`,
        { cause: error },
      );
    }
    throw error;
  }
}
