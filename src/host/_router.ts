/**
 * Call routing: each call goes to the running instance with the fewest calls
 * in flight. While a plugin restarts or reloads, calls wait at its gate (up
 * to their deadline or `callWaitMs`) or fail at once, by the call policy.
 * Instances that said GOODBYE get no new calls.
 *
 * @module
 */

import { clearTimeout, setTimeout } from "node:timers";
import type { CallObserver, CallOptions } from "../protocol/rpc.ts";
import type { HostCore } from "./_core.ts";
import type { Instance } from "./_instance.ts";

/** The running instance with the fewest calls in flight, if calls may go to one now. */
export function pick(core: HostCore, name: string): Instance | undefined {
  const plugin = core.plugins.get(name);
  if (!plugin || plugin.gate || plugin.state === "draining") return undefined;
  let best: Instance | undefined;
  let debugged: Instance | undefined;
  for (const instance of plugin.instances) {
    if (instance.peer.remoteDraining) continue;
    // Silent under a debugger (paused at a breakpoint, say): the call waits for the resume, up to its deadline.
    if (instance.state === "unresponsive" && instance.inspector?.debugging) debugged ??= instance;
    if (instance.state !== "running") continue;
    if (!best || instance.peer.pendingCalls < best.peer.pendingCalls) best = instance;
  }
  return best ?? debugged;
}

/** Routes one call; `observer` (the host's metrics and tracing) is told with `state` when it settles. */
export function route(
  core: HostCore,
  name: string,
  method: string,
  args: unknown[],
  options: CallOptions,
  observer?: CallObserver,
  state?: unknown,
): Promise<unknown> {
  const instance = pick(core, name);
  if (instance) return instance.peer.call(method, args, options, observer, state);
  return callLater(core, name, method, args, options, observer, state);
}

async function callLater(
  core: HostCore,
  name: string,
  method: string,
  args: unknown[],
  options: CallOptions,
  observer: CallObserver | undefined,
  state: unknown,
): Promise<unknown> {
  const started = performance.now();
  let instance: Instance;
  try {
    instance = await waitForInstance(core, name, options);
  } catch (error) {
    observer?.settled(method, state, error as Error);
    throw error;
  }
  const left = options.deadlineMs === undefined
    ? undefined
    : Math.max(1, options.deadlineMs - (performance.now() - started));
  return await instance.peer.call(method, args, { ...options, deadlineMs: left }, observer, state);
}

/** Waits at the plugin's gate for a running instance, up to the call's deadline or `callWaitMs`. */
async function waitForInstance(core: HostCore, name: string, options: CallOptions): Promise<Instance> {
  const plugin = core.plugins.get(name);
  if (!plugin?.gate || core.options.callPolicy === "fail") throw core.unavailable(name);
  const waitMs = options.deadlineMs ?? core.options.callWaitMs;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, waitMs)));
  await Promise.race([plugin.gate.promise, timeout]);
  clearTimeout(timer);
  const instance = pick(core, name);
  if (!instance) throw core.unavailable(name);
  return instance;
}
