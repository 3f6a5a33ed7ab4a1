/**
 * The commands that run a host in this process: `call` (one method of one
 * plugin), `ls` (list and validate) and `serve` (until stopped).
 *
 * @module
 */

import { existsSync, statSync } from "node:fs";
import { basename, isAbsolute, resolve, sep } from "node:path";
import { ManifestError, PluginNotFoundError } from "../errors.ts";
import { PluginHost } from "../host/host.ts";
import type { PluginHostOptions } from "../host/options.ts";
import type { Manifest } from "../host/manifest.ts";
import { didYouMean } from "../host/suggest.ts";
import type { TransportKind } from "../transport/transport.ts";
import { UsageError } from "./_args.ts";
import { ServeAdmin } from "./_admin.ts";
import { defaultSocketPath } from "./_control.ts";
import { securitySetup, trustCell, trustContext } from "./_integrity.ts";
import type { Output } from "./_output.ts";
import { examplePlugins } from "./_paths.ts";
import { checkInspectTargets, parseInspectFlags, Serve, ServeLog } from "./_serve.ts";

const defaultDir = examplePlugins;

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
export class CliFailure extends Error {
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

/** `cli.ts call`. */
export async function call(out: Output, positionals: string[], values: Record<string, unknown>): Promise<number> {
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

/** `cli.ts ls`. */
export async function ls(out: Output, positionals: string[], values: Record<string, unknown>): Promise<number> {
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

/** `cli.ts serve`. */
export async function serve(out: Output, positionals: string[], values: Record<string, unknown>): Promise<number> {
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
