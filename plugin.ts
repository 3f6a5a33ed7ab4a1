/**
 * The plugin entry of plugin-shm: what a plugin module imports.
 *
 * @example
 * ```ts
 * import { definePlugin, isPluginDefinition } from "./plugin.ts";
 * const echo = definePlugin({
 *   name: "echo",
 *   version: "1.0.0",
 *   methods: { echo: (value: unknown) => value },
 * });
 * console.assert(isPluginDefinition(echo));
 * // A plugin module default-exports it (`export default echo;`); importing it starts nothing.
 * ```
 *
 * @module
 */

export {
  definePlugin,
  drainTimeoutMs,
  exitCodeNotLaunched,
  type HookChain,
  type HookHandler,
  isPluginDefinition,
  type PluginClient,
  type PluginContext,
  type PluginDefinition,
  pluginEnv,
  type PluginMethods,
  type PluginSession,
  type PluginStreams,
} from "./src/plugin/plugin.ts";
