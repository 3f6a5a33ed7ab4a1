/**
 * The plugin entry of plugin-shm: what a plugin module imports.
 *
 * @example
 * ```ts ignore
 * import { definePlugin } from "./plugin.ts";
 * export default definePlugin({
 *   name: "echo",
 *   version: "1.0.0",
 *   methods: { echo: (value: unknown) => value },
 * });
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
