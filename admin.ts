/**
 * plugin-shm/admin: the Hono admin API and live dashboard. Mount the app in
 * your own server, or serve it with `serveAdmin()` (Deno.serve, Bun.serve,
 * or Node through @hono/node-server); loopback by default, TLS required
 * elsewhere, every route behind the bearer token.
 *
 * @example
 * ```ts ignore
 * import { PluginHost } from "./mod.ts";
 * import { LogStore, PluginMetrics } from "./observe.ts";
 * import { createAdminApp, resolveAdminToken, serveAdmin } from "./admin.ts";
 * const metrics = new PluginMetrics();
 * const logs = new LogStore();
 * const host = new PluginHost({ dirs: ["examples/plugins"], logger: logs.logger });
 * metrics.observe(host);
 * const { token, file } = resolveAdminToken();
 * const server = await serveAdmin(createAdminApp(host, { token, metrics, logs }), { port: 8787 });
 * console.log(`dashboard at ${server.url} (token in ${file ?? "PLUGIN_SHM_ADMIN_TOKEN"})`);
 * ```
 *
 * @module
 */

export {
  type Action,
  type ActionRecord,
  actionsKeptMax,
  type AdminAppOptions,
  type AdminHost,
  createAdminApp,
  ssePingIntervalMs,
  ticketsMax,
  ticketTtlMs,
} from "./src/admin/app.ts";
export { AdminError, type AdminErrorCode, adminErrorStatus } from "./src/admin/errors.ts";
export {
  type AdminServer,
  type FetchApp,
  isLoopback,
  serveAdmin,
  type ServeAdminOptions,
  type TlsOptions,
} from "./src/admin/serve.ts";
export {
  type AdminToken,
  adminTokenCharsMin,
  adminTokenEnv,
  defaultTokenFile,
  resolveAdminToken,
} from "./src/admin/token.ts";
