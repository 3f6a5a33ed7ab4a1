/**
 * The plugin SDK: a plugin module calls {@link definePlugin} with its methods;
 * when the host starts the module, the SDK connects back over the transport
 * the host chose, performs the handshake and serves calls until the host goes
 * away. Stdout is free for the plugin's own use: the protocol never touches
 * it. A plugin started by hand exits with a message saying how to run it.
 *
 * @module
 */

import process from "node:process";
import { ChannelClosedError, HandshakeError } from "../errors.ts";
import { protocolVersions, sendHello } from "../protocol/handshake.ts";
import { type Handler, type HandlerContext, RpcPeer, type StreamHandler } from "../protocol/rpc.ts";
import { connectTransport } from "../transport/factory.ts";
import type { TransportKind } from "../transport/transport.ts";

/** Environment variables the host sets for a plugin it launches. */
export const pluginEnv = {
  transport: "PLUGIN_SHM_TRANSPORT",
  address: "PLUGIN_SHM_ADDRESS",
  secret: "PLUGIN_SHM_SECRET",
  token: "PLUGIN_SHM_TOKEN",
  name: "PLUGIN_SHM_NAME",
} as const;

/** What a method sees as `this`. */
export interface PluginContext {
  /** Aborts when the caller cancels or the call's deadline passes. */
  readonly signal: AbortSignal;
  /** Calls a function the host exposes. */
  callHost(name: string, ...args: unknown[]): Promise<unknown>;
  /** Sends an event to the host. */
  emit(name: string, data?: unknown): Promise<void>;
}

// deno-lint-ignore no-explicit-any
type AnyFunction = (...args: any[]) => unknown;

/** A plugin's methods: any functions of MessagePack-able arguments and results. */
export type PluginMethods = Record<string, AnyFunction>;

/** A plugin's stream methods: an input stream plus arguments in, an output stream out. */
export type PluginStreams = Record<string, (input: AsyncIterable<unknown>, ...args: never[]) => AsyncIterable<unknown>>;

/** What {@link definePlugin} takes. */
export interface PluginDefinition<M extends PluginMethods = PluginMethods, S extends PluginStreams = PluginStreams> {
  name: string;
  version: string;
  methods: M & ThisType<PluginContext>;
  streams?: S & ThisType<PluginContext>;
  /** Runs after the handshake, before the first call. */
  onStart?(this: PluginContext): void | Promise<void>;
  /** Runs when the host asks the plugin to stop. */
  onStop?(this: PluginContext): void | Promise<void>;
  /** Receives events the host sends. */
  onEvent?(this: PluginContext, name: string, data: unknown): void;
  /** Hot reload: returns the state to hand to the new instance (MessagePack-able). */
  exportState?(this: PluginContext): unknown;
  /** Hot reload: receives the old instance's state before the first call. */
  importState?(this: PluginContext, state: unknown): void | Promise<void>;
}

/** How long `$stop` waits for in-flight calls before running onStop anyway. */
export const drainTimeoutMs = 10_000;

/** A plugin's methods as the host sees them: every call is async. */
export type PluginClient<M extends object> = {
  [K in keyof M]: M[K] extends (...args: infer A) => infer R ? (...args: A) => Promise<Awaited<R>> : never;
};

/** The exit code of a plugin started by hand. */
export const exitCodeNotLaunched = 2;

/**
 * Declares a plugin and, when this process was launched by a plugin host,
 * serves it.
 *
 * @example
 * ```ts ignore
 * import { definePlugin } from "../../plugin.ts";
 * export default definePlugin({
 *   name: "math",
 *   version: "1.0.0",
 *   methods: { add: (a: number, b: number) => a + b },
 * });
 * ```
 */
export function definePlugin<M extends PluginMethods, S extends PluginStreams = Record<never, never>>(
  definition: PluginDefinition<M, S>,
): PluginDefinition<M, S> {
  queueMicrotask(() => {
    serve(definition as unknown as PluginDefinition).catch((error) => {
      process.stderr.write(`plugin ${definition.name}: ${(error as Error).stack ?? error}\n`);
      process.exit(1);
    });
  });
  return definition;
}

function env(name: string): string | undefined {
  return process.env[name];
}

function contextFor(peer: RpcPeer, signal: AbortSignal): PluginContext {
  return {
    signal,
    callHost: (name, ...args) => peer.call(name, args),
    emit: (name, data) => peer.emit(name, data),
  };
}

function toHandlers(definition: PluginDefinition): Record<string, Handler> {
  const handlers: Record<string, Handler> = {};
  for (const [name, fn] of Object.entries(definition.methods)) {
    handlers[name] = (args: unknown[], ctx: HandlerContext) => fn.apply(contextFor(ctx.peer, ctx.signal), args);
  }
  return handlers;
}

function toStreamHandlers(definition: PluginDefinition): Record<string, StreamHandler> {
  const handlers: Record<string, StreamHandler> = {};
  for (const [name, fn] of Object.entries(definition.streams ?? {})) {
    handlers[name] = (input, args, ctx) =>
      (fn as (...a: unknown[]) => AsyncIterable<unknown>).apply(contextFor(ctx.peer, ctx.signal), [input, ...args]);
  }
  return handlers;
}

async function serve(definition: PluginDefinition): Promise<void> {
  const kind = env(pluginEnv.transport) as TransportKind | undefined;
  const address = env(pluginEnv.address);
  const token = env(pluginEnv.token);
  if (!kind || !address || !token) {
    process.stderr.write(
      `"${definition.name}" is a plugin-shm plugin: a plugin host starts it and talks to it; it does nothing on its own.\n` +
        `Run it through a host, e.g.: deno run -A cli.ts call <plugin-dir> <method> [json-args]\n`,
    );
    process.exit(exitCodeNotLaunched);
  }
  const transport = await connectTransport(kind, address, env(pluginEnv.secret) ?? "");
  const methods = Object.keys(definition.methods);
  const runtime = "Bun" in globalThis ? "bun" : "Deno" in globalThis ? "deno" : "node";
  let stopping = false;
  let peer: RpcPeer | undefined = undefined;
  const idle = () => new AbortController().signal;
  const lifecycle: Record<string, Handler> = {
    "$stop": async () => {
      stopping = true;
      // Finish what is in flight (this call itself counts as one), then stop.
      const started = Date.now();
      while (peer!.servingCalls > 1 && Date.now() - started < drainTimeoutMs) {
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      await definition.onStop?.call(contextFor(peer!, idle()));
      return true;
    },
    "$exportState": () => definition.exportState?.call(contextFor(peer!, idle())) ?? null,
    "$importState": async ([state]) => {
      await definition.importState?.call(contextFor(peer!, idle()), state);
      return true;
    },
  };
  try {
    await sendHello(transport, {
      token,
      versions: protocolVersions,
      name: definition.name,
      version: definition.version,
      runtime,
      methods: [...methods, ...Object.keys(definition.streams ?? {})],
    }, 10_000);
  } catch (error) {
    if (error instanceof HandshakeError) {
      process.stderr.write(`plugin ${definition.name}: handshake refused: ${error.message}\n`);
      process.exit(3);
    }
    throw error;
  }
  peer = new RpcPeer(transport, {
    remoteName: "host",
    handlers: { ...toHandlers(definition), ...lifecycle },
    streamHandlers: toStreamHandlers(definition),
    onEvent: (name, data) => definition.onEvent?.call(contextFor(peer!, new AbortController().signal), name, data),
  });
  await definition.onStart?.call(contextFor(peer, new AbortController().signal));
  await peer.run();
  // The host closed the connection or died: a plugin never outlives its host.
  const reason = peer.closedWith;
  if (!stopping && !(reason instanceof ChannelClosedError && reason.code === "peer-closed")) {
    process.stderr.write(`plugin ${definition.name}: host connection lost (${reason?.message}); exiting\n`);
  }
  process.exit(0);
}
