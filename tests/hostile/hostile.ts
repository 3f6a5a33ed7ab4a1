/**
 * A hostile program: one action of _libc.ts through FFI to libc, run under the
 * sandbox launcher by tests/sandbox_test.ts. Prints one JSON line
 * `{"ok": boolean, "errno": number, ...}` and exits 0.
 *
 * Usage: hostile.ts ACTION [ARG] [linger]
 *
 * @module
 */

import { act, isBun, openLibc } from "./_libc.ts";

// deno-lint-ignore no-explicit-any
const args: string[] = isBun ? (globalThis as any).process.argv.slice(2) : (globalThis as any).Deno.args;
const libc = await openLibc();
console.log(JSON.stringify(await act(libc, args[0], args[1])));
if (args[2] === "linger") await new Promise((r) => setTimeout(r, 300_000));
