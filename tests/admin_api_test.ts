import assert from "node:assert/strict";
import { z } from "zod";
import { PluginHost } from "../mod.ts";
import { type ActionRecord, createAdminApp } from "../src/admin/app.ts";
import { actionBody } from "../src/admin/_schemas.ts";
import { LogStore } from "../src/observe/logs.ts";
import { PluginMetrics } from "../src/observe/metrics.ts";
import { TrustTracker } from "../src/admin/trust.ts";
import { lockEntryFor } from "../src/security/lock.ts";
import { createVerifier } from "../src/security/verifier.ts";
import { examples, fixtures, test } from "./_harness.ts";

const token = "test-token-0123456789abcdef";
const auth = { authorization: `Bearer ${token}` };

async function withAdmin(
  body: (ctx: {
    host: PluginHost;
    app: ReturnType<typeof createAdminApp>;
    actions: ActionRecord[];
    logs: LogStore;
  }) => Promise<void>,
  extra: { publicMetrics?: boolean } = {},
): Promise<void> {
  const logs = new LogStore();
  const metrics = new PluginMetrics({ sampleIntervalMs: 0 });
  const host = new PluginHost({ dirs: [examples], logger: logs.logger });
  metrics.observe(host);
  const actions: ActionRecord[] = [];
  const app = createAdminApp(host, { token, metrics, logs, onAction: (a) => actions.push(a), ...extra });
  try {
    await body({ host, app, actions, logs });
  } finally {
    metrics.close();
    await host.close();
  }
}

async function errorOf(res: Response): Promise<{ status: number; code: string; message: string }> {
  const body = await res.json() as { error: { code: string; message: string } };
  return { status: res.status, ...body.error };
}

/** Reads server-sent events from `res` until `enough` says so, then closes the stream. */
async function readEvents(
  res: Response,
  enough: (events: { event: string; data: unknown }[]) => boolean,
  afterFirst?: () => Promise<unknown>,
): Promise<{ event: string; data: unknown }[]> {
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  const events: { event: string; data: unknown }[] = [];
  let buffer = "";
  let triggered = false;
  try {
    while (!enough(events)) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let end: number;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const event = /^event: (.*)$/m.exec(block)?.[1];
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (event && data) events.push({ event, data: JSON.parse(data) });
      }
      if (!triggered && events.length > 0 && afterFirst) {
        triggered = true;
        afterFirst().catch(() => {});
      }
    }
  } finally {
    await reader.cancel();
  }
  return events;
}

test("admin API: every route needs the bearer token; a wrong one, none, or one in the URL is refused", async () => {
  await withAdmin(async ({ app }) => {
    const missing = await app.request("/api/plugins");
    assert.equal(missing.status, 401);
    assert.match(missing.headers.get("www-authenticate") ?? "", /^Bearer/);
    assert.equal((await errorOf(missing)).code, "missing_token");
    const wrong = await errorOf(await app.request("/api/plugins", { headers: { authorization: "Bearer nope" } }));
    assert.deepEqual([wrong.status, wrong.code], [401, "invalid_token"]);
    const basic = await errorOf(await app.request("/api/plugins", { headers: { authorization: `Basic ${token}` } }));
    assert.deepEqual([basic.status, basic.code], [401, "invalid_token"]);
    const inQuery = await errorOf(await app.request(`/api/plugins?token=${token}`, { headers: auth }));
    assert.deepEqual([inQuery.status, inQuery.code], [400, "token_in_query"]);
    assert.match(inQuery.message, /Authorization: Bearer/);
    assert.equal((await app.request("/metrics")).status, 401, "/metrics is private by default");
    assert.equal((await app.request("/api/openapi.json")).status, 401);
    const ok = await app.request("/api/plugins", { headers: auth });
    assert.equal(ok.status, 200);
    const page = await app.request("/");
    assert.equal(page.status, 200, "the dashboard page itself holds no data");
    assert.match(page.headers.get("content-security-policy") ?? "", /frame-ancestors 'none'/);
  });
}, { timeoutMs: 60_000 });

test("admin API: lists the example plugins, acts on them, records every action, refuses bad input", async () => {
  await withAdmin(async ({ host, app, actions }) => {
    await host.load("echo");
    const post = (path: string, body?: string, headers: Record<string, string> = {}) =>
      app.request(path, { method: "POST", headers: { ...auth, ...headers }, body });
    const list = await (await app.request("/api/plugins", { headers: auth })).json() as {
      plugins: { name: string; state: string; runtime: string; pids: number[] }[];
    };
    assert.deepEqual(list.plugins.map((p) => p.name), ["echo", "kv", "transform"]);
    assert.equal(list.plugins[0].state, "running");
    assert.equal(list.plugins[0].pids.length, 1);
    assert.equal(list.plugins[1].state, "not-loaded");

    const one = await (await app.request("/api/plugins/echo", { headers: auth })).json() as Record<string, unknown>;
    assert.equal((one.manifest as { name: string }).name, "echo");
    assert.ok((one.history as unknown[]).length > 0);
    assert.equal((one.instances as { rssBytes: number }[])[0].rssBytes > 0, true);

    const pidBefore = host.list()[0].pid;
    const reload = await post("/api/plugins/echo/reload", JSON.stringify({ reason: "new build" }), {
      "content-type": "application/json",
    });
    assert.equal(reload.status, 200);
    assert.equal(((await reload.json()) as ActionRecord).state, "running");
    assert.notEqual(host.list()[0].pid, pidBefore, "a new instance serves after the reload");

    const bad = async (path: string, body: string | undefined, status: number, code: string) => {
      const e = await errorOf(await post(path, body));
      assert.deepEqual([e.status, e.code], [status, code], `${path} ${body} → ${e.message}`);
      return e;
    };
    await bad("/api/plugins/echo/reload", "{not json", 400, "malformed_json");
    await bad("/api/plugins/echo/reload", JSON.stringify({ reason: 5 }), 422, "invalid_request");
    await bad("/api/plugins/echo/reload", JSON.stringify({ bogus: true }), 422, "invalid_request");
    await bad("/api/plugins/echo/reload", JSON.stringify({ reason: "x".repeat(64 * 1024) }), 413, "body_too_large");
    const unknown = await bad("/api/plugins/nope/reload", undefined, 404, "plugin_not_found");
    assert.match(unknown.message, /known plugins: echo, kv, transform/);
    await bad("/api/plugins/..%2F..%2Fetc/reload", undefined, 404, "plugin_not_found");
    await bad("/api/plugins/echo/explode", undefined, 404, "not_found");
    await bad("/api/plugins/kv/reload", undefined, 409, "plugin_not_loaded");
    await bad("/api/plugins/echo/start", undefined, 409, "already_running");

    assert.equal((await post("/api/plugins/echo/stop")).status, 200);
    assert.equal(host.list()[0].state, "stopped");
    await bad("/api/plugins/echo/stop", undefined, 409, "already_stopped");
    await bad("/api/plugins/echo/reload", undefined, 409, "plugin_not_running");
    assert.equal((await post("/api/plugins/echo/start", "")).status, 200);
    assert.equal(await host.call("echo", "add", [2, 3]), 5, "the host serves after all that");
    assert.equal((await post("/api/plugins/echo/restart", "{}")).status, 200);
    assert.equal(await host.call("echo", "add", [2, 3]), 5);

    assert.deepEqual(actions.map((a) => `${a.action}:${a.outcome}`), [
      "reload:ok",
      "stop:ok",
      "start:ok",
      "restart:ok",
    ]);
    assert.equal(actions[0].reason, "new build");
    const listed = await (await app.request("/api/actions", { headers: auth })).json() as { actions: ActionRecord[] };
    assert.equal(listed.actions.length, 4);
  });
}, { timeoutMs: 120_000 });

test("admin API: lifecycle events and a log tail stream as SSE, opened with a single-use ticket", async () => {
  await withAdmin(async ({ host, app }) => {
    await host.load("kv");
    const { ticket } = await (await app.request("/api/tickets", { method: "POST", headers: auth })).json() as {
      ticket: string;
    };
    const events = await app.request(`/api/events?ticket=${ticket}`);
    assert.equal(events.status, 200);
    assert.match(events.headers.get("content-type") ?? "", /text\/event-stream/);
    const received = await readEvents(
      events,
      (seen) => seen.some((e) => e.event === "action"),
      async () => await app.request("/api/plugins/kv/reload", { method: "POST", headers: auth }),
    );
    assert.equal(received[0].event, "hello");
    const states = received.filter((e) => e.event === "state").map((e) => (e.data as { state: string }).state);
    assert.ok(states.includes("reloading") && states.includes("reloaded"), `states: ${states}`);
    const action = received.find((e) => e.event === "action")!.data as ActionRecord;
    assert.deepEqual([action.action, action.plugin, action.outcome], ["reload", "kv", "ok"]);

    const reused = await errorOf(await app.request(`/api/events?ticket=${ticket}`));
    assert.deepEqual([reused.status, reused.code], [401, "invalid_token"]);
    const ticketElsewhere = await errorOf(await app.request(`/api/plugins?ticket=${ticket}`));
    assert.deepEqual([ticketElsewhere.status, ticketElsewhere.code], [401, "missing_token"]);

    const json = await (await app.request("/api/plugins/kv/logs?level=info", { headers: auth })).json() as {
      lines: { line: string }[];
    };
    assert.ok(json.lines.some((l) => l.line === "kv ready"));
    const badQuery = await errorOf(await app.request("/api/plugins/kv/logs?level=loud", { headers: auth }));
    assert.deepEqual([badQuery.status, badQuery.code], [422, "invalid_request"]);
    const tail = await app.request("/api/plugins/kv/logs", { headers: { ...auth, accept: "text/event-stream" } });
    const lines = await readEvents(tail, (seen) => seen.length >= 1);
    assert.equal((lines[0].data as { plugin: string }).plugin, "kv");
  });
}, { timeoutMs: 60_000 });

test("admin API: metrics as Prometheus text, JSON and CSV; OpenAPI 3.1 from the validating schemas", async () => {
  await withAdmin(async ({ host, app }) => {
    await host.load("echo");
    const text = await app.request("/metrics", { headers: auth });
    assert.match(text.headers.get("content-type") ?? "", /text\/plain; version=0.0.4/);
    assert.match(await text.text(), /plugin_shm_plugin_state\{plugin="echo",state="running"\} 1/);
    const csv = await app.request("/api/metrics?format=csv", { headers: auth });
    assert.match(csv.headers.get("content-type") ?? "", /text\/csv/);
    assert.match(await csv.text(), /^plugin,method,calls/);
    const json = await (await app.request("/api/metrics", { headers: auth })).json() as { plugins: unknown[] };
    assert.equal(json.plugins.length, 3);
    const badFormat = await errorOf(await app.request("/api/metrics?format=xml", { headers: auth }));
    assert.deepEqual([badFormat.status, badFormat.code], [422, "invalid_request"]);

    const doc = await (await app.request("/api/openapi.json", { headers: auth })).json() as {
      openapi: string;
      paths: Record<string, Record<string, { requestBody?: { content: Record<string, { schema: unknown }> } }>>;
    };
    assert.equal(doc.openapi, "3.1.0");
    for (const path of ["/api/plugins", "/api/plugins/{name}", "/api/plugins/{name}/logs", "/api/events", "/metrics"]) {
      assert.ok(doc.paths[path], `${path} documented`);
    }
    const { $schema: _, ...expected } = z.toJSONSchema(actionBody, { io: "input" }) as Record<string, unknown>;
    assert.deepEqual(
      doc.paths["/api/plugins/{name}/reload"].post.requestBody!.content["application/json"].schema,
      expected,
    );
  });
  await withAdmin(async ({ app }) => {
    assert.equal((await app.request("/metrics")).status, 200, "publicMetrics serves /metrics without a token");
    assert.equal((await app.request("/api/plugins")).status, 401, "but nothing else");
  }, { publicMetrics: true });
}, { timeoutMs: 60_000 });

test("admin API: the trust column shows the verifier's verdict: locked digest, or the refusal's code", async () => {
  const dir = `${fixtures}/admin_config`;
  const trust = new TrustTracker();
  using verifier = createVerifier({
    integrity: "require",
    lock: { version: 1, plugins: { settings: lockEntryFor(`${dir}/settings`, dir, "settings", "1.0.0") } },
    placement: "beside", // the fixture imports the SDK by a path that leaves its directory
  });
  const host = new PluginHost({
    dirs: [dir],
    config: { settings: { port: 1 } },
    verifier: trust.wrap(verifier),
    logger: () => {},
  });
  const app = createAdminApp(host, { token, trust: (name) => trust.summary(name) });
  try {
    const trustOf = async () => {
      const list = await (await app.request("/api/plugins", { headers: auth })).json() as {
        plugins: { name: string; trust: string | null }[];
      };
      return Object.fromEntries(list.plugins.map((p) => [p.name, p.trust]));
    };
    assert.deepEqual(await trustOf(), { settings: null, "settings-static": null }, "not checked yet");
    await host.load("settings");
    const refused = await host.load("settings-static").catch((e) => e);
    assert.equal(refused.code, "not_locked", String(refused));
    const shown = await trustOf();
    assert.match(shown.settings!, /^locked sha256:[0-9a-f]{12}…$/);
    assert.equal(shown["settings-static"], "refused (not_locked)");
    assert.equal(trust.status("settings")!.outcome, "verified");
    assert.equal(await host.call("settings", "changes", []), 0, "the verified plugin serves");
  } finally {
    await host.close();
  }
}, { timeoutMs: 60_000 });
