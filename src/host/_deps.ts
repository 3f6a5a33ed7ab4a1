/**
 * Dependencies between plugins. A manifest's `dependencies` names the plugins
 * it needs with npm-style version ranges (`{"kv": "^1.2.0"}`, checked by the
 * `semver` package as npm does). Loading a plugin loads its dependencies
 * first, depth first; a cycle, a missing plugin or a version outside a range
 * is refused before anything starts, with the chain in the message
 * (`web → auth → kv`). A version is judged against the running plugin if it
 * is loaded (so two dependents that need incompatible versions conflict),
 * else against its manifest.
 *
 * A plugin calls another through the host (`this.plugins.call("kv", "get",
 * key)`), only if its `permissions.plugins` names the target; the call is
 * routed like the host's own, so it waits out the target's reload instead of
 * failing. Unloading a plugin that running plugins depend on is refused
 * unless forced.
 *
 * @module
 */

import type { Handler } from "../protocol/rpc.ts";
import type { HostCore } from "./_core.ts";
import { discover } from "./_registry.ts";
import { route } from "./_router.ts";
import { DependencyError, PermissionDeniedError } from "./errors.ts";
import { type Manifest, versionSatisfies } from "./manifest.ts";

/** Longest dependency chain followed; deeper is almost surely a mistake, and it bounds the walk. */
export const dependencyDepthMax = 32;

/** The manifest plugin `name` would run with: the loaded one, else the discovered one. */
function findPlugin(core: HostCore, name: string, found: () => Manifest[]): Manifest | undefined {
  const loaded = core.plugins.get(name);
  if (loaded && loaded.state !== "stopped" && loaded.state !== "failed") return loaded.manifest;
  return found().find((m) => m.name === name) ?? loaded?.manifest;
}

/** Who else needs `name`, and with which range, among the loaded plugins. */
function otherNeeds(core: HostCore, name: string, except: string): string {
  const needs = [...core.plugins.values()]
    .filter((p) => p.manifest.name !== except && p.manifest.dependencies?.[name] && p.state === "running")
    .map((p) => `${p.manifest.name} needs ${p.manifest.dependencies![name]}`);
  return needs.length ? ` (already loaded for: ${needs.join(", ")})` : "";
}

/**
 * The dependencies of `root` in the order to load them (every plugin after
 * those it needs), not including `root`. Throws a {@link DependencyError}
 * for a cycle, a missing plugin or a version outside a range.
 */
export function dependencyOrder(core: HostCore, root: Manifest): Manifest[] {
  if (!root.dependencies || Object.keys(root.dependencies).length === 0) return [];
  let discovered: Manifest[] | undefined;
  const found = () => (discovered ??= discover(core.options.dirs).flatMap((d) => (d.manifest ? [d.manifest] : [])));
  const order: Manifest[] = [];
  const visit = (manifest: Manifest, chain: string[]) => {
    for (const [name, range] of Object.entries(manifest.dependencies ?? {})) {
      const path = [...chain, name];
      if (chain.includes(name)) {
        throw new DependencyError(
          "cycle",
          path,
          `Dependency cycle: ${path.join(" → ")}; one of these plugins must stop depending on the next`,
        );
      }
      if (path.length > dependencyDepthMax) {
        throw new DependencyError(
          "cycle",
          path,
          `Dependency chain longer than ${dependencyDepthMax}: ${path.join(" → ")}`,
        );
      }
      const target = findPlugin(core, name, found);
      if (!target) {
        throw new DependencyError(
          "missing",
          path,
          `${path.join(" → ")}: no plugin "${name}" is loaded or found in ${
            core.options.dirs.join(", ") || "no dirs"
          }; ` +
            `add its directory to the host's dirs or remove the dependency from ${manifest.name}'s plugin.json`,
        );
      }
      if (!versionSatisfies(target.version, range)) {
        throw new DependencyError(
          "conflict",
          path,
          `${path.join(" → ")}: ${manifest.name} needs ${name} ${range}, but ${name} is ${target.version} ` +
            `(${target.dir})${otherNeeds(core, name, manifest.name)}; change the range or install a matching ${name}`,
        );
      }
      if (!order.some((m) => m.name === name)) {
        visit(target, path);
        order.push(target);
      }
    }
  };
  visit(root, [root.name]);
  return order;
}

/** Running plugins that declare a dependency on `name`. */
export function dependentsOf(core: HostCore, name: string): string[] {
  return [...core.plugins.values()]
    .filter((p) => p.manifest.dependencies?.[name] !== undefined && p.state !== "stopped" && p.state !== "failed")
    .map((p) => p.manifest.name)
    .sort();
}

/** Refuses to unload `name` while running plugins depend on it. */
export function checkUnload(core: HostCore, name: string): void {
  const dependents = dependentsOf(core, name);
  if (dependents.length) {
    throw new DependencyError(
      "in_use",
      [name, ...dependents],
      `Plugin "${name}" is needed by ${dependents.join(", ")}; unload them first, or pass {force: true}`,
    );
  }
}

/** The host's handler of `$plugins.call` for plugin `caller`: only to the plugins it was granted (`permissions.plugins`). */
export function pluginCallHandler(core: HostCore, caller: string, granted: string[]): Handler {
  return (args) => {
    const [target, method, callArgs] = args as [unknown, unknown, unknown];
    if (typeof target !== "string" || typeof method !== "string" || !Array.isArray(callArgs)) {
      throw new TypeError("plugins.call takes (plugin name, method name, ...args)");
    }
    if (!granted.includes(target)) {
      core.bus.emit("permission-denied", {
        plugin: caller,
        permission: `plugins:${target}`,
        detail: `called ${target}.${method} without the grant`,
        at: Date.now(),
      });
      throw new PermissionDeniedError(
        `Plugin "${caller}" may not call plugin "${target}"; add "${target}" to permissions.plugins ` +
          `in its plugin.json`,
      );
    }
    return route(core, target, method, callArgs, {});
  };
}
