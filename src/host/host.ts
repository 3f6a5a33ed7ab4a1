/**
 * PluginHost: discovers plugins, starts each in its own process, performs the
 * handshake, and routes calls, streams and events. Every lifecycle change is
 * an event with a timestamp and a reason, kept per plugin.
 *
 * @module
 */

import { randomBytes } from "node:crypto";
import { existsSync, readdirSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import {
  ChannelClosedError,
  HandshakeError,
  type ManifestError,
  PluginCrashedError,
  PluginNotFoundError,
  ProtocolError,
} from "../errors.ts";
import { acceptHello, protocolVersions, type VersionRange } from "../protocol/handshake.ts";
import { type CallOptions, heartbeatIntervalMsDefault, RpcPeer } from "../protocol/rpc.ts";
import { listenTransport } from "../transport/factory.ts";
import type { TransportKind } from "../transport/transport.ts";
import { type PluginClient, pluginEnv } from "../plugin/plugin.ts";
import { loadManifest, type Manifest, manifestFile } from "./manifest.ts";
import { type LogEntry, PluginProcess } from "./process.ts";

/** Lifecycle states. */
export type PluginState = "starting" | "handshaking" | "running" | "draining" | "stopped" | "failed";

/** A lifecycle transition, as emitted and as kept in a plugin's history. */
export interface StateEvent {
  plugin: string;
  state: PluginState;
  /** Milliseconds since the epoch. */
  at: number;
  reason: string;
}

/** A plugin's current picture, from {@link PluginHost.list}. */
export interface PluginInfo {
  name: string;
  version: string;
  runtime: "deno" | "bun";
  state: PluginState;
  pid: number | undefined;
  transport: TransportKind;
  methods: string[];
  dir: string;
  history: StateEvent[];
}

/** One directory the host looked at, with its manifest or what is wrong with it. */
export interface Discovered {
  dir: string;
  manifest?: Manifest;
  error?: ManifestError;
}

/** Options for {@link PluginHost}. */
export interface PluginHostOptions {
  /** Directories to look in: each is a plugin directory or holds plugin directories. */
  dirs?: string[];
  /** Transport for plugins without an entry in `transports`. Default "shm". */
  transport?: TransportKind;
  /** Transport per plugin name. */
  transports?: Record<string, TransportKind>;
  /** Functions plugins may call with `this.callHost(name, ...args)`. */
  hostFunctions?: Record<string, (...args: never[]) => unknown>;
  /** Receives every line plugins write to stdout and stderr. Default: stderr, tagged. */
  logger?: (entry: LogEntry) => void;
  /** Protocol versions the host accepts. Default: this release's. */
  protocol?: VersionRange;
  /** Heartbeat interval, both ways. Default 1000 ms. */
  heartbeatIntervalMs?: number;
  /** Time for a started plugin to connect and complete the handshake. Default 10 s. */
  handshakeTimeoutMs?: number;
  /** Time a stopping plugin gets before SIGTERM, and again before SIGKILL. Default 3 s. */
  stopTimeoutMs?: number;
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

interface Running {
  manifest: Manifest;
  state: PluginState;
  transport: TransportKind;
  process?: PluginProcess;
  peer?: RpcPeer;
  methods: string[];
  history: StateEvent[];
  stopping: boolean;
}

function defaultLogger(entry: LogEntry): void {
  console.error(`[${entry.plugin}] ${entry.line}`);
}

/**
 * Hosts plugins, each in its own process.
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
  readonly #plugins = new Map<string, Running>();
  readonly #stateListeners = new Set<Listener<StateEvent>>();
  readonly #eventListeners = new Set<Listener<{ plugin: string; name: string; data: unknown }>>();
  #closed = false;

  constructor(options: PluginHostOptions = {}) {
    this.#options = options;
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
    const transport = this.#options.transports?.[manifest.name] ?? this.#options.transport ?? "shm";
    const running: Running = {
      manifest,
      state: "starting",
      transport,
      methods: [],
      history: existing?.history ?? [],
      stopping: false,
    };
    this.#plugins.set(manifest.name, running);
    this.#transition(running, "starting", `loading ${manifest.file}`);
    try {
      await this.#start(running);
    } catch (error) {
      this.#transition(running, "failed", (error as Error).message);
      running.process?.kill("SIGKILL");
      await running.process?.exited;
      throw error;
    }
    return this.#info(running);
  }

  #resolveManifest(nameOrDir: string): Manifest {
    if (existsSync(join(nameOrDir, manifestFile))) return loadManifest(nameOrDir);
    const known = this.#plugins.get(nameOrDir)?.manifest;
    if (known) return known;
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

  async #start(running: Running): Promise<void> {
    const { manifest } = running;
    const listener = await listenTransport(running.transport, { ringBytes: this.#options.ringBytes });
    const token = randomBytes(32).toString("hex");
    try {
      running.process = new PluginProcess(manifest, {
        [pluginEnv.transport]: running.transport,
        [pluginEnv.address]: listener.address,
        [pluginEnv.secret]: listener.secret,
        [pluginEnv.token]: token,
        [pluginEnv.name]: manifest.name,
      }, this.#options.logger ?? defaultLogger);
      this.#transition(running, "handshaking", `pid ${running.process.pid} started`);
      const accepted = listener.accept(this.#handshakeTimeoutMs()).catch((cause) => {
        throw new HandshakeError("timeout", `plugin did not connect: ${(cause as Error).message}`, { cause });
      });
      const transport = await this.#raceExit(running, accepted, "connecting");
      const { hello } = await this.#raceExit(
        running,
        acceptHello(transport, {
          token,
          versions: this.#options.protocol ?? protocolVersions,
          heartbeatIntervalMs: this.#options.heartbeatIntervalMs ?? heartbeatIntervalMsDefault,
          timeoutMs: this.#handshakeTimeoutMs(),
        }).catch((error) => {
          transport.close();
          throw error;
        }),
        "handshaking",
      );
      running.methods = hello.methods;
      running.peer = this.#connect(running, transport);
      this.#transition(running, "running", `handshake done: ${hello.name} ${hello.version} on ${hello.runtime}`);
    } finally {
      listener.close();
    }
    this.#watch(running);
  }

  #handshakeTimeoutMs(): number {
    return this.#options.handshakeTimeoutMs ?? handshakeTimeoutMsDefault;
  }

  /** Fails fast when the plugin exits before `step` completes. */
  async #raceExit<T>(running: Running, step: Promise<T>, what: string): Promise<T> {
    const process = running.process!;
    const exited = process.exited.then((status) => {
      const tail = process.stderrTail;
      throw new HandshakeError(
        "exited",
        `Plugin "${running.manifest.name}" ${
          status.signal ? `was killed by ${status.signal}` : `exited with code ${status.code}`
        } while ${what}` +
          (tail.length ? `; last stderr lines:\n  ${tail.join("\n  ")}` : "; it wrote nothing to stderr"),
      );
    });
    try {
      return await Promise.race([step, exited]);
    } catch (error) {
      if (error instanceof HandshakeError && error.code === "timeout") {
        throw new HandshakeError(
          "timeout",
          `Plugin "${running.manifest.name}" did not complete the handshake within ${this.#handshakeTimeoutMs()} ms; ` +
            `check that its entry calls definePlugin()`,
        );
      }
      throw error;
    }
  }

  #connect(running: Running, transport: import("../transport/transport.ts").Transport): RpcPeer {
    const name = running.manifest.name;
    const hostFunctions = this.#options.hostFunctions ?? {};
    const handlers = Object.fromEntries(
      Object.entries(hostFunctions).map((
        [fn, impl],
      ) => [fn, (args: unknown[]) => (impl as (...a: unknown[]) => unknown)(...args)]),
    );
    return new RpcPeer(transport, {
      remoteName: name,
      handlers,
      heartbeatIntervalMs: this.#options.heartbeatIntervalMs ?? heartbeatIntervalMsDefault,
      onEvent: (event, data) => {
        for (const l of this.#eventListeners) l({ plugin: name, name: event, data });
      },
    });
  }

  /** Runs the read loop; on a crash fails every pending call at once. */
  #watch(running: Running): void {
    const peer = running.peer!;
    const process = running.process!;
    process.exited.then((status) => {
      if (running.stopping) return;
      const error = new PluginCrashedError(running.manifest.name, status.code, status.signal, process.stderrTail);
      peer.close(error);
      this.#transition(running, "failed", error.message);
    });
    peer.run().then(() => {
      if (running.stopping || running.state !== "running") return;
      if (peer.closedWith instanceof ProtocolError) {
        running.stopping = true;
        this.#transition(running, "failed", `protocol violation: ${peer.closedWith.message}`);
      }
      // The connection dropped while the process may still live: it is of no
      // use any more, so end it; the exit handler above reports the crash.
      process.kill("SIGKILL");
    });
  }

  /** Calls `method` on plugin `name`. */
  call(name: string, method: string, args: unknown[] = [], options: CallOptions = {}): Promise<unknown> {
    return this.#peerOf(name).call(method, args, options);
  }

  /** A typed proxy: `host.client<typeof plugin.methods>("kv").get("a")`. */
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
    return this.#peerOf(name).stream(method, args, input, options);
  }

  /** Sends an event to plugin `name`. */
  emit(name: string, event: string, data?: unknown): Promise<void> {
    return this.#peerOf(name).emit(event, data);
  }

  #peerOf(name: string): RpcPeer {
    const running = this.#plugins.get(name);
    if (!running?.peer || running.state !== "running") {
      const state = running ? `is ${running.state}` : "is not loaded";
      throw new PluginNotFoundError(`Plugin "${name}" ${state}; load it first with host.load("${name}")`);
    }
    return running.peer;
  }

  /** Every plugin this host started, with its state. */
  list(): PluginInfo[] {
    return [...this.#plugins.values()].map((r) => this.#info(r));
  }

  #info(running: Running): PluginInfo {
    const { manifest } = running;
    return {
      name: manifest.name,
      version: manifest.version,
      runtime: manifest.runtime,
      state: running.state,
      pid: running.process?.pid,
      transport: running.transport,
      methods: running.methods,
      dir: manifest.dir,
      history: [...running.history],
    };
  }

  /**
   * Stops plugin `name`: asks it to drain and stop, closes the connection,
   * then escalates to SIGTERM and SIGKILL after `stopTimeoutMs` each.
   */
  async unload(name: string): Promise<void> {
    const running = this.#plugins.get(name);
    if (!running || running.state === "stopped" || running.state === "failed") return;
    running.stopping = true;
    this.#transition(running, "draining", "unload requested");
    const timeoutMs = this.#options.stopTimeoutMs ?? stopTimeoutMsDefault;
    try {
      await running.peer?.call("$stop", [], { deadlineMs: timeoutMs });
    } catch {
      // A plugin that cannot stop politely is stopped by signal below.
    }
    running.peer?.close(new ChannelClosedError("local", `Plugin "${name}" was unloaded`));
    const process = running.process;
    if (process && !(await process.waitForExit(timeoutMs))) {
      process.kill("SIGTERM");
      if (!(await process.waitForExit(timeoutMs))) {
        process.kill("SIGKILL");
        await process.exited;
      }
    }
    this.#transition(running, "stopped", `exit ${JSON.stringify(process?.exitStatus ?? null)}`);
  }

  /** Unloads every plugin. Idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all([...this.#plugins.keys()].map((name) => this.unload(name)));
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #transition(running: Running, state: PluginState, reason: string): void {
    running.state = state;
    const event: StateEvent = { plugin: running.manifest.name, state, at: Date.now(), reason };
    running.history.push(event);
    if (running.history.length > historyLengthMax) running.history.shift();
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
