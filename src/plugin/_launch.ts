/**
 * The launch entry the host runs for every TypeScript/JavaScript plugin:
 * `<runtime> src/plugin/_launch.ts <entry>`. It imports the entry and, when
 * its default export is a {@link definePlugin} definition, serves it. An
 * entry without one speaks the protocol itself (its import did the work).
 * Started without a host's launch variables it says so and exits with code 2.
 *
 * @module
 */

import process from "node:process";
import { pathToFileURL } from "node:url";
import { resolve } from "node:path";
import { isPluginDefinition } from "./plugin.ts";
import { exitNotLaunched, launchedByHost, serve } from "./_serve.ts";

const entry = process.argv[2];
if (!entry) {
  process.stderr.write("usage: _launch.ts <plugin entry module>\n");
  process.exit(64);
}
if (!launchedByHost()) exitNotLaunched(entry);
const module = await import(pathToFileURL(resolve(entry)).href);
if (isPluginDefinition(module.default)) {
  serve(module.default).catch((error) => {
    process.stderr.write(`plugin ${module.default.name}: ${(error as Error).stack ?? error}\n`);
    process.exit(1);
  });
}
