/**
 * PluginHost: discovers plugins, runs each as one or more instances (each its
 * own process), routes calls to the least-loaded instance, and supervises:
 * crashed instances restart with exponential backoff until a crash-loop
 * limit, silent ones are killed and restarted, reloads swap instances without
 * failing a call, and stops drain before they escalate to signals. Every
 * transition is an event with a timestamp and a reason, kept per plugin.
 *
 * @module
 */

import { existsSync, readdirSync, statSync, watch } from "node:fs";
import { clearInterval, setInterval } from "node:timers";
import { join, resolve } from "node:path";
import {
  ChannelClosedError,
  type ManifestError,
  PluginCrashedError,
  PluginNotFoundError,
  PluginStalledError,
  ProtocolError,
  ReloadError,
} from "../errors.ts";
import { protocolVersions, type VersionRange } from "../protocol/handshake.ts";
import { type CallOptions, type Handler, heartbeatIntervalMsDefault } from "../protocol/rpc.ts";
import type { TransportKind } from "../transport/transport.ts";
import type { PluginClient } from "../plugin/plugin.ts";
import { loadManifest, type Manifest, manifestFile } from "./manifest.ts";
import type { LogEntry } from "./process.ts";
import { type Instance, startInstance } from "./_instance.ts";

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

/** A plugin's current picture, from {@link PluginHost.list}. */
export interface PluginInfo {
  name: string;
  version: string;
  runtime: "deno" | "bun" | "node";
  state: PluginState;
  /** Pid of the first serving instance. */
  pid: number | undefined;
  pids: number[];
  transport: TransportKind;
  methods: string[];
  dir: string;
  crashes: number;
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

/** Options for {@link PluginHost}. */
export interface PluginHostOptions {
  /** Directories to look in: each is a plugin directory or holds plugin directories. */
  dirs?: string[];
  /** Transport for plugins without an entry in `transports`. Default "shm". */
  transport?: TransportKind;
  /** Transport per plugin name. */
  transports?: Record<string, TransportKind>;
  /** Instances per plugin name (a pool); default 1. */
  instances?: Record<string, number>;
  /** Functions plugins may call with `this.callHost(name, ...args)`. */
  hostFunctions?: Record<string, (...args: never[]) => unknown>;
  /** Receives every line plugins write to stdout and stderr. Default: stderr, tagged. */
  logger?: (entry: LogEntry) => void;
  /** Protocol versions the host accepts. Default: this release's. */
  protocol?: VersionRange;
  /** Heartbeat interval, both ways. Default 1000 ms. */
  heartbeatIntervalMs?: number;
  /** Silence after which an instance is marked unresponsive. Default 3 × heartbeat. */
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
  /** Largest restart delay. Default 10 s. */
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
}

/** Default {@link PluginHostOptions.handshakeTimeoutMs}. */
export const handshakeTimeoutMsDefault = 10_000;
/** Default {@link PluginHostOptions.stopTimeoutMs}. */
export const stopTimeoutMsDefault = 3_000;
/** Transitions kept per plugin. */
export const historyLengthMax = 100;

type Listener<T> = (event: T) => void;

interface Plugin {
  manifest: Manifest;
  transport: TransportKind;
  size: number;
  instances: Instance[];
  state: PluginState;
  history: StateEvent[];
  crashTimes: number[];
  consecutiveCrashes: number;
  /** While set, calls wait for it (restart with nothing serving, reload swap). */
  gate?: { promise: Promise<void>; open(): void };
  restartTimer?: ReturnType<typeof setTimeout>;
  watcher?: { close(): void };
}

function defaultLogger(entry: LogEntry): void {
  console.error(`[${entry.plugin}] ${entry.line}`);
}

function makeGate(): { promise: Promise<void>; open(): void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Hosts plugins, each instance in its own process.
 *
 * @example
 * ```ts ignore
 * import { PluginHost } from "../../mod.ts";
 * const host = new PluginHost({ dirs: ["examples/plugins"] });
 * await host.load("echo");
 * console.log(await host.call("echo", "echo", ["hi"]));
 * await host.close();
 * ```
 */
export class PluginHost {
  readonly #options: PluginHostOptions;
  readonly #plugins = new Map<string, Plugin>();
  readonly #stateListeners = new Set<Listener<StateEvent>>();
  readonly #eventListeners = new Set<Listener<{ plugin: string; name: string; data: unknown }>>();
  readonly #watchdog: ReturnType<typeof setInterval>;
  #closed = false;

  constructor(options: PluginHostOptions = {}) {
    this.#options = options;
    this.#watchdog = setInterval(() => this.#checkStalls(), this.#heartbeatMs());
    this.#watchdog.unref(); // Plugins' connections keep the process alive, not the watchdog.
  }

  #heartbeatMs(): number {
    return this.#options.heartbeatIntervalMs ?? heartbeatIntervalMsDefault;
  }

  /** Every plugin directory under the configured dirs, with its manifest or its problem. */
  discover(): Discovered[] {
    const found: Discovered[] = [];
    for (const root of this.#options.dirs ?? []) {
      for (const dir of pluginDirs(resolve(root))) {
        try {
          found.push({ dir, manifest: loadManifest(dir) });
        } catch (error) {
          found.push({ dir, error: error as ManifestError });
        }
      }
    }
    return found;
  }

  /** Subscribes to lifecycle transitions; returns an unsubscribe function. */
  onState(listener: Listener<StateEvent>): () => void {
    this.#stateListeners.add(listener);
    return () => this.#stateListeners.delete(listener);
  }

  /** Subscribes to events plugins emit; returns an unsubscribe function. */
  onEvent(listener: Listener<{ plugin: string; name: string; data: unknown }>): () => void {
    this.#eventListeners.add(listener);
    return () => this.#eventListeners.delete(listener);
  }

  /** Starts a plugin by name (from discovery) or by directory, and waits until it serves. */
  async load(nameOrDir: string): Promise<PluginInfo> {
    if (this.#closed) throw new TypeError("This PluginHost is closed");
    const manifest = this.#resolveManifest(nameOrDir);
    const existing = this.#plugins.get(manifest.name);
    if (existing && !["stopped", "failed"].includes(existing.state)) return this.#info(existing);
    const plugin: Plugin = {
      manifest,
      transport: this.#options.transports?.[manifest.name] ?? this.#options.transport ?? "shm",
      size: Math.max(1, this.#options.instances?.[manifest.name] ?? 1),
      instances: [],
      state: "starting",
      history: existing?.history ?? [],
      crashTimes: [],
      consecutiveCrashes: 0,
    };
    this.#plugins.set(manifest.name, plugin);
    this.#record(plugin, 0, "starting", `loading ${manifest.file} (${plugin.size} instance(s))`);
    try {
      const instances = await Promise.all(Array.from({ length: plugin.size }, () => this.#spawn(plugin, manifest)));
      for (const instance of instances) this.#adopt(plugin, instance);
    } catch (error) {
      await Promise.all(plugin.instances.map((i) => this.#kill(i)));
      plugin.instances = [];
      plugin.state = "failed";
      this.#record(plugin, 0, "failed", (error as Error).message);
      throw error;
    }
    plugin.state = "running";
    return this.#info(plugin);
  }

  /** Brings a failed (or stopped) plugin back, resetting its crash count. */
  async restart(name: string): Promise<PluginInfo> {
    const plugin = this.#plugins.get(name);
    if (!plugin) throw new PluginNotFoundError(`Plugin "${name}" was never loaded; use host.load("${name}")`);
    if (plugin.state !== "failed" && plugin.state !== "stopped") await this.unload(name);
    return await this.load(plugin.manifest.dir);
  }

  #resolveManifest(nameOrDir: string): Manifest {
    if (existsSync(join(nameOrDir, manifestFile))) return loadManifest(nameOrDir);
    const known = this.#plugins.get(nameOrDir)?.manifest;
    if (known) return loadManifest(known.dir);
    const discovered = this.discover();
    const match = discovered.find((d) => d.manifest?.name === nameOrDir);
    if (match?.manifest) return match.manifest;
    const broken = discovered.find((d) => d.error && d.dir.endsWith(`/${nameOrDir}`));
    if (broken?.error) throw broken.error;
    const names = discovered.flatMap((d) => (d.manifest ? [d.manifest.name] : [])).join(", ") || "none";
    throw new PluginNotFoundError(
      `No plugin "${nameOrDir}" in ${(this.#options.dirs ?? []).join(", ") || "no dirs"}; found: ${names}`,
    );
  }

  #spawn(plugin: Plugin, manifest: Manifest): Promise<Instance> {
    const name = manifest.name;
    const hostFunctions = this.#options.hostFunctions ?? {};
    const handlers: Record<string, Handler> = {};
    for (const [fn, impl] of Object.entries(hostFunctions)) {
      handlers[fn] = (args) => (impl as (...a: unknown[]) => unknown)(...args);
    }
    return startInstance(manifest, {
      transport: plugin.transport,
      versions: this.#options.protocol ?? protocolVersions,
      heartbeatIntervalMs: this.#heartbeatMs(),
      handshakeTimeoutMs: this.#options.handshakeTimeoutMs ?? handshakeTimeoutMsDefault,
      ringBytes: this.#options.ringBytes,
      handlers,
      logger: this.#options.logger ?? defaultLogger,
      onEvent: (event, data) => {
        for (const l of this.#eventListeners) l({ plugin: name, name: event, data });
      },
      onSpawned: (pid) => this.#record(plugin, 0, "started", `pid ${pid} spawned`),
    });
  }

  /** Puts a started instance into service and watches it. */
  #adopt(plugin: Plugin, instance: Instance): void {
    plugin.instances.push(instance);
    this.#record(plugin, instance.id, "ready", `handshake done: ${instance.description}`);
    instance.process.exited.then((status) => this.#onExit(plugin, instance, status));
    instance.readLoop.then(() => {
      if (instance.state === "stopping" || instance.state === "dead") return;
      // The connection is gone while the process may live on: it is useless
      // now, so end it; #onExit reports and restarts.
      const reason = instance.peer.closedWith;
      if (reason instanceof ProtocolError) {
        this.#record(plugin, instance.id, "crashed", `protocol violation: ${reason.message}`);
      }
      this.#markDying(plugin, instance);
      instance.process.kill("SIGKILL");
    });
  }

  /**
   * Takes an instance out of routing the moment it is known to be lost, before
   * its process exit is observed, so that calls wait for the restart instead
   * of failing in between.
   */
  #markDying(plugin: Plugin, instance: Instance): void {
    if (instance.state === "stopping" || instance.state === "dead") return;
    instance.state = "dying";
    const serving = plugin.instances.some((i) => i.state === "running" || i.state === "unresponsive");
    if (!serving && this.#options.restart !== false && plugin.state === "running") {
      plugin.state = "restarting";
      plugin.gate ??= makeGate();
    }
  }

  #onExit(plugin: Plugin, instance: Instance, status: { code: number | null; signal: string | null }): void {
    const wasStopping = instance.state === "stopping";
    this.#markDying(plugin, instance);
    instance.state = "dead";
    plugin.instances = plugin.instances.filter((i) => i !== instance);
    if (wasStopping || this.#closed) return;
    const error = new PluginCrashedError(plugin.manifest.name, status.code, status.signal, instance.process.stderrTail);
    instance.peer.close(error);
    this.#record(plugin, instance.id, "crashed", error.message);
    this.#scheduleRestart(plugin);
  }

  #scheduleRestart(plugin: Plugin): void {
    const now = Date.now();
    const windowMs = this.#options.crashWindowMs ?? 60_000;
    plugin.crashTimes = [...plugin.crashTimes.filter((t) => now - t < windowMs), now];
    plugin.consecutiveCrashes++;
    const limit = this.#options.crashLimit ?? 5;
    if (this.#options.restart === false || plugin.crashTimes.length >= limit) {
      const why = this.#options.restart === false
        ? "restarts are disabled"
        : `${plugin.crashTimes.length} crashes within ${windowMs} ms (limit ${limit}); it stays down until restarted`;
      if (plugin.instances.length === 0) this.#fail(plugin, why);
      else this.#record(plugin, 0, "failed", `one instance is down for good: ${why}`);
      return;
    }
    const base = this.#options.restartBackoffMs ?? 50;
    const max = this.#options.restartBackoffMsMax ?? 10_000;
    const delay = Math.min(max, base * 2 ** (plugin.consecutiveCrashes - 1)) * (0.8 + Math.random() * 0.4);
    if (plugin.instances.length === 0) {
      plugin.state = "restarting";
      plugin.gate ??= makeGate();
    }
    this.#record(plugin, 0, "restarting", `in ${Math.round(delay)} ms (crash ${plugin.crashTimes.length} of ${limit})`);
    plugin.restartTimer = setTimeout(() => this.#restartOne(plugin), delay);
  }

  async #restartOne(plugin: Plugin): Promise<void> {
    plugin.restartTimer = undefined;
    if (!this.#wanted(plugin)) return;
    try {
      const instance = await this.#spawn(plugin, plugin.manifest);
      if (!this.#wanted(plugin)) {
        await this.#kill(instance); // Stopped while it was starting: it is not wanted any more.
        return;
      }
      this.#adopt(plugin, instance);
      plugin.state = "running";
      this.#openGate(plugin);
      // A plugin that stays up for a while has recovered: the next crash backs off from the start.
      setTimeout(() => instance.state === "running" && (plugin.consecutiveCrashes = 0), 5_000).unref?.();
    } catch (error) {
      this.#record(plugin, 0, "crashed", `restart failed: ${(error as Error).message}`);
      this.#scheduleRestart(plugin);
    }
  }

  /** False once the host closes or the plugin is being stopped: no restart then. */
  #wanted(plugin: Plugin): boolean {
    return !this.#closed && plugin.state !== "draining" && plugin.state !== "stopped";
  }

  #fail(plugin: Plugin, reason: string): void {
    plugin.state = "failed";
    this.#record(plugin, 0, "failed", reason);
    this.#openGate(plugin);
  }

  #openGate(plugin: Plugin): void {
    const gate = plugin.gate;
    plugin.gate = undefined;
    gate?.open();
  }

  /** Marks silent instances unresponsive, and kills those silent past the grace period. */
  #checkStalls(): void {
    const stallMs = this.#options.stallTimeoutMs ?? 3 * this.#heartbeatMs();
    const graceMs = this.#options.stallGraceMs ?? 1_000;
    const now = performance.now();
    for (const plugin of this.#plugins.values()) {
      for (const instance of plugin.instances) {
        if (instance.state !== "running" && instance.state !== "unresponsive") continue;
        const silentMs = now - instance.peer.lastFrameAt;
        if (instance.state === "running" && silentMs > stallMs) {
          instance.state = "unresponsive";
          this.#record(plugin, instance.id, "unresponsive", `no frame for ${Math.round(silentMs)} ms`);
        } else if (instance.state === "unresponsive" && silentMs <= stallMs) {
          instance.state = "running";
          this.#record(plugin, instance.id, "ready", "answering again");
        } else if (instance.state === "unresponsive" && silentMs > stallMs + graceMs) {
          this.#markDying(plugin, instance);
          instance.peer.close(new PluginStalledError(plugin.manifest.name, silentMs));
          instance.process.kill("SIGKILL");
        }
      }
    }
  }

  /** Calls `method` on plugin `name`, on its least-loaded instance. */
  call(name: string, method: string, args: unknown[] = [], options: CallOptions = {}): Promise<unknown> {
    const instance = this.#pick(name);
    if (instance) return instance.peer.call(method, args, options);
    return this.#callLater(name, method, args, options);
  }

  async #callLater(name: string, method: string, args: unknown[], options: CallOptions): Promise<unknown> {
    const plugin = this.#plugins.get(name);
    if (!plugin?.gate || (this.#options.callPolicy ?? "wait") === "fail") throw this.#unavailable(name);
    const waitMs = options.deadlineMs ?? this.#options.callWaitMs ?? 10_000;
    const started = performance.now();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, waitMs)));
    await Promise.race([plugin.gate.promise, timeout]);
    clearTimeout(timer);
    const instance = this.#pick(name);
    if (!instance) throw this.#unavailable(name);
    const left = options.deadlineMs === undefined
      ? undefined
      : Math.max(1, options.deadlineMs - (performance.now() - started));
    return await instance.peer.call(method, args, { ...options, deadlineMs: left });
  }

  /** The running instance with the fewest calls in flight, if calls may go to one now. */
  #pick(name: string): Instance | undefined {
    const plugin = this.#plugins.get(name);
    if (!plugin || plugin.gate || plugin.state === "draining") return undefined;
    let best: Instance | undefined;
    for (const instance of plugin.instances) {
      if (instance.state !== "running") continue;
      if (!best || instance.peer.pendingCalls < best.peer.pendingCalls) best = instance;
    }
    return best;
  }

  #unavailable(name: string): PluginNotFoundError {
    const plugin = this.#plugins.get(name);
    const state = plugin ? `is ${plugin.state}` : "is not loaded";
    const advice = plugin?.state === "failed"
      ? `restart it with host.restart("${name}")`
      : `load it with host.load("${name}")`;
    return new PluginNotFoundError(`Plugin "${name}" ${state}; ${advice}`);
  }

  /** A typed proxy: `host.client<typeof kv.methods>("kv").get("a")`. */
  client<M extends object>(name: string): PluginClient<M> {
    return new Proxy({}, {
      get: (_target, method) => (...args: unknown[]) => this.call(name, String(method), args),
    }) as never;
  }

  /** Opens a stream to plugin `name`'s stream method. */
  stream(
    name: string,
    method: string,
    args: unknown[] = [],
    input?: AsyncIterable<unknown>,
    options?: CallOptions,
  ): AsyncIterable<unknown> {
    const instance = this.#pick(name);
    if (!instance) throw this.#unavailable(name);
    return instance.peer.stream(method, args, input, options);
  }

  /** Sends an event to every instance of plugin `name`. */
  async emit(name: string, event: string, data?: unknown): Promise<void> {
    const plugin = this.#plugins.get(name);
    const targets = plugin?.instances.filter((i) => i.state === "running") ?? [];
    if (targets.length === 0) throw this.#unavailable(name);
    await Promise.all(targets.map((i) => i.peer.emit(event, data)));
  }

  /** Every plugin this host started, with its state. */
  list(): PluginInfo[] {
    return [...this.#plugins.values()].map((p) => this.#info(p));
  }

  #info(plugin: Plugin): PluginInfo {
    const { manifest } = plugin;
    const pids = plugin.instances.flatMap((i) => (i.process.pid ? [i.process.pid] : []));
    return {
      name: manifest.name,
      version: manifest.version,
      runtime: manifest.runtime,
      state: plugin.state,
      pid: pids[0],
      pids,
      transport: plugin.transport,
      methods: plugin.instances[0]?.methods ?? [],
      dir: manifest.dir,
      crashes: plugin.crashTimes.length,
      history: [...plugin.history],
    };
  }

  /**
   * Replaces plugin `name`'s instances with fresh ones from its (possibly
   * changed) files: starts them, holds new calls while the old instances
   * finish theirs, hands state over (exportState → importState), routes to
   * the new ones, and stops the old. If the new ones fail to start or take the
   * state, they are killed and the old ones keep serving.
   */
  async reload(name: string): Promise<PluginInfo> {
    const plugin = this.#plugins.get(name);
    if (!plugin || plugin.state !== "running") throw this.#unavailable(name);
    plugin.state = "reloading";
    this.#record(plugin, 0, "reloading", "starting new instance(s)");
    let fresh: Instance[] = [];
    try {
      const manifest = loadManifest(plugin.manifest.dir);
      fresh = await Promise.all(Array.from({ length: plugin.size }, () => this.#spawn(plugin, manifest)));
      await this.#swap(plugin, manifest, fresh);
    } catch (error) {
      for (const instance of fresh) await this.#kill(instance);
      plugin.state = plugin.instances.length > 0 ? "running" : "failed";
      this.#openGate(plugin);
      this.#record(plugin, 0, "rolled-back", `old instance(s) keep serving: ${(error as Error).message}`);
      throw new ReloadError(`Reload of "${name}" failed and was rolled back: ${(error as Error).message}`, {
        cause: error,
      });
    }
    return this.#info(plugin);
  }

  async #swap(plugin: Plugin, manifest: Manifest, fresh: Instance[]): Promise<void> {
    const old = plugin.instances;
    const started = performance.now();
    plugin.gate = makeGate();
    await this.#drained(old, this.#options.stopTimeoutMs ?? stopTimeoutMsDefault);
    const source = old.find((i) => i.state === "running");
    const state = source ? await source.peer.call("$exportState", [], { deadlineMs: 5_000 }) : null;
    if (state !== null && state !== undefined) {
      await Promise.all(fresh.map((i) => i.peer.call("$importState", [state], { deadlineMs: 5_000 })));
    }
    plugin.manifest = manifest;
    plugin.instances = [];
    for (const instance of fresh) this.#adopt(plugin, instance);
    plugin.state = "running";
    this.#openGate(plugin);
    const heldMs = performance.now() - started;
    this.#record(plugin, 0, "reloaded", `now ${manifest.version}; calls held ${heldMs.toFixed(1)} ms during the swap`);
    for (const instance of old) this.#stopInstance(plugin, instance);
  }

  /** Waits until none of `instances` has a call in flight, up to `timeoutMs`. */
  async #drained(instances: Instance[], timeoutMs: number): Promise<void> {
    const started = performance.now();
    while (instances.some((i) => i.peer.pendingCalls > 0) && performance.now() - started < timeoutMs) {
      await sleep(1);
    }
  }

  /** Watches the plugin's directory and reloads on changes (development mode). */
  watch(name: string, options: { debounceMs?: number } = {}): () => void {
    const plugin = this.#plugins.get(name);
    if (!plugin) throw this.#unavailable(name);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const watcher = watch(plugin.manifest.dir, { recursive: true }, () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        this.reload(name).catch(() => {/* recorded as rolled-back */});
      }, options.debounceMs ?? 200);
    });
    plugin.watcher = { close: () => (clearTimeout(timer), watcher.close()) };
    return () => plugin.watcher?.close();
  }

  /**
   * Stops plugin `name`: refuses new calls, lets calls in flight finish, asks
   * each instance to stop, then escalates to SIGTERM and SIGKILL after
   * `stopTimeoutMs` each.
   */
  async unload(name: string): Promise<void> {
    const plugin = this.#plugins.get(name);
    if (!plugin || plugin.state === "stopped") return;
    clearTimeout(plugin.restartTimer);
    plugin.watcher?.close();
    if (plugin.state === "failed" && plugin.instances.length === 0) return;
    plugin.state = "draining";
    this.#record(plugin, 0, "draining", "stop requested: new calls are refused");
    await Promise.all(plugin.instances.map((i) => this.#stopInstance(plugin, i)));
    plugin.instances = [];
    plugin.state = "stopped";
    this.#openGate(plugin);
    this.#record(plugin, 0, "stopped", "every instance exited");
  }

  async #stopInstance(plugin: Plugin, instance: Instance): Promise<void> {
    const timeoutMs = this.#options.stopTimeoutMs ?? stopTimeoutMsDefault;
    instance.state = "stopping";
    await this.#drained([instance], timeoutMs);
    try {
      await instance.peer.call("$stop", [], { deadlineMs: timeoutMs });
    } catch {
      // A plugin that cannot stop politely is stopped by signal below.
    }
    instance.peer.close(new ChannelClosedError("local", `Plugin "${plugin.manifest.name}" was stopped`));
    const process = instance.process;
    if (!(await process.waitForExit(timeoutMs))) {
      process.kill("SIGTERM");
      if (!(await process.waitForExit(timeoutMs))) process.kill("SIGKILL");
    }
    await process.exited;
    this.#record(plugin, instance.id, "stopped", `exit ${JSON.stringify(process.exitStatus ?? null)}`);
  }

  async #kill(instance: Instance): Promise<void> {
    instance.state = "stopping";
    instance.peer.close();
    instance.process.kill("SIGKILL");
    await instance.process.exited;
  }

  /** Unloads every plugin. Idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#watchdog);
    await Promise.all([...this.#plugins.keys()].map((name) => this.unload(name)));
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #record(plugin: Plugin, instance: number, state: LifecycleKind, reason: string): void {
    const event: StateEvent = { plugin: plugin.manifest.name, instance, state, at: Date.now(), reason };
    plugin.history.push(event);
    if (plugin.history.length > historyLengthMax) plugin.history.shift();
    for (const l of this.#stateListeners) l(event);
  }
}

/** A directory with a plugin.json is a plugin; otherwise its subdirectories are looked at. */
function pluginDirs(root: string): string[] {
  if (existsSync(join(root, manifestFile))) return [root];
  if (!existsSync(root)) return [];
  return readdirSync(root)
    .map((entry) => join(root, entry))
    .filter((dir) => statSync(dir).isDirectory() && existsSync(join(dir, manifestFile)))
    .sort();
}
