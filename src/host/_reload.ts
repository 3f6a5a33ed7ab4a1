/**
 * Hot reload: start fresh instances from the plugin's (possibly changed)
 * files, hold new calls while the old instances finish theirs, hand the state
 * over (`$exportState` → `$importState`), route to the new ones and stop the
 * old. If the new ones fail to start or to take the state, they are killed
 * and the old ones keep serving.
 *
 * @module
 */

import { reservedMethods } from "../protocol/launch.ts";
import { ReloadError } from "./errors.ts";
import { type HostCore, makeGate, type PluginEntry } from "./_core.ts";
import type { Instance } from "./_instance.ts";
import { loadManifest, type Manifest } from "./manifest.ts";
import { drained, killInstance, stopInstance } from "./_stop.ts";
import { adopt, startAll } from "./_supervisor.ts";

/** How long the state handover may take, each way. */
export const stateHandoverMs = 5_000;

/** Replaces the plugin's instances; rolls back on failure. */
export async function reloadPlugin(core: HostCore, plugin: PluginEntry): Promise<void> {
  const name = plugin.manifest.name;
  plugin.state = "reloading";
  core.record(plugin, 0, "reloading", "starting new instance(s)");
  let fresh: Instance[] = [];
  try {
    const manifest = loadManifest(plugin.manifest.dir);
    fresh = await startAll(core, plugin, manifest);
    await swap(core, plugin, manifest, fresh);
  } catch (error) {
    await Promise.all(fresh.map(killInstance));
    if (plugin.state === "reloading") plugin.state = plugin.instances.length > 0 ? "running" : "failed";
    core.openGate(plugin);
    core.record(plugin, 0, "rolled-back", `old instance(s) keep serving: ${(error as Error).message}`);
    throw new ReloadError(`Reload of "${name}" failed and was rolled back: ${(error as Error).message}`, {
      cause: error,
    });
  }
}

async function swap(core: HostCore, plugin: PluginEntry, manifest: Manifest, fresh: Instance[]): Promise<void> {
  const old = plugin.instances;
  const started = performance.now();
  plugin.gate = makeGate();
  await drained(old, core.options.stopTimeoutMs);
  const source = old.find((i) => i.state === "running");
  const state = source
    ? await source.peer.call(reservedMethods.exportState, [], { deadlineMs: stateHandoverMs })
    : null;
  if (state !== null && state !== undefined) {
    await Promise.all(
      fresh.map((i) => i.peer.call(reservedMethods.importState, [state], { deadlineMs: stateHandoverMs })),
    );
  }
  plugin.manifest = manifest;
  plugin.instances = [];
  for (const instance of fresh) adopt(core, plugin, instance);
  plugin.state = "running";
  core.openGate(plugin);
  const heldMs = performance.now() - started;
  core.record(plugin, 0, "reloaded", `now ${manifest.version}; calls held ${heldMs.toFixed(1)} ms during the swap`);
  for (const instance of old) {
    const stopping = stopInstance(core, plugin, instance);
    plugin.retiring.add(stopping);
    stopping.finally(() => plugin.retiring.delete(stopping));
  }
}
