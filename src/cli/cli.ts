/**
 * The command line: serve, call, ls. Runtime-neutral (node:process), so it
 * runs as `deno run -A cli.ts …` and `bun cli.ts …`.
 *
 * @module
 */

import process from "node:process";
import { fileURLToPath } from "node:url";
import { PluginHost, type PluginHostOptions } from "../host/host.ts";
import type { TransportKind } from "../transport/transport.ts";

const defaultDir = fileURLToPath(new URL("../../examples/plugins", import.meta.url));

const usage = {
  main: `plugin-shm — run plugins in their own processes, talk over shared memory

Usage:
  cli.ts serve [dir…] [--transport shm|unix|tcp] [--watch] [--demo]
  cli.ts call <plugin|dir> <method> [json-args] [--dir dir] [--transport …]
  cli.ts ls [dir…]
  cli.ts <command> --help

Directories hold plugin directories (each with a plugin.json) or are one.
Without a directory the bundled examples are used (${defaultDir}).`,
  serve: `cli.ts serve [dir…] [--transport shm|unix|tcp] [--watch] [--demo]

Loads every valid plugin found, prints lifecycle changes and plugin output,
and runs until SIGINT or SIGTERM, then stops every plugin gracefully.
Crashed plugins restart with backoff; after 5 crashes in a minute a plugin
stays down until you type "restart <name>". Commands on stdin:
  ls | restart <name> | reload <name> | stop <name>
--watch  reload a plugin when its files change (development mode).
--demo   make a few calls to the bundled examples, then stop.`,
  call: `cli.ts call <plugin|dir> <method> [json-args] [--dir dir] [--transport …]

Starts the plugin, calls <method> and prints the result as JSON.
json-args is a JSON array of arguments, or a single JSON value.
Example: cli.ts call echo add '[2, 3]'`,
  ls: `cli.ts ls [dir…]

Lists the plugins found and any manifest problems.`,
} as const;

interface Parsed {
  positional: string[];
  flags: Record<string, string | true>;
}

function parse(argv: string[]): Parsed {
  const parsed: Parsed = { positional: [], flags: {} };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith("--")) {
      parsed.positional.push(arg);
      continue;
    }
    const [key, inline] = arg.slice(2).split("=", 2);
    const takesValue = key === "transport" || key === "dir";
    parsed.flags[key] = inline ?? (takesValue ? argv[++i] ?? "" : true);
  }
  return parsed;
}

function transportOf(flags: Parsed["flags"]): TransportKind {
  const value = flags.transport ?? "shm";
  if (value !== "shm" && value !== "unix" && value !== "tcp") {
    throw new UsageError(`--transport must be shm, unix or tcp, got ${JSON.stringify(value)}`);
  }
  return value;
}

class UsageError extends Error {}

function hostOptions(dirs: string[], flags: Parsed["flags"]): PluginHostOptions {
  return {
    dirs: dirs.length ? dirs : [defaultDir],
    transport: transportOf(flags),
    hostFunctions: { now: () => new Date().toISOString() },
    logger: (e) => console.log(`[${e.plugin}] ${e.stream === "stderr" ? "! " : ""}${e.line}`),
  };
}

function ls(dirs: string[]): number {
  const host = new PluginHost({ dirs: dirs.length ? dirs : [defaultDir] });
  const found = host.discover();
  if (found.length === 0) console.log("no plugins found");
  for (const d of found) {
    if (d.manifest) {
      const m = d.manifest;
      console.log(
        `${m.name.padEnd(16)} ${m.version.padEnd(8)} ${m.runtime.padEnd(5)} ${d.dir}${
          m.description ? `  — ${m.description}` : ""
        }`,
      );
    } else {
      console.log(`${"(invalid)".padEnd(16)} ${d.error?.message}`);
    }
  }
  return found.some((d) => d.error) ? 1 : 0;
}

function parseArgs(text: string | undefined): unknown[] {
  if (text === undefined) return [];
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new UsageError(`json-args is not JSON (${(error as Error).message}); quote it, e.g. '[2, 3]'`);
  }
  return Array.isArray(value) ? value : [value];
}

async function call(positional: string[], flags: Parsed["flags"]): Promise<number> {
  const [plugin, method, args] = positional;
  if (!plugin || !method) throw new UsageError("call needs <plugin> and <method>; see cli.ts call --help");
  const dirs = typeof flags.dir === "string" ? [flags.dir] : [];
  const host = new PluginHost(hostOptions(dirs, flags));
  try {
    const info = await host.load(plugin);
    console.log(JSON.stringify(await host.call(info.name, method, parseArgs(args)), null, 2));
    return 0;
  } finally {
    await host.close();
  }
}

async function serve(dirs: string[], flags: Parsed["flags"]): Promise<number> {
  const host = new PluginHost(hostOptions(dirs, flags));
  host.onState((e) => console.log(`${new Date(e.at).toISOString()} ${e.plugin}: ${e.state} — ${e.reason}`));
  host.onEvent((e) => console.log(`event from ${e.plugin}: ${e.name} ${JSON.stringify(e.data)}`));
  const found = host.discover();
  for (const d of found) if (d.error) console.log(`skipping ${d.dir}: ${d.error.message}`);
  const results = await Promise.allSettled(found.flatMap((d) => (d.manifest ? [host.load(d.manifest.dir)] : [])));
  for (const r of results) if (r.status === "rejected") console.log(`failed to load: ${(r.reason as Error).message}`);
  console.log(`serving ${host.list().filter((p) => p.state === "running").length} plugin(s); Ctrl-C stops`);
  if (flags.demo) {
    await demoCalls(host);
    await host.close();
    return 0;
  }
  if (flags.watch) {
    for (const p of host.list()) host.watch(p.name);
    console.log("watching plugin files; a change reloads the plugin");
  }
  const stopCommands = readCommands(host);
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      console.log(`${signal}: stopping every plugin`);
      resolve();
    };
    process.once("SIGINT", () => stop("SIGINT"));
    process.once("SIGTERM", () => stop("SIGTERM"));
  });
  stopCommands();
  await host.close();
  return 0;
}

/** Operator commands typed on stdin while serving. */
function readCommands(host: PluginHost): () => void {
  let pending = "";
  const onData = (chunk: Buffer | string) => {
    pending += chunk.toString();
    let newline: number;
    while ((newline = pending.indexOf("\n")) >= 0) {
      const [command, name] = pending.slice(0, newline).trim().split(/\s+/);
      pending = pending.slice(newline + 1);
      runCommand(host, command, name).catch((e) => console.log(`${command} failed: ${(e as Error).message}`));
    }
  };
  process.stdin.on("data", onData);
  return () => {
    process.stdin.off("data", onData);
    process.stdin.pause();
  };
}

async function runCommand(host: PluginHost, command: string, name: string | undefined): Promise<void> {
  if (command === "ls") {
    for (const p of host.list()) console.log(`${p.name} ${p.state} pids=${p.pids.join(",")} crashes=${p.crashes}`);
  } else if (command === "restart" && name) {
    console.log(`restarted: ${(await host.restart(name)).state}`);
  } else if (command === "reload" && name) {
    console.log(`reloaded: ${(await host.reload(name)).state}`);
  } else if (command === "stop" && name) {
    await host.unload(name);
  } else if (command) {
    console.log("commands: ls | restart <name> | reload <name> | stop <name>");
  }
}

async function demoCalls(host: PluginHost): Promise<void> {
  const show = async (label: string, work: () => Promise<unknown>) => {
    const started = performance.now();
    const value = await work();
    console.log(`${label} -> ${JSON.stringify(value)} (${((performance.now() - started) * 1000).toFixed(0)} µs)`);
  };
  await show("echo.add(2, 3)", () => host.call("echo", "add", [2, 3]));
  await show("echo.askHost()", () => host.call("echo", "askHost"));
  await show("kv.set('lang', 'zig')", () => host.call("kv", "set", ["lang", "zig"]));
  await show("kv.get('lang')", () => host.call("kv", "get", ["lang"]));
  const rounds = 10_000;
  const started = performance.now();
  for (let i = 0; i < rounds; i++) await host.call("echo", "echo", [i]);
  console.log(`${rounds} echo calls: ${(((performance.now() - started) * 1000) / rounds).toFixed(1)} µs per call`);
  let bytes = 0;
  const input = (async function* () {
    for (let i = 0; i < 64; i++) yield new Uint8Array(64 * 1024).fill(97);
  })();
  for await (const chunk of host.stream("transform", "upper", [], input)) bytes += (chunk as Uint8Array).length;
  console.log(`transform.upper streamed ${bytes / 1024 / 1024} MiB through the plugin`);
}

/** Runs the CLI with `argv` (without the runtime and script); returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  const parsed = parse(rest);
  if (!command || command === "--help" || command === "-h" || command === "help") {
    console.log(usage.main);
    return command ? 0 : 2;
  }
  if (!(command in usage) || command === "main") {
    console.error(`unknown command "${command}"\n\n${usage.main}`);
    return 2;
  }
  if (parsed.flags.help) {
    console.log(usage[command as keyof typeof usage]);
    return 0;
  }
  try {
    if (command === "ls") return ls(parsed.positional);
    if (command === "call") return await call(parsed.positional, parsed.flags);
    return await serve(parsed.positional, parsed.flags);
  } catch (error) {
    if (error instanceof UsageError) {
      console.error(`${error.message}\n\n${usage[command as keyof typeof usage]}`);
      return 2;
    }
    console.error(`${(error as Error).name}: ${(error as Error).message}`);
    return 1;
  }
}
