/**
 * The Bun adapter: bun:ffi dlopen, toArrayBuffer and threadsafe JSCallback.
 *
 * @module
 */

import type { RawSymbols, RuntimeAdapter, ThreadSafeCallback } from "./_adapter.ts";
import type { FfiType, Symbols } from "./_symbols.ts";

/** The part of bun:ffi this adapter uses, typed here so Deno can check it. */
interface BunFfi {
  dlopen(
    path: string,
    symbols: Record<string, { args: string[]; returns: string }>,
  ): { symbols: Record<string, (...args: unknown[]) => unknown>; close(): void };
  toArrayBuffer(pointer: number, offset: number, bytes: number): ArrayBuffer;
  JSCallback: new (
    fn: (...args: number[]) => void,
    definition: { args: string[]; returns: string; threadsafe: boolean },
  ) => { ptr: number; close(): void };
}

function bunFfi(): BunFfi {
  const meta = import.meta as unknown as { require(id: string): unknown };
  return meta.require("bun:ffi") as BunFfi;
}

const bunTypes: Record<FfiType, string> = {
  i32: "i32",
  u32: "u32",
  i64: "i64",
  u64: "u64",
  pointer: "ptr",
  buffer: "ptr",
  function: "function",
  void: "void",
};

/** Bun's FFI behind the {@link RuntimeAdapter} interface. */
export const bunAdapter: RuntimeAdapter = {
  runtime: "bun",
  open(path: string, symbols: Symbols) {
    const definitions: Record<string, { args: string[]; returns: string }> = {};
    for (const [name, spec] of Object.entries(symbols)) {
      definitions[name] = { args: spec.args.map((t) => bunTypes[t]), returns: bunTypes[spec.result] };
    }
    const lib = bunFfi().dlopen(path, definitions);
    return { symbols: lib.symbols as unknown as RawSymbols, close: () => lib.close() };
  },
  toArrayBuffer(pointer: unknown, bytes: number): ArrayBuffer {
    return bunFfi().toArrayBuffer(pointer as number, 0, bytes);
  },
  threadSafeCallback(fn: (context: number, reason: number) => void): ThreadSafeCallback {
    const callback = new (bunFfi().JSCallback)(fn, {
      args: ["u32", "u32"],
      returns: "void",
      threadsafe: true,
    });
    return { pointer: callback.ptr, close: () => callback.close() };
  },
  isNull(pointer: unknown): boolean {
    return pointer === null || pointer === 0;
  },
  env(name: string): string | undefined {
    const bun = (globalThis as unknown as { Bun: { env: Record<string, string | undefined> } }).Bun;
    return bun.env[name];
  },
};
