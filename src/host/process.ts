/**
 * One plugin OS process: spawned from a launch plan (see launch_plan.ts), its stdout and stderr forwarded line by line to the host's
 * logger (tagged with the plugin's name), and its exit observed.
 *
 * @module
 */

import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import process from "node:process";
import type { LaunchPlan } from "./types.ts";

/** A line a plugin wrote, as the host's logger receives it. */
export interface LogEntry {
  /** The plugin's name. */
  plugin: string;
  /** The stream the plugin wrote the line to. */
  stream: "stdout" | "stderr";
  /** The line as written. */
  line: string;
  /** The line parsed, when it was a JSON object. */
  json?: Record<string, unknown>;
}

/** How a process ended. */
export interface ExitStatus {
  code: number | null;
  signal: string | null;
}

/** How many stderr lines a crash report carries. */
export const stderrTailLinesMax = 20;
/** Longest line forwarded to the logger; longer ones are cut. */
export const logLineBytesMax = 16 * 1024;

/** A running plugin process. */
export class PluginProcess {
  readonly child: ChildProcess;
  readonly exited: Promise<ExitStatus>;
  readonly #stderrTail: string[] = [];
  #exit: ExitStatus | undefined;
  /** The child's "exit" was seen: the runtime has reaped it and its pid may be reused. */
  #reaped = false;
  /** Under a Deno host: the child's start time in clock ticks (see kill()); undefined elsewhere or without /proc. */
  #startTicks: string | undefined;

  constructor(name: string, plan: LaunchPlan, log: (entry: LogEntry) => void) {
    this.child = spawn(plan.command, plan.args, {
      cwd: plan.cwd,
      // The plan's environment is the whole environment: nothing of the host's leaks in.
      env: plan.env,
      stdio: ["pipe", "pipe", "pipe"],
      // Its own process group: a Ctrl-C in the host's terminal reaches the
      // host, which then stops its plugins gracefully, not the plugins first.
      detached: true,
    });
    // Read now, before the event loop runs: Deno reaps a child only from its event loop, so this is our child's.
    if (isDeno && this.child.pid !== undefined) this.#startTicks = processStartTicks(this.child.pid);
    this.child.on("exit", () => (this.#reaped = true));
    this.#forward(name, "stdout", log);
    this.#forward(name, "stderr", log);
    this.exited = new Promise((resolve) => {
      this.child.on("error", (error) => {
        this.#remember(`spawn failed: ${error.message}`);
        this.#exit = { code: 127, signal: null };
        resolve(this.#exit);
      });
      this.child.on("close", (code, signal) => {
        this.#exit ??= { code, signal };
        resolve(this.#exit);
      });
    });
  }

  /** The process id, or undefined if the spawn failed. */
  get pid(): number | undefined {
    return this.child.pid;
  }

  /** The exit status once it has exited. */
  get exitStatus(): ExitStatus | undefined {
    return this.#exit;
  }

  /** The last stderr lines, oldest first. */
  get stderrTail(): string[] {
    return [...this.#stderrTail];
  }

  /**
   * Sends a signal if the process still runs. Under Node and Bun through ChildProcess.kill(), which may be called
   * again and knows when the child is reaped. Under Deno by pid: its ChildProcess ignores every kill() after the
   * first (an unload's SIGKILL after an ignored SIGTERM never arrived: tests/inspect_test.ts has the stubborn plugin
   * that shows it) and then reports the first signal as the one that ended the process.
   */
  kill(signal: NodeJS.Signals): void {
    if (this.#exit || this.#reaped || this.child.pid === undefined) return;
    if (!isDeno) {
      this.child.kill(signal);
      return;
    }
    // Deno may have reaped the child before its "exit" reached us; its pid is then free for another process. The
    // start time still matches only while the pid is our child's (running or a zombie, which ignores signals).
    if (this.#startTicks !== undefined && processStartTicks(this.child.pid) !== this.#startTicks) return;
    try {
      process.kill(this.child.pid, signal);
    } catch {
      // Exited meanwhile: its exit is reported as usual.
    }
  }

  /** Waits up to `timeoutMs` for the exit; true if it exited. */
  async waitForExit(timeoutMs: number): Promise<boolean> {
    if (this.#exit) return true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs)));
    const result = await Promise.race([this.exited.then(() => true), timeout]);
    clearTimeout(timer);
    return result;
  }

  #remember(line: string): void {
    this.#stderrTail.push(line);
    if (this.#stderrTail.length > stderrTailLinesMax) this.#stderrTail.shift();
  }

  #forward(plugin: string, stream: "stdout" | "stderr", log: (entry: LogEntry) => void): void {
    let pending = "";
    const emit = (raw: string) => {
      const line = raw.length > logLineBytesMax ? `${raw.slice(0, logLineBytesMax)}…` : raw;
      if (stream === "stderr") this.#remember(line);
      log({ plugin, stream, line, json: parseJsonObject(line) });
    };
    const source = this.child[stream]!;
    source.setEncoding("utf8");
    source.on("data", (chunk: string) => {
      pending += chunk;
      let newline: number;
      while ((newline = pending.indexOf("\n")) >= 0) {
        emit(pending.slice(0, newline));
        pending = pending.slice(newline + 1);
      }
      if (pending.length > logLineBytesMax) {
        emit(pending);
        pending = "";
      }
    });
    source.on("end", () => pending && emit(pending));
  }
}

/** Whether this host runs under Deno (see PluginProcess.kill()). */
const isDeno = typeof (globalThis as { Deno?: unknown }).Deno === "object";

/**
 * A process's start time since boot in clock ticks (field 22 of /proc/<pid>/stat, after the parenthesised name,
 * which may itself hold spaces and parentheses); undefined if there is no such process (or no /proc).
 */
function processStartTicks(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
  } catch {
    return undefined;
  }
}

function parseJsonObject(line: string): Record<string, unknown> | undefined {
  if (!line.startsWith("{")) return undefined;
  try {
    const value = JSON.parse(line);
    return value && typeof value === "object" && !Array.isArray(value) ? value : undefined;
  } catch {
    return undefined;
  }
}
