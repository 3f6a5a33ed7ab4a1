/**
 * Hostile actions straight through libc by FFI (Deno.dlopen or bun:ffi), so
 * the runtime's own permission checks are out of the way and only the OS
 * sandbox stands between the caller and the action. Used by hostile.ts (a
 * program) and by the hostile plugin of tests/sandbox_host_test.ts.
 *
 * Actions: read PATH, write PATH, connect PORT, bind PORT, udp, exec PATH, ptrace PID,
 * vmread PID, procmem PID, alloc MIB, spawn-detached MARKER.
 *
 * @module
 */

type Fn = (...args: unknown[]) => number | bigint;
export interface Libc {
  open(path: Uint8Array, flags: number, mode: number): number;
  close(fd: number): number;
  read(fd: number, buf: Uint8Array, len: bigint): bigint;
  socket(domain: number, type: number, protocol: number): number;
  connect(fd: number, addr: Uint8Array, len: number): number;
  bind(fd: number, addr: Uint8Array, len: number): number;
  ptrace(request: bigint, pid: number, addr: bigint, data: bigint): bigint;
  process_vm_readv(
    pid: number,
    local: Uint8Array,
    liovcnt: bigint,
    remote: Uint8Array,
    riovcnt: bigint,
    flags: bigint,
  ): bigint;
  mmap(addr: bigint, len: bigint, prot: number, flags: number, fd: number, off: bigint): bigint;
  execv(path: Uint8Array, argv: Uint8Array): number;
  errno(): number;
}

export const isBun: boolean = "Bun" in globalThis;

/** bun:ffi, loaded by a name the type checkers (Deno, tsc for dist) do not resolve. */
// deno-lint-ignore no-explicit-any
function bunFfi(): Promise<any> {
  const name = "bun:ffi";
  return import(name);
}

export async function openLibc(): Promise<Libc> {
  const sig = {
    open: [["buffer", "i32", "i32"], "i32"],
    close: [["i32"], "i32"],
    read: [["i32", "buffer", "u64"], "i64"],
    socket: [["i32", "i32", "i32"], "i32"],
    connect: [["i32", "buffer", "u32"], "i32"],
    bind: [["i32", "buffer", "u32"], "i32"],
    ptrace: [["i64", "i32", "u64", "u64"], "i64"],
    process_vm_readv: [["i32", "buffer", "u64", "buffer", "u64", "u64"], "i64"],
    mmap: [["u64", "u64", "i32", "i32", "i32", "i64"], "u64"],
    execv: [["buffer", "buffer"], "i32"],
    __errno_location: [[], "pointer"],
  } as const;
  let fns: Record<string, Fn>;
  let readI32: (ptr: unknown) => number;
  if (isBun) {
    const ffi = await bunFfi();
    const defs: Record<string, { args: string[]; returns: string }> = {};
    for (const [name, [params, result]] of Object.entries(sig)) {
      defs[name] = {
        args: params.map((p) => p === "buffer" ? "ptr" : p),
        returns: result === "pointer" ? "ptr" : result,
      };
    }
    // deno-lint-ignore no-explicit-any
    fns = ffi.dlopen("libc.so.6", defs as any).symbols as unknown as Record<string, Fn>;
    // deno-lint-ignore no-explicit-any
    readI32 = (ptr) => ffi.read.i32(ptr as any, 0);
  } else {
    const defs: Record<string, { parameters: string[]; result: string }> = {};
    for (const [name, [params, result]] of Object.entries(sig)) defs[name] = { parameters: [...params], result };
    // deno-lint-ignore no-explicit-any
    const deno = (globalThis as any).Deno;
    fns = deno.dlopen("libc.so.6", defs).symbols;
    readI32 = (ptr) => new deno.UnsafePointerView(ptr).getInt32(0);
  }
  return {
    ...(fns as unknown as Libc),
    errno: () => readI32(fns.__errno_location()),
  };
}

const cstr = (s: string) => new TextEncoder().encode(s + "\0");

function sockaddr(port: number): Uint8Array {
  const addr = new Uint8Array(16);
  const view = new DataView(addr.buffer);
  view.setUint16(0, 2, true); // AF_INET
  view.setUint16(2, port, false);
  addr.set([127, 0, 0, 1], 4);
  return addr;
}

function iovec(buffer: Uint8Array | bigint, len: number, pointerOf: (b: Uint8Array) => bigint): Uint8Array {
  const iov = new Uint8Array(16);
  const view = new DataView(iov.buffer);
  view.setBigUint64(0, typeof buffer === "bigint" ? buffer : pointerOf(buffer), true);
  view.setBigUint64(8, BigInt(len), true);
  return iov;
}

async function pointerOf(b: Uint8Array): Promise<bigint> {
  if (isBun) return BigInt((await bunFfi()).ptr(b));
  // deno-lint-ignore no-explicit-any
  const deno = (globalThis as any).Deno;
  return BigInt(deno.UnsafePointer.value(deno.UnsafePointer.of(b)));
}

const O_RDONLY = 0, O_WRONLY = 1, O_CREAT = 0o100, O_TRUNC = 0o1000;

export async function act(libc: Libc, action: string, arg: string): Promise<Record<string, unknown>> {
  switch (action) {
    case "read": {
      const fd = libc.open(cstr(arg), O_RDONLY, 0);
      if (fd < 0) return { ok: false, errno: libc.errno() };
      const buf = new Uint8Array(64);
      const n = Number(libc.read(fd, buf, 64n));
      libc.close(fd);
      return { ok: n >= 0, errno: 0, text: new TextDecoder().decode(buf.subarray(0, Math.max(n, 0))) };
    }
    case "write": {
      const fd = libc.open(cstr(arg), O_WRONLY | O_CREAT | O_TRUNC, 0o644);
      if (fd < 0) return { ok: false, errno: libc.errno() };
      libc.close(fd);
      return { ok: true, errno: 0 };
    }
    case "connect":
    case "bind": {
      const fd = libc.socket(2, 1, 0);
      if (fd < 0) return { ok: false, errno: libc.errno(), stage: "socket" };
      const rc = action === "connect"
        ? libc.connect(fd, sockaddr(Number(arg)), 16)
        : libc.bind(fd, sockaddr(Number(arg)), 16);
      const errno = rc < 0 ? libc.errno() : 0;
      libc.close(fd);
      return { ok: rc === 0, errno, stage: action };
    }
    case "udp": {
      // A datagram socket: Landlock does not confine UDP, so only seccomp's socket-type check stands here.
      const fd = libc.socket(2, 2, 0);
      if (fd < 0) return { ok: false, errno: libc.errno(), stage: "socket" };
      libc.close(fd);
      return { ok: true, errno: 0, stage: "socket" };
    }
    case "exec": {
      // execv only returns on failure; on success the shell prints the ok line itself.
      const argv = new Uint8Array(32);
      const sh = cstr(arg), dashC = cstr("-c"), script = cstr(`echo '{"ok":true,"errno":0}'`);
      const view = new DataView(argv.buffer);
      view.setBigUint64(0, await pointerOf(sh), true);
      view.setBigUint64(8, await pointerOf(dashC), true);
      view.setBigUint64(16, await pointerOf(script), true);
      libc.execv(sh, argv);
      return { ok: false, errno: libc.errno() };
    }
    case "ptrace": {
      const PTRACE_ATTACH = 16n;
      const rc = Number(libc.ptrace(PTRACE_ATTACH, Number(arg), 0n, 0n));
      return { ok: rc === 0, errno: rc < 0 ? libc.errno() : 0 };
    }
    case "vmread": {
      // Any address works for the test: the permission check comes before the address is read.
      const local = new Uint8Array(8);
      const rc = Number(libc.process_vm_readv(
        Number(arg),
        iovec(await pointerOf(local), 8, () => 0n),
        1n,
        iovec(0x400000n, 8, () => 0n),
        1n,
        0n,
      ));
      const errno = rc < 0 ? libc.errno() : 0;
      // EFAULT means the kernel let us in and only the address was wrong: that is access.
      return { ok: rc >= 0 || errno === 14, errno };
    }
    case "procmem": {
      const fd = libc.open(cstr(`/proc/${arg}/mem`), O_RDONLY, 0);
      const errno = fd < 0 ? libc.errno() : 0;
      if (fd >= 0) libc.close(fd);
      return { ok: fd >= 0, errno };
    }
    case "alloc": {
      const PROT_RW = 3, MAP_PRIVATE_ANON = 0x22;
      const bytes = BigInt(Number(arg)) * 1024n * 1024n;
      const address = libc.mmap(0n, bytes, PROT_RW, MAP_PRIVATE_ANON, -1, 0n);
      const failed = address === 0xffffffffffffffffn;
      return { ok: !failed, errno: failed ? libc.errno() : 0 };
    }
    case "spawn-detached": {
      // A grandchild in a session of its own, the classic way to escape a process-group kill.
      // A unique duration marks the sleeper so the test finds it from outside the PID namespace.
      const command = ["/usr/bin/setsid", "/usr/bin/sleep", arg];
      let pid: number;
      if (isBun) {
        // deno-lint-ignore no-explicit-any
        const child = (globalThis as any).Bun.spawn(command, { stdio: ["ignore", "ignore", "ignore"] });
        child.unref();
        pid = child.pid;
      } else {
        // deno-lint-ignore no-explicit-any
        const deno = (globalThis as any).Deno;
        const child = new deno.Command(command[0], {
          args: command.slice(1),
          stdin: "null",
          stdout: "null",
          stderr: "null",
        })
          .spawn();
        child.unref();
        pid = child.pid;
      }
      return { ok: pid > 0, errno: 0, innerPid: pid };
    }
    default:
      throw new Error(`unknown action ${action}`);
  }
}
