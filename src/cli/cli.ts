/**
 * The command line. Runtime-neutral (node: modules only), so it runs as
 * `deno run -A cli.ts …`, `bun cli.ts …` and under Node. Results go to
 * stdout (for `call`, exactly one JSON document), everything else to stderr;
 * exit codes are 0 ok, 1 failure, 2 usage error.
 *
 * @module
 */

import { existsSync, statSync } from "node:fs";
import { basename, isAbsolute, resolve, sep } from "node:path";
import process from "node:process";
import { ManifestError, PluginNotFoundError } from "../errors.ts";
import { PluginHost } from "../host/host.ts";
import type { PluginHostOptions } from "../host/options.ts";
import type { Manifest } from "../host/manifest.ts";
import { didYouMean } from "../host/suggest.ts";
import type { TransportKind } from "../transport/transport.ts";
import { commandHelp, type CommandSpec, commonFlags, exitCodesHelp, parseCommand, UsageError } from "./_args.ts";
import { adminFlags, expandAdminFlag, ServeAdmin } from "./_admin.ts";
import { ControlError, controlRequest, defaultSocketPath } from "./_control.ts";
import { runDemo } from "./_demo.ts";
import { securityCommands, securityFlags, securitySetup, trustCell, trustContext } from "./_integrity.ts";
import { authorCommands, runNew, runTest } from "./_authors.ts";
import { Output } from "./_output.ts";
import { examplePlugins, packageVersion } from "./_paths.ts";
import { checkInspectTargets, type LogRecord, parseInspectFlags, Serve, ServeLog } from "./_serve.ts";

const program = "cli.ts";
const defaultDir = examplePlugins;

/** The package version, for --version. */
export const version: string = packageVersion;

const transports = ["shm", "unix", "tcp"] as const;
const socketFlag = {
  type: "string",
  value: "path",
  description: `control socket of the serve (default ${defaultSocketPath()})`,
} as const;

const commands = {
  serve: {
    name: "serve",
    summary: "Load every valid plugin found and serve until Ctrl-C, SIGTERM or `cli.ts stop`.",
    synopsis: "[dir…]",
    positionalsMin: 0,
    positionalsMax: Infinity,
    flags: {
      transport: { type: "string", value: "kind", choices: transports, description: "shm (default), unix or tcp" },
      watch: { type: "boolean", description: "reload a plugin when its files change (development mode)" },
      inspect: {
        type: "string",
        multiple: true,
        value: "plugin[:port]",
        description: "start <plugin> under its runtime's inspector (loopback; a free port, or :port) and print the " +
          "URL for Chrome DevTools / VS Code; it is never killed as stalled (repeatable)",
      },
      "blame-stalls": {
        type: "boolean",
        description: "before killing a stalled Deno/Node plugin, profile it and name the busy functions (see " +
          "docs/debugging.md: this opens a loopback inspector port per plugin)",
      },
      "profile-dir": { type: "string", value: "dir", description: "where --blame-stalls saves .cpuprofile files" },
      socket: socketFlag,
      ...adminFlags,
      ...securityFlags,
    },
    details: `Each dir is a plugin directory (with a plugin.json) or holds plugin directories; relative dirs
resolve against the current directory. Without one the bundled examples are served.
Crashed plugins restart with backoff; after 5 crashes in a minute a plugin stays down until
"cli.ts restart <name>". Lifecycle changes and plugin output go to stderr.
Debugging (docs/debugging.md): "serve --inspect kv" prints a devtools:// URL to open in Chrome and a
port for VS Code's "attach"; "--inspect kv:9229" picks the port. A plugin paused at a breakpoint is
reported unresponsive but not killed.`,
  },
  call: {
    name: "call",
    summary: "Start a plugin, call one method, print the result as one JSON document on stdout.",
    synopsis: "<plugin|dir> <method> [json-args]",
    positionalsMin: 2,
    positionalsMax: 3,
    flags: {
      dir: {
        type: "string",
        value: "dir",
        multiple: true,
        description: "where to look for <plugin> by name (repeatable)",
      },
      transport: { type: "string", value: "kind", choices: transports, description: "shm (default), unix or tcp" },
      ...securityFlags,
    },
    details: `<plugin|dir>: a name is looked up in --dir (default: the bundled examples); anything with a
"/" (./kv, ../plugins/kv, /abs/kv) is a plugin directory, relative to the current directory.
json-args: a JSON array of arguments, or one JSON value. The result is printed as JSON (null for
nothing), so "| jq" works; plugin output goes to stderr.
Example: cli.ts call echo add '[2, 3]'`,
  },
  ls: {
    name: "ls",
    summary: "List plugins and validate each fully; exits 1 listing every problem (file and field).",
    synopsis: "[dir…]",
    positionalsMin: 0,
    positionalsMax: Infinity,
    flags: {
      json: { type: "boolean", description: "print {plugins, problems} as JSON on stdout" },
      lock: securityFlags.lock,
      trust: securityFlags.trust,
    },
    details: `Checks every manifest field, that each entry file exists and that plugin names are unique.
With a lock (--lock, or plugin-shm.lock in the first dir) or --trust, each plugin also gets a
trust line: locked / changed / unlocked, who signed it, verified or why not.`,
  },
  status: {
    name: "status",
    summary: "Show the plugins of a running serve: state, pids, crashes, last lifecycle change.",
    synopsis: "",
    positionalsMin: 0,
    positionalsMax: 0,
    flags: { socket: socketFlag, json: { type: "boolean", description: "print JSON on stdout" } },
  },
  reload: {
    name: "reload",
    summary: "Hot-reload a plugin of a running serve: new instance, state handed over, no call fails.",
    synopsis: "<plugin>",
    positionalsMin: 1,
    positionalsMax: 1,
    flags: { socket: socketFlag },
  },
  restart: {
    name: "restart",
    summary: "Restart a plugin of a running serve (also one that failed after a crash loop).",
    synopsis: "<plugin>",
    positionalsMin: 1,
    positionalsMax: 1,
    flags: { socket: socketFlag },
  },
  stop: {
    name: "stop",
    summary: "Stop one plugin of a running serve, or without <plugin> the serve itself (gracefully).",
    synopsis: "[plugin]",
    positionalsMin: 0,
    positionalsMax: 1,
    flags: { socket: socketFlag },
  },
  logs: {
    name: "logs",
    summary: "Print a running serve's recent plugin output and lifecycle changes.",
    synopsis: "[plugin]",
    positionalsMin: 0,
    positionalsMax: 1,
    flags: {
      socket: socketFlag,
      lines: { type: "string", short: "n", value: "count", description: "how many recent lines (default 50)" },
      follow: { type: "boolean", short: "f", description: "keep printing new lines until Ctrl-C" },
    },
  },
  demo: {
    name: "demo",
    summary: "Tell the product's story on this machine in under a minute, then keep serving until Ctrl-C.",
    synopsis: "",
    positionalsMin: 0,
    positionalsMax: 0,
    flags: {
      exit: { type: "boolean", description: "exit after the story instead of serving" },
      socket: socketFlag,
      ...adminFlags,
    },
    details: "Numbers are from this machine, as loaded as it is now; `make bench` measures properly.",
  },
  ...securityCommands,
  ...authorCommands,
} satisfies Record<string, CommandSpec>;

type CommandName = keyof typeof commands;

function mainHelp(): string {
  const rows = Object.values(commands).map((c) => `  ${c.name.padEnd(8)} ${c.summary}`);
  return [
    "plugin-shm — run plugins in their own processes, talk over shared memory",
    "",
    `Usage: ${program} <command> [arguments] [flags]`,
    "",
    "Commands:",
    ...rows,
    "",
    "Flags everywhere: -h, --help   --version",
    `"${program} <command> --help" shows a command's arguments and flags.`,
    "Results go to stdout, logs and plugin output to stderr; colour only on a terminal, never with NO_COLOR.",
    exitCodesHelp,
  ].join("\n");
}

/** Every dir must exist: a typo'd path should not quietly serve or list nothing. */
function existingDirs(dirs: string[]): string[] {
  return dirs.map((dir) => {
    const path = resolve(dir);
    if (!existsSync(path)) throw new CliFailure(`directory ${path} does not exist`);
    if (!statSync(path).isDirectory()) throw new CliFailure(`${path} is not a directory`);
    return path;
  });
}

/** A failure to report as is (exit 1). */
class CliFailure extends Error {
  override name = "CliFailure";
  readonly code = "failure";
}

function hostOptions(dirs: string[], transport: unknown, logger: PluginHostOptions["logger"]): PluginHostOptions {
  return {
    dirs: dirs.length ? dirs : [defaultDir],
    transport: (transport as TransportKind | undefined) ?? "shm",
    hostFunctions: { now: () => new Date().toISOString() },
    logger,
  };
}

/** JSON for any result: bytes as base64, bigints as strings, undefined as null. */
function toJson(value: unknown): string {
  return JSON.stringify(value ?? null, (_key, v) => {
    if (typeof v === "bigint") return v.toString();
    if (v instanceof Uint8Array) return { bytesBase64: btoa(String.fromCharCode(...v)) };
    return v === undefined ? null : v;
  }, 2);
}

function parseJsonArgs(text: string | undefined): unknown[] {
  if (text === undefined) return [];
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new UsageError(
      `json-args is not JSON (${(error as Error).message}); quote it for the shell, e.g. '[2, 3]' or '"text"'`,
      "call",
    );
  }
  return Array.isArray(value) ? value : [value];
}

function looksLikePath(target: string): boolean {
  return target.includes("/") || target.includes(sep) || target === "." || target === ".." || isAbsolute(target);
}

async function call(out: Output, positionals: string[], values: Record<string, unknown>): Promise<number> {
  const [target, method, args] = positionals;
  const callArgs = parseJsonArgs(args);
  const dirs = existingDirs((values.dir as string[] | undefined) ?? []);
  const security = securitySetup(values, looksLikePath(target) ? [resolve(target, "..")] : dirs);
  const host = new PluginHost({
    ...hostOptions(dirs, values.transport, (e) => out.plugin(e.plugin, e.stream, e.line)),
    ...security.options,
  });
  security.attach(host);
  try {
    const info = await host.load(looksLikePath(target) ? pluginDir(target) : discovered(host, target, dirs));
    if (info.methods.length && !info.methods.includes(method)) {
      throw new CliFailure(
        `plugin "${info.name}" has no method "${method}"${didYouMean(method, info.methods)}; it has: ${
          info.methods.join(", ")
        }`,
      );
    }
    const result = await host.call(info.name, method, callArgs);
    out.result(toJson(result));
    return 0;
  } finally {
    await host.close();
    await security.close();
  }
}

/** An absolute plugin directory from a CLI argument (relative to the current directory). */
function pluginDir(target: string): string {
  const dir = resolve(target);
  if (!existsSync(dir)) throw new CliFailure(`plugin directory ${dir} does not exist`);
  return dir;
}

/**
 * The directory of the plugin named `name` among the configured dirs. Looked
 * up here rather than by host.load(name), so that a folder of that name in the
 * current directory is never picked by accident: a name is a name, a path has
 * a "/".
 */
function discovered(host: PluginHost, name: string, dirs: string[]): string {
  const found = host.discover();
  const match = found.find((d) => d.manifest?.name === name);
  if (match?.manifest) return match.manifest.dir;
  const broken = found.find((d) => d.error && basename(d.dir) === name);
  if (broken?.error) throw broken.error;
  const names = found.flatMap((d) => (d.manifest ? [d.manifest.name] : []));
  const folder = existsSync(resolve(name, "plugin.json"))
    ? `; to use the directory ${resolve(name)}, write ./${name}`
    : "";
  throw new PluginNotFoundError(
    `No plugin "${name}" in ${(dirs.length ? dirs : [defaultDir]).join(", ")}${didYouMean(name, names)}; found: ${
      names.join(", ") || "none"
    }${folder}`,
  );
}

interface LsProblem {
  file: string;
  field: string;
  message: string;
}

/** A manifest's grants and limits on one line ("none" for a v1 manifest); the host may narrow them further. */
function grantsText(m: Manifest): string {
  const grants = Object.entries(m.permissions ?? {}).filter(([, list]) => list?.length)
    .map(([kind, list]) => `${kind}=${list!.join(",")}`);
  const limits = Object.entries(m.limits ?? {}).filter(([, v]) => v !== undefined).map(([k, v]) => `${k}=${v}`);
  return [...grants, ...limits].join(" ") || "none";
}

async function ls(out: Output, positionals: string[], values: Record<string, unknown>): Promise<number> {
  const problems: LsProblem[] = [];
  const dirs: string[] = [];
  for (const dir of positionals.length ? positionals : [defaultDir]) {
    const path = resolve(dir);
    if (!existsSync(path)) problems.push({ file: path, field: "", message: "does not exist" });
    else if (!statSync(path).isDirectory()) problems.push({ file: path, field: "", message: "is not a directory" });
    else dirs.push(path);
  }
  const host = new PluginHost({ dirs });
  const found = dirs.length ? host.discover() : [];
  await host.close();
  for (const dir of dirs) {
    if (!found.some((d) => d.dir === dir || d.dir.startsWith(`${dir}${sep}`))) {
      problems.push({ file: dir, field: "", message: "holds no plugin (no plugin.json in it or its subdirectories)" });
    }
  }
  const plugins = found.flatMap((d) => (d.manifest ? [d.manifest] : []));
  for (const d of found) {
    const error = d.error;
    if (error instanceof ManifestError) problems.push(...error.problems.map((p) => ({ file: error.file, ...p })));
    else if (error) problems.push({ file: d.dir, field: "", message: (error as Error).message });
  }
  const byName = new Map<string, typeof plugins>();
  for (const m of plugins) byName.set(m.name, [...(byName.get(m.name) ?? []), m]);
  for (const [name, same] of byName) {
    if (same.length < 2) continue;
    for (const m of same) {
      const others = same.filter((o) => o !== m).map((o) => o.file).join(", ");
      problems.push({
        file: m.file,
        field: "name",
        message: `"${name}" is also the name of ${others}; names must be unique`,
      });
    }
  }
  const trust = trustContext(values, dirs);
  if (values.json) {
    const rows = plugins.map((m) => (trust ? { ...m, trust: trustCell(m, trust) } : m));
    out.result(JSON.stringify({ plugins: rows, problems }, null, 2));
  } else {
    for (const m of plugins) {
      const description = m.description ? `  ${out.dim(m.description)}` : "";
      out.result(`${m.name.padEnd(16)} ${m.version.padEnd(10)} ${m.runtime.padEnd(5)} ${m.dir}${description}`);
      out.result(`${"".padEnd(16)} grants: ${grantsText(m)}`);
      if (trust) out.result(`${"".padEnd(16)} trust:  ${trustCell(m, trust)}`);
    }
  }
  for (const p of problems) out.error(`${p.file}: ${p.field ? `field "${p.field}" ` : ""}${p.message}`);
  if (problems.length) out.info(`${problems.length} problem(s)`);
  return problems.length ? 1 : 0;
}

async function serve(out: Output, positionals: string[], values: Record<string, unknown>): Promise<number> {
  const dirs = existingDirs(positionals);
  const log = new ServeLog(out);
  const security = securitySetup(values, dirs.length ? dirs : [defaultDir]);
  const admin = ServeAdmin.fromFlags(values, "serve", out);
  const inspect = parseInspectFlags((values.inspect as string[] | undefined) ?? []);
  const host = new PluginHost({
    ...hostOptions(dirs, values.transport, log.logger),
    ...security.options,
    ...admin?.hostOptions(log.logger, security.options.verifier),
    ...(values["blame-stalls"] ? { blameStalls: true } : {}),
    ...(values["profile-dir"] ? { profileDir: resolve(values["profile-dir"] as string) } : {}),
  });
  security.attach(host);
  const found = host.discover();
  try {
    checkInspectTargets(inspect, found.flatMap((d) => (d.manifest ? [d.manifest.name] : [])));
  } catch (error) {
    await host.close();
    await security.close();
    throw error;
  }
  const server = new Serve(host, log, out);
  try {
    await server.openControl(resolve((values.socket as string | undefined) ?? defaultSocketPath()));
    await admin?.start(host, security.onAdminAction);
  } catch (error) {
    await admin?.close();
    await server.close();
    await security.close();
    throw error;
  }
  host.onState(log.onState);
  host.onEvent(log.onEvent);
  host.on("inspect", log.onInspect);
  for (const d of found) if (d.error) out.error(`skipping ${d.dir}: ${d.error.message}`);
  // A load that fails is reported once, by its "failed" lifecycle line.
  await Promise.allSettled(
    found.flatMap((d) => {
      if (!d.manifest) return [];
      const inspected = inspect.get(d.manifest.name);
      return [host.load(d.manifest.dir, inspected ? { inspect: inspected } : {})];
    }),
  );
  if (values.watch) {
    for (const p of host.list()) if (p.state === "running") host.watch(p.name);
    out.info("watching plugin files; a change reloads the plugin");
  }
  const running = host.list().filter((p) => p.state === "running").length;
  out.info(out.bold(`serving ${running} plugin(s); Ctrl-C stops`));
  try {
    return await server.run();
  } finally {
    await admin?.close();
    await security.close();
  }
}

function socketOf(values: Record<string, unknown>): string {
  return resolve((values.socket as string | undefined) ?? defaultSocketPath());
}

function printLog(out: Output, entry: unknown): void {
  const r = entry as LogRecord;
  const tag = r.stream === "stdout" || r.stream === "stderr" ? `[${r.plugin}]` : `${r.plugin}:`;
  out.result(`${r.at} ${tag} ${r.line}`);
}

async function remote(out: Output, command: CommandName, positionals: string[], values: Record<string, unknown>) {
  const socket = socketOf(values);
  if (command === "status") {
    const plugins = (await controlRequest(socket, { command })) as Record<string, unknown>[];
    if (values.json) out.result(JSON.stringify(plugins, null, 2));
    else if (plugins.length === 0) out.info("the serve has no plugins");
    for (const p of values.json ? [] : plugins) {
      const last = p.last as { state: string; reason: string } | null;
      out.result(
        `${String(p.name).padEnd(16)} ${String(p.state).padEnd(10)} pids=${(p.pids as number[]).join(",") || "-"} ` +
          `crashes=${p.crashes}${last ? `  last: ${last.state} — ${last.reason}` : ""}`,
      );
    }
    return 0;
  }
  if (command === "logs") {
    const lines = values.lines === undefined ? undefined : Number(values.lines);
    if (lines !== undefined && (!Number.isInteger(lines) || lines < 1)) {
      throw new UsageError(`--lines must be a positive whole number, got "${values.lines}"`, "logs");
    }
    const follow = Boolean(values.follow);
    const done = controlRequest(socket, { command, plugin: positionals[0], lines, follow }, (e) => printLog(out, e));
    if (follow) {
      // Ends on Ctrl-C, or when the serve stops.
      await Promise.race([done.catch(() => {}), new Promise((r) => process.once("SIGINT", r))]);
      return 0;
    }
    await done;
    return 0;
  }
  const result = await controlRequest(socket, {
    command: command as "reload" | "restart" | "stop",
    plugin: positionals[0],
  });
  const r = result as { name?: string; state?: string; stopped?: string; last?: { reason: string } };
  if (command === "stop") out.result(r.stopped === "serve" ? "serve stopping" : `stopped ${r.stopped}`);
  else out.result(`${r.name} ${r.state}${r.last ? ` — ${r.last.reason}` : ""}`);
  return 0;
}

async function run(out: Output, command: CommandName, argv: string[]): Promise<number> {
  const spec = commands[command];
  const { values, positionals } = parseCommand(spec, "admin" in spec.flags ? expandAdminFlag(argv) : argv);
  if (values.help) {
    out.result(commandHelp(program, spec));
    return 0;
  }
  if (values.version) {
    out.result(version);
    return 0;
  }
  switch (command) {
    case "call":
      return await call(out, positionals, values);
    case "ls":
      return await ls(out, positionals, values);
    case "serve":
      return await serve(out, positionals, values);
    case "demo":
      return await runDemo(out, {
        exit: Boolean(values.exit),
        socket: socketOf(values),
        admin: ServeAdmin.fromFlags(values, "demo", out),
      });
    case "lock":
    case "sign":
    case "audit":
      return await securityCommands[command].run(out, positionals, values);
    case "new":
      return runNew(out, positionals, values);
    case "test":
      return await runTest(out, positionals);
    default:
      return await remote(out, command, positionals, values);
  }
}

/**
 * Runs the CLI with `argv` (without the runtime and script) and returns the
 * exit code; everything written is flushed before it returns.
 */
export async function main(argv: string[], out: Output = new Output()): Promise<number> {
  const code = await dispatch(argv, out);
  await out.flush();
  return code;
}

async function dispatch(argv: string[], out: Output): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined) {
    out.error(`no command given\n\n${mainHelp()}`);
    return 2;
  }
  if (command === "-h" || command === "--help" || command === "help") {
    if (rest[0] && rest[0] in commands) return await run(out, rest[0] as CommandName, ["--help"]);
    out.result(mainHelp());
    return 0;
  }
  if (command === "--version") {
    out.result(version);
    return 0;
  }
  if (!Object.hasOwn(commands, command)) {
    const names = Object.keys(commands);
    const flagHint = command.startsWith("-") ? ` (flags go after the command; ${program} --help lists them)` : "";
    const flags = Object.keys(commonFlags).map((f) => `--${f}`);
    out.error(
      `unknown command "${command}"${didYouMean(command, [...names, ...flags])}${flagHint}\n` +
        `commands: ${names.join(", ")}; "${program} --help" explains them`,
    );
    return 2;
  }
  try {
    return await run(out, command as CommandName, rest);
  } catch (error) {
    if (error instanceof UsageError) {
      out.error(
        `${error.message}\n${
          out.dim(
            `usage: ${program} ${command} ${
              commands[command as CommandName].synopsis
            } — see ${program} ${command} --help`,
          )
        }`,
      );
      return 2;
    }
    const e = error as Error;
    out.error(e instanceof CliFailure || e instanceof ControlError ? e.message : `${e.name}: ${e.message}`);
    return 1;
  }
}
