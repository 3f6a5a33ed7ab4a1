/**
 * Manifest v2 `permissions` and `limits`, and the pure mapping from grants to
 * the sandbox's launch plan. Both live in the host layer (the host sandboxes
 * every plugin by default) and are re-exported here for the security API.
 *
 * @module
 */

export * from "../host/sandbox_plan.ts";
