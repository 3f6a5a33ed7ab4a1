/**
 * The plugin SDK: a plugin module default-exports {@link definePlugin}'s
 * result. The host starts the module through its launch entry
 * (src/plugin/_launch.ts), which connects back over the transport the host
 * chose, performs the handshake and serves calls until the host goes away.
 * Importing the module anywhere else starts nothing. Stdout is free for the
 * plugin's own use: the protocol never touches it.
 *
 * @module
 */

import { exitCodeNotLaunched, launchEnv } from "../protocol/launch.ts";

/**
 * Environment variables the host sets for a plugin it launches: an alias of
 * the protocol's {@link launchEnv}, kept for plugins that read them.
 */
export const pluginEnv: {
  /** "shm", "unix" or "tcp". */
  readonly transport: "PLUGIN_SHM_TRANSPORT";
  /** The segment name, socket path or host:port to connect to. */
  readonly address: "PLUGIN_SHM_ADDRESS";
  /** The shm segment's one-time attach token (empty for sockets). */
  readonly secret: "PLUGIN_SHM_SECRET";
  /** The handshake token that proves the plugin was launched by this host. */
  readonly token: "PLUGIN_SHM_TOKEN";
  /** The plugin's name from its manifest. */
  readonly name: "PLUGIN_SHM_NAME";
} = launchEnv;

/** What a method sees as `this`. */
export interface PluginContext {
  /** Aborts when the caller cancels or the call's deadline passes. */
  readonly signal: AbortSignal;
  /** Calls a function the host exposes. */
  callHost(name: string, ...args: unknown[]): Promise<unknown>;
  /**
   * Calls another plugin through the host: `this.plugins.call("kv", "get", key)`.
   * Allowed only for plugins the manifest's `permissions.plugins` names.
   */
  readonly plugins: { call(plugin: string, method: string, ...args: unknown[]): Promise<unknown> };
  /** Sends an event to the host. */
  emit(name: string, data?: unknown): Promise<void>;
  /** The connection as the handshake settled it; absent when a method is called directly (a unit test). */
  readonly session?: PluginSession;
  /**
   * The plugin's config values, checked by the host against the manifest's
   * `config` schema (defaults filled in); `{}` without one. Always the newest
   * values: after a change this reads what `onConfig` received.
   */
  readonly config: Readonly<Record<string, unknown>>;
}

/** What the handshake settled: the protocol version and the heartbeat interval the host asked for. */
export interface PluginSession {
  /** The protocol version both sides agreed on (docs/protocol.md, section 4). */
  readonly protocolVersion: number;
  /** How often this plugin sends PING, in milliseconds, as the host's WELCOME set it (0: never). */
  readonly heartbeatIntervalMs: number;
}

/** A plugin's methods: any functions of MessagePack-able arguments and results. */
// deno-lint-ignore no-explicit-any
export type PluginMethods = Record<string, (...args: any[]) => unknown>;

/** A plugin's stream methods: an input stream plus arguments in, an output stream out. */
export type PluginStreams = Record<string, (input: AsyncIterable<unknown>, ...args: never[]) => AsyncIterable<unknown>>;

/** What a hook handler gets besides the context: `stop()` ends the chain after this handler. */
export interface HookChain {
  /** Ends the chain after this handler: later handlers do not run. */
  stop(): void;
}

/**
 * A hook handler: returns the changed context (or changes it in place and
 * returns nothing); its priority is declared in plugin.json `hooks`.
 */
// deno-lint-ignore no-explicit-any
export type HookHandler = (context: any, chain: HookChain) => unknown;

/** A definition's hooks as [name, handler or {handler}] pairs (typed for every compiler, not only Deno's). */
export function hookEntries(definition: PluginDefinition): [string, HookHandler | { handler: HookHandler }][] {
  return Object.entries(definition.hooks ?? {}) as [string, HookHandler | { handler: HookHandler }][];
}

/** What {@link definePlugin} takes. */
export interface PluginDefinition<M extends PluginMethods = PluginMethods, S extends PluginStreams = PluginStreams> {
  /** The plugin's name, sent to the host in the handshake (HELLO); use the manifest's `name`. */
  name: string;
  /** The plugin's own version (semver), reported in the handshake. */
  version: string;
  /** The methods the host may call; `this` is the call's {@link PluginContext}. */
  methods: M & ThisType<PluginContext>;
  /** Stream methods: each gets the caller's input stream and arguments and returns an output stream. Default: none. */
  streams?: S & ThisType<PluginContext>;
  /**
   * Hook handlers by hook name (`onRequest(context, chain) {…}`, or
   * `{handler}`); each must also be declared with its priority in
   * plugin.json `hooks`, which is what the host orders by.
   */
  hooks?:
    & Record<string, HookHandler | ({ handler: HookHandler } & ThisType<PluginContext>)>
    & ThisType<PluginContext>;
  /** Runs after the handshake, before the first call. */
  onStart?(this: PluginContext): void | Promise<void>;
  /** Runs when the host asks the plugin to stop. */
  onStop?(this: PluginContext): void | Promise<void>;
  /** Receives events the host sends. */
  onEvent?(this: PluginContext, name: string, data: unknown): void;
  /**
   * Receives changed config values while running (the host's
   * `configure()`); `this.config` reads them once it returns. A plugin
   * without `onConfig` is reloaded with the new values instead.
   */
  onConfig?(this: PluginContext, config: Readonly<Record<string, unknown>>): void | Promise<void>;
  /** Hot reload: returns the state to hand to the new instance (MessagePack-able). */
  exportState?(this: PluginContext): unknown;
  /** Hot reload: receives the old instance's state before the first call. */
  importState?(this: PluginContext, state: unknown): void | Promise<void>;
}

/** How long `$stop` waits for in-flight calls before running onStop anyway. */
export const drainTimeoutMs = 10_000;

/** A plugin's methods as the host sees them: every call is async. */
export type { PluginClient } from "../protocol/rpc.ts";

export { exitCodeNotLaunched };

const definitionBrand = Symbol.for("plugin-shm.definition");

/**
 * Declares a plugin. Nothing starts on import: the host launches the module
 * through its launch entry, which imports the module's default export and
 * serves it. So a plugin module can be imported like any other (for its types,
 * or to unit-test its methods) without connecting anywhere.
 *
 * @example
 * ```ts
 * import { definePlugin } from "./plugin.ts";
 * const math = definePlugin({
 *   name: "math",
 *   version: "1.0.0",
 *   methods: { add: (a: number, b: number) => a + b },
 * });
 * console.assert(math.methods.add(1, 2) === 3);
 * ```
 */
export function definePlugin<M extends PluginMethods, S extends PluginStreams = Record<never, never>>(
  definition: PluginDefinition<M, S>,
): PluginDefinition<M, S> {
  if (!definition || typeof definition.name !== "string" || typeof definition.methods !== "object") {
    throw new TypeError("definePlugin() needs { name, version, methods }; see plugin.ts for the shape");
  }
  for (const name of [...Object.keys(definition.methods), ...Object.keys(definition.streams ?? {})]) {
    if (name.startsWith("$")) {
      throw new TypeError(`Method "${name}" of plugin "${definition.name}": names starting with "$" are reserved`);
    }
  }
  for (const [name, hook] of hookEntries(definition)) {
    const handler = typeof hook === "function" ? hook : hook?.handler;
    if (typeof hook === "object" && hook !== null && "priority" in hook) {
      // A priority here would be silently ignored: the host orders by the manifest, which it reads before starting.
      throw new TypeError(
        `Hook "${name}" of plugin "${definition.name}": declare its priority in plugin.json, ` +
          `"hooks": {"${name}": {"priority": ${
            JSON.stringify((hook as { priority: unknown }).priority)
          }}}, not in code`,
      );
    }
    if (!/^[A-Za-z][A-Za-z0-9]{0,63}$/.test(name) || typeof handler !== "function") {
      throw new TypeError(
        `Hook "${name}" of plugin "${definition.name}": a hook is a function (or {handler}) under a name of ` +
          `letters and digits, starting with a letter`,
      );
    }
  }
  Object.defineProperty(definition, definitionBrand, { value: true });
  return definition;
}

/** True when `value` came from {@link definePlugin} (in this or another copy of the SDK). */
export function isPluginDefinition(value: unknown): value is PluginDefinition {
  return typeof value === "object" && value !== null && (value as Record<symbol, unknown>)[definitionBrand] === true;
}
