/**
 * What the host's parts share: the resolved options, the plugins with their
 * instances, the event bus, and the few operations every part needs
 * (recording a transition, spawning a verified instance, the call gate).
 * host.ts coordinates; the parts (registry, supervision, routing, reload,
 * stop) are functions over this core.
 *
 * @module
 */

import { join } from "node:path";
import type { CallObserver, Handler } from "../protocol/rpc.ts";
import type { TransportKind } from "../transport/transport.ts";
import { HostClosedError, LoadInterruptedError, PermissionDeniedError, PluginNotFoundError } from "./errors.ts";
import { EventBus } from "./_events.ts";
import { type Instance, startInstance } from "./_instance.ts";
import { defaultLaunchPlan } from "./launch_plan.ts";
import { launchEnv as launchEnvNames, reservedMethods } from "../protocol/launch.ts";
import { pluginCallHandler } from "./_deps.ts";
import { type Manifest, manifestFile } from "./manifest.ts";
import type { ResolvedOptions } from "./options.ts";
import type { LogEntry } from "./process.ts";
import type { InspectorEndpoint, LaunchPlanner, LifecycleKind, PluginInfo, PluginState, StateEvent } from "./types.ts";
import { effectiveGrants, sandboxPlanner } from "./sandbox.ts";
import { inspectorHost, inspectorSecret, reserveInspectPort } from "./_inspect.ts";
import { canBlame } from "./_blame.ts";
import { InspectError } from "./errors.ts";

/** Transitions kept per plugin. */
export const historyLengthMax = 100;

/** A gate calls wait at while nothing may serve them (restart with nothing up, reload swap). */
export interface Gate {
  promise: Promise<void>;
  open(): void;
}

/** One plugin the host knows, with its instances. */
export interface PluginEntry {
  manifest: Manifest;
  transport: TransportKind;
  size: number;
  instances: Instance[];
  state: PluginState;
  history: StateEvent[];
  crashTimes: number[];
  consecutiveCrashes: number;
  /** While set, calls wait for it. */
  gate?: Gate;
  restartTimer?: ReturnType<typeof setTimeout>;
  /** Resets the crash backoff once a restarted instance has stayed up. */
  recoveryTimer?: ReturnType<typeof setTimeout>;
  watcher?: { close(): void };
  /** The load in progress: a second load() of the same plugin waits for it. */
  loading?: Promise<PluginInfo>;
  /** Spawns in flight (load, restart, reload): stop() waits for them so nothing starts after it returns. */
  spawning: Set<Promise<unknown>>;
  /** Old instances a reload is stopping: stop() waits for them too. */
  retiring: Set<Promise<void>>;
  /** The validated config values new instances start with (see _config.ts). */
  config?: Record<string, unknown>;
  /** Ends the instrumentation's measurement of this plugin's calls (made at its first instrumented call). */
  observer?: CallObserver;
  /** Start its instances under the runtime's inspector (`load(name, {inspect})`), on this port if given. */
  inspect?: { port?: number };
}

/** Makes a closed gate. */
export function makeGate(): Gate {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

function defaultLogger(entry: LogEntry): void {
  console.error(`[${entry.plugin}] ${entry.line}`);
}

/** The host's shared state. */
export class HostCore {
  readonly options: ResolvedOptions;
  readonly plugins = new Map<string, PluginEntry>();
  readonly bus = new EventBus();
  closed = false;
  /** The host's own sandbox (option `sandbox`), applied unless the launch planner sandboxes itself. */
  readonly #sandbox: LaunchPlanner;

  constructor(options: ResolvedOptions) {
    this.options = options;
    this.#sandbox = sandboxPlanner({ sandbox: options.sandbox, narrow: options.narrow });
  }

  /** Records a transition in the plugin's history and tells the "state" listeners. */
  record(plugin: PluginEntry, instance: number, state: LifecycleKind, reason: string): void {
    const event: StateEvent = { plugin: plugin.manifest.name, instance, state, at: Date.now(), reason };
    plugin.history.push(event);
    if (plugin.history.length > historyLengthMax) plugin.history.shift();
    this.bus.emit("state", event);
  }

  /** False once the host closes or the plugin is being stopped or replaced: nothing new may start for it. */
  wanted(plugin: PluginEntry): boolean {
    return !this.closed && plugin.state !== "draining" && plugin.state !== "stopped" &&
      this.plugins.get(plugin.manifest.name) === plugin;
  }

  openGate(plugin: PluginEntry): void {
    const gate = plugin.gate;
    plugin.gate = undefined;
    gate?.open();
  }

  unavailable(name: string): PluginNotFoundError {
    const plugin = this.plugins.get(name);
    const state = plugin ? `is ${plugin.state}` : "is not loaded";
    const advice = plugin?.state === "failed"
      ? `restart it with host.restart("${name}")`
      : `load it with host.load("${name}")`;
    return new PluginNotFoundError(`Plugin "${name}" ${state}; ${advice}`);
  }

  info(plugin: PluginEntry): PluginInfo {
    const { manifest } = plugin;
    const pids = plugin.instances.flatMap((i) => (i.pid ? [i.pid] : []));
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
      protocolVersion: plugin.instances[0]?.protocolVersion,
      history: [...plugin.history],
    };
  }

  /**
   * Verifies, plans and starts one instance. If the plugin stopped being
   * wanted meanwhile (unload, close), the new instance is killed before this
   * settles, and it rejects: a stop that waits for spawns sees nothing left.
   */
  spawn(plugin: PluginEntry, manifest: Manifest): Promise<Instance> {
    const spawning = this.#spawn(plugin, manifest);
    plugin.spawning.add(spawning);
    const forget = () => void plugin.spawning.delete(spawning);
    spawning.then(forget, forget);
    return spawning;
  }

  async #spawn(plugin: PluginEntry, manifest: Manifest): Promise<Instance> {
    const runManifest = await this.#verify(plugin, manifest);
    if (!this.wanted(plugin)) throw this.#interrupted(plugin);
    const inspect = await this.#inspectEndpoint(plugin, runManifest);
    if (!this.wanted(plugin)) throw this.#interrupted(plugin);
    let pid: number | undefined;
    const instance = await startInstance(runManifest, {
      transport: plugin.transport,
      versions: this.options.protocol,
      heartbeatIntervalMs: this.options.heartbeatIntervalMs,
      handshakeTimeoutMs: this.options.handshakeTimeoutMs,
      ringBytes: this.options.ringBytes,
      wake: this.options.wake,
      handlers: this.#hostHandlers(manifest),
      logger: this.#logger(),
      onEvent: (event, data) => this.bus.emit("plugin-event", { plugin: manifest.name, name: event, data }),
      onListenerError: (error) => this.bus.emit("listener-error", { type: "plugin-event", error }),
      onHeartbeat: (rttMs) => {
        if (this.bus.has("heartbeat")) {
          this.bus.emit("heartbeat", { plugin: manifest.name, pid, rttMs, at: Date.now() });
        }
      },
      plan: (connection) => {
        const launchEnv = { ...connection, [launchEnvNames.config]: JSON.stringify(plugin.config ?? {}) };
        const base = defaultLaunchPlan(runManifest, {
          launchEnv,
          hostEnv: this.options.env,
          inspect: inspect?.endpoint,
        });
        const planner = this.options.launchPlanner;
        if (planner?.sandboxes) return planner.plan(runManifest, base);
        return this.#sandbox.plan(runManifest, planner ? planner.plan(runManifest, base) : base);
      },
      onSpawned: (spawned) => {
        pid = spawned;
        this.record(plugin, 0, "started", `pid ${spawned} spawned`);
      },
      inspect,
    });
    const inspector = instance.inspector;
    if (inspector?.debugging && this.wanted(plugin)) {
      this.bus.emit("inspect", {
        plugin: manifest.name,
        instance: instance.id,
        pid: instance.pid,
        runtime: runManifest.runtime,
        port: inspector.endpoint.port,
        webSocketUrl: inspector.webSocketUrl!,
        devtoolsUrl: inspector.devtoolsUrl!,
        at: Date.now(),
      });
    }
    if (!this.wanted(plugin)) {
      instance.state = "stopping";
      instance.peer.close();
      instance.kill("SIGKILL");
      await instance.exited;
      throw this.#interrupted(plugin);
    }
    return instance;
  }

  /**
   * Where this instance's inspector listens, if it gets one: asked for (`load(name, {inspect})`), or for
   * blame (`blameStalls`, runtimes whose inspector can profile a busy plugin). A given port still held by
   * one of the plugin's own instances (a reload) makes way for a free one.
   */
  async #inspectEndpoint(
    plugin: PluginEntry,
    manifest: Manifest,
  ): Promise<{ endpoint: InspectorEndpoint; debugging: boolean } | undefined> {
    const debugging = plugin.inspect !== undefined;
    if (!debugging && !(this.options.blameStalls && canBlame(manifest.runtime))) return undefined;
    let requested = plugin.inspect?.port;
    if (requested !== undefined && plugin.size > 1) {
      throw new InspectError(
        "bad_port",
        `Cannot inspect plugin "${manifest.name}" on port ${requested}: it runs ${plugin.size} instances and a port ` +
          `serves one; use inspect: true (a free port each) or one instance`,
      );
    }
    if (plugin.instances.some((i) => i.inspector?.endpoint.port === requested)) requested = undefined;
    const port = await reserveInspectPort(manifest.name, requested);
    const path = manifest.runtime === "bun" ? inspectorSecret() : undefined;
    // For blame alone, Node opens its inspector only when the host asks (SIGUSR1), at a stall.
    const onDemand = !debugging && manifest.runtime === "node";
    return {
      endpoint: { host: inspectorHost, port, ...(path ? { path } : {}), ...(onDemand ? { onDemand } : {}) },
      debugging,
    };
  }

  /** Runs the verifier; a refusal is recorded and rethrown. Returns the manifest to run (maybe from a verified copy). */
  async #verify(plugin: PluginEntry, manifest: Manifest): Promise<Manifest> {
    const verifier = this.options.verifier;
    if (!verifier) return manifest;
    let runDir: string | undefined;
    try {
      runDir = (await verifier.verify(manifest))?.runDir;
    } catch (error) {
      this.record(plugin, 0, "refused", (error as Error)?.message ?? String(error));
      this.bus.emit("refused", { plugin: manifest.name, dir: manifest.dir, error, at: Date.now() });
      throw error;
    }
    if (!runDir) return manifest;
    return { ...manifest, dir: runDir, entryPath: join(runDir, manifest.entry), file: join(runDir, manifestFile) };
  }

  #interrupted(plugin: PluginEntry): Error {
    const name = plugin.manifest.name;
    return this.closed
      ? new HostClosedError(`The host was closed while plugin "${name}" was starting; it was stopped`)
      : new LoadInterruptedError(`Plugin "${name}" was unloaded while it was starting; load it again if you need it`);
  }

  #logger(): (entry: LogEntry) => void {
    const logger = this.options.logger ?? defaultLogger;
    return (entry) => {
      try {
        logger(entry);
      } catch (error) {
        this.bus.emit("listener-error", { type: "log", error });
      }
      if (this.bus.has("log")) this.bus.emit("log", entry);
    };
  }

  /**
   * The host functions this plugin may call: only those its manifest lists under
   * permissions.hostFunctions (none without a grant, v1 manifests included). Every
   * host function gets a handler, so an ungranted call is told why and reported,
   * rather than looking like a method that does not exist.
   */
  #hostHandlers(manifest: Manifest): Record<string, Handler> {
    const allowed = new Set(effectiveGrants(manifest, this.options.narrow).permissions.hostFunctions ?? []);
    const handlers: Record<string, Handler> = {};
    for (const [fn, impl] of Object.entries(this.options.hostFunctions)) {
      handlers[fn] = (args, context) => {
        if (!allowed.has(fn)) {
          this.bus.emit("permission-denied", {
            plugin: manifest.name,
            permission: `hostFunctions:${fn}`,
            detail: `called host function "${fn}" without the grant`,
            at: Date.now(),
          });
          throw new PermissionDeniedError(
            `Host function "${fn}" is not granted to plugin "${manifest.name}"; ` +
              `add it to permissions.hostFunctions in its plugin.json`,
          );
        }
        const tracing = this.options.tracing;
        if (!tracing) return (impl as (...a: unknown[]) => unknown)(...args);
        return tracing.serveHostFunction(
          manifest.name,
          fn,
          context.traceparent,
          () => (impl as (...a: unknown[]) => unknown)(...args),
        );
      };
    }
    const plugins = effectiveGrants(manifest, this.options.narrow).permissions.plugins ?? [];
    handlers[reservedMethods.pluginCall] = pluginCallHandler(this, manifest.name, plugins);
    return handlers;
  }
}
