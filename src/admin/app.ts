/**
 * The admin API and dashboard as a Hono app: mount it in your own server or
 * serve it with {@link ../admin/serve.ts}. It sits above the host and learns
 * from the host's public API and events only.
 *
 * @module
 */

import { randomBytes, timingSafeEqual } from "node:crypto";
import { createHash } from "node:crypto";
import { getLogger } from "@logtape/logtape";
import { type Context, Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { streamSSE } from "hono/streaming";
import type { z } from "zod";
import type { Discovered, PluginInfo, StateEvent } from "../host/host.ts";
import type { RefusedEvent } from "../host/types.ts";
import type { Manifest } from "../host/manifest.ts";
import type { LogLine, LogStore } from "../observe/logs.ts";
import type { PluginMetrics } from "../observe/metrics.ts";
import { dashboardHtml } from "./dashboard.ts";
export type { Action, ActionRecord } from "./_schemas.ts";
import { AdminError } from "./errors.ts";
import { openApiDocument } from "./_openapi.ts";
import {
  type Action,
  actionBody,
  type ActionRecord,
  bodyBytesMaxDefault,
  configBody,
  configBodyBytesMax,
  logsQuery,
  metricsQuery,
  pluginParams,
  routes,
  sseQuery,
} from "./_schemas.ts";

/** What the admin app needs from a host: its public API. */
export interface AdminHost {
  /** The plugins loaded now (PluginHost.list()). */
  list(): PluginInfo[];
  /** The plugins found in the plugin directories (PluginHost.discover()). */
  discover(): Discovered[];
  /** Loads a plugin by name or directory (PluginHost.load()). */
  load(nameOrDir: string): Promise<PluginInfo>;
  /** Stops and forgets a plugin (PluginHost.unload()). */
  unload(name: string): Promise<void>;
  /** Hot-reloads a plugin (PluginHost.reload()). */
  reload(name: string): Promise<PluginInfo>;
  /** Restarts a plugin's process (PluginHost.restart()). */
  restart(name: string): Promise<PluginInfo>;
  /**
   * Replaces a running plugin's config: checked against its schema (a
   * ConfigError with `field` if not), then taken live or by a reload
   * (PluginHost.configure()).
   */
  configure(name: string, values: Record<string, unknown>): Promise<"applied" | "reloaded">;
  /** The config values a loaded plugin runs with now, or undefined (PluginHost.configOf()). */
  configOf(name: string): Record<string, unknown> | undefined;
  /** Subscribes to the host's verifier refusals (PluginHost.on("refused")); optional. */
  on?(type: "refused", listener: (event: RefusedEvent) => void): () => void;
  /** Subscribes to lifecycle events; returns the unsubscribe function. */
  onState(listener: (event: StateEvent) => void): () => void;
  /** Subscribes to events plugins emit; returns the unsubscribe function. */
  onEvent(listener: (event: { plugin: string; name: string; data: unknown }) => void): () => void;
}

/** Options for {@link createAdminApp}. */
export interface AdminAppOptions {
  /** The bearer token every request must carry (see resolveAdminToken()). */
  token: string;
  /** Figures for the plugin table, charts, /metrics and /api/metrics. */
  metrics?: PluginMetrics;
  /** Kept plugin output for the logs routes. */
  logs?: LogStore;
  /** Serve GET /metrics without a token (for a Prometheus scraper on a trusted network). Default false. */
  publicMetrics?: boolean;
  /** Largest request body. Default 16 KiB. */
  bodyBytesMax?: number;
  /** Largest body of a config change (PUT /api/plugins/:name/config). Default 96 KiB. */
  configBodyBytesMax?: number;
  /**
   * What the trust column says about a plugin (see TrustTracker), or null for
   * "not checked". A verifier's refusal the host reports is shown either way.
   */
  trust?: (plugin: string) => string | null;
  /** How long a discovery of plugin directories is reused. Default 2000 ms. */
  discoveryCacheMs?: number;
  /** Also receives every operator action. */
  onAction?: (record: ActionRecord) => void;
}

/** How long a ticket from POST /api/tickets stays valid. */
export const ticketTtlMs = 30_000;
/** Most unused tickets held; older ones are dropped. */
export const ticketsMax = 1_000;
/** Operator actions kept for GET /api/actions. */
export const actionsKeptMax = 200;
/** Interval of the comment lines that keep an idle event stream open through proxies. */
export const ssePingIntervalMs = 15_000;
/** Query parameters that look like a token: refused, since URLs end up in logs and history. */
const tokenParams = ["token", "access_token", "bearer", "auth", "authorization", "api_key"];
/** States in which a plugin is between two others and takes no operator action. */
const busyStates = new Set(["starting", "restarting", "reloading", "draining"]);

const sha256 = (text: string) => createHash("sha256").update(text).digest();

/**
 * The admin API and dashboard for `host`.
 *
 * @example
 * ```ts ignore
 * import { PluginHost } from "../../mod.ts";
 * import { createAdminApp } from "./app.ts";
 * const host = new PluginHost({ dirs: ["examples/plugins"] });
 * const app = createAdminApp(host, { token: "a-long-random-token-string" });
 * const res = await app.request("/api/plugins", { headers: { authorization: "Bearer a-long-random-token-string" } });
 * console.log(await res.json());
 * ```
 */
export function createAdminApp(host: AdminHost, options: AdminAppOptions): Hono {
  if (typeof options.token !== "string" || options.token.length < 16) {
    throw new TypeError("createAdminApp() needs options.token of 16 characters or more; see resolveAdminToken()");
  }
  const app = new Hono();
  const log = getLogger(["plugin-shm", "admin"]);
  const tokenDigest = sha256(options.token);
  const tickets = new Map<string, number>();
  const actions: ActionRecord[] = [];
  const actionListeners = new Set<(record: ActionRecord) => void>();
  const cacheMs = options.discoveryCacheMs ?? 2_000;
  let discovered: { at: number; found: Discovered[] } | undefined;
  /** Plugins the host's verifier refused, until they start again. */
  const refusals = new Map<string, string>();
  host.on?.("refused", (e) => {
    const code = (e.error as { code?: unknown } | undefined)?.code;
    refusals.set(e.plugin, `refused (${typeof code === "string" ? code : "error"})`);
  });
  host.onState((e) => {
    if (e.state === "ready") refusals.delete(e.plugin);
  });

  const discover = (): Discovered[] => {
    if (!discovered || Date.now() - discovered.at > cacheMs) discovered = { at: Date.now(), found: host.discover() };
    return discovered.found;
  };

  const tokenMatches = (candidate: string) => timingSafeEqual(sha256(candidate), tokenDigest);

  const takeTicket = (ticket: string): boolean => {
    const expires = tickets.get(ticket);
    tickets.delete(ticket); // single use, valid or not
    return expires !== undefined && expires > Date.now();
  };

  /** Refuses the request unless it carries the token (or, where allowed, a ticket). */
  const authorize = (c: Context, allowTicket: boolean): void => {
    const url = new URL(c.req.url);
    for (const name of tokenParams) {
      if (url.searchParams.has(name)) {
        throw new AdminError(
          "token_in_query",
          `The token must not be in the URL ("${name}" parameter): URLs end up in logs and browser history; ` +
            `send the header Authorization: Bearer <token>`,
        );
      }
    }
    const header = c.req.header("authorization");
    if (header !== undefined) {
      const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
      if (!match || !tokenMatches(match[1])) {
        throw new AdminError("invalid_token", "The bearer token is wrong; use the admin token printed at start-up");
      }
      return;
    }
    const ticket = url.searchParams.get("ticket");
    if (allowTicket && ticket !== null) {
      if (takeTicket(ticket)) return;
      throw new AdminError("invalid_token", "The ticket is unknown, used or expired; get a new one: POST /api/tickets");
    }
    throw new AdminError(
      "missing_token",
      `No credentials: send Authorization: Bearer <token>${allowTicket ? " (or ?ticket= from POST /api/tickets)" : ""}`,
    );
  };

  const parse = <S extends z.ZodType>(schema: S, value: unknown, what: string): z.infer<S> => {
    const result = schema.safeParse(value);
    if (result.success) return result.data;
    const problems = result.error.issues.map((i) => `${i.path.join(".") || what}: ${i.message}`).join("; ");
    throw new AdminError("invalid_request", `Invalid ${what}: ${problems}`);
  };

  const pluginName = (c: Context): string => {
    const name = c.req.param("name");
    const ok = pluginParams.safeParse({ name });
    const known = ok.success && (host.list().some((p) => p.name === name) ||
      discover().some((d) => d.manifest?.name === name));
    if (!known) {
      const names = allNames().join(", ") || "none";
      throw new AdminError("plugin_not_found", `No plugin "${name}"; known plugins: ${names}`);
    }
    return name!;
  };

  const lookups = () => ({
    infos: new Map(host.list().map((p) => [p.name, p])),
    manifests: new Map(discover().flatMap((d) => (d.manifest ? [[d.manifest.name, d.manifest] as const] : []))),
  });

  const allNames = (): string[] => {
    const names = new Set(host.list().map((p) => p.name));
    for (const d of discover()) if (d.manifest) names.add(d.manifest.name);
    return [...names].sort();
  };

  /** One table row; `infos` and `manifests` are looked up once per request, not once per row. */
  const row = (name: string, infos: Map<string, PluginInfo>, manifests: Map<string, Manifest>) => {
    const info = infos.get(name);
    const manifest = manifests.get(name);
    const figures = options.metrics?.summary(name);
    return {
      name,
      version: info?.version ?? manifest?.version ?? null,
      runtime: info?.runtime ?? manifest?.runtime ?? null,
      state: info?.state ?? "not-loaded",
      pids: info?.pids ?? [],
      transport: info?.transport ?? null,
      description: manifest?.description ?? null,
      calls: figures?.calls ?? null,
      callsPerSecond: figures?.callsPerSecond ?? null,
      p50Seconds: figures?.p50Seconds ?? null,
      p99Seconds: figures?.p99Seconds ?? null,
      errors: figures?.errors ?? null,
      inFlight: figures?.inFlight ?? null,
      rssBytes: figures ? figures.rssBytes : null,
      cpuSeconds: figures ? figures.cpuSeconds : null,
      restarts: figures?.restarts ?? null,
      crashes: info?.crashes ?? null,
      reloads: figures?.reloads ?? null,
      // The last refusal the host reported wins; else what options.trust knows; null means "not checked".
      trust: refusals.get(name) ?? options.trust?.(name) ?? null,
    };
  };

  const record = (entry: ActionRecord): void => {
    actions.push(entry);
    if (actions.length > actionsKeptMax) actions.shift();
    const message = "operator {action} of {plugin}: {outcome}";
    if (entry.outcome === "ok") log.info(message, { ...entry });
    else log.warn(message, { ...entry });
    options.onAction?.(entry);
    for (const listener of actionListeners) {
      try {
        listener(entry);
      } catch {
        // A broken stream must not stop the others.
      }
    }
  };

  const act = async (action: Action, name: string, reason: string | undefined): Promise<ActionRecord> => {
    const info = host.list().find((p) => p.name === name);
    const state = info?.state ?? "not-loaded";
    if (info && busyStates.has(state) && action !== "stop") {
      throw new AdminError("plugin_busy", `Plugin "${name}" is ${state}; try again once it is running or stopped`);
    }
    if (action === "reload" && state !== "running") {
      throw new AdminError(
        info ? "plugin_not_running" : "plugin_not_loaded",
        `Cannot reload "${name}": it is ${state}; start it first (POST /api/plugins/${name}/start)`,
      );
    }
    if (action === "restart" && !info) {
      throw new AdminError("plugin_not_loaded", `Cannot restart "${name}": it was never loaded; use start`);
    }
    if (action === "stop" && (state === "stopped" || state === "not-loaded")) {
      throw new AdminError("already_stopped", `Plugin "${name}" is already ${state}`);
    }
    if (action === "start" && info && state !== "stopped" && state !== "failed") {
      throw new AdminError("already_running", `Plugin "${name}" is ${state}; use restart or reload instead`);
    }
    const started = performance.now();
    const base = { action, plugin: name, at: Date.now(), ...(reason ? { reason } : {}) };
    try {
      if (action === "reload") await host.reload(name);
      else if (action === "restart") await host.restart(name);
      else if (action === "stop") await host.unload(name);
      else await host.load(info?.dir ?? name);
    } catch (error) {
      const code = String((error as { code?: unknown }).code ?? "error");
      const message = (error as Error).message;
      record({ ...base, outcome: "error", durationMs: performance.now() - started, code, message });
      throw new AdminError("action_failed", `${action} of "${name}" failed (${code}): ${message}`, { cause: error });
    }
    const after = host.list().find((p) => p.name === name)?.state ?? "not-loaded";
    const entry: ActionRecord = { ...base, outcome: "ok", durationMs: performance.now() - started, state: after };
    record(entry);
    return entry;
  };

  /** The request's JSON body; an empty body is `{}` when `emptyIsObject`, else refused. */
  const jsonBody = async (c: Context, emptyIsObject: boolean, example: string): Promise<unknown> => {
    const text = await c.req.text();
    if (text.trim() === "") {
      if (emptyIsObject) return {};
      throw new AdminError("malformed_json", `The body is empty; send JSON like ${example}`);
    }
    try {
      return JSON.parse(text);
    } catch (error) {
      throw new AdminError("malformed_json", `The body is not JSON (${(error as Error).message}); send ${example}`);
    }
  };

  /** Top-level settings whose values differ between `before` and `after` (compared as JSON). */
  const changedFields = (before: Record<string, unknown> | undefined, after: Record<string, unknown>): string[] =>
    [...new Set([...Object.keys(before ?? {}), ...Object.keys(after)])]
      .filter((key) => JSON.stringify(before?.[key]) !== JSON.stringify(after[key]))
      .sort();

  const configure = async (name: string, values: Record<string, unknown>, reason: string | undefined) => {
    const info = host.list().find((p) => p.name === name);
    const state = info?.state ?? "not-loaded";
    if (info && busyStates.has(state)) {
      throw new AdminError("plugin_busy", `Plugin "${name}" is ${state}; try again once it is running`);
    }
    if (state !== "running") {
      throw new AdminError(
        info ? "plugin_not_running" : "plugin_not_loaded",
        `Cannot change the config of "${name}": it is ${state}; start it first (POST /api/plugins/${name}/start)`,
      );
    }
    const before = host.configOf(name);
    const started = performance.now();
    const base = { action: "configure" as const, plugin: name, at: Date.now(), ...(reason ? { reason } : {}) };
    let applied: "applied" | "reloaded";
    try {
      applied = await host.configure(name, values);
    } catch (error) {
      const e = error as { code?: unknown; field?: unknown; message: string };
      const code = String(e.code ?? "error");
      const field = typeof e.field === "string" ? e.field : undefined;
      record({
        ...base,
        outcome: "error",
        durationMs: performance.now() - started,
        code,
        message: e.message,
        ...(field !== undefined ? { field } : {}),
      });
      if (code === "invalid_config") {
        throw new AdminError("invalid_config", e.message, { cause: error, field: field ?? "" });
      }
      if (code === "plugin_not_found") throw new AdminError("plugin_not_running", e.message, { cause: error });
      throw new AdminError("action_failed", `configure of "${name}" failed (${code}): ${e.message}`, { cause: error });
    }
    const after = host.configOf(name) ?? {};
    const entry: ActionRecord = {
      ...base,
      outcome: "ok",
      durationMs: performance.now() - started,
      state: host.list().find((p) => p.name === name)?.state ?? "not-loaded",
      applied,
      fields: changedFields(before, after),
    };
    record(entry);
    return entry;
  };

  app.onError((error, c) => {
    const known = error instanceof AdminError
      ? error
      : new AdminError("internal", `Internal error: ${(error as Error).message}`);
    if (!(error instanceof AdminError)) log.error("admin request failed: {message}", { message: known.message });
    if (known.status === 401) c.header("WWW-Authenticate", 'Bearer realm="plugin-shm admin"');
    const field = known.field !== undefined ? { field: known.field } : {};
    return c.json({ error: { code: known.code, message: known.message, ...field } }, known.status as 400);
  });

  app.notFound((c) =>
    c.json({
      error: {
        code: "not_found",
        message: `No route ${c.req.method} ${new URL(c.req.url).pathname}; see /api/openapi.json`,
      },
    }, 404)
  );

  app.get("/", (c) => {
    // The page loads nothing from elsewhere and must not be framed (its buttons act on plugins).
    c.header(
      "Content-Security-Policy",
      "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'",
    );
    c.header("X-Frame-Options", "DENY");
    c.header("X-Content-Type-Options", "nosniff");
    c.header("Referrer-Policy", "no-referrer");
    return c.html(dashboardHtml());
  });

  app.get("/metrics", async (c) => {
    if (!options.publicMetrics) authorize(c, false);
    if (!options.metrics) throw new AdminError("not_found", "No metrics: create the app with options.metrics");
    return c.body(await options.metrics.prometheus(), 200, { "content-type": options.metrics.contentType });
  });

  // Every /api route needs the token; the SSE routes also take a ticket.
  app.use("/api/*", async (c, next) => {
    const sse = c.req.method === "GET" &&
      (c.req.path === "/api/events" || (c.req.path.endsWith("/logs") && wantsEvents(c)));
    authorize(c, sse);
    await next();
  });

  const limitBody = (maxSize: number, what: string) =>
    bodyLimit({
      maxSize,
      onError: () => {
        throw new AdminError("body_too_large", `Request body over ${maxSize} bytes; ${what}`);
      },
    });
  const actionBodyLimit = limitBody(
    options.bodyBytesMax ?? bodyBytesMaxDefault,
    "action bodies are tiny JSON objects",
  );
  const configBodyLimit = limitBody(
    options.configBodyBytesMax ?? configBodyBytesMax,
    "a plugin's config is at most 64 KiB as JSON",
  );
  app.use("/api/*", (c, next) => {
    const config = c.req.method === "PUT" && /^\/api\/plugins\/[^/]+\/config$/.test(c.req.path);
    return (config ? configBodyLimit : actionBodyLimit)(c, next);
  });

  app.get("/api/openapi.json", (c) => c.json(openApiDocument(routes, { title: "plugin-shm admin", version: "1" })));

  app.get("/api/plugins", (c) => {
    const { infos, manifests } = lookups();
    const names = [...new Set([...infos.keys(), ...manifests.keys()])].sort();
    return c.json({ plugins: names.map((name) => row(name, infos, manifests)) });
  });

  app.get("/api/plugins/:name", (c) => {
    const name = pluginName(c);
    const { infos, manifests } = lookups();
    const info = infos.get(name);
    const manifest = manifests.get(name);
    const figures = options.metrics?.summary(name, { live: true });
    return c.json({
      ...row(name, infos, manifests),
      manifest: manifest ?? null,
      // Granted permissions arrive with the sandbox work; until then plugins run with their runtime's defaults.
      grants: (manifest as { permissions?: unknown } | undefined)?.permissions ?? null,
      methods: info?.methods ?? [],
      dir: info?.dir ?? manifest?.dir ?? null,
      instances: figures?.processes ?? [],
      history: info?.history ?? [],
      methodFigures: options.metrics?.methods().filter((m) => m.plugin === name) ?? [],
      logs: options.logs?.stats(name) ?? null,
    });
  });

  for (const action of ["reload", "restart", "stop", "start"] as const) {
    app.post(`/api/plugins/:name/${action}`, async (c) => {
      const name = pluginName(c);
      const { reason } = parse(actionBody, await jsonBody(c, true, "{} or nothing"), "body");
      return c.json(await act(action, name, reason));
    });
  }

  app.get("/api/plugins/:name/config", (c) => {
    const name = pluginName(c);
    const { infos, manifests } = lookups();
    const schema = manifests.get(name)?.config ?? null;
    return c.json({
      plugin: name,
      state: infos.get(name)?.state ?? "not-loaded",
      schema,
      values: host.configOf(name) ?? null,
    });
  });

  app.put("/api/plugins/:name/config", async (c) => {
    const name = pluginName(c);
    const body = await jsonBody(c, false, '{"values": {…settings}}');
    const { values, reason } = parse(configBody, body, "body");
    return c.json(await configure(name, values, reason));
  });

  app.get("/api/plugins/:name/series", (c) => {
    const name = pluginName(c);
    return c.json({ points: options.metrics?.series(name) ?? [] });
  });

  app.get("/api/plugins/:name/logs", (c) => {
    const name = pluginName(c);
    const query = parse(logsQuery, c.req.query(), "query");
    const store = options.logs;
    if (!store) throw new AdminError("not_found", "No logs: create the app with options.logs");
    const { ticket: _ticket, ...filter } = query;
    if (!wantsEvents(c)) return c.json({ lines: store.query(name, filter) });
    return streamSSE(c, async (stream) => {
      let id = 0;
      const send = (line: LogLine) =>
        void stream.writeSSE({ event: "log", data: JSON.stringify(line), id: String(id++) });
      for (const line of store.query(name, { ...filter, limit: filter.limit ?? 100 })) send(line);
      const stop = store.subscribe(send, { plugin: name, level: filter.level });
      await untilAborted(stream);
      stop();
    });
  });

  app.get("/api/events", (c) => {
    parse(sseQuery, c.req.query(), "query");
    return streamSSE(c, async (stream) => {
      const send = (event: string, data: unknown) => void stream.writeSSE({ event, data: JSON.stringify(data) });
      const stops = [
        host.onState((e) => send("state", e)),
        host.onEvent((e) => send("plugin-event", e)),
      ];
      const onAction = (e: ActionRecord) => send("action", e);
      actionListeners.add(onAction);
      send("hello", { at: Date.now(), plugins: allNames() });
      await untilAborted(stream);
      for (const stop of stops) stop();
      actionListeners.delete(onAction);
    });
  });

  app.get("/api/actions", (c) => c.json({ actions: [...actions] }));

  app.post("/api/tickets", (c) => {
    const now = Date.now();
    for (const [ticket, expires] of tickets) if (expires <= now) tickets.delete(ticket);
    while (tickets.size >= ticketsMax) tickets.delete(tickets.keys().next().value!);
    const ticket = randomBytes(24).toString("base64url");
    const expiresAt = now + ticketTtlMs;
    tickets.set(ticket, expiresAt);
    return c.json({ ticket, expiresAt });
  });

  app.get("/api/metrics", (c) => {
    const { format } = parse(metricsQuery, c.req.query(), "query");
    const metrics = options.metrics;
    if (!metrics) throw new AdminError("not_found", "No metrics: create the app with options.metrics");
    if (format === "csv") {
      return c.body(metrics.csv(), 200, {
        "content-type": "text/csv; charset=utf-8",
        "content-disposition": 'attachment; filename="plugin-shm-metrics.csv"',
      });
    }
    return c.json({
      at: Date.now(),
      plugins: allNames().map((name) => metrics.summary(name)),
      methods: metrics.methods(),
    });
  });

  return app;
}

function wantsEvents(c: Context): boolean {
  return (c.req.header("accept") ?? "").includes("text/event-stream");
}

/** Resolves when the client goes away, writing a comment line now and then to keep the stream open. */
function untilAborted(stream: { onAbort(fn: () => void): void; write(text: string): Promise<unknown> }): Promise<void> {
  return new Promise((resolve) => {
    const ping = setInterval(() => void stream.write(": ping\n\n").catch(() => {}), ssePingIntervalMs);
    stream.onAbort(() => {
      clearInterval(ping);
      resolve();
    });
  });
}
