/**
 * Where libpluginshm is found, in this order:
 *
 * 1. `PLUGIN_SHM_LIB`, a path to the library (used as given; no fallback).
 * 2. The package's prebuilt library for this platform, `native/<platform>-<arch>/` beside the
 *    package's entry files (`make package` builds them, `native/manifest.json` lists their SHA-256).
 *    When this module was imported over https (JSR or a URL), the bytes are fetched from beside the
 *    module, checked against the manifest's digest, and cached in a per-user cache directory under
 *    their digest; the cached copy is opened.
 * 3. A local `zig-out/lib/` build (`make build` in a checkout).
 *
 * Only node: built-ins are used, so the lookup is the same under Deno, Bun and Node.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { NativeLibraryError } from "./errors.ts";

/** The environment variable that overrides where the library is found. */
export const libraryEnv = "PLUGIN_SHM_LIB";

/** The environment variable that overrides the per-user cache of fetched libraries. */
export const cacheDirEnv = "PLUGIN_SHM_CACHE_DIR";

/** Where the prebuilt libraries and their manifest live, relative to the package root. */
export const nativeDir = "native";

/** The digest manifest `make package` writes: `files` maps `<platform>-<arch>/<file>` to its digest. */
export interface NativeManifest {
  readonly files: Record<string, { readonly sha256: string; readonly bytes: number }>;
}

/** The library's file name on an OS (`process.platform` spelling). */
export function libraryFileName(platform: string = process.platform): string {
  if (platform === "darwin") return "libpluginshm.dylib";
  if (platform === "win32") return "pluginshm.dll";
  return "libpluginshm.so";
}

/** The manifest key of this platform's library, e.g. `linux-x64/libpluginshm.so`. */
export function platformLibrary(platform: string = process.platform, arch: string = process.arch): string {
  return `${platform}-${arch}/${libraryFileName(platform)}`;
}

/**
 * Package roots to look in, relative to this module: `../../` from the sources (src/native/),
 * `../../../` when compiled for Node (dist/src/native/).
 */
function packageRoots(moduleUrl: string): URL[] {
  return [new URL("../../", moduleUrl), new URL("../../../", moduleUrl)];
}

/** A per-user cache directory (XDG on Linux, Library/Caches on macOS, LOCALAPPDATA on Windows). */
export function defaultCacheDir(env: (name: string) => string | undefined): string {
  const explicit = env(cacheDirEnv);
  if (explicit) return explicit;
  if (process.platform === "win32") return `${env("LOCALAPPDATA") ?? homedir()}\\plugin-shm\\cache`;
  if (process.platform === "darwin") return `${homedir()}/Library/Caches/plugin-shm`;
  return `${env("XDG_CACHE_HOME") || `${homedir()}/.cache`}/plugin-shm`;
}

function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** What the lookup needs from its surroundings; tests pass their own. */
export interface LibraryLookup {
  /** The URL of the module the package is imported through (default: this module). */
  readonly moduleUrl?: string;
  readonly env?: (name: string) => string | undefined;
  readonly platform?: string;
  readonly arch?: string;
  /** The path of a library already fetched for a remote module (see {@link fetchRemoteLibrary}). */
  readonly remote?: RemoteLibrary;
}

/** The outcome of fetching the library beside a remote module. */
export type RemoteLibrary = { readonly path: string } | { readonly tried: string[] };

function processEnv(name: string): string | undefined {
  return process.env[name];
}

/**
 * Whether `path` exists and this process may look at it. Under Deno's
 * permissions (a sandboxed plugin) existsSync throws for paths outside the
 * read grants, such as package roots above the plugin's: those are skipped.
 */
function readable(path: string): boolean {
  try {
    return existsSync(path);
  } catch {
    return false;
  }
}

/**
 * The library to open, or a {@link NativeLibraryError} that lists every place tried, in order, and
 * what to do.
 */
export function findLibrary(lookup: LibraryLookup = {}): string {
  const env = lookup.env ?? processEnv;
  // Used as given, even when missing: opening it then fails naming the path and the variable.
  const explicit = env(libraryEnv);
  if (explicit) return explicit;
  const moduleUrl = lookup.moduleUrl ?? import.meta.url;
  const key = platformLibrary(lookup.platform, lookup.arch);
  const tried = [`${libraryEnv} (not set)`];
  if (!moduleUrl.startsWith("file:")) {
    const remote = lookup.remote ?? remoteLibrary;
    if (remote && "path" in remote) return remote.path;
    tried.push(...(remote?.tried ?? [`${key} beside ${moduleUrl} (not fetched)`]));
  } else {
    for (const root of packageRoots(moduleUrl)) {
      const path = fileURLToPath(new URL(`${nativeDir}/${key}`, root));
      if (readable(path)) return path;
      tried.push(`${path} (missing)`);
    }
    for (const root of packageRoots(moduleUrl)) {
      const path = fileURLToPath(new URL(`zig-out/lib/${libraryFileName(lookup.platform)}`, root));
      if (readable(path)) return path;
      tried.push(`${path} (missing)`);
    }
  }
  throw new NativeLibraryError(
    `Cannot find libpluginshm for ${key.split("/")[0]}. Tried, in order: ${tried.join("; ")}. ` +
      `Install a plugin-shm release that ships this platform, run \`make build\` in a checkout, ` +
      `or set ${libraryEnv} to a built library`,
  );
}

/**
 * Fetches this platform's library from beside a remote module, checks it against the package's
 * digest manifest, and caches it under its digest. Never throws: a failure is returned as the list of
 * what was tried, for {@link findLibrary}'s message.
 */
export async function fetchRemoteLibrary(
  moduleUrl: string,
  options: { env?: (name: string) => string | undefined; platform?: string; arch?: string } = {},
): Promise<RemoteLibrary> {
  const env = options.env ?? processEnv;
  const key = platformLibrary(options.platform, options.arch);
  const tried: string[] = [];
  for (const root of packageRoots(moduleUrl)) {
    const manifestUrl = new URL(`${nativeDir}/manifest.json`, root);
    let manifest: NativeManifest;
    try {
      const response = await fetch(manifestUrl);
      if (!response.ok) {
        await response.body?.cancel();
        tried.push(`${manifestUrl} (HTTP ${response.status})`);
        continue;
      }
      manifest = await response.json() as NativeManifest;
    } catch (cause) {
      tried.push(`${manifestUrl} (${(cause as Error).message})`);
      continue;
    }
    const expected = manifest.files?.[key]?.sha256;
    if (!expected) {
      tried.push(`${manifestUrl} (lists no ${key})`);
      continue;
    }
    const cached = `${defaultCacheDir(env)}/${expected}/${libraryFileName(options.platform)}`;
    if (existsSync(cached) && sha256(readFileSync(cached)) === expected) return { path: cached };
    const libraryUrl = new URL(`${nativeDir}/${key}`, root);
    let bytes: Uint8Array;
    try {
      const response = await fetch(libraryUrl);
      if (!response.ok) {
        await response.body?.cancel();
        tried.push(`${libraryUrl} (HTTP ${response.status})`);
        continue;
      }
      bytes = new Uint8Array(await response.arrayBuffer());
    } catch (cause) {
      tried.push(`${libraryUrl} (${(cause as Error).message})`);
      continue;
    }
    const actual = sha256(bytes);
    if (actual !== expected) {
      tried.push(`${libraryUrl} (SHA-256 ${actual} does not match the manifest's ${expected}; not used)`);
      continue;
    }
    try {
      mkdirSync(`${defaultCacheDir(env)}/${expected}`, { recursive: true });
      // Written beside and renamed: a concurrent reader sees the whole file or none.
      const partial = `${cached}.${process.pid}.partial`;
      writeFileSync(partial, bytes, { mode: 0o755 });
      renameSync(partial, cached);
    } catch (cause) {
      tried.push(`${cached} (cannot cache: ${(cause as Error).message}; set ${cacheDirEnv} to a writable directory)`);
      continue;
    }
    return { path: cached };
  }
  return { tried };
}

/** Fetched once at import when this module is remote and no override is set. */
const remoteLibrary: RemoteLibrary | undefined = !import.meta.url.startsWith("file:") && !processEnv(libraryEnv)
  ? await fetchRemoteLibrary(import.meta.url)
  : undefined;
