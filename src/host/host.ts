/**
 * PluginHost: discovers plugins, runs each as one or more instances (each its
 * own process), routes calls to the least-loaded instance, and supervises:
 * crashed instances restart with exponential backoff until a crash-loop
 * limit, silent ones are killed and restarted, reloads swap instances without
 * failing a call, and stops drain before they escalate to signals. Every
 * transition is an event with a timestamp and a reason, kept per plugin.
 *
 * This file coordinates; the parts live beside it: discovery in
 * _registry.ts, supervision in _supervisor.ts, routing in _router.ts, reload
 * in _reload.ts, stopping in _stop.ts, shared state in _core.ts.
 *
 * @module
 */

import { watch } from "node:fs";
import { clearInterval, clearTimeout, setInterval, setTimeout } from "node:timers";
import { getNative } from "../native/native.ts";
import type { CallOptions, PluginClient } from "../protocol/rpc.ts";
import { HostClosedError, PluginNotFoundError } from "./errors.ts";
import { HostCore, type PluginEntry } from "./_core.ts";
import { discover, resolveManifest } from "./_registry.ts";
import { pick, route } from "./_router.ts";
import { InstrumentedCalls, TracedCall } from "./_observed.ts";
import { reloadPlugin } from "./_reload.ts";
import { unloadPlugin } from "./_stop.ts";
import { adopt, checkStalls, startAll } from "./_supervisor.ts";
import { resolveConfig } from "./_config.ts";
import { configurePlugin } from "./_configure.ts";
import { type HookResult, runHook, type RunHookOptions } from "./_hooks.ts";
import { checkUnload, dependencyOrder } from "./_deps.ts";
import { DependencyError, InspectError } from "./errors.ts";
import { checkInspectPort } from "./_inspect.ts";
import type { Manifest } from "./manifest.ts";
import { ResourceSampler, resumePlugin } from "./_limits.ts";
import { type PluginHostOptions, resolveOptions } from "./options.ts";
import type {
  Discovered,
  HostEvents,
  InstanceTransportStats,
  LoadOptions,
  PluginEvent,
  PluginInfo,
  StateEvent,
} from "./types.ts";

// The host's vocabulary, re-exported so `host.ts` is one import for its users.
export type { PluginHostOptions } from "./options.ts";
export type { HookFailure, HookPolicy, HookResult, RunHookOptions } from "./_hooks.ts";
export type * from "./types.ts";

/** Default debounce of {@link PluginHost.watch}. */
export const watchDebounceMsDefault = 200;

/**
 * Hosts plugins, each instance in its own process.
 *
 * @example
 * ```ts
 * import { PluginHost } from "../../mod.ts";
 * const host = new PluginHost({ dirs: ["examples/plugins"], logger: () => {} });
 * await host.load("echo");
 * console.assert(await host.call("echo", "echo", ["hi"]) === "hi");
 * await host.close();
 * ```
 */
export class PluginHost {
  readonly #core: HostCore;
  readonly #watchdog: ReturnType<typeof setInterval>;
  readonly #sampler: ResourceSampler;

  /** Creates a host; nothing is loaded or started until {@link load}. Options and their defaults: {@link PluginHostOptions}. */
  constructor(options: PluginHostOptions = {}) {
    this.#core = new HostCore(resolveOptions(options));
    sweepDeadSegments();
    this.#watchdog = setInterval(() => checkStalls(this.#core), this.#core.options.heartbeatIntervalMs);
    this.#watchdog.unref(); // Plugins' connections keep the process alive, not the watchdog.
    this.#sampler = new ResourceSampler(this.#core);
  }

  /** Every plugin directory under the configured dirs, with its manifest or its problem. */
  discover(): Discovered[] {
    return discover(this.#core.options.dirs);
  }

  /**
   * Subscribes to one type of host event; returns an unsubscribe function. A
   * listener that throws is isolated: the error goes to "listener-error"
   * listeners (or stderr) and nothing else is affected.
   */
  on<K extends keyof HostEvents>(type: K, listener: (event: HostEvents[K]) => void): () => void {
    const off = this.#core.bus.on(type, listener);
    if (type !== "resource") return off;
    this.#sampler.sync();
    return () => {
      off();
      this.#sampler.sync();
    };
  }

  /** Subscribes to lifecycle transitions: `on("state", listener)`. */
  onState(listener: (event: StateEvent) => void): () => void {
    return this.on("state", listener);
  }

  /** Subscribes to events plugins emit: `on("plugin-event", listener)`. */
  onEvent(listener: (event: PluginEvent) => void): () => void {
    return this.on("plugin-event", listener);
  }

  /**
   * Starts a plugin by name (from discovery) or by directory, and waits until
   * it serves. A second load() of a plugin that is starting waits for the
   * same start. `options.inspect` starts it under its runtime's inspector
   * (see {@link LoadOptions} and docs/debugging.md).
   */
  load(nameOrDir: string, options: LoadOptions = {}): Promise<PluginInfo> {
    const core = this.#core;
    if (core.closed) return Promise.reject(new HostClosedError("This PluginHost is closed; make a new one"));
    let manifest, config, needs: Manifest[], inspect: { port?: number } | undefined;
    try {
      manifest = resolveManifest(nameOrDir, core.options.dirs, core.plugins.get(nameOrDir)?.manifest.dir);
      config = core.plugins.get(manifest.name)?.config ?? resolveConfig(manifest.name, manifest.config, core.options);
      needs = dependencyOrder(core, manifest);
      inspect = inspectOption(manifest.name, options);
    } catch (error) {
      return Promise.reject(error);
    }
    const existing = core.plugins.get(manifest.name);
    const running = existing && existing.state !== "stopped" && existing.state !== "failed";
    if (running && inspect && !existing.inspect) {
      return Promise.reject(
        new InspectError(
          "already_running",
          `Plugin "${manifest.name}" already runs without the inspector; unload it first, then load it with inspect`,
        ),
      );
    }
    if (existing?.loading) return existing.loading;
    if (running) return Promise.resolve(core.info(existing));
    const plugin: PluginEntry = {
      manifest,
      transport: core.options.transports[manifest.name] ?? core.options.transport,
      size: core.options.instances[manifest.name] ?? 1,
      instances: [],
      state: "starting",
      history: existing?.history ?? [],
      crashTimes: [],
      consecutiveCrashes: 0,
      spawning: new Set(),
      retiring: new Set(),
      config,
      ...(inspect ? { inspect } : {}),
    };
    core.plugins.set(manifest.name, plugin);
    const loading = this.#start(plugin, needs);
    plugin.loading = loading;
    const done = () => {
      plugin.loading = undefined;
      this.#sampler.sync();
    };
    loading.then(done, done);
    return loading;
  }

  async #start(plugin: PluginEntry, needs: Manifest[]): Promise<PluginInfo> {
    const core = this.#core;
    core.record(plugin, 0, "starting", `loading ${plugin.manifest.file} (${plugin.size} instance(s))`);
    try {
      await this.#loadDependencies(plugin.manifest, needs);
      const instances = await startAll(core, plugin);
      for (const instance of instances) adopt(core, plugin, instance);
    } catch (error) {
      if (plugin.state === "starting") {
        plugin.state = "failed";
        core.record(plugin, 0, "failed", (error as Error)?.message ?? String(error));
      }
      throw error;
    }
    plugin.state = "running";
    return core.info(plugin);
  }

  /** Loads what `manifest` needs, in order; a dependency that fails fails the load, naming the chain. */
  async #loadDependencies(manifest: Manifest, needs: Manifest[]): Promise<void> {
    for (const dependency of needs) {
      try {
        await this.load(dependency.dir);
      } catch (error) {
        throw new DependencyError(
          "failed",
          [manifest.name, dependency.name],
          `${manifest.name} → ${dependency.name}: the dependency did not start: ${(error as Error)?.message ?? error}`,
          { cause: error },
        );
      }
    }
  }

  /** Brings a failed (or stopped) plugin back, resetting its crash count. */
  async restart(name: string): Promise<PluginInfo> {
    const plugin = this.#core.plugins.get(name);
    if (!plugin) throw new PluginNotFoundError(`Plugin "${name}" was never loaded; use host.load("${name}")`);
    if (plugin.state !== "failed" && plugin.state !== "stopped") await this.unload(name, { force: true });
    // Under the inspector before, under it again.
    return await this.load(name, plugin.inspect ? { inspect: plugin.inspect } : {});
  }

  /** Calls `method` on plugin `name`, on its least-loaded instance. */
  call(name: string, method: string, args: unknown[] = [], options: CallOptions = {}): Promise<unknown> {
    const { tracing, instrumentation } = this.#core.options;
    const span = tracing?.startCall(name, method);
    if (span) {
      // The span's trace context travels with the request; the peer ends the span when the call settles.
      const traced = span.traceparent === undefined ? options : { ...options, traceparent: span.traceparent };
      const call = new TracedCall(name, instrumentation, instrumentation?.begin(name, method), span);
      return route(this.#core, name, method, args, traced, call);
    }
    if (!instrumentation) return route(this.#core, name, method, args, options);
    const plugin = this.#core.plugins.get(name);
    const observer = plugin
      ? (plugin.observer ??= new InstrumentedCalls(name, instrumentation))
      : new InstrumentedCalls(name, instrumentation);
    return route(this.#core, name, method, args, options, observer, instrumentation.begin(name, method));
  }

  /**
   * A typed proxy: `host.client<typeof kv.methods>("kv").get("a")`. It is not
   * a thenable, so `await host.client("kv")` gives the proxy back.
   */
  client<M extends object>(name: string): PluginClient<M> {
    return new Proxy({}, {
      get: (_target, method) => {
        // `then` would make the proxy look like a promise to `await`; symbols are JS internals.
        if (typeof method === "symbol" || method === "then") return undefined;
        return (...args: unknown[]) => this.call(name, method, args);
      },
    }) as PluginClient<M>;
  }

  /** Opens a stream to plugin `name`'s stream method. */
  stream(
    name: string,
    method: string,
    args: unknown[] = [],
    input?: AsyncIterable<unknown>,
    options?: CallOptions,
  ): AsyncIterable<unknown> {
    const instance = pick(this.#core, name);
    if (!instance) throw this.#core.unavailable(name);
    const span = this.#core.options.tracing?.startCall(name, method);
    if (!span) return instance.peer.stream(method, args, input, options);
    // Like a call: a client span whose trace context the STREAM_OPEN carries; it ends with the stream.
    const traced = span.traceparent === undefined ? options : { ...options, traceparent: span.traceparent };
    const stream = instance.peer.stream(method, args, input, traced);
    return (async function* () {
      let failed = false;
      try {
        yield* stream;
      } catch (error) {
        failed = true;
        span.end(error);
        throw error;
      } finally {
        if (!failed) span.end(); // ended, or the consumer broke out of its loop (which cancels the stream)
      }
    })();
  }

  /** Sends an event to every instance of plugin `name`. */
  async emit(name: string, event: string, data?: unknown): Promise<void> {
    const plugin = this.#core.plugins.get(name);
    const targets = plugin?.instances.filter((i) => i.state === "running") ?? [];
    if (targets.length === 0) throw this.#core.unavailable(name);
    await Promise.all(targets.map((i) => i.peer.emit(event, data)));
  }

  /**
   * Resumes plugin `name`'s instances paused for going over `limits.memorySoftMiB`
   * (see docs/security.md); returns how many were paused. They are not paused
   * again until their usage has fallen below the soft limit once; the hard
   * limit still applies.
   */
  resume(name: string): number {
    const plugin = this.#core.plugins.get(name);
    if (!plugin) throw this.#core.unavailable(name);
    return resumePlugin(this.#core, plugin);
  }

  /** Every plugin this host started, with its state. */
  list(): PluginInfo[] {
    return [...this.#core.plugins.values()].map((p) => this.#core.info(p));
  }

  /**
   * Transport counters of every serving instance (messages and bytes both ways, wake-ups, ring fill
   * levels), for metrics; reading them makes no syscalls. Instances whose transport keeps no counters
   * are left out.
   */
  transportStats(): InstanceTransportStats[] {
    const out: InstanceTransportStats[] = [];
    for (const plugin of this.#core.plugins.values()) {
      for (const instance of plugin.instances) {
        const stats = instance.transport.stats?.();
        if (!stats) continue;
        const streams = instance.peer.streamStats();
        out.push({
          plugin: plugin.manifest.name,
          instance: instance.id,
          pid: instance.pid,
          ...stats,
          streamItemsSent: streams.itemsSent,
          streamItemsReceived: streams.itemsReceived,
          streamBytesSent: streams.bytesSent,
          streamBytesReceived: streams.bytesReceived,
        });
      }
    }
    return out;
  }

  /**
   * Replaces plugin `name`'s instances with fresh ones from its (possibly
   * changed) files without failing a call; rolls back if they fail. See
   * _reload.ts.
   */
  async reload(name: string): Promise<PluginInfo> {
    const plugin = this.#core.plugins.get(name);
    if (!plugin || plugin.state !== "running") throw this.#core.unavailable(name);
    try {
      await reloadPlugin(this.#core, plugin);
    } finally {
      this.#sampler.sync(); // The new version may set memory limits the old one had not.
    }
    return this.#core.info(plugin);
  }

  /**
   * Changes plugin `name`'s config: checked against its manifest's `config`
   * schema (a ConfigError names the field), then handed to its `onConfig`
   * without a restart ("applied"), or, if the plugin has none, the plugin is
   * reloaded with the new values ("reloaded").
   */
  async configure(name: string, values: Record<string, unknown>): Promise<"applied" | "reloaded"> {
    const plugin = this.#core.plugins.get(name);
    if (!plugin || plugin.state !== "running") throw this.#core.unavailable(name);
    try {
      return await configurePlugin(this.#core, plugin, values);
    } finally {
      this.#sampler.sync();
    }
  }

  /**
   * The config values plugin `name` runs with now (validated, defaults filled
   * in; a copy), or undefined if it is not loaded.
   */
  configOf(name: string): Record<string, unknown> | undefined {
    const config = this.#core.plugins.get(name)?.config;
    return config === undefined ? undefined : structuredClone(config);
  }

  /**
   * Runs hook `name` through every running plugin that declares it, highest
   * priority first; each handler may change `context` or stop the chain. A
   * handler that throws or overruns is skipped (policy "skip", the default)
   * or fails the run with a HookError (policy "fail"). See _hooks.ts.
   */
  runHook<C>(name: string, context: C, options?: RunHookOptions): Promise<HookResult<C>> {
    return runHook(this.#core, name, context, options);
  }

  /** Watches the plugin's directory and reloads on changes (development mode). */
  watch(name: string, options: { debounceMs?: number } = {}): () => void {
    const plugin = this.#core.plugins.get(name);
    if (!plugin) throw this.#core.unavailable(name);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const watcher = watch(plugin.manifest.dir, { recursive: true }, () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        this.reload(name).catch(() => {/* recorded as rolled-back */});
      }, options.debounceMs ?? watchDebounceMsDefault);
    });
    plugin.watcher = { close: () => (clearTimeout(timer), watcher.close()) };
    return () => plugin.watcher?.close();
  }

  /**
   * Stops plugin `name`: refuses new calls, lets calls in flight finish, asks
   * each instance to stop, then escalates to SIGTERM and SIGKILL after
   * `stopTimeoutMs` each. A load still starting is stopped too: once this
   * returns, nothing of the plugin runs. Refused with a DependencyError while
   * running plugins depend on it, unless `force`.
   */
  async unload(name: string, options: { force?: boolean } = {}): Promise<void> {
    const plugin = this.#core.plugins.get(name);
    if (plugin && !options.force) checkUnload(this.#core, name);
    if (plugin) await unloadPlugin(this.#core, plugin);
  }

  /** Unloads every plugin and refuses new loads. Idempotent. */
  async close(): Promise<void> {
    this.#core.closed = true;
    clearInterval(this.#watchdog);
    this.#sampler.stop();
    await Promise.all([...this.#core.plugins.values()].map((plugin) => unloadPlugin(this.#core, plugin)));
  }

  /** Same as {@link close}: for `await using host = new PluginHost()`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** The load's `inspect` option, checked. */
function inspectOption(name: string, options: LoadOptions): { port?: number } | undefined {
  if (typeof options !== "object" || options === null) throw new TypeError("load() options must be an object");
  const inspect = options.inspect;
  if (inspect === undefined || inspect === false) return undefined;
  if (inspect === true) return {};
  if (typeof inspect !== "object" || inspect === null) {
    throw new TypeError(`load() option inspect must be true, false or {port}, got ${JSON.stringify(inspect)}`);
  }
  return inspect.port === undefined ? {} : { port: checkInspectPort(name, inspect.port) };
}

/**
 * Removes segments whose creator died before unlinking them (a host killed
 * while a plugin was starting). Without the native library there are no
 * segments of ours to sweep, and socket transports still work.
 */
function sweepDeadSegments(): void {
  let native;
  try {
    native = getNative();
  } catch {
    return;
  }
  native.sweep();
}
