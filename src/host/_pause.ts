/**
 * Pausing and resuming an instance's process tree (SIGSTOP / SIGCONT), shared
 * by the memory budget (_limits.ts) and stopping (_stop.ts: a paused instance
 * is resumed first, so that it can drain and stop politely).
 *
 * @module
 */

import process from "node:process";
import type { Instance } from "./_instance.ts";

/** Sends `signal` to each of `pids`; one that is gone already is skipped. */
export function signalAll(pids: number[], signal: "SIGSTOP" | "SIGCONT"): void {
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      // Gone already.
    }
  }
}

/** Resumes a paused instance (its whole tree as last sampled, and its root). */
export function resumeInstance(instance: Instance): void {
  if (!instance.limits.paused) return;
  signalAll(instance.limits.pausedPids, "SIGCONT");
  instance.limits.paused = false;
  instance.limits.pausedPids = [];
  instance.limits.resumedAt = performance.now();
}
