/**
 * Supervision: puts started instances into service and watches them. A
 * crashed instance restarts with exponential backoff until a crash-loop
 * limit; a silent one is marked unresponsive, then killed and restarted. It
 * talks to the {@link Instance} interface only, never to an OS process.
 *
 * @module
 */

import { clearTimeout, setTimeout } from "node:timers";
import { ProtocolError } from "../protocol/errors.ts";
import { PluginCrashedError, PluginStalledError } from "./errors.ts";
import { type HostCore, makeGate, type PluginEntry } from "./_core.ts";
import type { Instance } from "./_instance.ts";
import type { ExitStatus } from "./process.ts";
import { killInstance } from "./_stop.ts";
import { type Blame, bunBlameUnsupported, describeBlame, describeFrame, takeBlame } from "./_blame.ts";
import { inspectorTarget, portAnswers } from "./_inspect.ts";

/** A restarted instance that stays up this long has recovered: the next crash backs off from the start. */
export const recoveredAfterMs = 5_000;

/** Puts a started instance into service and watches it. */
export function adopt(core: HostCore, plugin: PluginEntry, instance: Instance): void {
  plugin.instances.push(instance);
  core.record(plugin, instance.id, "ready", `handshake done: ${instance.description}`);
  instance.exited.then((status) => onExit(core, plugin, instance, status));
  instance.readLoop.then(() => {
    if (instance.state === "stopping" || instance.state === "dead") return;
    // The connection is gone while the process may live on: it is useless
    // now, so end it; onExit reports and restarts.
    const reason = instance.peer.closedWith;
    if (reason instanceof ProtocolError) {
      core.record(plugin, instance.id, "crashed", `protocol violation: ${reason.message}`);
    }
    markDying(core, plugin, instance);
    instance.kill("SIGKILL");
  });
}

/**
 * Takes an instance out of routing the moment it is known to be lost, before
 * its exit is observed, so that calls wait for the restart instead of failing
 * in between.
 */
export function markDying(core: HostCore, plugin: PluginEntry, instance: Instance): void {
  if (instance.state === "stopping" || instance.state === "dead") return;
  instance.state = "dying";
  const serving = plugin.instances.some((i) => i.state === "running" || i.state === "unresponsive");
  if (!serving && core.options.restart && plugin.state === "running") {
    plugin.state = "restarting";
    plugin.gate ??= makeGate();
  }
}

function onExit(core: HostCore, plugin: PluginEntry, instance: Instance, status: ExitStatus): void {
  const wasStopping = instance.state === "stopping";
  markDying(core, plugin, instance);
  instance.state = "dead";
  plugin.instances = plugin.instances.filter((i) => i !== instance);
  if (wasStopping || core.closed) return;
  const error = new PluginCrashedError(plugin.manifest.name, status.code, status.signal, instance.stderrTail);
  instance.peer.close(error);
  core.record(plugin, instance.id, "crashed", error.message);
  scheduleRestart(core, plugin);
}

function scheduleRestart(core: HostCore, plugin: PluginEntry): void {
  const { crashWindowMs, crashLimit, restart } = core.options;
  const now = Date.now();
  plugin.crashTimes = [...plugin.crashTimes.filter((t) => now - t < crashWindowMs), now];
  plugin.consecutiveCrashes++;
  if (!restart || plugin.crashTimes.length >= crashLimit) {
    const why = !restart
      ? "restarts are disabled"
      : `${plugin.crashTimes.length} crashes within ${crashWindowMs} ms (limit ${crashLimit}); it stays down until restarted`;
    if (plugin.instances.length === 0) fail(core, plugin, why);
    else core.record(plugin, 0, "failed", `one instance is down for good: ${why}`);
    return;
  }
  const { restartBackoffMs, restartBackoffMsMax } = core.options;
  const backoff = Math.min(restartBackoffMsMax, restartBackoffMs * 2 ** (plugin.consecutiveCrashes - 1));
  const delay = backoff * (0.8 + Math.random() * 0.4);
  if (plugin.instances.length === 0) {
    plugin.state = "restarting";
    plugin.gate ??= makeGate();
  }
  core.record(
    plugin,
    0,
    "restarting",
    `in ${Math.round(delay)} ms (crash ${plugin.crashTimes.length} of ${crashLimit})`,
  );
  plugin.restartTimer = setTimeout(() => restartOne(core, plugin), delay);
}

async function restartOne(core: HostCore, plugin: PluginEntry): Promise<void> {
  plugin.restartTimer = undefined;
  if (!core.wanted(plugin)) return;
  let instance: Instance;
  try {
    instance = await core.spawn(plugin, plugin.manifest);
  } catch (error) {
    if (!core.wanted(plugin)) return; // Stopped while it was starting: nothing to restart.
    core.record(plugin, 0, "crashed", `restart failed: ${(error as Error).message}`);
    scheduleRestart(core, plugin);
    return;
  }
  adopt(core, plugin, instance);
  plugin.state = "running";
  core.openGate(plugin);
  clearTimeout(plugin.recoveryTimer);
  // node:timers, so unref() exists under Deno too: this timer must not keep a closed host alive.
  plugin.recoveryTimer = setTimeout(() => {
    plugin.recoveryTimer = undefined;
    if (instance.state === "running") plugin.consecutiveCrashes = 0;
  }, recoveredAfterMs);
  plugin.recoveryTimer.unref();
}

function fail(core: HostCore, plugin: PluginEntry, reason: string): void {
  plugin.state = "failed";
  core.record(plugin, 0, "failed", reason);
  core.openGate(plugin);
}

/**
 * Runs every instance's heartbeat check, marks silent instances unresponsive, and kills those silent past the grace
 * period (after profiling them, with `blameStalls`). An instance under a debugger is never killed for silence: it may
 * be paused at a breakpoint.
 */
export function checkStalls(core: HostCore): void {
  const { stallTimeoutMs, stallGraceMs } = core.options;
  const now = performance.now();
  for (const plugin of core.plugins.values()) {
    for (const instance of plugin.instances) {
      // The instances' heartbeats run from this one timer, not one each (heartbeatTimer: false).
      instance.peer.checkLiveness();
      if (instance.state !== "running" && instance.state !== "unresponsive") continue;
      // Paused for its memory budget: silent on purpose, and the silence before a resume does not count.
      if (instance.limits.paused || instance.blaming) continue;
      const silentMs = now - Math.max(instance.peer.lastFrameAt, instance.limits.resumedAt);
      const debugging = instance.inspector?.debugging === true;
      if (instance.state === "running" && silentMs > stallTimeoutMs) {
        instance.state = "unresponsive";
        const why = debugging ? " (under the inspector, perhaps paused at a breakpoint: it is not killed)" : "";
        core.record(plugin, instance.id, "unresponsive", `no frame for ${Math.round(silentMs)} ms${why}`);
      } else if (instance.state === "unresponsive" && silentMs <= stallTimeoutMs) {
        instance.state = "running";
        core.record(plugin, instance.id, "ready", "answering again");
      } else if (instance.state === "unresponsive" && silentMs > stallTimeoutMs + stallGraceMs && !debugging) {
        killStalled(core, plugin, instance).catch((error) => core.bus.emit("listener-error", { type: "stall", error }));
      }
    }
  }
}

/** Blames (with `blameStalls`), reports and kills a stalled instance. */
async function killStalled(core: HostCore, plugin: PluginEntry, instance: Instance): Promise<void> {
  const name = plugin.manifest.name;
  let blame: Blame | undefined;
  let blameError: string | undefined;
  if (core.options.blameStalls) {
    instance.blaming = true;
    try {
      blame = await blameInstance(core, plugin, instance);
    } catch (error) {
      blameError = (error as Error)?.message ?? String(error);
    } finally {
      instance.blaming = false;
    }
    // Stopped, or dead by itself, while it was profiled: nothing left to kill.
    if (instance.state !== "unresponsive") return;
  }
  const silentMs = performance.now() - Math.max(instance.peer.lastFrameAt, instance.limits.resumedAt);
  const where = blame?.stack[0] ?? blame?.top[0];
  const error = new PluginStalledError(name, silentMs, where && describeFrame(where));
  core.bus.emit("stall", {
    plugin: name,
    instance: instance.id,
    pid: instance.pid,
    silentMs,
    ...(blame ? { blame } : {}),
    ...(blameError ? { blameError } : {}),
    at: Date.now(),
  });
  const detail = blame ? `; ${describeBlame(blame)}` : blameError ? `; no blame: ${blameError}` : "";
  core.record(plugin, instance.id, "killed", `stalled: no frame for ${Math.round(silentMs)} ms${detail}`);
  markDying(core, plugin, instance);
  instance.peer.close(error);
  instance.kill("SIGKILL");
}

/** Profiles the stalled instance through its inspector (see _blame.ts). */
async function blameInstance(core: HostCore, plugin: PluginEntry, instance: Instance): Promise<Blame> {
  const inspector = instance.inspector;
  if (!inspector) {
    throw new Error(
      plugin.manifest.runtime === "bun" ? bunBlameUnsupported : "it was started without an inspector",
    );
  }
  // Node opens an on-demand inspector on SIGUSR1 (the launcher forwards it), even in a busy loop. The port
  // was free at spawn; if someone took it since, what answers there is not this plugin: blame nothing.
  if (inspector.endpoint.onDemand && !inspector.webSocketUrl) {
    if (await portAnswers(inspector.endpoint)) {
      throw new Error(`another process took its inspector port ${inspector.endpoint.port} since it started`);
    }
    instance.kill("SIGUSR1");
  }
  inspector.webSocketUrl ??= (await inspectorTarget(plugin.manifest.runtime, inspector.endpoint)).webSocketUrl;
  return await takeBlame({
    plugin: plugin.manifest.name,
    instance: instance.id,
    webSocketUrl: inspector.webSocketUrl,
    sampleMs: core.options.blameSampleMs,
    profileDir: core.options.profileDir,
  });
}

/** Starts `plugin.size` instances; if any fails, kills the others and rethrows the first failure. */
export async function startAll(core: HostCore, plugin: PluginEntry, manifest = plugin.manifest): Promise<Instance[]> {
  const results = await Promise.allSettled(Array.from({ length: plugin.size }, () => core.spawn(plugin, manifest)));
  const started = results.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
  const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
  if (!failed) return started;
  await Promise.all(started.map(killInstance));
  throw failed.reason;
}
