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
 * @module
 */

import { readdirSync, readFileSync } from "node:fs";
import process from "node:process";
import type { HostCore, PluginEntry } from "./_core.ts";
import type { Instance } from "./_instance.ts";
import { PluginLimitError } from "./errors.ts";
import { markDying } from "./_supervisor.ts";
import { resumeInstance, signalAll } from "./_pause.ts";

const bytesPerMiB = 1024 * 1024;
/** Clock ticks per second of /proc/<pid>/stat times (USER_HZ; 100 on every Linux ABI in use). */
const ticksPerSecond = 100;
/** Most processes followed in one instance's tree: a fork bomb must not make sampling unbounded. */
export const treeProcessesMax = 4096;

/** What one reading of a process tree found. */
export interface TreeUsage {
  pids: number[];
  rssBytes: number;
  cpuSeconds: number;
}

const hasProc = process.platform === "linux";

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined; // The process exited between listing and reading: it no longer counts.
  }
}

/** `pid` and all its descendants, through /proc/<pid>/task/<tid>/children. */
function processTree(root: number): number[] {
  const seen = new Set<number>([root]);
  const queue = [root];
  while (queue.length && seen.size < treeProcessesMax) {
    const pid = queue.shift()!;
    let tasks: string[];
    try {
      tasks = readdirSync(`/proc/${pid}/task`);
    } catch {
      continue;
    }
    for (const tid of tasks) {
      for (const child of (readText(`/proc/${pid}/task/${tid}/children`) ?? "").split(" ")) {
        const childPid = Number(child);
        if (childPid > 0 && !seen.has(childPid)) {
          seen.add(childPid);
          queue.push(childPid);
        }
      }
    }
  }
  return [...seen];
}

/** RSS (VmRSS of /proc/<pid>/status) and CPU time (utime + stime of /proc/<pid>/stat) of a tree. */
export function readTreeUsage(root: number): TreeUsage | undefined {
  if (!hasProc) return undefined;
  const pids = processTree(root);
  let rssBytes = 0;
  let ticks = 0;
  const alive: number[] = [];
  for (const pid of pids) {
    const status = readText(`/proc/${pid}/status`);
    const stat = readText(`/proc/${pid}/stat`);
    if (status === undefined || stat === undefined) continue;
    alive.push(pid);
    const rss = /^VmRSS:\s+(\d+) kB/m.exec(status);
    if (rss) rssBytes += Number(rss[1]) * 1024;
    // Fields after the command name (which may hold spaces and parentheses): state is field 3, utime 14, stime 15.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    ticks += Number(fields[11]) + Number(fields[12]);
  }
  if (alive.length === 0) return undefined;
  return { pids: alive, rssBytes, cpuSeconds: ticks / ticksPerSecond };
}

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
