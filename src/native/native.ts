/**
 * libpluginshm for the current runtime: finds and opens the library, checks
 * its ABI, and turns status codes into {@link SegmentError}s.
 *
 * @module
 */

import type { RawSymbols, RuntimeAdapter, RuntimeName, ThreadSafeCallback } from "./_adapter.ts";
import { symbols } from "./_symbols.ts";
import { denoAdapter } from "./_deno.ts";
import { bunAdapter } from "./_bun.ts";
import { nodeAdapter } from "./_node.ts";
import { NativeLibraryError, type NativeStatus, nativeStatusCodes, SegmentError } from "./errors.ts";
import { L } from "./layout.ts";
import { livenessCheckMs, livenessCheckMsMax, wakeReasons } from "./_generated.ts";
import { findLibrary, libraryEnv } from "./library.ts";
export type { RuntimeName } from "./_adapter.ts";

/** Longest {@link Native.parkBlocking} bound, in µs (zig/handles.zig `block_us_max`). */
export const parkBlockingMicrosMax = 100_000;

/** The ABI version this TypeScript expects (zig/abi.zig `abi_version`). */
export const abiVersion = 1;

/**
 * Keeps the event loop alive while any native thread may still call back:
 * a parked channel, or a closed one whose waiter has not said "exited" yet.
 * The thread-safe callback itself is unref'd, so counted references here are
 * what decides whether the process may exit.
 */
export const keepAlive = {
  count: 0,
  timer: undefined as ReturnType<typeof setInterval> | undefined,
  acquire(): void {
    if (this.count++ === 0) this.timer = setInterval(() => {}, 1 << 30);
  },
  release(): void {
    if (--this.count === 0) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  },
};

/** Why a waiter called back, generated from zig/waiter.zig. */
export { livenessCheckMs, livenessCheckMsMax, wakeReasons };

/** The waiter's last callback reason. */
const waiterExited = wakeReasons.exited;

export { libraryEnv } from "./library.ts";

/** The oldest Node major plugin-shm supports. */
export const nodeMajorMin = 20;

function detectAdapter(): RuntimeAdapter {
  if ("Bun" in globalThis) return bunAdapter;
  if ("Deno" in globalThis) return denoAdapter;
  // Checked last: Deno and Bun also set process.versions.node.
  if (typeof process === "object" && typeof process.versions?.node === "string") {
    const major = Number(process.versions.node.split(".")[0]);
    if (major < nodeMajorMin) {
      throw new NativeLibraryError(
        `plugin-shm needs Node ${nodeMajorMin} or newer; this is Node ${process.versions.node}. Upgrade Node`,
      );
    }
    return nodeAdapter;
  }
  throw new NativeLibraryError("plugin-shm runs under Deno, Bun or Node; this runtime is none of them");
}

function statusName(rc: number): NativeStatus {
  return nativeStatusCodes[-rc as keyof typeof nativeStatusCodes] ?? "unknown";
}

/** A freshly created segment, side 0. */
export interface CreatedSegment {
  /** The library's handle for the segment, for the other Native methods. */
  readonly handle: number;
  /** The segment's name in /dev/shm, to pass to the peer. */
  readonly name: string;
  /** The one-time attach token, to pass to the peer (only it may attach, once). */
  readonly token: Uint8Array;
}

const attachAdvice: Partial<Record<NativeStatus, string>> = {
  not_found: "it does not exist: it was never created, a peer already attached, or its creator closed it",
  bad_magic: "it is not a plugin-shm segment (bad magic)",
  bad_layout_version:
    `its layout version differs from this build's (${L.layout_version}); run the same plugin-shm release on both sides`,
  truncated: "it is truncated or its size fields disagree; it is corrupt or not made by plugin-shm",
  token_mismatch: "the token does not match; pass the creating side's ShmChannel.token exactly",
  already_attached: "it already has a peer; a token works once, so create a new channel",
  permission_denied: "permission denied; both processes must run as the same user",
  invalid_argument: "the name or token is malformed",
};

/** The opened library. One per process; see {@link getNative}. */
export class Native {
  /** The JavaScript runtime whose FFI opened the library. */
  readonly runtime: RuntimeName;
  /** The library file that was opened. */
  readonly path: string;
  readonly #adapter: RuntimeAdapter;
  readonly #lib: RawSymbols;
  #callback: ThreadSafeCallback | undefined;
  /**
   * Wake handlers by waiter context. A context is never reused, unlike a
   * handle: Bun delivers thread-safe callbacks asynchronously, so a closed
   * channel's last callbacks can arrive after its handle went to a new
   * channel, and must not reach that one.
   */
  readonly #wakeHandlers = new Map<number, (reason: number) => void>();
  readonly #contextOf = new Map<number, number>();
  #nextContext = 1;

  /** Opens the library at `path` through `adapter`; use {@link getNative} instead, which does this once per process. */
  constructor(adapter: RuntimeAdapter, path: string) {
    this.#adapter = adapter;
    this.runtime = adapter.runtime;
    this.path = path;
    try {
      this.#lib = adapter.open(path, symbols).symbols;
    } catch (cause) {
      // The adapter's own errors (Node without koffi) already say what to do.
      if (cause instanceof NativeLibraryError) throw cause;
      throw new NativeLibraryError(
        `Cannot load libpluginshm from ${path}: ${(cause as Error).message}. ` +
          `Build it with \`make build\`, or point ${libraryEnv} at a built copy`,
        { cause },
      );
    }
    const version = this.#call("pshm_abi_version");
    if (version !== abiVersion) {
      throw new NativeLibraryError(
        `libpluginshm at ${path} has ABI version ${version}, this plugin-shm expects ${abiVersion}; rebuild it with \`make build\``,
      );
    }
  }

  #call(name: keyof RawSymbols, ...args: unknown[]): number {
    const fn = this.#lib[name] as (...a: unknown[]) => unknown;
    return Number(fn(...args));
  }

  /** A layout value as the library sees it (for the layout agreement test). */
  layout(field: number): number {
    return this.#call("pshm_layout", field);
  }

  /** Creates a segment with rings of `ringBytes` each, as side 0. */
  create(ringBytes: number): CreatedSegment {
    const name = new Uint8Array(L.name_bytes_max);
    const token = new Uint8Array(L.token_bytes);
    const rc = this.#call("pshm_create", ringBytes, name, name.length, token);
    if (rc < 0) {
      throw new SegmentError(statusName(rc), `Cannot create a shared-memory segment: ${statusName(rc)}`);
    }
    const end = name.indexOf(0);
    return { handle: rc, name: new TextDecoder().decode(name.subarray(0, end < 0 ? name.length : end)), token };
  }

  /** Attaches to segment `name` with its one-time token, as side 1. */
  attach(name: string, token: Uint8Array): number {
    const nameBytes = new TextEncoder().encode(name);
    const rc = this.#call("pshm_attach", nameBytes, nameBytes.length, token, token.length);
    if (rc < 0) {
      const code = statusName(rc);
      throw new SegmentError(code, `Cannot attach to segment "${name}": ${attachAdvice[code] ?? code}`);
    }
    return rc;
  }

  /** The segment's memory as an ArrayBuffer (no copy). */
  map(handle: number): ArrayBuffer {
    const pointer = (this.#lib.pshm_base as (h: number) => unknown)(handle);
    if (this.#adapter.isNull(pointer)) throw new TypeError(`Invalid segment handle ${handle}`);
    return this.#adapter.toArrayBuffer(pointer, this.#call("pshm_size", handle));
  }

  /** Which side of its segment `handle` is: 0 for the creator, 1 for the attacher. */
  side(handle: number): number {
    return this.#check(this.#call("pshm_side", handle), "side");
  }

  /**
   * Marks the side closed and wakes the peer at once; the waiter thread then
   * exits and unmaps. Until its last callback ("exited") arrives the event
   * loop is kept alive, so the process cannot tear the runtime down under a
   * thread that is about to call into it.
   */
  close(handle: number): void {
    const context = this.#contextOf.get(handle);
    this.#contextOf.delete(handle);
    if (context !== undefined) {
      this.#wakeHandlers.set(context, (reason) => reason === waiterExited && this.#threadGone(context));
      keepAlive.acquire();
    }
    this.#check(this.#call("pshm_close", handle), "close");
  }

  #threadGone(context: number): void {
    if (this.#wakeHandlers.delete(context)) keepAlive.release();
  }

  /** Removes the segment's name from /dev/shm (the mapping stays until both sides close). */
  unlink(handle: number): void {
    this.#check(this.#call("pshm_unlink", handle), "unlink");
  }

  /** Rings `side`'s doorbell and wakes it. */
  wake(handle: number, side: number): void {
    this.#call("pshm_wake", handle, side);
  }

  /** True while process `pid` exists (a zombie counts as gone). */
  processAlive(pid: number): boolean {
    return this.#call("pshm_process_alive", pid) === 1;
  }

  /** Starts the handle's waiter thread; `onWake(reason)` runs on the event loop. */
  startWaiter(handle: number, onWake: (reason: number) => void): void {
    const context = this.#nextContext;
    this.#nextContext = context >= 0xffff_fffe ? 1 : context + 1;
    this.#wakeHandlers.set(context, onWake);
    this.#contextOf.set(handle, context);
    const rc = this.#call("pshm_waiter_start", handle, this.#dispatcher().pointer, context);
    if (rc < 0) {
      this.#wakeHandlers.delete(context);
      this.#contextOf.delete(handle);
      this.#check(rc, "start the waiter thread");
    }
  }

  /** Asks the waiter for one wake-up once the doorbell differs from `expected`. */
  arm(handle: number, expected: number): void {
    this.#call("pshm_waiter_arm", handle, expected);
  }

  /**
   * Sets how often the handle's waiter thread checks on its own that the peer
   * process lives, in ms (1 to 3 600 000; default 1000).
   */
  setLiveness(handle: number, ms: number): void {
    this.#call("pshm_waiter_liveness", handle, ms);
  }

  /** Removes segments whose creator and peer are both dead; returns how many. */
  sweep(): number {
    return this.#call("pshm_sweep");
  }

  /** This process's id, as the library sees it. */
  pid(): number {
    return this.#call("pshm_pid");
  }

  /** sched_yield(): lets other runnable threads have this core. */
  yield(): void {
    (this.#lib.pshm_yield as () => void)();
  }

  /**
   * Blocks this thread until `handle`'s doorbell differs from `expected`, for at most `timeoutMicros` (1 to
   * {@link parkBlockingMicrosMax}); true when it changed (or spuriously: re-check), false on the timeout.
   * Timers and I/O of this runtime wait meanwhile: see ShmChannelOptions.blockMicros.
   */
  parkBlocking(handle: number, expected: number, timeoutMicros: number): boolean {
    return this.#check(this.#call("pshm_park_blocking", handle, expected, timeoutMicros), "block on the doorbell") ===
      1;
  }

  #dispatcher(): ThreadSafeCallback {
    // One thread-safe callback for the whole process; the waiter's context
    // rides along and picks the channel.
    this.#callback ??= this.#adapter.threadSafeCallback((context, reason) => {
      this.#wakeHandlers.get(context)?.(reason);
    });
    return this.#callback;
  }

  #check(rc: number, what: string): number {
    if (rc < 0) throw new SegmentError(statusName(rc), `Cannot ${what}: ${statusName(rc)}`);
    return rc;
  }
}

let instance: Native | undefined;

/**
 * The process-wide library, opened on first use from where
 * {@link findLibrary} finds it (`PLUGIN_SHM_LIB`, the package's prebuilt
 * library, then `zig-out/lib`).
 *
 * @example
 * ```ts
 * import { getNative } from "./native.ts";
 * console.log(getNative().runtime);
 * ```
 */
export function getNative(): Native {
  if (instance) return instance;
  const adapter = detectAdapter();
  instance = new Native(adapter, findLibrary({ env: (name) => adapter.env(name) }));
  return instance;
}
