/**
 * Errors of the security layer. Every class extends PluginShmError and
 * carries a stable `code`; messages say what happened and what to do. The
 * sandbox's error lives with the host, which starts plugins sandboxed by
 * default, and is re-exported here.
 *
 * @module
 */

export { SandboxError } from "../host/errors.ts";
