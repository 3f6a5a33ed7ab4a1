/**
 * Discovery: which plugin directories the configured dirs hold, and which
 * manifest a name or a directory given to `load()` means. A name is looked up
 * among known and discovered plugins first, so a `kv/` folder in the current
 * directory never shadows the plugin "kv"; only an argument that is not a
 * known name is taken as a directory, resolved to an absolute path.
 *
 * @module
 */

import { existsSync, readdirSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { type ManifestError, PluginNotFoundError } from "./errors.ts";
import { loadManifest, type Manifest, manifestFile } from "./manifest.ts";
import type { Discovered } from "./types.ts";

/** A directory with a plugin.json is a plugin; otherwise its subdirectories are looked at. */
export function pluginDirs(root: string): string[] {
  if (existsSync(join(root, manifestFile))) return [root];
  if (!existsSync(root)) return [];
  return readdirSync(root)
    .map((entry) => join(root, entry))
    .filter((dir) => statSync(dir).isDirectory() && existsSync(join(dir, manifestFile)))
    .sort();
}

/** Every plugin directory under `dirs`, with its manifest or its problem. */
export function discover(dirs: string[]): Discovered[] {
  const found: Discovered[] = [];
  for (const root of dirs) {
    for (const dir of pluginDirs(resolve(root))) {
      try {
        found.push({ dir, manifest: loadManifest(dir) });
      } catch (error) {
        found.push({ dir, error: error as ManifestError });
      }
    }
  }
  return found;
}

/**
 * The manifest `nameOrDir` means: a plugin already known by that name (read
 * afresh), else one discovered under `dirs`, else a plugin directory at that
 * path.
 */
export function resolveManifest(nameOrDir: string, dirs: string[], knownDir: string | undefined): Manifest {
  if (typeof nameOrDir !== "string" || nameOrDir === "") {
    throw new TypeError(`load() takes a plugin name or directory, got ${JSON.stringify(nameOrDir)}`);
  }
  if (knownDir) return loadManifest(knownDir);
  const discovered = discover(dirs);
  const match = discovered.find((d) => d.manifest?.name === nameOrDir);
  if (match?.manifest) return match.manifest;
  const dir = resolve(nameOrDir);
  if (existsSync(join(dir, manifestFile))) return loadManifest(dir);
  const broken = discovered.find((d) => d.error && d.dir.endsWith(`/${nameOrDir}`));
  if (broken?.error) throw broken.error;
  const names = discovered.flatMap((d) => (d.manifest ? [d.manifest.name] : [])).join(", ") || "none";
  throw new PluginNotFoundError(
    `No plugin "${nameOrDir}" in ${dirs.join(", ") || "no dirs"} and no plugin directory at ${dir}; found: ${names}`,
  );
}
