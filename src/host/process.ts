/**
 * One plugin OS process: spawned with the connection details in its
 * environment, its stdout and stderr forwarded line by line to the host's
 * logger (tagged with the plugin's name), and its exit observed.
 *
 * @module
 */

import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import type { RuntimeName } from "../native/native.ts";
import type { Manifest } from "./manifest.ts";

/** A line a plugin wrote, as the host's logger receives it. */
export interface LogEntry {
  plugin: string;
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

/**
 * The nearest node_modules/.bin/<runtime> above this file: this checkout's
 * pinned one (also from the compiled copy in dist/), or, installed as a
 * package, the consumer project's.
 */
function pinnedBinary(runtime: string): string | undefined {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = `${dir}/node_modules/.bin/${runtime}`;
    if (existsSync(candidate)) return candidate;
    const parent = dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}

/**
 * The runtime binary for a plugin. Deno and Bun: the pinned one if installed,
 * else PATH. Node is not an npm package: a Node host runs its plugins with its
 * own binary, a Deno or Bun host with the `node` on PATH.
 */
export function runtimeBinary(runtime: RuntimeName): string {
  if (runtime === "node") return isNode() ? process.execPath : "node";
  return pinnedBinary(runtime) ?? runtime;
}

function isNode(): boolean {
  return !("Deno" in globalThis) && !("Bun" in globalThis) && typeof process.versions?.node === "string";
}

function runtimeArgs(manifest: Manifest): string[] {
  // Permissions from the manifest arrive with the security work; until then a
  // Deno plugin needs FFI for shared memory, which amounts to -A anyway.
  return manifest.runtime === "deno" ? ["run", "-A", "--no-prompt", manifest.entryPath] : [manifest.entryPath];
}

/** A running plugin process. */
export class PluginProcess {
  readonly child: ChildProcess;
  readonly exited: Promise<ExitStatus>;
  readonly #stderrTail: string[] = [];
  #exit: ExitStatus | undefined;

  constructor(manifest: Manifest, env: Record<string, string>, log: (entry: LogEntry) => void) {
    this.child = spawn(runtimeBinary(manifest.runtime), runtimeArgs(manifest), {
      cwd: manifest.dir,
      env: { ...process.env, ...env },
      stdio: ["pipe", "pipe", "pipe"],
      // Its own process group: a Ctrl-C in the host's terminal reaches the
      // host, which then stops its plugins gracefully, not the plugins first.
      detached: true,
    });
    this.#forward(manifest.name, "stdout", log);
    this.#forward(manifest.name, "stderr", log);
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

  /** Sends a signal if the process still runs. */
  kill(signal: NodeJS.Signals): void {
    if (!this.#exit) this.child.kill(signal);
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

function parseJsonObject(line: string): Record<string, unknown> | undefined {
  if (!line.startsWith("{")) return undefined;
  try {
    const value = JSON.parse(line);
    return value && typeof value === "object" && !Array.isArray(value) ? value : undefined;
  } catch {
    return undefined;
  }
}
