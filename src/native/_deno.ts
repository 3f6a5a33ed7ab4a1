/**
 * The Deno adapter: Deno.dlopen and Deno.UnsafeCallback.threadSafe.
 *
 * @module
 */

import type { RawSymbols, RuntimeAdapter, ThreadSafeCallback } from "./_adapter.ts";
import type { FfiType, Symbols } from "./_symbols.ts";

/**
 * The part of Deno's FFI this adapter uses, typed here so that the package
 * also compiles with tsc for Node (which has no Deno namespace).
 */
interface DenoFfi {
  dlopen(
    path: string,
    symbols: Record<string, { parameters: string[]; result: string }>,
  ): { symbols: Record<string, (...args: unknown[]) => unknown>; close(): void };
  UnsafePointerView: { getArrayBuffer(pointer: unknown, bytes: number): ArrayBuffer };
  UnsafeCallback: {
    threadSafe(
      definition: { parameters: string[]; result: string },
      fn: (context: number, reason: number) => void,
    ): { pointer: unknown; unref(): void; close(): void };
  };
  env: { get(name: string): string | undefined };
}

function deno(): DenoFfi {
  return (globalThis as unknown as { Deno: DenoFfi }).Deno;
}

// Deno's FFI type names are the runtime-neutral ones.
function denoType(type: FfiType): string {
  return type;
}

/** Deno's FFI behind the {@link RuntimeAdapter} interface. */
export const denoAdapter: RuntimeAdapter = {
  runtime: "deno",
  open(path: string, symbols: Symbols) {
    const definitions: Record<string, { parameters: string[]; result: string }> = {};
    for (const [name, spec] of Object.entries(symbols)) {
      definitions[name] = { parameters: spec.args.map(denoType), result: denoType(spec.result) };
    }
    const lib = deno().dlopen(path, definitions);
    return { symbols: lib.symbols as unknown as RawSymbols, close: () => lib.close() };
  },
  toArrayBuffer(pointer: unknown, bytes: number): ArrayBuffer {
    return deno().UnsafePointerView.getArrayBuffer(pointer, bytes);
  },
  threadSafeCallback(fn: (context: number, reason: number) => void): ThreadSafeCallback {
    const callback = deno().UnsafeCallback.threadSafe({ parameters: ["u32", "u32"], result: "void" }, fn);
    // The channel layer keeps the event loop alive while it waits; the
    // callback itself must not, or an idle process could never exit.
    callback.unref();
    return { pointer: callback.pointer, close: () => callback.close() };
  },
  isNull(pointer: unknown): boolean {
    return pointer === null;
  },
  env(name: string): string | undefined {
    return deno().env.get(name);
  },
};
