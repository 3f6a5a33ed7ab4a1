/**
 * Serves an admin app with the runtime's own server: Deno.serve, Bun.serve,
 * or Node's through @hono/node-server. Loopback by default; any other address
 * needs TLS, since the bearer token would otherwise cross the network in clear.
 *
 * @module
 */

import { AdminError } from "./errors.ts";

/** TLS certificate and key, PEM. */
export interface TlsOptions {
  /** The certificate chain, PEM. */
  cert: string;
  /** The private key, PEM. */
  key: string;
}

/** Options for {@link serveAdmin}. */
export interface ServeAdminOptions {
  /** Address to bind. Default "127.0.0.1". */
  hostname?: string;
  /** Port; 0 picks a free one. Default 0. */
  port?: number;
  /** Required for any address other than loopback. */
  tls?: TlsOptions;
}

/** A running admin server. */
export interface AdminServer {
  /** Where it listens, e.g. `http://127.0.0.1:43123/`. */
  readonly url: string;
  /** The port it listens on (the one picked when `port` was 0). */
  readonly port: number;
  /** Stops listening and closes open connections. */
  close(): Promise<void>;
}

/** Anything with a fetch handler, such as a Hono app. */
export interface FetchApp {
  /** Answers one HTTP request. */
  fetch(request: Request): Response | Promise<Response>;
}

/** True for addresses only this machine can reach. */
export function isLoopback(hostname: string): boolean {
  const bare = hostname.replace(/^\[|\]$/g, "");
  return bare === "localhost" || bare === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(bare);
}

/**
 * Serves `app` until `close()`.
 *
 * @example
 * ```ts ignore
 * import { createAdminApp, resolveAdminToken, serveAdmin } from "../../admin.ts";
 * const server = await serveAdmin(createAdminApp(host, { token: resolveAdminToken().token }), { port: 8787 });
 * console.log(`admin at ${server.url}`);
 * ```
 */
export async function serveAdmin(app: FetchApp, options: ServeAdminOptions = {}): Promise<AdminServer> {
  const hostname = options.hostname ?? "127.0.0.1";
  const port = options.port ?? 0;
  if (!isLoopback(hostname) && !options.tls) {
    throw new AdminError(
      "tls_required",
      `Refusing to serve the admin API on ${hostname} without TLS: the token would cross the network in clear; ` +
        `pass tls: {cert, key} or bind to 127.0.0.1`,
    );
  }
  const scheme = options.tls ? "https" : "http";
  const urlOf = (p: number) => `${scheme}://${hostname.includes(":") ? `[${hostname}]` : hostname}:${p}/`;
  const g = globalThis as Record<string, unknown>;
  if (g.Deno) return serveDeno(g.Deno as DenoLike, app, hostname, port, options.tls, urlOf);
  if (g.Bun) return serveBun(g.Bun as BunLike, app, hostname, port, options.tls, urlOf);
  return await serveNode(app, hostname, port, options.tls, urlOf);
}

interface DenoLike {
  serve(
    options: Record<string, unknown>,
    handler: (r: Request) => Response | Promise<Response>,
  ): { addr: { port: number }; shutdown(): Promise<void>; finished: Promise<void> };
}

function serveDeno(
  deno: DenoLike,
  app: FetchApp,
  hostname: string,
  port: number,
  tls: TlsOptions | undefined,
  urlOf: (p: number) => string,
): AdminServer {
  const server = deno.serve({ hostname, port, onListen: () => {}, ...(tls ?? {}) }, (r) => app.fetch(r));
  return {
    url: urlOf(server.addr.port),
    port: server.addr.port,
    close: async () => {
      await server.shutdown();
      await server.finished;
    },
  };
}

interface BunLike {
  serve(options: Record<string, unknown>): { port: number; stop(closeActive?: boolean): Promise<void> | void };
}

function serveBun(
  bun: BunLike,
  app: FetchApp,
  hostname: string,
  port: number,
  tls: TlsOptions | undefined,
  urlOf: (p: number) => string,
): AdminServer {
  // Event streams stay open indefinitely: no idle timeout.
  const server = bun.serve({
    hostname,
    port,
    fetch: (r: Request) => app.fetch(r),
    idleTimeout: 0,
    ...(tls ? { tls } : {}),
  });
  return { url: urlOf(server.port), port: server.port, close: async () => void (await server.stop(true)) };
}

async function serveNode(
  app: FetchApp,
  hostname: string,
  port: number,
  tls: TlsOptions | undefined,
  urlOf: (p: number) => string,
): Promise<AdminServer> {
  const { serve } = await import("@hono/node-server");
  const https = tls ? await import("node:https") : undefined;
  const server = await new Promise<{ address(): unknown; close(cb: () => void): void; closeAllConnections?(): void }>(
    (resolve) => {
      const s = serve(
        {
          fetch: (r: Request) => app.fetch(r),
          hostname,
          port,
          ...(https ? { createServer: https.createServer, serverOptions: { cert: tls!.cert, key: tls!.key } } : {}),
        } as Parameters<typeof serve>[0],
        () => resolve(s as never),
      );
    },
  );
  const bound = (server.address() as { port: number }).port;
  return {
    url: urlOf(bound),
    port: bound,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections?.();
        server.close(() => resolve());
      }),
  };
}
