/**
 * plugin-shm/security: manifest v2 permissions and limits, and the OS sandbox
 * (pshm-launch: Landlock, seccomp, rlimits, a PID namespace) as the host's
 * launch planner (docs/security.md); integrity locks, Sigstore signatures, the
 * hash-chained audit log and the verifier the host calls before every spawn
 * (docs/integrity.md).
 *
 * @example
 * ```ts
 * import { PluginHost } from "./mod.ts";
 * import { sandboxPlanner } from "./security.ts";
 * const host = new PluginHost({
 *   dirs: ["examples/plugins"],
 *   launchPlanner: sandboxPlanner({ sandbox: "required", narrow: { echo: { permissions: { net: [] } } } }),
 * });
 * await host.load("echo");
 * await host.close();
 * ```
 *
 * @module
 */

export { SandboxError } from "./src/security/errors.ts";
export {
  type Limits,
  limitsSchema,
  narrowLimits,
  narrowPermissions,
  type Permissions,
  permissionsSchema,
} from "./src/security/permissions.ts";
export {
  defaultLauncher,
  effectiveGrants,
  findLauncher,
  launcherEnv,
  type SandboxMode,
  type SandboxNarrowing,
  sandboxPlanner,
  type SandboxPlannerOptions,
} from "./src/security/sandbox_planner.ts";
export * from "./src/security/lock.ts";
export * from "./src/security/signature.ts";
export * from "./src/security/audit.ts";
export * from "./src/security/verifier.ts";
export * from "./src/security/commands.ts";
