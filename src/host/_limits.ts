/**
 * Memory budgets and resource sampling. Every `resourceSampleMs` the host
 * reads, from /proc, the resident memory and CPU time of each instance's
 * whole process tree (the runtime, the sandbox launcher and anything they
 * started, `setsid` or not) for plugins whose manifest sets memory limits, or
 * for all of them while someone listens for "resource" events:
 *
 * - above `limits.memorySoftMiB` the tree is paused (SIGSTOP); it resumes
 *   (SIGCONT) when its usage falls below the soft limit again or when
 *   `host.resume(name)` asks. A paused instance is not called stalled.
 * - above `limits.memoryMiB` the instance is killed; its pending calls fail
 *   with {@link PluginLimitError} and supervision restarts it as after a crash.
 *
 * Linux only (/proc); elsewhere nothing is sampled, and the sandbox's
 * RLIMIT_DATA backstop is all there is (docs/security.md).
 *
 * The timer itself runs only while something needs it ({@link ResourceSampler}):
 * a host with no limits and no listener has no timer, so an idle host wakes
 * for nothing but its plugins' heartbeats.
 *
 * @module
 */

import type { HostCore, PluginEntry } from "./_core.ts";
import type { Instance } from "./_instance.ts";
import { PluginLimitError } from "./errors.ts";
import { markDying } from "./_supervisor.ts";
import { resumeInstance, signalAll } from "./_pause.ts";
import { hasProc, readTreeUsage } from "./process_tree.ts";
import { clearInterval, setInterval } from "node:timers";

const bytesPerMiB = 1024 * 1024;

function limitEvent(
  core: HostCore,
  plugin: PluginEntry,
  instance: Instance,
  limit: "memorySoftMiB" | "memoryMiB",
  action: "paused" | "resumed" | "killed",
  rssBytes: number,
  reason?: "usage-fell" | "asked",
): void {
  const limitBytes = (plugin.manifest.limits?.[limit] ?? 0) * bytesPerMiB;
  core.bus.emit("limit", {
    plugin: plugin.manifest.name,
    instance: instance.id,
    pid: instance.pid!,
    limit,
    action,
    rssBytes,
    limitBytes,
    ...(reason ? { reason } : {}),
    at: Date.now(),
  });
}

/** host.resume(): resumes every paused instance of `plugin`; it is not paused again until usage falls and rises. */
export function resumePlugin(core: HostCore, plugin: PluginEntry): number {
  let resumed = 0;
  for (const instance of plugin.instances) {
    if (!instance.limits.paused) continue;
    resumeInstance(instance);
    instance.limits.pauseWaived = true;
    resumed++;
    core.record(plugin, instance.id, "resumed", "resumed by host.resume()");
    limitEvent(core, plugin, instance, "memorySoftMiB", "resumed", instance.limits.lastRssBytes, "asked");
  }
  return resumed;
}

/** True when a sampling round would do something: a loaded plugin has a memory limit, or someone listens. */
function samplingWanted(core: HostCore): boolean {
  if (!hasProc || core.closed) return false;
  if (core.bus.has("resource")) return true;
  for (const plugin of core.plugins.values()) {
    const limits = plugin.manifest.limits;
    if (limits?.memorySoftMiB !== undefined || limits?.memoryMiB !== undefined) return true;
  }
  return false;
}

/**
 * The host's sampling timer, running only while {@link samplingWanted}: the
 * host calls {@link sync} whenever that may have changed (a load, reload or
 * unload finished; a "resource" listener came or went), and every round
 * stops the timer once nothing needs it any more.
 */
export class ResourceSampler {
  readonly #core: HostCore;
  #timer: ReturnType<typeof setInterval> | undefined;

  constructor(core: HostCore) {
    this.#core = core;
  }

  /** Starts or stops the timer to match what the host has now. */
  sync(): void {
    const wanted = samplingWanted(this.#core);
    if (wanted && !this.#timer) {
      this.#timer = setInterval(() => {
        sampleResources(this.#core);
        this.sync();
      }, this.#core.options.resourceSampleMs);
      this.#timer.unref(); // Plugins' connections keep the process alive, not the sampler.
    } else if (!wanted && this.#timer) {
      this.stop();
    }
  }

  /** Stops the timer (the host closes). */
  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Whether the timer runs (for tests). */
  get running(): boolean {
    return this.#timer !== undefined;
  }
}

/** One sampling round over every plugin that needs it. */
export function sampleResources(core: HostCore): void {
  if (!hasProc || core.closed) return;
  const wantsEvents = core.bus.has("resource");
  for (const plugin of core.plugins.values()) {
    const soft = plugin.manifest.limits?.memorySoftMiB;
    const hard = plugin.manifest.limits?.memoryMiB;
    if (soft === undefined && hard === undefined && !wantsEvents) continue;
    for (const instance of plugin.instances) {
      if (!instance.pid || instance.state === "dead" || instance.state === "dying") continue;
      const usage = readTreeUsage(instance.pid);
      if (!usage) continue;
      instance.limits.lastRssBytes = usage.rssBytes;
      if (wantsEvents) {
        core.bus.emit("resource", {
          plugin: plugin.manifest.name,
          instance: instance.id,
          pid: instance.pid,
          rssBytes: usage.rssBytes,
          cpuSeconds: usage.cpuSeconds,
          processes: usage.pids.length,
          paused: instance.limits.paused,
          at: Date.now(),
        });
      }
      if (instance.state === "stopping") continue;
      if (hard !== undefined && usage.rssBytes > hard * bytesPerMiB) {
        const error = new PluginLimitError(plugin.manifest.name, "memoryMiB", usage.rssBytes, hard * bytesPerMiB);
        markDying(core, plugin, instance);
        instance.peer.close(error);
        instance.kill("SIGKILL");
        core.record(plugin, instance.id, "killed", error.message);
        limitEvent(core, plugin, instance, "memoryMiB", "killed", usage.rssBytes);
        continue;
      }
      if (soft === undefined) continue;
      const above = usage.rssBytes > soft * bytesPerMiB;
      if (above && !instance.limits.paused && !instance.limits.pauseWaived) {
        signalAll(usage.pids, "SIGSTOP");
        instance.limits.paused = true;
        instance.limits.pausedPids = usage.pids;
        core.record(
          plugin,
          instance.id,
          "paused",
          `${Math.round(usage.rssBytes / bytesPerMiB)} MiB is over limits.memorySoftMiB = ${soft} MiB; ` +
            `paused until it falls below or host.resume("${plugin.manifest.name}")`,
        );
        limitEvent(core, plugin, instance, "memorySoftMiB", "paused", usage.rssBytes);
      } else if (!above && instance.limits.paused) {
        resumeInstance(instance);
        core.record(plugin, instance.id, "resumed", `usage fell below limits.memorySoftMiB = ${soft} MiB`);
        limitEvent(core, plugin, instance, "memorySoftMiB", "resumed", usage.rssBytes, "usage-fell");
      } else if (!above) {
        instance.limits.pauseWaived = false;
      }
    }
  }
}
