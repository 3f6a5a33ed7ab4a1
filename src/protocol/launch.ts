/**
 * The launch contract between a host and the plugins it starts: the
 * environment variables that carry the connection details out of band, and
 * the reserved methods every plugin answers besides its own. Both sides read
 * these names from here; docs/protocol.md sections 1 and 7 describe them for
 * peers written in other languages.
 *
 * @module
 */

/**
 * Environment variables the host sets for a plugin it launches.
 *
 * @example
 * ```ts
 * import { launchEnv } from "./launch.ts";
 * console.assert(launchEnv.token === "PLUGIN_SHM_TOKEN");
 * ```
 */
export const launchEnv = {
  /** "shm", "unix" or "tcp". */
  transport: "PLUGIN_SHM_TRANSPORT",
  /** The segment name, socket path or host:port to connect to. */
  address: "PLUGIN_SHM_ADDRESS",
  /** The shm segment's one-time attach token (empty for sockets). */
  secret: "PLUGIN_SHM_SECRET",
  /** The handshake token that proves the plugin was launched by this host. */
  token: "PLUGIN_SHM_TOKEN",
  /** The plugin's name from its manifest. */
  name: "PLUGIN_SHM_NAME",
  /** The plugin's config values as JSON, validated against its manifest's `config` schema. */
  config: "PLUGIN_SHM_CONFIG",
  /**
   * shm only, optional: the unix socket of this instance's doorbell (docs/protocol.md, "Doorbell"). A plugin
   * that connects, presents the key and gets the host's answer is woken through it while parked; a plugin
   * that ignores it is woken through the futex as before.
   */
  doorbell: "PLUGIN_SHM_DOORBELL",
  /** The doorbell's one-time key, hex (32 bytes): the first thing a plugin writes on the doorbell socket. */
  doorbellKey: "PLUGIN_SHM_DOORBELL_KEY",
  /**
   * shm only, optional: how often the plugin's parked channel checks that the host lives, in ms (default
   * 1000). A host sets it longer when its sandbox launcher already kills the plugin with the host: each check
   * wakes an idle plugin for nothing then.
   */
  livenessCheckMs: "PLUGIN_SHM_LIVENESS_MS",
  /** shm only, optional: the plugin channel's ShmChannelOptions.blockMicros (the host's `wake: "block"`). */
  blockMicros: "PLUGIN_SHM_BLOCK_MICROS",
} as const;

/**
 * A whole number a host passed in one of the {@link launchEnv} variables; undefined when unset (the default).
 * Throws a RangeError naming the variable and the range when it is anything else.
 *
 * @example
 * ```ts
 * import { launchEnv, wholeNumberFromEnv } from "./launch.ts";
 * console.assert(wholeNumberFromEnv(launchEnv.livenessCheckMs, "30000", 1, 3_600_000, "milliseconds") === 30_000);
 * console.assert(wholeNumberFromEnv(launchEnv.blockMicros, undefined, 0, 100_000, "microseconds") === undefined);
 * ```
 */
export function wholeNumberFromEnv(
  variable: string,
  value: string | undefined,
  min: number,
  max: number,
  unit: string,
): number | undefined {
  if (value === undefined || value === "") return undefined;
  const number = Number(value);
  if (!/^[0-9]+$/.test(value) || number < min || number > max) {
    throw new RangeError(
      `${variable} must be a whole number of ${unit} from ${min} to ${max}, got ${JSON.stringify(value)}: the host ` +
        "that launched this plugin set it wrong; unset it for the default",
    );
  }
  return number;
}

/**
 * Methods the host calls on every plugin, outside the plugin's own names
 * (which may not start with `$`).
 *
 * @example
 * ```ts
 * import { reservedMethods } from "./launch.ts";
 * console.assert(reservedMethods.stop === "$stop");
 * ```
 */
export const reservedMethods = {
  /** Drain: finish calls in flight, run the stop hook, answer `true`; the host then closes. */
  stop: "$stop",
  /** Hot reload: answer the state to hand to the new instance (or nil). */
  exportState: "$exportState",
  /** Hot reload: take the old instance's state before the first call; answer `true`. */
  importState: "$importState",
  /** Config change: take the new values (one argument); answer `true` if `onConfig` took them, `false` to be reloaded. */
  config: "$config",
  /** Plugin to host: `[plugin, method, args]`, a call to another plugin, allowed by `permissions.plugins`. */
  pluginCall: "$plugins.call",
  /** Hooks: `$hook:<name>` with `[context]` answers `{context, stop}` (see src/host/_hooks.ts). */
  hookPrefix: "$hook:",
} as const;

/** The exit code of a plugin entry started without a host's launch variables. */
export const exitCodeNotLaunched = 2;

/** The exit code of a plugin whose handshake the host refused. */
export const exitCodeRefused = 3;
