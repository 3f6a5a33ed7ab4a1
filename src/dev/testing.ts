/**
 * The test harness for plugin authors (`plugin-shm/testing`): starts the
 * plugin under test the way a real host does (its own process, shared memory,
 * handshake, the manifest's grants), gives back a typed client, and records
 * what the plugin did: log lines, events, host-function calls. Host functions
 * are fakes the test passes in and can make fail or hang. `close()` stops the
 * plugin and checks that nothing is left: no process, no segment.
 *
 * It uses `node:` modules only, so one test file runs under `deno test`,
 * `bun test` and `node --test` alike.
 *
 * @module
 */

import { readFileSync } from "node:fs";
import { readdir } from "node:fs/promises";
import { resolve } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { PluginHost } from "../host/host.ts";
import type { PluginHostOptions } from "../host/options.ts";
import type { LogEntry } from "../host/process.ts";
import type { PluginEvent, PluginInfo } from "../host/types.ts";
import type { CallOptions, PluginClient } from "../protocol/rpc.ts";
import type { TransportKind } from "../transport/transport.ts";
import { HarnessError } from "./errors.ts";

/** How long {@link TestPlugin.waitForEvent} and {@link TestPlugin.waitForLog} wait by default. */
export const waitTimeoutMsDefault = 10_000;
/** How long `close()` waits for the plugin's processes and segments to go before it reports a leak. */
export const cleanupWaitMsDefault = 5_000;
/** Poll interval of the cleanup check. */
const cleanupPollMs = 20;

/** A call a plugin made to a host function, as recorded. */
export interface HostCall {
  /** The host function's name. */
  name: string;
  /** The arguments the plugin passed. */
  args: unknown[];
  /** Milliseconds since the epoch. */
  at: number;
}

/** What {@link startPlugin} takes besides the plugin's directory. */
export interface StartPluginOptions {
  /**
   * Fake host functions. The plugin may call only those its manifest grants
   * (`permissions.hostFunctions`), as under a real host.
   */
  hostFunctions?: Record<string, (...args: never[]) => unknown>;
  /** Config values for the plugin, checked against its manifest's `config` schema (a ConfigError names the field). */
  config?: Record<string, unknown>;
  /** Transport; default "shm". */
  transport?: TransportKind;
  /** Extra environment variables for the plugin process. */
  env?: Record<string, string>;
  /** Print the plugin's log lines to stderr as they come (they are captured either way). */
  printLogs?: boolean;
  /** Further host options (heartbeat, timeouts, a verifier, a launch planner …). */
  host?: Omit<PluginHostOptions, "dirs" | "hostFunctions" | "logger" | "env" | "transport">;
}

/** A running plugin under test. */
export interface TestPlugin<M extends object = Record<string, (...args: never[]) => unknown>> {
  /** The plugin's name from its manifest. */
  readonly name: string;
  /** The plugin as the host sees it now (state, pids, methods …). */
  readonly info: PluginInfo;
  /** Typed calls: `plugin.client.add(1, 2)`. */
  readonly client: PluginClient<M>;
  /** Every line the plugin wrote to stdout or stderr so far, in order. */
  readonly logs: readonly LogEntry[];
  /** Every event the plugin emitted so far, in order. */
  readonly events: readonly PluginEvent[];
  /**
   * Every host-function call that reached a fake so far, in order. A call the
   * manifest does not grant is refused by the host before it gets here (see
   * the host's "permission-denied" event on {@link TestPlugin.host}).
   */
  readonly hostCalls: readonly HostCall[];
  /** The host the plugin runs under, for what the harness does not wrap. */
  readonly host: PluginHost;
  /** Calls `method` with `args`. */
  call(method: string, args?: unknown[], options?: CallOptions): Promise<unknown>;
  /** Opens a stream to a stream method. */
  stream(
    method: string,
    args?: unknown[],
    input?: AsyncIterable<unknown>,
    options?: CallOptions,
  ): AsyncIterable<unknown>;
  /** Sends an event to the plugin (its `onEvent`). */
  emit(event: string, data?: unknown): Promise<void>;
  /** Resolves with the first event named `name` (already emitted or still to come). */
  waitForEvent(name: string, options?: { timeoutMs?: number }): Promise<PluginEvent>;
  /** Resolves with the first log line that contains `match` (a string) or matches it (a RegExp). */
  waitForLog(match: string | RegExp, options?: { timeoutMs?: number }): Promise<LogEntry>;
  /** From now on, calls to host function `name` throw `error` (default: an Error saying it was made to fail). */
  failHost(name: string, error?: unknown): void;
  /** From now on, calls to host function `name` never answer (until {@link TestPlugin.restoreHost} or close). */
  hangHost(name: string): void;
  /** Host function `name` behaves as passed in again; calls it left hanging fail. */
  restoreHost(name: string): void;
  /** Changes the plugin's config as `host.configure` does: to its `onConfig`, or by a reload. */
  configure(config: Record<string, unknown>): Promise<"applied" | "reloaded">;
  /** Reloads the plugin from its (possibly changed) files, as `host.reload` does. */
  reload(): Promise<PluginInfo>;
  /**
   * Stops the plugin and its host and checks that nothing is left: no
   * process of the plugin, no shared-memory segment it made. Throws a
   * {@link HarnessError} with code "leak" if something is. Idempotent.
   */
  close(): Promise<void>;
  /** `await using plugin = await startPlugin(…)` closes it at the end of the scope. */
  [Symbol.asyncDispose](): Promise<void>;
}

type Fault = { kind: "fail"; error: unknown } | { kind: "hang" };

function dirOf(plugin: string | URL): string {
  if (plugin instanceof URL) return fileURLToPath(plugin);
  return plugin.startsWith("file:") ? fileURLToPath(plugin) : resolve(plugin);
}

/**
 * Starts the plugin in directory `plugin` (a path or a `file:` URL, e.g.
 * `new URL(".", import.meta.url)`) under a host of its own, and waits until it
 * serves.
 *
 * @example
 * ```ts
 * import { startPlugin } from "./testing.ts";
 * const echo = await startPlugin<{ add(a: number, b: number): number }>("examples/plugins/echo", {
 *   hostFunctions: { now: () => "2026-01-01T00:00:00.000Z" },
 * });
 * try {
 *   console.assert(await echo.client.add(2, 3) === 5);
 * } finally {
 *   await echo.close();
 * }
 * ```
 */
export async function startPlugin<M extends object = Record<string, (...args: never[]) => unknown>>(
  plugin: string | URL,
  options: StartPluginOptions = {},
): Promise<TestPlugin<M>> {
  const dir = dirOf(plugin);
  const logs: LogEntry[] = [];
  const events: PluginEvent[] = [];
  const hostCalls: HostCall[] = [];
  const faults = new Map<string, Fault>();
  const hanging = new Map<string, Set<(error: unknown) => void>>();
  const waiters = new Set<() => void>();
  const wake = () => waiters.forEach((w) => w());
  const fakes = options.hostFunctions ?? {};
  const hostFunctions: Record<string, (...args: never[]) => unknown> = {};
  for (const [name, impl] of Object.entries(fakes)) {
    if (typeof impl !== "function") throw new TypeError(`startPlugin option hostFunctions.${name} must be a function`);
    hostFunctions[name] = (...args: never[]) => {
      hostCalls.push({ name, args, at: Date.now() });
      const fault = faults.get(name);
      if (fault?.kind === "fail") throw fault.error;
      if (fault?.kind === "hang") {
        return new Promise((_resolve, reject) => {
          const set = hanging.get(name) ?? new Set();
          set.add(reject);
          hanging.set(name, set);
        });
      }
      return (impl as (...a: unknown[]) => unknown)(...args);
    };
  }
  const releaseHanging = (name: string, why: string) => {
    for (const reject of hanging.get(name) ?? []) reject(new HarnessError("closed", why));
    hanging.delete(name);
  };
  const host = new PluginHost({
    ...options.host,
    dirs: [dir],
    hostFunctions,
    transport: options.transport ?? "shm",
    env: options.env,
    config: options.config === undefined ? undefined : { [nameOf(dir)]: options.config },
    logger: (entry) => {
      logs.push(entry);
      if (options.printLogs) process.stderr.write(`[${entry.plugin}] ${entry.line}\n`);
      wake();
    },
  });
  host.on("plugin-event", (event) => {
    events.push(event);
    wake();
  });
  let info: PluginInfo;
  try {
    info = await host.load(dir);
  } catch (error) {
    await host.close();
    throw error;
  }
  const name = info.name;
  const pids = new Set<number>(info.pids);
  const rememberPids = () => host.list().forEach((p) => p.pids.forEach((pid) => pids.add(pid)));
  host.onState(rememberPids);
  let closing: Promise<void> | undefined;

  function waitFor<T>(find: () => T | undefined, what: string, timeoutMs = waitTimeoutMsDefault): Promise<T> {
    const found = find();
    if (found !== undefined) return Promise.resolve(found);
    return new Promise<T>((resolvePromise, reject) => {
      const check = () => {
        const hit = find();
        if (hit === undefined) return;
        done();
        resolvePromise(hit);
      };
      const timer = setTimeout(() => {
        done();
        reject(new HarnessError("timeout", `Plugin "${name}" ${what} within ${timeoutMs} ms; pass a longer timeoutMs`));
      }, timeoutMs);
      const done = () => (clearTimeout(timer), waiters.delete(check));
      waiters.add(check);
    });
  }

  function knownHostFunction(fn: string): void {
    if (!Object.hasOwn(fakes, fn)) {
      throw new HarnessError(
        "unknown_host_function",
        `No host function "${fn}" was passed to startPlugin(); known: ${Object.keys(fakes).join(", ") || "none"}`,
      );
    }
  }

  const testPlugin: TestPlugin<M> = {
    name,
    get info() {
      return host.list().find((p) => p.name === name) ?? info;
    },
    client: host.client<M>(name),
    logs,
    events,
    hostCalls,
    host,
    call: (method, args = [], callOptions) => host.call(name, method, args, callOptions),
    stream: (method, args = [], input, callOptions) => host.stream(name, method, args, input, callOptions),
    emit: (event, data) => host.emit(name, event, data),
    waitForEvent: (event, o = {}) =>
      waitFor(() => events.find((e) => e.name === event), `emitted no event "${event}"`, o.timeoutMs),
    waitForLog: (match, o = {}) =>
      waitFor(
        () => logs.find((l) => (typeof match === "string" ? l.line.includes(match) : match.test(l.line))),
        `wrote no line matching ${String(match)}`,
        o.timeoutMs,
      ),
    failHost(fn, error) {
      knownHostFunction(fn);
      releaseHanging(fn, `host function "${fn}" was switched to fail`);
      faults.set(fn, { kind: "fail", error: error ?? new Error(`host function "${fn}" was made to fail by the test`) });
    },
    hangHost(fn) {
      knownHostFunction(fn);
      faults.set(fn, { kind: "hang" });
    },
    restoreHost(fn) {
      knownHostFunction(fn);
      faults.delete(fn);
      releaseHanging(fn, `host function "${fn}" was restored while this call hung`);
    },
    async configure(config) {
      const how = await host.configure(name, config);
      rememberPids();
      return how;
    },
    async reload() {
      const reloaded = await host.reload(name);
      rememberPids();
      return reloaded;
    },
    close() {
      closing ??= (async () => {
        rememberPids();
        for (const fn of [...hanging.keys()]) releaseHanging(fn, "the test harness is closing");
        await host.close();
        await expectNothingLeft(name, [...pids]);
      })();
      return closing;
    },
    [Symbol.asyncDispose]: () => testPlugin.close(),
  };
  return testPlugin;
}

/** The manifest's name, read without validating: load() validates and reports the problems. */
function nameOf(dir: string): string {
  try {
    const name = JSON.parse(readFileSync(resolve(dir, "plugin.json"), "utf8")).name;
    return typeof name === "string" ? name : "";
  } catch {
    return "";
  }
}

function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return state !== "Z" && state !== "X";
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return false;
    // No /proc (macOS): signal 0 asks whether the process exists.
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  }
}

/** Segments in /dev/shm whose header names one of `pids` as creator or attacher (Linux layout, see zig/segment). */
async function segmentsOf(pids: Set<number>): Promise<string[]> {
  let names: string[];
  try {
    names = (await readdir("/dev/shm")).filter((n) => n.startsWith("pshm-"));
  } catch {
    return [];
  }
  return names.filter((name) => {
    try {
      const header = readFileSync(`/dev/shm/${name}`).subarray(0, 40);
      if (header.length < 40) return false;
      const view = new DataView(header.buffer, header.byteOffset, header.byteLength);
      return pids.has(view.getUint32(32, true)) || pids.has(view.getUint32(36, true));
    } catch {
      return false;
    }
  });
}

async function expectNothingLeft(name: string, pids: number[]): Promise<void> {
  const started = Date.now();
  for (;;) {
    const alive = pids.filter(running);
    const segments = await segmentsOf(new Set(pids));
    if (alive.length === 0 && segments.length === 0) return;
    if (Date.now() - started > cleanupWaitMsDefault) {
      throw new HarnessError(
        "leak",
        `Plugin "${name}" left ${alive.length ? `process(es) ${alive.join(", ")} running` : ""}` +
          `${alive.length && segments.length ? " and " : ""}${
            segments.length ? `segment(s) ${segments.join(", ")}` : ""
          }` +
          ` ${cleanupWaitMsDefault} ms after close(); a plugin must exit when its host goes away`,
      );
    }
    await new Promise((r) => setTimeout(r, cleanupPollMs));
  }
}
