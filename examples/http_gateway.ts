/**
 * An HTTP gateway (Hono) whose requests and responses pass through plugin
 * hooks: every request runs the `onRequest` chain (request-logger at priority
 * 100, request-validator at 80, header-modifier at 50, each its own process),
 * then the upstream unless a hook already answered (the validator refuses and
 * stops the chain), then the `onResponse` chain. A hook that throws or
 * overruns is skipped (the host's "skip" policy) and named in the
 * `x-hooks-skipped` response header, so one broken plugin never takes the
 * gateway down.
 *
 * Run: `deno run -A examples/http_gateway.ts [port]` or `bun examples/http_gateway.ts [port]`, then
 * `curl -H 'x-api-key: let-me-in' localhost:8787/hello`.
 *
 * @module
 */

import { Hono } from "hono";
import { fileURLToPath } from "node:url";
import process from "node:process";
import { PluginHost } from "../mod.ts";

/** A request as the hooks see it: plain data, so it crosses to the plugins as MessagePack. */
export interface GatewayRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  headers: Record<string, string>;
  body: string;
}

/** A response as the hooks see it. */
export interface GatewayResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** The context both hook chains pass along; `response` is set once someone answered. */
export interface GatewayContext {
  request: GatewayRequest;
  response?: GatewayResponse;
}

/** The three example hook plugins (beside this file; from the compiled copy in dist/, beside its source). */
export const gatewayPlugins: string = fileURLToPath(new URL("gateway", import.meta.url)).replace(
  /([/\\])dist[/\\]examples[/\\]gateway$/,
  "$1examples$1gateway",
);

/** The default upstream: echoes the request as it arrived after the hooks. */
export function echoUpstream(request: GatewayRequest): GatewayResponse {
  return {
    status: 200,
    headers: { "content-type": "application/json", server: "echo-upstream/1.0" },
    body: JSON.stringify({ method: request.method, path: request.path, headers: request.headers, body: request.body }),
  };
}

/** What {@link createGateway} takes. */
export interface GatewayOptions {
  upstream?: (request: GatewayRequest) => GatewayResponse | Promise<GatewayResponse>;
  /** Per hook handler; default the host's. */
  hookDeadlineMs?: number;
}

/** The Hono app: hooks in, upstream, hooks out. */
export function createGateway(host: PluginHost, options: GatewayOptions = {}): Hono {
  const upstream = options.upstream ?? echoUpstream;
  const hookOptions = { policy: "skip" as const, deadlineMs: options.hookDeadlineMs };
  const app = new Hono();
  app.all("*", async (c) => {
    const url = new URL(c.req.url);
    const request: GatewayRequest = {
      method: c.req.method,
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      headers: Object.fromEntries(c.req.raw.headers),
      body: await c.req.text(),
    };
    const incoming = await host.runHook<GatewayContext>("onRequest", { request }, hookOptions);
    let context = incoming.context;
    if (!context.response) context = { ...context, response: await upstream(context.request) };
    const outgoing = await host.runHook<GatewayContext>("onResponse", context, hookOptions);
    const response = outgoing.context.response!;
    const headers = new Headers(response.headers);
    headers.set("x-hook-chain", [...incoming.ran, ...outgoing.ran].join(","));
    const skipped = [...incoming.skipped, ...outgoing.skipped].map((s) => s.plugin);
    if (skipped.length) headers.set("x-hooks-skipped", skipped.join(","));
    return new Response(response.body, { status: response.status, headers });
  });
  return app;
}

/** Loads the plugins in `dirs`, serves the gateway on `port` (0: any free one); `close()` stops both. */
export async function startGateway(
  options: { port?: number; dirs?: string[]; host?: PluginHost } & GatewayOptions = {},
): Promise<{ port: number; host: PluginHost; close(): Promise<void> }> {
  const host = options.host ?? new PluginHost({ dirs: options.dirs ?? [gatewayPlugins] });
  try {
    for (const found of host.discover()) if (found.manifest) await host.load(found.manifest.dir);
  } catch (error) {
    await host.close();
    throw error;
  }
  const app = createGateway(host, options);
  const { serve } = await import("@hono/node-server");
  const { server, port } = await new Promise<{ server: ReturnType<typeof serve>; port: number }>((resolve) => {
    const server = serve(
      { fetch: app.fetch, port: options.port ?? 0, hostname: "127.0.0.1" },
      (info) => resolve({ server, port: info.port }),
    );
  });
  return {
    port,
    host,
    async close() {
      const closing = new Promise<void>((resolve) => server.close(() => resolve()));
      // Keep-alive connections would hold close() open until they time out.
      (server as { closeAllConnections?: () => void }).closeAllConnections?.();
      await closing;
      await host.close();
    },
  };
}

if ((import.meta as { main?: boolean }).main) {
  const gateway = await startGateway({ port: Number(process.argv[2] ?? 8787) });
  console.error(`gateway on http://127.0.0.1:${gateway.port}/ (x-api-key: let-me-in); Ctrl-C stops`);
  process.once("SIGINT", () => gateway.close().then(() => process.exit(0)));
}
