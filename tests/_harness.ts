/**
 * One test API for `deno test`, `bun test` and `node --test` (on the compiled
 * JavaScript in dist/, see `make test-node`), so every test file runs under
 * each runtime, plus helpers for real child processes and leak checks.
 *
 * @module
 */

import { type ChildProcess, spawn } from "node:child_process";
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

/** The runtime running the tests. */
export const runtime: "deno" | "bun" | "node" = "Bun" in globalThis ? "bun" : "Deno" in globalThis ? "deno" : "node";

/** True when this file runs compiled, from dist/tests/ (Node). */
const compiled = /\/dist\/tests\/[^/]*$/.test(fileURLToPath(import.meta.url));

/** Repository root (also when running compiled from dist/). */
export const root: string = fileURLToPath(new URL(compiled ? "../.." : "..", import.meta.url));

/** Where `make dist` puts the compiled JavaScript. */
export const dist = `${root}dist/`;

/** The compiled JavaScript of a source file of this repository (for Node). */
export function compiledPath(source: string): string {
  if (!source.startsWith(root) || !source.endsWith(".ts")) return source;
  return `${dist}${source.slice(root.length, -3)}.js`;
}

/** The bundled example plugins and the test fixtures. */
export const examples: string = `${root}examples/plugins`;
export const fixtures: string = `${root}tests/fixtures`;

/** Alive and not a zombie: a reparented zombie will never run again. */
export function processRunning(pid: number | undefined): boolean {
  if (!pid) return false;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return state !== "Z" && state !== "X";
  } catch {
    return false;
  }
}

/** Paths of the pinned runtimes installed by `make setup`. */
export const runtimes = {
  deno: `${root}node_modules/.bin/deno`,
  bun: `${root}node_modules/.bin/bun`,
  // Node is not pinned in node_modules: the one running the tests, else PATH.
  node: runtime === "node" ? process.execPath : "node",
} as const;

type TestFn = () => void | Promise<void>;

/** Registers a test under whichever runner is running. */
export function test(name: string, fn: TestFn, options: { timeoutMs?: number } = {}): void {
  const timeoutMs = options.timeoutMs ?? 30_000;
  if (runtime === "bun") {
    const meta = import.meta as unknown as { require(id: string): { test(n: string, f: TestFn, t: number): void } };
    meta.require("bun:test").test(name, fn, timeoutMs);
    return;
  }
  if (runtime === "node") {
    // Through require so that Deno and Bun never load node:test.
    const nodeTest = createRequire(import.meta.url)("node:test") as {
      test(name: string, options: { timeout: number }, fn: TestFn): void;
    };
    nodeTest.test(name, { timeout: timeoutMs }, () => fn());
    return;
  }
  // Deno's runner has no per-test timeout: without one a hung test would hang CI.
  const deno = (globalThis as unknown as { Deno: DenoTesting }).Deno;
  deno.test({
    name,
    fn: async () => {
      oneFileAtATime(deno.env, name);
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`test timed out after ${timeoutMs} ms`)), timeoutMs);
      });
      try {
        await Promise.race([fn(), timeout]);
      } finally {
        clearTimeout(timer);
        deno.env.delete(runningTestKey);
      }
    },
  });
}

/** What the harness uses of Deno (env: the process's environment, which every test worker shares). */
interface DenoTesting {
  test(o: { name: string; fn: TestFn }): void;
  env: { get(key: string): string | undefined; set(key: string, value: string): void; delete(key: string): void };
}

/** Names the Deno test running in this process (with the pid, so that a child process inheriting it is not fooled). */
const runningTestKey = "PLUGIN_SHM_RUNNING_TEST";

/**
 * Fails a Deno test that starts while a test of another file runs in the same process (`deno test --parallel`, or
 * --parallel=false, which Deno 2.9.6 takes as --parallel): the leak checks read this process's sockets, segments and
 * children, so they would blame one file for the other's. The environment is what its workers share.
 */
function oneFileAtATime(env: DenoTesting["env"], name: string): void {
  const running = env.get(runningTestKey);
  if (running?.startsWith(`${process.pid}:`)) {
    throw new Error(
      `"${name}" started while "${running.slice(running.indexOf(":") + 1)}" runs in this process: test files run ` +
        "side by side (deno test --parallel?) and would see each other's sockets and processes as leaks; run " +
        "deno test without --parallel",
    );
  }
  env.set(runningTestKey, `${process.pid}:${name}`);
}

/** Our segments currently in /dev/shm. */
export function shmSegments(): string[] {
  try {
    return readdirSync("/dev/shm").filter((n) => n.startsWith("pshm-"));
  } catch {
    return [];
  }
}

/**
 * Segments in /dev/shm created or attached by one of `pids` (default: this
 * process). Other processes on the machine may hold segments of their own;
 * a test only answers for its own.
 */
export function segmentsOf(pids: (number | undefined)[] = [process.pid]): string[] {
  const wanted = new Set(pids.filter((p) => p !== undefined));
  return shmSegments().filter((name) => {
    try {
      const header = readFileSync(`/dev/shm/${name}`).subarray(0, 40);
      const view = new DataView(header.buffer, header.byteOffset, header.byteLength);
      return wanted.has(view.getUint32(32, true)) || wanted.has(view.getUint32(36, true));
    } catch {
      return false;
    }
  });
}

/** A child process with collected output and an awaitable exit. */
export interface Peer {
  readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: string | null }>;
  stdout(): string;
  stderr(): string;
}

/**
 * Starts a peer program under `which` runtime (or a native binary). Under
 * Node a .ts program of this repository runs from its compiled copy in dist/.
 */
export function startPeer(
  which: "deno" | "bun" | "node" | "native",
  program: string,
  env: Record<string, string>,
  args: string[] = [],
): Peer {
  const argv = which === "deno"
    ? [runtimes.deno, "run", "-A", program, ...args]
    : which === "bun"
    ? [runtimes.bun, program, ...args]
    : which === "node"
    ? [runtimes.node, compiledPath(program), ...args]
    : [program, ...args];
  const child = spawn(argv[0], argv.slice(1), {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stdout!.on("data", (d) => (out += d));
  child.stderr!.on("data", (d) => (err += d));
  const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) => {
    child.on("close", (code, signal) => resolve({ code, signal }));
  });
  return { child, exited, stdout: () => out, stderr: () => err };
}

/** Path of a peer program in tests/peers. */
export function peerPath(file: string): string {
  return `${root}tests/peers/${file}`;
}

/** Path of the C peer built by `make build`. */
export const cPeerPath = `${root}zig-out/bin/c_peer`;

/** A message whose bytes derive from its sequence number, to catch torn frames. */
export function pattern(seq: number, length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) bytes[i] = (seq * 31 + i * 7) & 255;
  if (length >= 4) new DataView(bytes.buffer).setUint32(0, seq, true);
  return bytes;
}

/** True when `bytes` is exactly pattern(seq, bytes.length). */
export function matchesPattern(seq: number, bytes: Uint8Array): boolean {
  const expected = pattern(seq, bytes.length);
  for (let i = 0; i < bytes.length; i++) if (bytes[i] !== expected[i]) return false;
  return true;
}

/**
 * Waits up to `limitMs` for every segment that `pids` own, other than those in
 * `before`, to leave /dev/shm; returns the ones still there.
 */
export async function segmentsLeft(pids: (number | undefined)[], before: string[], limitMs = 2000): Promise<string[]> {
  const started = Date.now();
  for (;;) {
    const left = segmentsOf(pids).filter((name) => !before.includes(name));
    if (left.length === 0 || Date.now() - started > limitMs) return left;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Sockets this process holds open (unix and tcp alike), from /proc/self/fd. */
export function openSockets(): Set<string> {
  const sockets = new Set<string>();
  for (const fd of readdirSync("/proc/self/fd")) {
    try {
      const target = readlinkSync(`/proc/self/fd/${fd}`);
      if (target.startsWith("socket:")) sockets.add(target);
    } catch {
      // Closed between the listing and the read.
    }
  }
  return sockets;
}

/**
 * Waits up to `limitMs` for every socket opened since `before` to close;
 * returns those still open. The "nothing left" check for socket transports,
 * where no segment would show a leak.
 */
export async function socketsLeft(before: Set<string>, limitMs = 2000): Promise<string[]> {
  const started = Date.now();
  for (;;) {
    const left = [...openSockets()].filter((s) => !before.has(s));
    if (left.length === 0 || Date.now() - started > limitMs) return left;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
