/**
 * Blame for a stall: before the host kills a plugin that went silent, it
 * asks the plugin's inspector where the time goes. V8 (Deno, Node) serves
 * inspector messages even while JavaScript spins in a loop (it interrupts
 * the isolate), so the host can take a CPU profile of the stuck process and
 * pause it once to read its stack. Both go into the "stall" event; the
 * profile is saved as a `.cpuprofile` file that Chrome DevTools and VS Code
 * open.
 *
 * Two findings shape what is reported:
 * - V8's sampling profiler attributes time spent in a function that was
 *   optimised on-stack (OSR) before profiling started to its caller (seen
 *   with Deno 2.9 and Node 20: a `spinForever` loop showed up as its
 *   caller's self time). The stack read at a pause has no such blind spot,
 *   so the event names the paused stack first and the profile's self time
 *   second.
 * - Bun's inspector (WebKit's protocol for JavaScriptCore) answers nothing,
 *   not even `Debugger.pause`, while the JavaScript thread is busy (Bun
 *   1.4.5); a stalled Bun plugin cannot be profiled, so Bun plugins get no
 *   inspector for blame and their stall event says why.
 *
 * @module
 */

import { mkdirSync, readdirSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { CdpSession } from "./_cdp.ts";
import { withTimeout } from "./_inspect.ts";
import type { Manifest } from "./manifest.ts";

/** Functions of the profile the stall event lists, busiest first. */
export const blameFunctionsMax = 5;
/** Frames of the paused stack the stall event lists, innermost first. */
export const blameFramesMax = 8;
/** Sampling interval of the blame profile, µs (V8's default is 1000). */
export const blameSamplingIntervalUs = 500;
/** `.cpuprofile` files kept in `profileDir`: beyond this many, the oldest are removed (a crash-looping plugin must not fill the disk). */
export const profilesKeptMax = 100;
/** How long connecting and each inspector command may take before the host gives up blaming and kills. */
export const blameStepTimeoutMs = 3_000;

/** One frame of a stack or one function of a profile: where in the plugin's code. */
export interface BlameFrame {
  /** The function's name ("(anonymous)" for an anonymous one; "(garbage collector)" and the like for V8's own). */
  functionName: string;
  /** The script's URL (a file:// URL for the plugin's own files). */
  url: string;
  /** 1-based line, 0 when unknown. */
  line: number;
  /** 1-based column, 0 when unknown. */
  column: number;
}

/** A function of the profile and the share of the sampled time it spent in its own code. */
export interface BlameFunction extends BlameFrame {
  /** Self time over the sample, ms. */
  selfMs: number;
  /** Self time as a share of the sampled time, 0–1. */
  share: number;
}

/** What the inspector said about a stalled instance. */
export interface Blame {
  /** The stack when the host paused it once after profiling, innermost first: where it is stuck. */
  stack: BlameFrame[];
  /** The functions with the most self time over the sample, busiest first. */
  top: BlameFunction[];
  /** How long the profile sampled, ms. */
  sampledMs: number;
  /** The saved profile (Chrome DevTools / VS Code `.cpuprofile`), under the host's `profileDir`. */
  profilePath: string;
}

/** An instance went silent past `stallTimeoutMs + stallGraceMs` and is being killed. */
export interface StallEvent {
  /** The plugin's name. */
  plugin: string;
  /** The instance (ids are unique within this host process, from 1). */
  instance: number;
  /** Its process id. */
  pid: number | undefined;
  /** How long it had sent nothing, ms. */
  silentMs: number;
  /** Where the time went, when the host's `blameStalls` is on and the inspector answered. */
  blame?: Blame;
  /** Why there is no blame although `blameStalls` is on (a Bun plugin, an inspector that did not answer). */
  blameError?: string;
  /** Milliseconds since the epoch. */
  at: number;
}

/** Why Bun plugins cannot be blamed (see the module doc). */
export const bunBlameUnsupported = "Bun's inspector (WebKit protocol) does not answer while the JavaScript thread " +
  "is busy, so a stalled Bun plugin cannot be profiled";

/** Whether `runtime`'s inspector can profile a busy plugin. */
export function canBlame(runtime: Manifest["runtime"]): boolean {
  return runtime !== "bun";
}

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
}

/** A V8 CPU profile, as `Profiler.stop` returns it and `.cpuprofile` files hold it. */
export interface CpuProfile {
  /** The call tree's nodes. */
  nodes: ProfileNode[];
  /** Start time, µs. */
  startTime: number;
  /** End time, µs. */
  endTime: number;
  /** The node of each sample. */
  samples?: number[];
  /** µs since the previous sample, one per sample. */
  timeDeltas?: number[];
}

/** V8's pseudo-functions that are no code of the plugin's. */
const notCode = new Set(["(root)", "(program)", "(idle)"]);

function frameOf(callFrame: ProfileNode["callFrame"]): BlameFrame {
  return {
    functionName: callFrame.functionName || "(anonymous)",
    url: callFrame.url,
    line: callFrame.lineNumber >= 0 ? callFrame.lineNumber + 1 : 0,
    column: callFrame.columnNumber >= 0 ? callFrame.columnNumber + 1 : 0,
  };
}

/** The functions with the most self time in `profile`, busiest first (same function, same place: summed). */
export function topSelfTime(profile: CpuProfile, count: number = blameFunctionsMax): BlameFunction[] {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  const selfUs = new Map<string, { frame: BlameFrame; us: number }>();
  let totalUs = 0;
  for (let i = 0; i < samples.length; i++) {
    // A sample's time is the gap to the next one (the last sample gets the average).
    const us = Math.max(0, deltas[i + 1] ?? (profile.endTime - profile.startTime) / Math.max(1, samples.length));
    totalUs += us;
    const node = byId.get(samples[i]);
    if (!node || notCode.has(node.callFrame.functionName)) continue;
    const frame = frameOf(node.callFrame);
    const key = `${frame.functionName}\0${frame.url}\0${frame.line}\0${frame.column}`;
    const entry = selfUs.get(key) ?? { frame, us: 0 };
    entry.us += us;
    selfUs.set(key, entry);
  }
  return [...selfUs.values()]
    .sort((a, b) => b.us - a.us)
    .slice(0, count)
    .map(({ frame, us }) => ({ ...frame, selfMs: us / 1000, share: totalUs ? us / totalUs : 0 }));
}

/** `spinForever (main.ts:3)`: a frame in a few words. */
export function describeFrame(frame: BlameFrame): string {
  const file = frame.url ? frame.url.slice(frame.url.lastIndexOf("/") + 1) : "";
  return file ? `${frame.functionName} (${file}:${frame.line})` : frame.functionName;
}

/** One line for logs and the dashboard: where it is stuck, then the busiest functions. */
export function describeBlame(blame: Blame): string {
  const where = blame.stack.length ? blame.stack.slice(0, 3).map(describeFrame).join(" ← ") : "an unknown place";
  const top = blame.top.map((f) => `${describeFrame(f)} ${Math.round(f.share * 100)} %`).join(", ");
  return `stuck in ${where}; self time over ${Math.round(blame.sampledMs)} ms: ${top || "no samples"}; ` +
    `profile ${blame.profilePath}`;
}

interface PausedParams {
  callFrames: {
    functionName: string;
    url?: string;
    location: { scriptId?: string; lineNumber: number; columnNumber?: number };
  }[];
}

/** Removes the oldest `.cpuprofile` files of `dir` beyond {@link profilesKeptMax}. */
export function pruneProfiles(dir: string, keep: number = profilesKeptMax): void {
  const files = readdirSync(dir).filter((name) => name.endsWith(".cpuprofile")).flatMap((name) => {
    try {
      return [{ path: join(dir, name), mtimeMs: statSync(join(dir, name)).mtimeMs }];
    } catch {
      return []; // Removed meanwhile.
    }
  });
  files.sort((a, b) => b.mtimeMs - a.mtimeMs);
  for (const { path } of files.slice(keep)) {
    try {
      unlinkSync(path);
    } catch {
      // Removed meanwhile.
    }
  }
}

/** What {@link takeBlame} needs to know. */
export interface BlameTarget {
  plugin: string;
  instance: number;
  /** The inspector's WebSocket URL. */
  webSocketUrl: string;
  /** How long to sample, ms. */
  sampleMs: number;
  /** Where to save the `.cpuprofile`. */
  profileDir: string;
}

/**
 * Profiles the (stalled) instance for `sampleMs`, pauses it once to read its stack and saves
 * the profile. The instance stays paused: the caller kills it next.
 */
export async function takeBlame(target: BlameTarget): Promise<Blame> {
  const session = await CdpSession.open(target.webSocketUrl, blameStepTimeoutMs);
  try {
    const step = <T>(method: string, params?: Record<string, unknown>) =>
      withTimeout(session.send<T>(method, params), blameStepTimeoutMs, `inspector command ${method}`);
    await step("Profiler.enable");
    await step("Profiler.setSamplingInterval", { interval: blameSamplingIntervalUs });
    await step("Profiler.start");
    const started = performance.now();
    await new Promise((resolve) => setTimeout(resolve, target.sampleMs));
    const { profile } = await step<{ profile: CpuProfile }>("Profiler.stop");
    const sampledMs = performance.now() - started;
    const scriptUrls = new Map<string, string>();
    session.on("Debugger.scriptParsed", (params) => {
      const { scriptId, url } = params as { scriptId: string; url: string };
      scriptUrls.set(scriptId, url);
    });
    await step("Debugger.enable");
    const paused = session.next("Debugger.paused") as Promise<PausedParams>;
    await step("Debugger.pause");
    const { callFrames } = await withTimeout(paused, blameStepTimeoutMs, "pausing the stalled plugin");
    const stack = callFrames.slice(0, blameFramesMax).map((f) => ({
      functionName: f.functionName || "(anonymous)",
      url: f.url || scriptUrls.get(f.location.scriptId ?? "") || "",
      line: f.location.lineNumber + 1,
      column: (f.location.columnNumber ?? -1) + 1,
    }));
    mkdirSync(target.profileDir, { recursive: true, mode: 0o700 });
    const stamp = new Date().toISOString().replace(/[:.]/g, "-");
    const profilePath = join(target.profileDir, `${target.plugin}-${target.instance}-${stamp}.cpuprofile`);
    // The profile names the plugin's files and functions: readable by the host's user only.
    writeFileSync(profilePath, JSON.stringify(profile), { mode: 0o600 });
    pruneProfiles(target.profileDir);
    return { stack, top: topSelfTime(profile), sampledMs, profilePath };
  } finally {
    await session.close();
  }
}
