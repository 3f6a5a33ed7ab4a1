/**
 * The one declaration of libpluginshm's symbols, runtime-neutral. The Deno
 * and Bun loaders translate it. Comments give the Zig types (zig/abi.zig).
 *
 * @module
 */

/** A runtime-neutral FFI type. */
export type FfiType = "i32" | "u32" | "i64" | "u64" | "pointer" | "buffer" | "function" | "void";

/** One native function: argument types and result type. */
export interface SymbolSpec {
  readonly args: readonly FfiType[];
  readonly result: FfiType;
}

export const symbols = {
  /** () u32 */
  pshm_abi_version: { args: [], result: "u32" },
  /** (field: u32) i64 */
  pshm_layout: { args: ["u32"], result: "i64" },
  /** (ring_bytes: u32, name_out: [*]u8, name_capacity: u32, token_out: [*]u8) i32 */
  pshm_create: { args: ["u32", "buffer", "u32", "buffer"], result: "i32" },
  /** (name: [*]const u8, name_len: u32, token: [*]const u8, token_len: u32) i32 */
  pshm_attach: { args: ["buffer", "u32", "buffer", "u32"], result: "i32" },
  /** (handle: i32) ?*anyopaque */
  pshm_base: { args: ["i32"], result: "pointer" },
  /** (handle: i32) u64 */
  pshm_size: { args: ["i32"], result: "u64" },
  /** (handle: i32) i32 */
  pshm_side: { args: ["i32"], result: "i32" },
  /** (handle: i32) i32 */
  pshm_close: { args: ["i32"], result: "i32" },
  /** (handle: i32) i32 */
  pshm_unlink: { args: ["i32"], result: "i32" },
  /** (handle: i32, side: u32) i32 */
  pshm_wake: { args: ["i32", "u32"], result: "i32" },
  /** (handle: i32) i32 */
  pshm_peer_alive: { args: ["i32"], result: "i32" },
  /** (pid: u32) i32 */
  pshm_process_alive: { args: ["u32"], result: "i32" },
  /** (handle: i32, callback: ?*const fn (u32, u32) callconv(.c) void, context: u32) i32 */
  pshm_waiter_start: { args: ["i32", "function", "u32"], result: "i32" },
  /** (handle: i32, expected: u32) i32 */
  pshm_waiter_arm: { args: ["i32", "u32"], result: "i32" },
  /** () u32 */
  pshm_sweep: { args: [], result: "u32" },
  /** () u32 */
  pshm_pid: { args: [], result: "u32" },
  /** () void */
  pshm_yield: { args: [], result: "void" },
  /** (handle: i32, ms: u32) i32 */
  pshm_waiter_liveness: { args: ["i32", "u32"], result: "i32" },
  /** (handle: i32, expected: u32, timeout_us: u32) i32 */
  pshm_park_blocking: { args: ["i32", "u32", "u32"], result: "i32" },
} as const satisfies Record<string, SymbolSpec>;

/** The symbol table's type. */
export type Symbols = typeof symbols;
