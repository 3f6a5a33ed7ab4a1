/**
 * Resource usage of a plugin instance's whole process tree, read from /proc:
 * the runtime, the sandbox launcher (whose PID namespace hides the runtime's
 * own pid from it) and everything they started, `setsid` or not. Used by the
 * memory budget (_limits.ts) and by metrics.
 *
 * @module
 */

import { readdirSync, readFileSync } from "node:fs";
import process from "node:process";

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

/** Whether /proc can be read for usage (Linux). */
export const hasProc: boolean = process.platform === "linux";

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
