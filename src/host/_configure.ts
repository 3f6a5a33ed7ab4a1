/**
 * Config changes at run time: the new values are checked against the
 * plugin's schema, become the values new instances start with, and go to
 * every running instance through the reserved `$config` call. An instance
 * whose plugin has no `onConfig` (it answers `false`, or does not know the
 * call) cannot take them live, so the plugin is reloaded: its new instances
 * start with the new values, and no call fails (see _reload.ts).
 *
 * @module
 */

import { reservedMethods } from "../protocol/launch.ts";
import { configFromOption, validateConfig } from "./_config.ts";
import type { HostCore, PluginEntry } from "./_core.ts";
import { reloadPlugin } from "./_reload.ts";

/** How long an instance's `onConfig` may take before the plugin is reloaded instead. */
export const configApplyMs = 5_000;

/** How a config change reached the plugin. */
export type ConfigApplied = "applied" | "reloaded";

/** Validates `values`, stores them for new instances and hands them to the running ones (or reloads). */
export async function configurePlugin(core: HostCore, plugin: PluginEntry, values: unknown): Promise<ConfigApplied> {
  const config = validateConfig(plugin.manifest.name, plugin.manifest.config, values, configFromOption);
  plugin.config = config;
  const running = plugin.instances.filter((i) => i.state === "running");
  const answers = await Promise.all(
    running.map((instance) =>
      instance.peer.call(reservedMethods.config, [config], { deadlineMs: configApplyMs }).then(
        (answer) => answer === true,
        () => false,
      )
    ),
  );
  if (answers.every(Boolean)) return "applied";
  await reloadPlugin(core, plugin);
  return "reloaded";
}
