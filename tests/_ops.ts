/**
 * Shared pieces of the operations tests.
 *
 * @module
 */

import type { CallOptions, PluginHost } from "../mod.ts";
import type { CallInstrumentation } from "../src/observe/instrumentation.ts";

/**
 * Calls through `instrumentation` exactly as the host's call path does once it
 * takes the `instrumentation` option (CONTRACTS.md): begin, call, end with the
 * error if any.
 */
export async function instrumentedCall(
  host: PluginHost,
  instrumentation: CallInstrumentation,
  call: { plugin: string; method: string; args?: unknown[]; options?: CallOptions },
): Promise<unknown> {
  const state = instrumentation.begin(call.plugin, call.method);
  try {
    const value = await host.call(call.plugin, call.method, call.args ?? [], call.options);
    instrumentation.end(call.plugin, call.method, state);
    return value;
  } catch (error) {
    instrumentation.end(call.plugin, call.method, state, error);
    throw error;
  }
}

/** Waits until `check()` is true, polling every 20 ms, up to `limitMs`. */
export async function until(check: () => boolean, limitMs = 10_000): Promise<void> {
  const started = Date.now();
  while (!check()) {
    if (Date.now() - started > limitMs) throw new Error(`condition not met within ${limitMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
