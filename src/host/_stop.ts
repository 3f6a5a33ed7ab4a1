/**
 * Stopping: a plugin drains (no new calls, calls in flight finish), each
 * instance is asked to stop with the reserved `$stop`, then escalated to
 * SIGTERM and SIGKILL after `stopTimeoutMs` each. Spawns still in flight are
 * waited for, so nothing of the plugin runs once `unload()` has returned.
 *
 * @module
 */

import { setTimeout as sleepMs } from "node:timers/promises";
import { reservedMethods } from "../protocol/launch.ts";
import { ChannelClosedError } from "../transport/errors.ts";
import type { HostCore, PluginEntry } from "./_core.ts";
import { resumeInstance } from "./_pause.ts";
import type { Instance } from "./_instance.ts";

/** How often a drain looks at the calls in flight. */
export const drainPollMs = 1;

/** Waits until none of `instances` has a call in flight, up to `timeoutMs`. */
export async function drained(instances: Instance[], timeoutMs: number): Promise<void> {
  const started = performance.now();
  while (instances.some((i) => i.peer.pendingCalls > 0) && performance.now() - started < timeoutMs) {
    await sleepMs(drainPollMs);
  }
}

/** Ends an instance at once: no drain, SIGKILL. */
export async function killInstance(instance: Instance): Promise<void> {
  instance.state = "stopping";
  instance.peer.close();
  instance.kill("SIGKILL");
  await instance.exited;
}

/** Drains one instance, asks it to stop, and escalates to signals. */
export async function stopInstance(core: HostCore, plugin: PluginEntry, instance: Instance): Promise<void> {
  const timeoutMs = core.options.stopTimeoutMs;
  instance.state = "stopping";
  resumeInstance(instance); // A paused instance could neither drain nor stop.
  await drained([instance], timeoutMs);
  try {
    await instance.peer.call(reservedMethods.stop, [], { deadlineMs: Math.max(1, timeoutMs) });
  } catch {
    // A plugin that cannot stop politely is stopped by signal below.
  }
  instance.peer.close(new ChannelClosedError("local", `Plugin "${plugin.manifest.name}" was stopped`));
  if (!(await instance.waitForExit(timeoutMs))) {
    instance.kill("SIGTERM");
    if (!(await instance.waitForExit(timeoutMs))) instance.kill("SIGKILL");
  }
  await instance.exited;
  core.record(plugin, instance.id, "stopped", `exit ${JSON.stringify(instance.exitStatus ?? null)}`);
}

/** Stops a plugin: refuses new calls, lets calls in flight finish, stops every instance. */
export async function unloadPlugin(core: HostCore, plugin: PluginEntry): Promise<void> {
  if (plugin.state === "stopped") return;
  clearTimeout(plugin.restartTimer);
  clearTimeout(plugin.recoveryTimer);
  plugin.watcher?.close();
  const wasFailed = plugin.state === "failed";
  plugin.state = "draining";
  // Spawns in flight see the plugin is no longer wanted and kill what they started.
  await Promise.allSettled([...plugin.spawning, ...plugin.retiring]);
  if (wasFailed && plugin.instances.length === 0) {
    plugin.state = "failed";
    return;
  }
  core.record(plugin, 0, "draining", "stop requested: new calls are refused");
  await Promise.all(plugin.instances.map((i) => stopInstance(core, plugin, i)));
  plugin.instances = [];
  plugin.state = "stopped";
  core.openGate(plugin);
  core.record(plugin, 0, "stopped", "every instance exited");
}
