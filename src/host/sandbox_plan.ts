/**
 * Manifest v2 `permissions` and `limits` (their schema lives with the manifest and is
 * re-exported here), and the pure mapping from grants to a
 * launch plan: the Deno permission flags (never `-A`) and the arguments of the
 * sandbox launcher `pshm-launch` (zig/launcher, docs/security.md). The host may
 * narrow a plugin's grants; nothing here can widen them.
 *
 * @module
 */

import { resolve } from "node:path";
import type { InspectorEndpoint } from "./types.ts";
import { inspectFlag } from "./_inspect.ts";

export {
  grantEntriesMax,
  type Limits,
  limitsSchema,
  memoryMiBMin,
  type Permissions,
  permissionsSchema,
} from "./permissions_schema.ts";
import type { Limits, Permissions } from "./permissions_schema.ts";

type GrantKey = keyof Permissions;
const grantKeys: GrantKey[] = ["read", "write", "net", "env", "run", "hostFunctions", "plugins"];

/**
 * Narrows `granted` by the host's `allowed` (per grant kind; a kind the host
 * leaves out is not narrowed). Entries are compared literally after path
 * resolution, so a host can only keep or drop what the manifest asked for.
 */
export function narrowPermissions(granted: Permissions, allowed: Permissions | undefined): Permissions {
  if (!allowed) return granted;
  const result: Permissions = {};
  for (const key of grantKeys) {
    const asked = granted[key];
    if (!asked) continue;
    const keep = allowed[key];
    result[key] = keep ? asked.filter((entry) => keep.includes(entry)) : [...asked];
  }
  return result;
}

/** The smaller of two limits per field (a host limit never raises a manifest's). */
export function narrowLimits(limits: Limits, host: Limits | undefined): Limits {
  if (!host) return limits;
  const min = (a?: number, b?: number) => a === undefined ? b : b === undefined ? a : Math.min(a, b);
  return {
    memoryMiB: min(limits.memoryMiB, host.memoryMiB),
    memorySoftMiB: min(limits.memorySoftMiB, host.memorySoftMiB),
    processesMax: min(limits.processesMax, host.processesMax),
    openFilesMax: min(limits.openFilesMax, host.openFilesMax),
  };
}

/** Where things are on this machine; the host fills it in. */
export interface SandboxContext {
  runtime: "deno" | "bun" | "node";
  /** Absolute path of the runtime binary (symlinks resolved). */
  runtimeBinary: string;
  /** Absolute path of pshm-launch. */
  launcher: string;
  /** The plugin's directory: relative grants resolve against it; always readable. */
  pluginDir: string;
  /** The plugin's entry file. */
  entryPath: string;
  /** plugin-shm's package directory (the SDK and its node_modules): read-only. */
  packageDir: string;
  /**
   * What resolving the plugin's imports reads: node_modules directories and project files (package.json,
   * deno.json, lock files) of the plugin's directory, this package's and their ancestors; read-only.
   */
  dependencyPaths?: string[];
  /** Directories that hold those node_modules: listable (names only), as Bun lists each ancestor to resolve. */
  listPaths?: string[];
  /** libpluginshm: readable by the plugin (Deno's FFI permission cannot be scoped to it, see planSandbox). */
  nativeLibrary: string;
  /** Deno's cache (DENO_DIR), read-only: a plugin must not poison it for the others. */
  denoDir?: string;
  /** Environment variables the SDK needs (connection details), always passed and allowed. */
  sdkEnv: string[];
  /**
   * The host's TCP port when the plugin talks to it over the tcp transport: the plugin may connect
   * there (and only there) without a `net` grant. The unix and shm transports need no network.
   */
  transportPort?: number;
  /**
   * The host's socket path when the plugin talks to it over the unix transport: Deno's own checks need read, write
   * and `unix:` net access to connect there (Landlock leaves connecting to a socket alone).
   */
  transportSocket?: string;
  /** `required`: a kernel without Landlock/seccomp refuses the plugin; `best-effort`: reported only. */
  mode: "required" | "best-effort";
  /**
   * The runtime's inspector listens here (loopback): the plugin may bind this one TCP port (and create TCP
   * sockets to do so, `--inet=tcp`), nothing more; without a net grant it still connects nowhere.
   */
  inspect?: InspectorEndpoint;
}

/** Readable by every plugin: what a runtime needs to start, found by running them under the launcher. */
export const runtimeReadPaths: readonly string[] = [
  "/lib",
  "/lib64",
  "/usr/lib",
  "/usr/lib64",
  "/etc/ld.so.cache",
  "/etc/localtime",
  "/etc/ssl/openssl.cnf", // Node reads it at start and exits 13 without it
  "/dev/urandom",
  "/dev/random",
  "/proc",
  "/sys/devices/system/cpu",
  "/sys/fs/cgroup",
];
/** Writable by every plugin: /dev/null for stdio, /dev/shm for the shared-memory segment. */
export const runtimeWritePaths: readonly string[] = ["/dev/null", "/dev/shm"];
/** Executable by every plugin besides its runtime: the dynamic loader the runtime binary names. */
export const loaderPaths: readonly string[] = ["/lib64/ld-linux-x86-64.so.2", "/lib/ld-linux-aarch64.so.1"];

/**
 * RLIMIT_DATA floor per runtime, MiB: below it the runtime cannot reserve its heap and code ranges
 * and dies at start (found by trying: Deno 1.x..2.x fails at 512, starts at 1024; Bun fails at 2048,
 * starts at 4096). The data limit is a backstop against runaway allocations, not the memory budget.
 */
export const runtimeDataFloorMiB: Readonly<Record<SandboxContext["runtime"], number>> = {
  deno: 1024,
  bun: 4096,
  node: 2048,
};

/** Environment names the plugin-shm SDK and its dependencies read (msgpackr probes one at import). */
export const packageEnv: readonly string[] = ["MSGPACKR_NATIVE_ACCELERATION_DISABLED"];

/** The runtime's own invocation and the launcher's, for one plugin. */
export interface SandboxPlan {
  /** Run this (the launcher) ... */
  command: string;
  /** ... with these arguments (launcher options, `--`, runtime, runtime arguments). */
  args: string[];
  /** The runtime's arguments alone (Deno flags included), for a host that runs without the launcher. */
  runtimeArgs: string[];
  /** Granted environment names (plus the SDK's): everything else is scrubbed. */
  envAllowed: string[];
  /** Grants after path resolution. */
  permissions: Required<Permissions>;
}

/** Grants → launch plan. Pure: no file system access, same input, same output. */
export function planSandbox(ctx: SandboxContext, granted: Permissions, limits: Limits = {}): SandboxPlan {
  const abs = (p: string) => resolve(ctx.pluginDir, p);
  const permissions: Required<Permissions> = {
    read: (granted.read ?? []).map(abs),
    write: (granted.write ?? []).map(abs),
    net: [...(granted.net ?? [])],
    env: [...(granted.env ?? [])],
    run: (granted.run ?? []).map(abs),
    hostFunctions: [...(granted.hostFunctions ?? [])],
    plugins: [...(granted.plugins ?? [])],
  };
  const envAllowed = [...new Set([...ctx.sdkEnv, ...packageEnv, ...permissions.env])];
  const ports = [...new Set(permissions.net.map((entry) => Number(entry.slice(entry.lastIndexOf(":") + 1))))];

  const socket = ctx.transportSocket ? [ctx.transportSocket] : [];
  const netAllowed = [
    ...permissions.net,
    ...(ctx.transportPort ? [`127.0.0.1:${ctx.transportPort}`] : []),
    ...socket.map((path) => `unix:${path}`),
  ];
  const inspect = ctx.inspect ? [inspectFlag(ctx.runtime, ctx.inspect)] : [];
  const runtimeArgs = ctx.runtime === "deno"
    ? [
      "run",
      "--no-prompt",
      ...inspect,
      `--allow-read=${[
        ctx.pluginDir,
        ctx.packageDir,
        ...(ctx.dependencyPaths ?? []),
        ctx.nativeLibrary,
        ...socket,
        ...permissions.read,
        ...permissions.write,
      ]}`,
      ...(permissions.write.length || socket.length ? [`--allow-write=${[...socket, ...permissions.write]}`] : []),
      ...(netAllowed.length ? [`--allow-net=${netAllowed}`] : []),
      `--allow-env=${envAllowed}`,
      ...(permissions.run.length ? [`--allow-run=${permissions.run}`] : []),
      // Unscoped on purpose: Deno (2.x) demands full FFI permission for UnsafePointerView, which
      // mapping the segment needs; `--allow-ffi=<lib>` fails there. FFI escapes Deno's checks
      // either way: the launcher's Landlock and seccomp rules are the boundary.
      "--allow-ffi",
      ctx.entryPath,
    ]
    : [...inspect, ctx.entryPath];
  const inet = ports.length > 0 || Boolean(ctx.transportPort);

  const args = [
    `--mode=${ctx.mode}`,
    `--exec=${ctx.runtimeBinary}`,
    ...loaderPaths.map((p) => `--exec=${p}`),
    ...permissions.run.map((p) => `--exec=${p}`),
    ...[
      ctx.pluginDir,
      ctx.packageDir,
      ...(ctx.dependencyPaths ?? []),
      ctx.nativeLibrary,
      ...runtimeReadPaths,
      ...permissions.read,
    ].map((p) => `--ro=${p}`),
    ...(ctx.denoDir ? [`--ro=${ctx.denoDir}`] : []),
    ...(ctx.listPaths ?? []).map((p) => `--list=${p}`),
    ...[...runtimeWritePaths, ...permissions.write].map((p) => `--rw=${p}`),
    ...(inet ? ["--inet"] : ctx.inspect ? ["--inet=tcp"] : []),
    ...ports.flatMap((port) => [`--connect=${port}`, `--bind=${port}`]),
    ...(ctx.inspect && !ports.includes(ctx.inspect.port) ? [`--bind=${ctx.inspect.port}`] : []),
    ...(ctx.transportPort && !ports.includes(ctx.transportPort) ? [`--connect=${ctx.transportPort}`] : []),
    ...(limits.processesMax ? [`--nproc=${limits.processesMax}`] : []),
    ...(limits.openFilesMax ? [`--nofile=${limits.openFilesMax}`] : []),
    ...(limits.memoryMiB ? [`--data-mib=${Math.max(limits.memoryMiB, runtimeDataFloorMiB[ctx.runtime])}`] : []),
    "--",
    ctx.runtimeBinary,
    ...runtimeArgs,
  ];
  return { command: ctx.launcher, args, runtimeArgs, envAllowed, permissions };
}
