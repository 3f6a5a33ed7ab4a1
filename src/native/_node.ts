/**
 * The Node adapter: koffi (npm, prebuilt N-API binaries in its package).
 *
 * Node has no FFI of its own, so this is the one place in src/ that knows
 * koffi. What koffi gives and what it costs, compared with Deno and Bun:
 * - `koffi.view(pointer, bytes)` maps native memory into an ArrayBuffer with
 *   no copy, so the rings are read and written in place with Atomics, exactly
 *   as under Deno and Bun.
 * - Pointers are BigInt (koffi 3). Only `pshm_base` returns one; it goes
 *   straight into `view`.
 * - Callbacks from the waiter thread are relayed through one process-wide,
 *   unref'd N-API thread-safe function; koffi blocks the calling thread until
 *   the JavaScript callback has returned (as Deno does). An unref'd relay does
 *   not keep Node alive, so native.ts's `keepAlive` count decides when the
 *   process may exit, as under Deno. At exit, koffi's environment cleanup
 *   hook aborts the relay: a waiter thread still calling back then blocks for
 *   good instead of running JavaScript, and exit() ends it with the process.
 *   Nothing joins a waiter thread (zig/waiter.zig `requestStop`), so there is
 *   no path where the event loop waits on a thread that waits on it.
 * - koffi runs at most `max_async_calls` (default 256) foreign-thread
 *   callbacks at once; each waiter has at most one in flight, so that is the
 *   number of channels that may wake at the same instant. We raise it to
 *   {@link asyncCallsMax} before the first call.
 *
 * @module
 */

import { createRequire } from "node:module";
import type { RawSymbols, RuntimeAdapter, ThreadSafeCallback } from "./_adapter.ts";
import type { FfiType, Symbols } from "./_symbols.ts";
import { NativeLibraryError } from "./errors.ts";

/**
 * Foreign-thread callbacks koffi may have queued or running at once (its
 * `max_async_calls`; koffi's own ceiling is 4096). One per channel waking at
 * the same instant; a callback over the limit is dropped by koffi.
 */
export const asyncCallsMax = 4096;

/** The part of koffi this adapter uses, typed here so Deno and Bun can check it without koffi. */
interface Koffi {
  load(path: string): {
    func(name: string, result: string, args: string[]): (...args: unknown[]) => unknown;
    unload(): void;
  };
  proto(name: string, result: string, args: string[]): unknown;
  pointer(type: unknown): unknown;
  register(fn: (...args: number[]) => void, type: unknown): bigint;
  unregister(pointer: bigint): void;
  view(pointer: bigint, bytes: number): ArrayBuffer;
  config(options?: { max_async_calls?: number }): Record<string, number>;
}

/** The koffi release this adapter is written and tested against (package.json pins it). */
export const koffiVersion = "3.3.4";

let loaded: Koffi | undefined;

function koffi(): Koffi {
  if (loaded) return loaded;
  // Resolved from this file's location, so an installed plugin-shm finds the
  // koffi installed beside it.
  try {
    loaded = createRequire(import.meta.url)("koffi") as Koffi;
  } catch (cause) {
    throw new NativeLibraryError(
      `plugin-shm on Node needs the npm package koffi ${koffiVersion}, which cannot be loaded: ` +
        `${(cause as Error).message.split("\n")[0]}. Install it beside plugin-shm: npm install koffi@${koffiVersion}`,
      { cause },
    );
  }
  loaded.config({ max_async_calls: asyncCallsMax });
  return loaded;
}

// Buffers go in as Uint8Array; koffi passes a TypedArray's memory for `void *`.
const koffiTypes: Record<FfiType, string> = {
  i32: "int32_t",
  u32: "uint32_t",
  i64: "int64_t",
  u64: "uint64_t",
  pointer: "void *",
  buffer: "void *",
  function: "void *",
  void: "void",
};

let protoCount = 0;

/** Node's FFI (through koffi) behind the {@link RuntimeAdapter} interface. */
export const nodeAdapter: RuntimeAdapter = {
  runtime: "node",
  open(path: string, symbols: Symbols) {
    const lib = koffi().load(path);
    const functions: Record<string, (...args: unknown[]) => unknown> = {};
    for (const [name, spec] of Object.entries(symbols)) {
      functions[name] = lib.func(name, koffiTypes[spec.result], spec.args.map((t) => koffiTypes[t]));
    }
    return { symbols: functions as unknown as RawSymbols, close: () => lib.unload() };
  },
  toArrayBuffer(pointer: unknown, bytes: number): ArrayBuffer {
    return koffi().view(pointer as bigint, bytes);
  },
  threadSafeCallback(fn: (context: number, reason: number) => void): ThreadSafeCallback {
    const k = koffi();
    // koffi names prototypes in a process-wide table; a second Native (tests)
    // must not collide with the first.
    const proto = k.proto(`pshm_wake_callback_${protoCount++}`, "void", ["uint32_t", "uint32_t"]);
    const pointer = k.register(fn, k.pointer(proto));
    return { pointer, close: () => k.unregister(pointer) };
  },
  isNull(pointer: unknown): boolean {
    return pointer === null || pointer === 0n;
  },
  env(name: string): string | undefined {
    return process.env[name];
  },
};
