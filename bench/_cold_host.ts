/**
 * One cold start, for bench/cold_start.ts: a fresh process that imports
 * plugin-shm, loads the bundled Bun kv plugin and waits for its first answer.
 * Prints the milliseconds from before the import to the answer. `--sandbox off`
 * (or best-effort) sets the host's sandbox option; default: the host's default.
 *
 * @module
 */

import process from "node:process";
import { fileURLToPath } from "node:url";

const sandboxArg = process.argv.indexOf("--sandbox");
const sandbox = sandboxArg >= 0 ? process.argv[sandboxArg + 1] as "required" | "best-effort" | "off" : undefined;

const start = performance.now();
const { PluginHost } = await import("../mod.ts");
const imported = performance.now();
const host = new PluginHost({ dirs: [fileURLToPath(new URL("../examples/plugins", import.meta.url))], sandbox });
await host.load("kv");
const loaded = performance.now();
await host.call("kv", "set", ["k", 1]);
const answered = performance.now();
await host.close();
console.log(JSON.stringify({ importMs: imported - start, loadMs: loaded - imported, firstCallMs: answered - start }));
