/**
 * What a runtime must provide to drive libpluginshm. Three implementations:
 * _deno.ts (Deno.dlopen), _bun.ts (bun:ffi) and _node.ts (koffi). Nothing
 * else in src/ touches the runtimes' FFI.
 *
 * @module
 */

import type { Symbols } from "./_symbols.ts";

/** The JavaScript runtimes plugin-shm runs on. */
export type RuntimeName = "deno" | "bun" | "node";

/** The raw native functions: 64-bit results as bigint, pointers opaque. */
export type RawSymbols = {
  [K in keyof Symbols]: (...args: never[]) => unknown;
};

/** A callback that native threads may call; delivered on the event loop. */
export interface ThreadSafeCallback {
  readonly pointer: unknown;
  close(): void;
}

/** One runtime's FFI. */
export interface RuntimeAdapter {
  readonly runtime: RuntimeName;
  /** Opens the library and returns its symbols. */
  open(path: string, symbols: Symbols): { symbols: RawSymbols; close(): void };
  /** A view of native memory as an ArrayBuffer, without copying. */
  toArrayBuffer(pointer: unknown, bytes: number): ArrayBuffer;
  /** A callback native threads may call with (context, reason). */
  threadSafeCallback(fn: (context: number, reason: number) => void): ThreadSafeCallback;
  /** A null pointer check for the pointer type the runtime returns. */
  isNull(pointer: unknown): boolean;
  /** An environment variable, or undefined. */
  env(name: string): string | undefined;
}
