/**
 * Errors of the host layer: manifests, crashed, missing, stalled or refused plugins. Every class extends
 * {@link PluginShmError} and carries a stable `code`; messages say what
 * happened and what to do.
 *
 * @module
 */

import { PluginShmError } from "../plugin_shm_error.ts";

/** One thing wrong with a manifest: the field's path ("" for the whole file) and what to do. */
export interface ManifestProblem {
  /** Path of the field, dotted ("permissions.read"), or "" when the problem is the whole file. */
  field: string;
  /** What is wrong and what to write instead. */
  message: string;
}

/**
 * A plugin.json is missing, not JSON, or fails the schema. Names the file and
 * every offending field (`problems`); `field` is the first of them.
 *
 * @example
 * ```ts
 * import { ManifestError } from "./errors.ts";
 * const e = new ManifestError("/p/plugin.json", "runtime", "must be deno or bun");
 * console.assert(e.field === "runtime");
 * ```
 */
export class ManifestError extends PluginShmError {
  /** The class name, "ManifestError", as stack traces and `error.name` show it. */
  override name = "ManifestError";
  /** Always `"manifest"`: the stable identifier to check instead of the message. */
  readonly code = "manifest";
  /** The manifest file. */
  readonly file: string;
  /** The first offending field's path ("" for the whole file). */
  readonly field: string;
  /** Every problem found, in order; at least one. */
  readonly problems: ManifestProblem[];
  /** Creates a ManifestError; plugin-shm throws these itself, and tests or adapters may construct one too. */
  constructor(file: string, field: string, problem: string, problems?: ManifestProblem[]) {
    const all = problems?.length ? problems : [{ field, message: problem }];
    const describe = (p: ManifestProblem) => `${p.field ? `field "${p.field}" ` : ""}${p.message}`;
    super(
      all.length === 1
        ? `${file}: ${describe(all[0])}`
        : `${file}: ${all.length} problems:\n  ${all.map(describe).join("\n  ")}`,
    );
    this.file = file;
    this.field = all[0].field;
    this.problems = all;
  }
}

/**
 * A plugin process exited while calls were pending or while it should have
 * been running. Carries the exit code or signal and its last stderr lines.
 *
 * @example
 * ```ts
 * import { PluginCrashedError } from "./errors.ts";
 * const e = new PluginCrashedError("kv", 1, null, ["boom"]);
 * console.assert(e.exitCode === 1);
 * ```
 */
export class PluginCrashedError extends PluginShmError {
  /** The class name, "PluginCrashedError", as stack traces and `error.name` show it. */
  override name = "PluginCrashedError";
  /** Always `"plugin_crashed"`: the stable identifier to check instead of the message. */
  readonly code = "plugin_crashed";
  /** The plugin's name, from its manifest. */
  readonly plugin: string;
  /** The process's exit code, or null when a signal ended it. */
  readonly exitCode: number | null;
  /** The signal that ended the process ("SIGKILL", …), or null when it exited by itself. */
  readonly signal: string | null;
  /** The plugin's last lines on stderr, oldest first: usually why it died. */
  readonly stderrTail: string[];
  /** Creates a PluginCrashedError; plugin-shm throws these itself, and tests or adapters may construct one too. */
  constructor(plugin: string, exitCode: number | null, signal: string | null, stderrTail: string[]) {
    const how = signal ? `was killed by ${signal}` : `exited with code ${exitCode}`;
    const tail = stderrTail.length
      ? `; last stderr lines:\n  ${stderrTail.join("\n  ")}`
      : "; it wrote nothing to stderr";
    super(`Plugin "${plugin}" ${how}${tail}`);
    this.plugin = plugin;
    this.exitCode = exitCode;
    this.signal = signal;
    this.stderrTail = stderrTail;
  }
}

/**
 * The named plugin is not known to the host, or not running.
 *
 * @example
 * ```ts
 * import { PluginNotFoundError } from "./errors.ts";
 * console.assert(new PluginNotFoundError("x").code === "plugin_not_found");
 * ```
 */
export class PluginNotFoundError extends PluginShmError {
  /** The class name, "PluginNotFoundError", as stack traces and `error.name` show it. */
  override name = "PluginNotFoundError";
  /** Always `"plugin_not_found"`: the stable identifier to check instead of the message. */
  readonly code = "plugin_not_found";
}

/**
 * A plugin stopped answering (no heartbeat within the stall timeout) and was
 * killed; calls pending on it fail with this.
 *
 * @example
 * ```ts
 * import { PluginStalledError } from "./errors.ts";
 * console.assert(new PluginStalledError("kv", 4000).code === "plugin_stalled");
 * ```
 */
export class PluginStalledError extends PluginShmError {
  /** The class name, "PluginStalledError", as stack traces and `error.name` show it. */
  override name = "PluginStalledError";
  /** Always `"plugin_stalled"`: the stable identifier to check instead of the message. */
  readonly code = "plugin_stalled";
  /** The plugin's name, from its manifest. */
  readonly plugin: string;
  /** Creates a PluginStalledError; plugin-shm throws these itself, and tests or adapters may construct one too. */
  constructor(plugin: string, silentMs: number, blame?: string) {
    super(
      `Plugin "${plugin}" sent nothing for ${Math.round(silentMs)} ms (not even a heartbeat) and was killed; ` +
        (blame
          ? `it was busy in ${blame}. It will be restarted`
          : `it is probably stuck in a synchronous loop. It will be restarted`),
    );
    this.plugin = plugin;
  }
}

/**
 * A hot reload could not complete; the old instance keeps serving.
 *
 * @example
 * ```ts
 * import { ReloadError } from "./errors.ts";
 * console.assert(new ReloadError("x").code === "reload_failed");
 * ```
 */
export class ReloadError extends PluginShmError {
  /** The class name, "ReloadError", as stack traces and `error.name` show it. */
  override name = "ReloadError";
  /** Always `"reload_failed"`: the stable identifier to check instead of the message. */
  readonly code = "reload_failed";
}

/**
 * The host was closed: it loads nothing more. Also what a `load()` that was
 * still starting gets when `close()` ran meanwhile.
 *
 * @example
 * ```ts
 * import { HostClosedError } from "./errors.ts";
 * console.assert(new HostClosedError("x").code === "host_closed");
 * ```
 */
export class HostClosedError extends PluginShmError {
  /** The class name, "HostClosedError", as stack traces and `error.name` show it. */
  override name = "HostClosedError";
  /** Always `"host_closed"`: the stable identifier to check instead of the message. */
  readonly code = "host_closed";
}

/**
 * A `load()` was overtaken by an `unload()` of the same plugin while its
 * instances were starting; they were stopped instead of put into service.
 *
 * @example
 * ```ts
 * import { LoadInterruptedError } from "./errors.ts";
 * console.assert(new LoadInterruptedError("x").code === "load_interrupted");
 * ```
 */
export class LoadInterruptedError extends PluginShmError {
  /** The class name, "LoadInterruptedError", as stack traces and `error.name` show it. */
  override name = "LoadInterruptedError";
  /** Always `"load_interrupted"`: the stable identifier to check instead of the message. */
  readonly code = "load_interrupted";
}

/**
 * A plugin asked for something its manifest does not grant (a host function
 * outside `permissions.hostFunctions`, say). The plugin gets this as the
 * call's error; the host reports a "permission-denied" event.
 *
 * @example
 * ```ts
 * import { PermissionDeniedError } from "./errors.ts";
 * console.assert(new PermissionDeniedError("x").code === "permission_denied");
 * ```
 */
export class PermissionDeniedError extends PluginShmError {
  /** The class name, "PermissionDeniedError", as stack traces and `error.name` show it. */
  override name = "PermissionDeniedError";
  /** Always `"permission_denied"`: the stable identifier to check instead of the message. */
  readonly code = "permission_denied";
}

/**
 * A plugin went over its manifest's hard memory limit (`limits.memoryMiB`) and
 * was killed; its pending calls fail with this, and it restarts by the
 * host's restart policy.
 *
 * @example
 * ```ts
 * import { PluginLimitError } from "./errors.ts";
 * console.assert(new PluginLimitError("kv", "memoryMiB", 700 * 2 ** 20, 512 * 2 ** 20).code === "limit_exceeded");
 * ```
 */
export class PluginLimitError extends PluginShmError {
  /** The class name, "PluginLimitError", as stack traces and `error.name` show it. */
  override name = "PluginLimitError";
  /** Always `"limit_exceeded"`: the stable identifier to check instead of the message. */
  readonly code = "limit_exceeded";
  /** The plugin's name, from its manifest. */
  readonly plugin: string;
  /** Which `limits` key of plugin.json was exceeded. */
  readonly limit: "memoryMiB";
  /** What the plugin's process tree used when it was killed, in bytes. */
  readonly usedBytes: number;
  /** The limit it exceeded, in bytes. */
  readonly limitBytes: number;
  /** Creates a PluginLimitError; plugin-shm throws these itself, and tests or adapters may construct one too. */
  constructor(plugin: string, limit: "memoryMiB", usedBytes: number, limitBytes: number) {
    const mib = (bytes: number) => `${Math.round(bytes / 2 ** 20)} MiB`;
    super(
      `Plugin "${plugin}" used ${mib(usedBytes)} of memory, over its limit limits.${limit} = ${mib(limitBytes)}, ` +
        `and was killed; it restarts by the host's restart policy. If it needs more, raise limits.${limit} ` +
        `in its plugin.json`,
    );
    this.plugin = plugin;
    this.limit = limit;
    this.usedBytes = usedBytes;
    this.limitBytes = limitBytes;
  }
}

/**
 * The sandbox cannot start a plugin: the launcher or the runtime binary is
 * missing, this platform or kernel lacks what `sandbox: "required"` needs
 * (Landlock, seccomp, PID namespaces), or a launch plan is not the shape the
 * sandbox wraps.
 *
 * @example
 * ```ts
 * import { SandboxError } from "./errors.ts";
 * const e = new SandboxError("runtime_missing", "The deno binary cannot be found; run make setup");
 * console.assert(e.code === "runtime_missing");
 * ```
 */
export class SandboxError extends PluginShmError {
  /** The class name, "SandboxError", as stack traces and `error.name` show it. */
  override name = "SandboxError";
  /** Which sandbox failure this is: the stable identifier to check instead of the message. */
  readonly code:
    | "launcher_missing"
    | "runtime_missing"
    | "unexpected_plan"
    | "kernel_unsupported"
    | "platform_unsupported";
  /** Creates a SandboxError; plugin-shm throws these itself, and tests or adapters may construct one too. */
  constructor(code: SandboxError["code"], message: string) {
    super(message);
    this.code = code;
  }
}

/**
 * A plugin's config values do not fit the JSON Schema its manifest declares
 * under `config`, or the config file cannot be read. Names the plugin, the
 * offending field and where the values came from (a file or the host's
 * `config` option).
 *
 * @example
 * ```ts
 * import { ConfigError } from "./errors.ts";
 * const e = new ConfigError("kv", "port", "/etc/kv.json", "must be an integer");
 * console.assert(e.code === "invalid_config" && e.field === "port");
 * ```
 */
export class ConfigError extends PluginShmError {
  /** The class name, "ConfigError", as stack traces and `error.name` show it. */
  override name = "ConfigError";
  /** Always `"invalid_config"`: the stable identifier to check instead of the message. */
  readonly code = "invalid_config";
  /** The plugin's name, from its manifest. */
  readonly plugin: string;
  /** The first offending field's path ("" for the whole config). */
  readonly field: string;
  /** The config file, or "host option config" when the values came from the host's options. */
  readonly source: string;
  /** Creates a ConfigError; plugin-shm throws these itself, and tests or adapters may construct one too. */
  constructor(plugin: string, field: string, source: string, problem: string) {
    super(
      `Config of plugin "${plugin}" from ${source}: ${field ? `field "${field}" ` : ""}${problem}; ` +
        `fix the value or the plugin's "config" schema in its plugin.json`,
    );
    this.plugin = plugin;
    this.field = field;
    this.source = source;
  }
}

/**
 * `host.runHook()` could not run a hook: nobody declared it ("unknown_hook"),
 * or under the "fail" policy one plugin's handler threw or overran its
 * deadline ("hook_failed", naming the plugin; the handler's error is the
 * `cause`).
 *
 * @example
 * ```ts
 * import { HookError } from "./errors.ts";
 * const e = new HookError("unknown_hook", "onRequst", undefined, "No plugin declares hook onRequst");
 * console.assert(e.code === "unknown_hook" && e.hook === "onRequst");
 * ```
 */
export class HookError extends PluginShmError {
  /** "HookError". */
  override name = "HookError";
  /** "unknown_hook" (nobody declared it) or "hook_failed" (a handler threw or overran under policy "fail"). */
  readonly code: "unknown_hook" | "hook_failed";
  /** The hook's name. */
  readonly hook: string;
  /** The plugin whose handler failed, for "hook_failed". */
  readonly plugin: string | undefined;
  /** Makes the error; `options.cause` carries the handler's error. */
  constructor(
    code: HookError["code"],
    hook: string,
    plugin: string | undefined,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.code = code;
    this.hook = hook;
    this.plugin = plugin;
  }
}

/**
 * Plugin dependencies cannot be satisfied: a cycle, a missing plugin, a
 * version outside the range a dependent needs, a dependency that failed to
 * load, or an unload of a plugin that running plugins still need. The
 * message names the chain (`web → auth → kv`).
 *
 * @example
 * ```ts
 * import { DependencyError } from "./errors.ts";
 * const e = new DependencyError("cycle", ["a", "b", "a"], "Dependency cycle a → b → a");
 * console.assert(e.code === "cycle" && e.chain.length === 3);
 * ```
 */
export class DependencyError extends PluginShmError {
  /** "DependencyError". */
  override name = "DependencyError";
  /** What is wrong: a cycle, a missing plugin, a version conflict, a failed dependency, or a plugin still in use. */
  readonly code: "cycle" | "missing" | "conflict" | "failed" | "in_use";
  /** The plugins involved, from the one being loaded (or unloaded) to the problem. */
  readonly chain: string[];
  /** Makes the error; `options.cause` carries a failed dependency's own error. */
  constructor(code: DependencyError["code"], chain: string[], message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    this.chain = chain;
  }
}

/**
 * A plugin cannot be started under its runtime's inspector as asked: the port is not a
 * usable number or another process listens there, the inspector did not come up, or the
 * plugin already runs without one.
 *
 * @example
 * ```ts
 * import { InspectError } from "./errors.ts";
 * const e = new InspectError("port_in_use", "Port 9229 is taken; pick another");
 * console.assert(e.code === "port_in_use");
 * ```
 */
export class InspectError extends PluginShmError {
  /** The class name, "InspectError", as stack traces and `error.name` show it. */
  override name = "InspectError";
  /** Which inspector failure this is: the stable identifier to check instead of the message. */
  readonly code: "bad_port" | "port_in_use" | "unreachable" | "already_running";
  /** Creates an InspectError; plugin-shm throws these itself, and tests or adapters may construct one too. */
  constructor(code: InspectError["code"], message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}
