/**
 * Serves a plugin definition over the connection its host described in the
 * launch environment: connect, HELLO, then RPC until the host goes away. Only
 * the launch entry calls this, so importing a plugin module never connects.
 *
 * @module
 */

import process from "node:process";
import { HandshakeError } from "../protocol/errors.ts";
import { protocolVersions, sendHello } from "../protocol/handshake.ts";
import {
  exitCodeNotLaunched,
  exitCodeRefused,
  launchEnv,
  reservedMethods,
  wholeNumberFromEnv,
} from "../protocol/launch.ts";
import { blockMicrosMax, livenessCheckMsMax } from "../transport/shm_channel.ts";
import { compressionAlgorithms } from "../protocol/frame.ts";
import { type Handler, type HandlerContext, RpcPeer, type StreamHandler } from "../protocol/rpc.ts";
import { ChannelClosedError } from "../transport/errors.ts";
import { connectTransport } from "../transport/factory.ts";
import type { TransportKind } from "../transport/transport.ts";
import {
  drainTimeoutMs,
  hookEntries,
  type PluginContext,
  type PluginDefinition,
  type PluginSession,
} from "./plugin.ts";
import { callHostTraced, serveTraced } from "./_tracing.ts";

/** How long the plugin waits for WELCOME after HELLO. */
export const welcomeTimeoutMs = 10_000;

/** The config values the host sent at launch (JSON in the environment), replaced by `$config`. */
let currentConfig: Readonly<Record<string, unknown>> = {};

function readLaunchConfig(): Readonly<Record<string, unknown>> {
  const text = process.env[launchEnv.config];
  if (!text) return {};
  const value = JSON.parse(text);
  return Object.freeze(typeof value === "object" && value !== null && !Array.isArray(value) ? value : {});
}

/**
 * `this` in a plugin's method. A class, so a call costs one small object rather than an object literal with
 * three closures and two getters (allocated on every request); `callHost`, `emit` and `plugins` are made on
 * first read and kept, so `const { callHost } = this` still works.
 */
class CallContext implements PluginContext {
  readonly #call: HandlerContext;
  readonly #traceparent: string | undefined;
  #callHost: PluginContext["callHost"] | undefined;
  #emit: PluginContext["emit"] | undefined;
  #plugins: PluginContext["plugins"] | undefined;

  constructor(call: HandlerContext, readonly session: PluginSession, traceparent?: string) {
    this.#call = call;
    this.#traceparent = traceparent;
  }

  // Read on demand: the RPC layer makes a call's AbortController only when someone asks for its signal.
  get signal(): AbortSignal {
    return this.#call.signal;
  }

  get config(): Readonly<Record<string, unknown>> {
    return currentConfig;
  }

  get callHost(): PluginContext["callHost"] {
    const peer = this.#call.peer;
    const traceparent = this.#traceparent;
    return this.#callHost ??= traceparent === undefined
      ? (name, ...args) => peer.call(name, args)
      : (name, ...args) => callHostTraced(name, traceparent, (tp) => peer.call(name, args, { traceparent: tp }));
  }

  get emit(): PluginContext["emit"] {
    const peer = this.#call.peer;
    return this.#emit ??= (name, data) => peer.emit(name, data);
  }

  get plugins(): PluginContext["plugins"] {
    const peer = this.#call.peer;
    return this.#plugins ??= {
      call: (plugin, method, ...args) => peer.call(reservedMethods.pluginCall, [plugin, method, args]),
    };
  }
}

function contextFor(call: HandlerContext, session: PluginSession, traceparent?: string): PluginContext {
  return new CallContext(call, session, traceparent);
}

function toHandlers(definition: PluginDefinition, session: PluginSession): Record<string, Handler> {
  const handlers: Record<string, Handler> = {};
  for (const [name, fn] of Object.entries(definition.methods)) {
    // Only a request that carries trace context (the host traces) pays for a span.
    handlers[name] = (args: unknown[], ctx: HandlerContext) =>
      ctx.traceparent === undefined
        ? fn.apply(contextFor(ctx, session), args)
        : serveTraced(definition.name, name, ctx.traceparent, (tp) => fn.apply(contextFor(ctx, session, tp), args));
  }
  return handlers;
}

/** `$hook:<name>` handlers: run the plugin's handler, answer the (changed) context and whether it stopped the chain. */
function toHookHandlers(definition: PluginDefinition, session: PluginSession): Record<string, Handler> {
  const handlers: Record<string, Handler> = {};
  for (const [name, hook] of hookEntries(definition)) {
    const handler = typeof hook === "function" ? hook : hook.handler;
    handlers[`${reservedMethods.hookPrefix}${name}`] = async ([context], ctx: HandlerContext) => {
      let stop = false;
      const changed = await handler.call(contextFor(ctx, session), context, {
        stop: () => void (stop = true),
      });
      return { context: changed === undefined ? context : changed, stop };
    };
  }
  return handlers;
}

function toStreamHandlers(definition: PluginDefinition, session: PluginSession): Record<string, StreamHandler> {
  const handlers: Record<string, StreamHandler> = {};
  for (const [name, fn] of Object.entries(definition.streams ?? {})) {
    handlers[name] = (input, args, ctx) =>
      (fn as (...a: unknown[]) => AsyncIterable<unknown>).apply(contextFor(ctx, session, ctx.traceparent), [
        input,
        ...args,
      ]);
  }
  return handlers;
}

/** True when this process was started by a host (its launch variables are set). */
export function launchedByHost(): boolean {
  return Boolean(process.env[launchEnv.transport] && process.env[launchEnv.address] && process.env[launchEnv.token]);
}

/** Says on stderr that a plugin needs a host, and exits with {@link exitCodeNotLaunched}. */
export function exitNotLaunched(what: string): never {
  process.stderr.write(
    `${what} is a plugin-shm plugin: a plugin host starts it and talks to it; it does nothing on its own.\n` +
      `Run it through a host, e.g.: deno run -A cli.ts call <plugin-dir> <method> [json-args]\n`,
  );
  process.exit(exitCodeNotLaunched);
}

/** Connects to the host, handshakes and serves `definition` until the host goes away; then exits. */
export async function serve(definition: PluginDefinition): Promise<never> {
  if (!launchedByHost()) exitNotLaunched(`"${definition.name}"`);
  const env = process.env;
  currentConfig = readLaunchConfig();
  const doorbellPath = env[launchEnv.doorbell];
  const transport = await connectTransport(
    env[launchEnv.transport] as TransportKind,
    env[launchEnv.address]!,
    env[launchEnv.secret] ?? "",
    {
      doorbell: doorbellPath ? { path: doorbellPath, key: env[launchEnv.doorbellKey] ?? "" } : undefined,
      livenessCheckMs: wholeNumberFromEnv(
        launchEnv.livenessCheckMs,
        env[launchEnv.livenessCheckMs],
        1,
        livenessCheckMsMax,
        "milliseconds",
      ),
      blockMicros: wholeNumberFromEnv(
        launchEnv.blockMicros,
        env[launchEnv.blockMicros],
        0,
        blockMicrosMax,
        "microseconds",
      ),
      // Not fatal: the channel parks on the futex instead. Said once, for whoever wonders about wake-up times.
      onDoorbellUnavailable: (error) =>
        process.stderr.write(`plugin ${definition.name}: no doorbell, woken through the futex: ${error.message}\n`),
    },
  );
  let welcome;
  try {
    welcome = await sendHello(transport, {
      token: env[launchEnv.token]!,
      versions: protocolVersions,
      name: definition.name,
      version: definition.version,
      runtime: "Bun" in globalThis ? "bun" : "Deno" in globalThis ? "deno" : "node",
      methods: [...Object.keys(definition.methods), ...Object.keys(definition.streams ?? {})],
      compression: [...compressionAlgorithms],
    }, welcomeTimeoutMs);
  } catch (error) {
    if (!(error instanceof HandshakeError)) throw error;
    process.stderr.write(`plugin ${definition.name}: handshake refused: ${error.message}\n`);
    process.exit(exitCodeRefused);
  }
  const session: PluginSession = {
    protocolVersion: welcome.version,
    heartbeatIntervalMs: welcome.heartbeatIntervalMs,
  };
  let stopping = false;
  const idle = () => new AbortController().signal;
  // The handlers need the peer, the peer needs the handlers: the closures below read `peer` once it exists.

  const lifecycle: Record<string, Handler> = {
    [reservedMethods.stop]: async () => {
      stopping = true;
      // GOODBYE first, so the host routes no new calls here while we drain.
      await peer.goodbye();
      // Finish what is in flight (this call itself counts as one), then stop.
      const started = Date.now();
      while (peer.servingCalls > 1 && Date.now() - started < drainTimeoutMs) {
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      await definition.onStop?.call(contextFor({ peer, signal: idle() }, session));
      return true;
    },
    [reservedMethods.exportState]: () =>
      definition.exportState?.call(contextFor({ peer, signal: idle() }, session)) ?? null,
    [reservedMethods.config]: async ([config]) => {
      if (!definition.onConfig) return false; // The host reloads the plugin with the new values.
      const next = Object.freeze({ ...(config as Record<string, unknown>) });
      await definition.onConfig.call(contextFor({ peer, signal: idle() }, session), next);
      currentConfig = next;
      return true;
    },
    [reservedMethods.importState]: async ([state]) => {
      await definition.importState?.call(contextFor({ peer, signal: idle() }, session), state);
      return true;
    },
  };
  const peer: RpcPeer = new RpcPeer(transport, {
    remoteName: "host",
    handlers: { ...toHandlers(definition, session), ...toHookHandlers(definition, session), ...lifecycle },
    streamHandlers: toStreamHandlers(definition, session),
    // The host judges our silence by its checks at the interval it sent; pings of our own would only double
    // every idle plugin's wake-ups: we answer, we do not ask. Over shm we beat at that interval instead (a word
    // the host reads), so the host need not ping us, and an idle plugin wakes once per interval for one store.
    heartbeatIntervalMs: 0,
    beatIntervalMs: welcome.heartbeatIntervalMs,
    protocolVersion: welcome.version,
    compression: welcome.compression,
    onEvent: (name, data) => definition.onEvent?.call(contextFor({ peer, signal: idle() }, session), name, data),
  });
  await definition.onStart?.call(contextFor({ peer, signal: idle() }, session));
  await peer.run();
  // The host closed the connection or died: a plugin never outlives its host.
  const reason = peer.closedWith;
  if (!stopping && !(reason instanceof ChannelClosedError && reason.code === "peer-closed")) {
    process.stderr.write(`plugin ${definition.name}: host connection lost (${reason?.message}); exiting\n`);
  }
  process.exit(0);
}
