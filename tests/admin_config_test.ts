/**
 * Typed config through the admin API: GET shows a plugin's config schema and
 * the values it runs with; PUT checks a change against the schema (the host's
 * own validator), hands it to the plugin live or by a reload, and records it
 * as an operator action. Bad input is a clear 4xx and the host keeps serving.
 */
import assert from "node:assert/strict";
import { z } from "zod";
import { PluginHost } from "../mod.ts";
import { type ActionRecord, createAdminApp } from "../src/admin/app.ts";
import { configBody } from "../src/admin/_schemas.ts";
import { fixtures, test } from "./_harness.ts";

const token = "config-test-token-0123456789";
const auth = { authorization: `Bearer ${token}` };
const json = { ...auth, "content-type": "application/json" };
/** Plugins with config schemas: "settings" takes changes live, "settings-static" is reloaded. */
const configPlugins = `${fixtures}/admin_config`;

async function withAdmin(
  body: (ctx: { host: PluginHost; app: ReturnType<typeof createAdminApp>; actions: ActionRecord[] }) => Promise<void>,
): Promise<void> {
  const host = new PluginHost({ dirs: [configPlugins], config: { settings: { port: 8080 } }, logger: () => {} });
  const actions: ActionRecord[] = [];
  const app = createAdminApp(host, { token, onAction: (a) => actions.push(a) });
  try {
    await body({ host, app, actions });
  } finally {
    await host.close();
  }
}

async function errorOf(res: Response): Promise<{ status: number; code: string; message: string; field?: string }> {
  const body = await res.json() as { error: { code: string; message: string; field?: string } };
  return { status: res.status, ...body.error };
}

const put = (app: ReturnType<typeof createAdminApp>, name: string, body: unknown, headers: object = json) =>
  app.request(`/api/plugins/${name}/config`, {
    method: "PUT",
    headers: headers as Record<string, string>,
    body: typeof body === "string" ? body : JSON.stringify(body),
  });

test("admin config: GET shows the schema and current values; PUT reaches onConfig live and is recorded", async () => {
  await withAdmin(async ({ host, app, actions }) => {
    await host.load("settings");
    const pid = host.list()[0].pid;
    const view = await (await app.request("/api/plugins/settings/config", { headers: auth })).json() as {
      state: string;
      schema: { properties: Record<string, unknown> };
      values: Record<string, unknown>;
    };
    assert.equal(view.state, "running");
    assert.deepEqual(Object.keys(view.schema.properties).sort(), [
      "code",
      "greeting",
      "level",
      "limits",
      "port",
      "ratio",
      "tags",
      "verbose",
    ]);
    assert.equal(view.values.port, 8080);
    assert.equal(view.values.greeting, "hello", "defaults are filled in");

    const next = { ...view.values, port: 9090, tags: ["x", "y"], limits: { maxItems: 3, mode: "fast" } };
    const res = await put(app, "settings", { values: next, reason: "more items" });
    assert.equal(res.status, 200);
    const record = await res.json() as ActionRecord;
    assert.deepEqual([record.action, record.outcome, record.applied], ["configure", "ok", "applied"]);
    assert.deepEqual(record.fields, ["limits", "port", "tags"]);
    assert.equal(host.list()[0].pid, pid, "taken live: same process");
    const seen = await host.call("settings", "settings", []) as Record<string, unknown>;
    assert.equal(seen.port, 9090);
    assert.deepEqual(seen.limits, { maxItems: 3, mode: "fast" });
    assert.equal(await host.call("settings", "changes", []), 1);
    const after = await (await app.request("/api/plugins/settings/config", { headers: auth })).json() as {
      values: Record<string, unknown>;
    };
    assert.equal(after.values.port, 9090);
    assert.deepEqual(actions.map((a) => `${a.action}:${a.outcome}:${a.reason}`), ["configure:ok:more items"]);
  });
}, { timeoutMs: 60_000 });

test("admin config: a plugin without onConfig is reloaded with the new values and says so", async () => {
  await withAdmin(async ({ host, app }) => {
    await host.load("settings-static");
    const pid = host.list()[0].pid;
    const res = await put(app, "settings-static", { values: { level: "debug" } });
    assert.equal(res.status, 200);
    assert.equal((await res.json() as ActionRecord).applied, "reloaded");
    assert.notEqual(host.list()[0].pid, pid, "a new process serves");
    assert.deepEqual(await host.call("settings-static", "settings", []), { level: "debug" });
  });
}, { timeoutMs: 60_000 });

test("admin config: bad changes are a clear 4xx naming the field, and the plugin keeps its values", async () => {
  await withAdmin(async ({ host, app, actions }) => {
    await host.load("settings");
    const bad = async (
      name: string,
      body: unknown,
      status: number,
      code: string,
      headers: object = json,
    ) => {
      const e = await errorOf(await put(app, name, body, headers));
      assert.deepEqual([e.status, e.code], [status, code], `${JSON.stringify(body)?.slice(0, 80)} → ${e.message}`);
      return e;
    };
    const wrongType = await bad("settings", { values: { port: "eighty" } }, 422, "invalid_config");
    assert.equal(wrongType.field, "port");
    assert.match(wrongType.message, /field "port"/);
    assert.equal((await bad("settings", { values: { port: 0 } }, 422, "invalid_config")).field, "port");
    assert.equal((await bad("settings", { values: {} }, 422, "invalid_config")).field, "port", "required");
    const nested = await bad("settings", { values: { port: 1, limits: { mode: "slow" } } }, 422, "invalid_config");
    assert.equal(nested.field, "limits.mode");
    const pattern = await bad("settings", { values: { port: 1, code: "abc" } }, 422, "invalid_config");
    assert.equal(pattern.field, "code");
    const unknownField = await bad("settings", { values: { port: 1, colour: "red" } }, 422, "invalid_config");
    assert.equal(unknownField.field, "colour");
    assert.match(unknownField.message, /not in the schema/);
    const item = await bad("settings", { values: { port: 1, tags: ["ok", 3] } }, 422, "invalid_config");
    assert.equal(item.field, "tags.1");
    // Bigger than a config may be (64 KiB as JSON) but within the body limit: the host's own message.
    const big = await bad("settings", { values: { port: 1, tags: ["x".repeat(70 * 1024)] } }, 422, "invalid_config");
    assert.match(big.message, /at most 65536 fit/);
    await bad("settings", { values: { port: 1, tags: ["x".repeat(100 * 1024)] } }, 413, "body_too_large");
    await bad("settings", "{not json", 400, "malformed_json");
    await bad("settings", "", 400, "malformed_json");
    await bad("settings", { port: 1 }, 422, "invalid_request"); // values not wrapped in {"values": …}
    await bad("settings", { values: [1, 2] }, 422, "invalid_request");
    const unknown = await bad("nope", { values: {} }, 404, "plugin_not_found");
    assert.match(unknown.message, /known plugins: settings, settings-static/);
    await bad("settings-static", { values: { level: "debug" } }, 409, "plugin_not_loaded");
    await bad("settings", { values: { port: 1 } }, 401, "missing_token", { "content-type": "application/json" });
    await bad("settings", { values: { port: 1 } }, 401, "invalid_token", { authorization: "Bearer wrong" });
    assert.equal((await app.request("/api/plugins/nope/config", { headers: auth })).status, 404);
    assert.equal((await app.request("/api/plugins/settings/config")).status, 401);

    const seen = await host.call("settings", "settings", []) as Record<string, unknown>;
    assert.equal(seen.port, 8080, "the plugin kept its values");
    assert.equal(await host.call("settings", "changes", []), 0, "no bad change reached onConfig");
    const refused = actions.filter((a) => a.outcome === "error");
    assert.ok(refused.length >= 7, "refused changes that reached the host are recorded");
    assert.ok(refused.every((a) => a.action === "configure" && a.code === "invalid_config"));
    assert.equal(refused[0].field, "port");

    await host.unload("settings");
    await bad("settings", { values: { port: 1 } }, 409, "plugin_not_running");
    const doc = await (await app.request("/api/openapi.json", { headers: auth })).json() as {
      paths: Record<string, Record<string, { requestBody?: { content: Record<string, { schema: unknown }> } }>>;
    };
    assert.ok(doc.paths["/api/plugins/{name}/config"].get, "GET documented");
    const { $schema: _, ...expected } = z.toJSONSchema(configBody, { io: "input" }) as Record<string, unknown>;
    assert.deepEqual(
      doc.paths["/api/plugins/{name}/config"].put.requestBody!.content["application/json"].schema,
      expected,
    );
  });
}, { timeoutMs: 60_000 });
