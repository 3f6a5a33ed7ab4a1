/**
 * The default launch plan: which program runs a plugin, with which
 * arguments, in which directory and with which environment. The environment
 * is scrubbed: a plugin gets the protocol's launch variables, a minimal PATH,
 * HOME and TMPDIR, the native library's location, and only what the host
 * (`env` option) or the manifest (`permissions.env`, names of host variables)
 * grants, never the host's whole environment with its secrets. A
 * {@link LaunchPlanner} (the sandbox) may then rewrite the plan.
 *
 * @module
 */

import { existsSync } from "node:fs";
import process from "node:process";
import { delimiter, dirname, extname, join, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { libraryEnv } from "../native/native.ts";
import type { Manifest } from "./manifest.ts";
import type { InspectorEndpoint, LaunchPlan } from "./types.ts";
import { inspectFlag } from "./_inspect.ts";

/** The PATH a plugin gets: the system's binaries, nothing of the host user's. */
export const pathMinimal = "/usr/local/bin:/usr/bin:/bin";

/**
 * Host variables a plugin inherits because its runtime or the native library
 * needs them to start, not because the plugin asked: where the library is,
 * where Deno keeps its cache, the locale.
 */
export const inheritedEnv: readonly string[] = [libraryEnv, "DENO_DIR", "LANG", "LC_ALL", "TZ"];

const here = fileURLToPath(import.meta.url);

/**
 * The launch entry that imports a plugin module and serves its definition,
 * beside this module: `_launch.ts` in the sources, `_launch.js` in the
 * compiled package (dist/).
 */
export const launchEntry: string = join(dirname(here), "..", "plugin", `_launch${extname(here)}`);

/**
 * The launch entry for `runtime`. Node 20 runs no TypeScript, so from the
 * sources a Node plugin starts through the compiled entry of `make dist`; so
 * does a Deno plugin when these sources sit in a node_modules directory.
 */
export function launchEntryFor(runtime: Manifest["runtime"]): string {
  if (extname(here) === ".js") return launchEntry;
  // Deno strips no types under node_modules: a Bun host installed from npm runs these sources, its Deno plugins the
  // compiled entry.
  const installed = here.includes(`${sep}node_modules${sep}`);
  if (runtime !== "node" && !(runtime === "deno" && installed)) return launchEntry;
  return join(dirname(here), "..", "..", "dist", "src", "plugin", "_launch.js");
}

/**
 * The nearest node_modules/.bin/<runtime> above this file: this checkout's
 * pinned one (also from the compiled copy in dist/), or, installed as a
 * package, the consumer project's.
 */
function pinnedBinary(runtime: string): string | undefined {
  let dir = dirname(here);
  for (;;) {
    const candidate = `${dir}/node_modules/.bin/${runtime}`;
    if (existsSync(candidate)) return candidate;
    const parent = dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}

function isNode(): boolean {
  return !("Deno" in globalThis) && !("Bun" in globalThis) && typeof process.versions?.node === "string";
}

/**
 * The runtime binary for a plugin. Deno and Bun: the pinned one if installed,
 * else the host's PATH. Node is not an npm package: a Node host runs its plugins with its
 * own binary, a Deno or Bun host with the `node` on PATH.
 */
export function runtimeBinary(runtime: Manifest["runtime"]): string {
  if (runtime === "node") return isNode() ? process.execPath : onHostPath("node") ?? "node";
  return pinnedBinary(runtime) ?? onHostPath(runtime) ?? runtime;
}

/**
 * `name` on the host's PATH, as an absolute path: the plugin's scrubbed PATH
 * (pathMinimal) would not find a runtime installed in e.g. ~/.deno/bin.
 */
function onHostPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    if (dir && existsSync(join(dir, name))) return join(dir, name);
  }
  return undefined;
}

/** Arguments that make `runtime` run `script` with `args`. */
export function runtimeArgs(runtime: Manifest["runtime"], script: string, args: string[]): string[] {
  // Permissions from the manifest arrive with the sandbox work; until then a
  // Deno plugin needs FFI for shared memory, which amounts to -A anyway.
  return runtime === "deno" ? ["run", "-A", "--no-prompt", script, ...args] : [script, ...args];
}

/**
 * `args` (a runtime invocation from {@link runtimeArgs}) with runtime `flags` added where the runtime
 * reads them: after Deno's `run`, before the script for Bun and Node.
 */
export function withRuntimeFlags(runtime: Manifest["runtime"], args: string[], flags: string[]): string[] {
  if (flags.length === 0) return args;
  return runtime === "deno" ? [args[0], ...flags, ...args.slice(1)] : [...flags, ...args];
}

/** Names of host variables the manifest grants (`permissions.env`), if any. */
function grantedEnvNames(manifest: Manifest): string[] {
  const env = (manifest as { permissions?: { env?: unknown } }).permissions?.env;
  return Array.isArray(env) ? env.filter((name): name is string => typeof name === "string") : [];
}

/** Copies the named variables that the host has. */
function pick(names: readonly string[]): Record<string, string> {
  const picked: Record<string, string> = {};
  for (const name of names) {
    const value = process.env[name];
    if (value !== undefined) picked[name] = value;
  }
  return picked;
}

/**
 * The plan the host uses unless a launch planner changes it.
 *
 * @example
 * ```ts
 * import { defaultLaunchPlan } from "./launch_plan.ts";
 * const plan = defaultLaunchPlan(
 *   { name: "echo", version: "1.0.0", runtime: "bun", entry: "main.ts", protocol: [1, 1], dir: "/p", entryPath: "/p/main.ts", file: "/p/plugin.json" },
 *   { launchEnv: { PLUGIN_SHM_NAME: "echo" }, hostEnv: {} },
 * );
 * console.assert(plan.env.PLUGIN_SHM_NAME === "echo" && plan.cwd === "/p");
 * ```
 */
export function defaultLaunchPlan(
  manifest: Manifest,
  options: {
    launchEnv: Record<string, string>;
    hostEnv: Record<string, string>;
    /** Start the runtime's inspector there (`load(name, {inspect})`, `blameStalls`). */
    inspect?: InspectorEndpoint;
  },
): LaunchPlan {
  const env: Record<string, string> = {
    PATH: pathMinimal,
    HOME: process.env.HOME ?? "/",
    TMPDIR: process.env.TMPDIR ?? "/tmp",
    ...pick(inheritedEnv),
    ...pick(grantedEnvNames(manifest)),
    ...options.hostEnv,
    // Last: nothing granted may override the connection details.
    ...options.launchEnv,
  };
  const args = runtimeArgs(manifest.runtime, launchEntryFor(manifest.runtime), [manifest.entryPath]);
  const inspect = options.inspect;
  return {
    command: runtimeBinary(manifest.runtime),
    args: inspect ? withRuntimeFlags(manifest.runtime, args, [inspectFlag(manifest.runtime, inspect)]) : args,
    env,
    cwd: manifest.dir,
    ...(inspect ? { inspect } : {}),
  };
}
