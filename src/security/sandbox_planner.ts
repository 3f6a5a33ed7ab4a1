/**
 * The sandbox as a launch planner, for hosts that choose the launcher or the
 * narrowing themselves. It lives in the host layer, which sandboxes every
 * plugin by default (PluginHostOptions `sandbox`); re-exported here.
 *
 * @module
 */

export {
  defaultLauncher,
  effectiveGrants,
  findLauncher,
  launcherEnv,
  type Narrow,
  type SandboxMode,
  type SandboxNarrowing,
  sandboxPlanner,
  type SandboxPlannerOptions,
} from "../host/sandbox.ts";
