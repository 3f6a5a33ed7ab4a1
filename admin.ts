/**
 * plugin-shm/admin: the Hono admin API and live dashboard. Mount the app in
 * your own server, or serve it with `serveAdmin()` (Deno.serve, Bun.serve,
 * or Node through @hono/node-server); loopback by default, TLS required
 * elsewhere, every route behind the bearer token.
 *
 * @example
 * ```ts
 * import { PluginHost } from "./mod.ts";
 * import { LogStore, PluginMetrics } from "./observe.ts";
 * import { createAdminApp, serveAdmin } from "./admin.ts";
 * const metrics = new PluginMetrics();
 * const logs = new LogStore();
 * const host = new PluginHost({ dirs: ["examples/plugins"], logger: logs.logger });
 * metrics.observe(host);
 * // In a real deployment: const { token } = resolveAdminToken(); (environment, token file, or a new one).
 * const token = "example-token-0123456789";
 * const server = await serveAdmin(createAdminApp(host, { token, metrics, logs }), { port: 0 });
 * const response = await fetch(`${server.url}api/plugins`, { headers: { authorization: `Bearer ${token}` } });
 * console.log(`dashboard at ${server.url}:`, response.status, await response.json());
 * await server.close();
 * metrics.close();
 * await host.close();
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
export { type TrustStatus, TrustTracker } from "./src/admin/trust.ts";
export {
  type AdminToken,
  adminTokenCharsMin,
  adminTokenEnv,
  defaultTokenFile,
  resolveAdminToken,
} from "./src/admin/token.ts";
