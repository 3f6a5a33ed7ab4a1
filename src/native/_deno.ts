/**
 * The Deno adapter: Deno.dlopen and Deno.UnsafeCallback.threadSafe.
 *
 * @module
 */

import type { RawSymbols, RuntimeAdapter, ThreadSafeCallback } from "./_adapter.ts";
import type { FfiType, Symbols } from "./_symbols.ts";

function denoType(type: FfiType): Deno.NativeResultType {
  return type;
}

/** Deno's FFI behind the {@link RuntimeAdapter} interface. */
export const denoAdapter: RuntimeAdapter = {
  runtime: "deno",
  open(path: string, symbols: Symbols) {
    const definitions: Record<string, Deno.ForeignFunction> = {};
    for (const [name, spec] of Object.entries(symbols)) {
      definitions[name] = {
        parameters: spec.args.map((t) => denoType(t) as Deno.NativeType),
        result: denoType(spec.result),
      };
    }
    const lib = Deno.dlopen(path, definitions);
    return { symbols: lib.symbols as unknown as RawSymbols, close: () => lib.close() };
  },
  toArrayBuffer(pointer: unknown, bytes: number): ArrayBuffer {
    return Deno.UnsafePointerView.getArrayBuffer(pointer as Deno.PointerObject, bytes);
  },
  threadSafeCallback(fn: (context: number, reason: number) => void): ThreadSafeCallback {
    const callback = Deno.UnsafeCallback.threadSafe(
      { parameters: ["u32", "u32"], result: "void" } as const,
      fn,
    );
    // The channel layer keeps the event loop alive while it waits; the
    // callback itself must not, or an idle process could never exit.
    callback.unref();
    return { pointer: callback.pointer, close: () => callback.close() };
  },
  isNull(pointer: unknown): boolean {
    return pointer === null;
  },
  env(name: string): string | undefined {
    return Deno.env.get(name);
  },
};
