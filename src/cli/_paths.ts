/**
 * Where the CLI finds the package's own files (package.json, the bundled
 * examples) — from the sources (Deno, Bun) and from the compiled copy in
 * dist/ (Node) alike.
 *
 * @module
 */

import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

function findRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const file = join(dir, "package.json");
    if (existsSync(file) && JSON.parse(readFileSync(file, "utf8")).name === "plugin-shm") return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`no plugin-shm package.json above ${fileURLToPath(import.meta.url)}`);
    dir = parent;
  }
}

/** The package's root directory. */
export const packageRoot: string = findRoot();

/** The package version, for --version. */
export const packageVersion: string = JSON.parse(readFileSync(join(packageRoot, "package.json"), "utf8")).version;

/** The bundled example plugins. */
export const examplePlugins: string = join(packageRoot, "examples", "plugins");

/** The demo's unix-socket echo server (plain JavaScript). */
export const unixEchoScript: string = join(packageRoot, "examples", "demo", "unix_echo.mjs");
