/**
 * The plugin authors' commands: `new` writes a plugin that passes its own
 * test at once (src/dev/scaffold.ts), `test` runs a plugin's tests under its
 * runtime's own runner.
 *
 * @module
 */

import { spawn } from "node:child_process";
import { relative } from "node:path";
import { constants } from "node:os";
import process from "node:process";
import type { CommandSpec } from "./_args.ts";
import type { Output } from "./_output.ts";
import { packageRoot, packageVersion } from "./_paths.ts";
import { pluginTestCommand, scaffoldPlugin } from "../dev/scaffold.ts";
import type { PluginRuntime } from "../host/manifest.ts";

/** `new` and `test`, for the dispatcher's table. */
export const authorCommands = {
  new: {
    name: "new",
    summary: "Write a new plugin (manifest, source, test, README) that passes its own test at once.",
    synopsis: "<name>",
    positionalsMin: 1,
    positionalsMax: 1,
    flags: {
      runtime: {
        type: "string",
        value: "runtime",
        choices: ["deno", "bun", "node"],
        description: "deno (default), bun or node",
      },
      dir: { type: "string", value: "path", description: "where to write it (default ./<name>); must be empty" },
    },
    details: `The source imports the SDK as "plugin-shm/plugin"; when the directory has no node_modules/plugin-shm
above it, node_modules/plugin-shm links to this plugin-shm (npm install replaces it). The manifest
has an empty "permissions" block and an example "config" schema. Then: cli.ts test <dir>`,
  },
  test: {
    name: "test",
    summary: "Run a plugin's tests (*_test.ts, *.test.ts …) under its runtime: deno test, bun test, node --test.",
    synopsis: "<dir>",
    positionalsMin: 1,
    positionalsMax: 1,
    flags: {},
  },
} satisfies Record<string, CommandSpec>;

/** `cli.ts new <name> [--runtime r] [--dir path]`. */
export function runNew(out: Output, positionals: string[], values: Record<string, unknown>): number {
  const made = scaffoldPlugin(positionals[0], {
    runtime: values.runtime as PluginRuntime | undefined,
    dir: values.dir as string | undefined,
    packageRoot,
    packageVersion,
  });
  out.info(`wrote ${made.files.join(", ")} (${made.runtime} plugin)`);
  if (made.linked) out.info(`linked node_modules/plugin-shm -> ${made.linked}`);
  out.info(`next: cli.ts test ${relative(process.cwd(), made.dir) || "."}`);
  out.result(made.dir);
  return 0;
}

/** `cli.ts test <dir>`: the runner's exit code (0 when every test passed). */
export async function runTest(out: Output, positionals: string[]): Promise<number> {
  const plan = pluginTestCommand(positionals[0]);
  out.info(`${plan.runtime}: ${plan.files.length} test file(s) in ${plan.cwd}`);
  await out.flush();
  // Inside a `node --test` run, Node marks child processes as part of it; a nested `node --test` would then skip
  // every file and still exit 0. The plugin's tests are a run of their own.
  const env = { ...process.env };
  delete env.NODE_TEST_CONTEXT;
  const child = spawn(plan.command, plan.args, { cwd: plan.cwd, env, stdio: "inherit" });
  return await new Promise<number>((resolve) => {
    child.on("error", (error) => {
      out.error(`cannot start ${plan.command}: ${error.message}`);
      resolve(1);
    });
    child.on("close", (code, signal) => {
      if (code !== null || !signal) return resolve(code ?? 0);
      // Killed: say so, and exit as a shell would (128 + the signal's number), so a caller can tell a crashed runner
      // from failed tests.
      out.error(`${plan.command} was killed by ${signal} before it finished; its output above says how far it got`);
      resolve(128 + (constants.signals[signal] ?? 0));
    });
  });
}
