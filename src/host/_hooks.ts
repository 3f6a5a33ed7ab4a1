/**
 * Hooks: named extension points a host runs through every plugin that
 * declares them, in priority order, passing one context along a chain. A
 * plugin declares a hook in its manifest (`"hooks": {"onRequest": {"priority":
 * 10}}`, the reviewable contract, known before the plugin starts) and handles
 * it in code (`definePlugin({hooks: {onRequest(context, chain) {…}}})`).
 *
 * Order: higher priority first; equal priorities by plugin name, so the order
 * never depends on load timing. Each handler gets the context as the previous
 * one left it and may return a changed one (or change it in place) and may
 * stop the chain (`chain.stop()`): later handlers do not run.
 *
 * Isolation policy, per call (`policy`, default "skip"): a handler that throws
 * or overruns its deadline (`deadlineMs`, default {@link hookDeadlineMsDefault})
 * is skipped — the context stays as it was before that handler, the failure
 * is reported in the result, and the chain goes on; with "fail" the run stops
 * and rejects with a HookError naming the plugin. A plugin that is not
 * running (restarting, failed, unloaded) is not part of the chain.
 *
 * @module
 */

import { reservedMethods } from "../protocol/launch.ts";
import type { HostCore } from "./_core.ts";
import { route } from "./_router.ts";
import { HookError } from "./errors.ts";

/** How long one plugin's handler may take by default. */
export const hookDeadlineMsDefault = 1_000;

/** What happens when a handler throws or overruns: "skip" it (default) or "fail" the run. */
export type HookPolicy = "skip" | "fail";

/** Options of {@link PluginHost.runHook}. */
export interface RunHookOptions {
  /** Default "skip". */
  policy?: HookPolicy;
  /** Per handler. Default {@link hookDeadlineMsDefault}. */
  deadlineMs?: number;
}

/** A handler that was skipped under the "skip" policy. */
export interface HookFailure {
  /** The plugin whose handler was skipped. */
  plugin: string;
  /** What it threw, or the DeadlineExceededError of an overrun. */
  error: unknown;
}

/** What {@link PluginHost.runHook} returns. */
export interface HookResult<C> {
  /** The context as the last handler that ran left it. */
  context: C;
  /** Plugins whose handlers ran and answered, in order. */
  ran: string[];
  /** The plugin that stopped the chain, if one did. */
  stoppedBy?: string;
  /** Handlers that threw or overran and were skipped. */
  skipped: HookFailure[];
}

/** The running plugins that declare `hook`, in the order they run: priority descending, then name. */
export function hookChain(core: HostCore, hook: string): { plugin: string; priority: number }[] {
  const chain: { plugin: string; priority: number }[] = [];
  for (const [name, plugin] of core.plugins) {
    const declared = plugin.manifest.hooks?.[hook];
    if (declared && plugin.state !== "stopped" && plugin.state !== "failed" && plugin.state !== "draining") {
      chain.push({ plugin: name, priority: declared.priority });
    }
  }
  return chain.sort((a, b) => b.priority - a.priority || (a.plugin < b.plugin ? -1 : a.plugin > b.plugin ? 1 : 0));
}

function declaredAnywhere(core: HostCore, hook: string): boolean {
  for (const plugin of core.plugins.values()) if (plugin.manifest.hooks?.[hook]) return true;
  return false;
}

/** Runs `hook` through its chain; see the module doc for order and policy. */
export async function runHook<C>(
  core: HostCore,
  hook: string,
  context: C,
  options: RunHookOptions = {},
): Promise<HookResult<C>> {
  const policy = options.policy ?? "skip";
  if (policy !== "skip" && policy !== "fail") {
    throw new TypeError(`runHook option policy must be "skip" or "fail", got ${JSON.stringify(policy)}`);
  }
  const deadlineMs = options.deadlineMs ?? hookDeadlineMsDefault;
  if (!Number.isInteger(deadlineMs) || deadlineMs < 1) {
    throw new RangeError(`runHook option deadlineMs must be a positive integer, got ${String(deadlineMs)}`);
  }
  if (!declaredAnywhere(core, hook)) {
    const known = new Set([...core.plugins.values()].flatMap((p) => Object.keys(p.manifest.hooks ?? {})));
    throw new HookError(
      "unknown_hook",
      hook,
      undefined,
      `No loaded plugin declares hook "${hook}"; declared hooks: ${[...known].join(", ") || "none"}. ` +
        `A plugin declares one in plugin.json: "hooks": {"${hook}": {"priority": 0}}`,
    );
  }
  const result: HookResult<C> = { context, ran: [], skipped: [] };
  for (const { plugin } of hookChain(core, hook)) {
    let answer: { context: C; stop: boolean };
    try {
      answer = await route(core, plugin, `${reservedMethods.hookPrefix}${hook}`, [result.context], { deadlineMs }) as {
        context: C;
        stop: boolean;
      };
    } catch (error) {
      if (policy === "fail") {
        throw new HookError(
          "hook_failed",
          hook,
          plugin,
          `Hook "${hook}" failed in plugin "${plugin}": ${(error as Error)?.message ?? String(error)}; ` +
            `fix the handler, or run the hook with policy "skip" to go on without it`,
          { cause: error },
        );
      }
      result.skipped.push({ plugin, error });
      continue;
    }
    result.context = answer.context;
    result.ran.push(plugin);
    if (answer.stop) {
      result.stoppedBy = plugin;
      break;
    }
  }
  return result;
}
