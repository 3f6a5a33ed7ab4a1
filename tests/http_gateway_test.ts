/**
 * examples/http_gateway.ts: real HTTP requests through a Hono gateway whose
 * requests and responses pass the onRequest/onResponse hooks of three example
 * plugins (request logger, request validator, header modifier), each its own
 * process; a broken hook plugin is skipped and the gateway keeps answering.
 */
import assert from "node:assert/strict";
import { PluginHost } from "../mod.ts";
import { gatewayPlugins, startGateway } from "../examples/http_gateway.ts";
import { fixtures, processRunning, test } from "./_harness.ts";

test("requests and responses pass the hooks of three plugins in priority order; the validator answers bad ones", async () => {
  const lines: string[] = [];
  const host = new PluginHost({ dirs: [gatewayPlugins], logger: (e) => lines.push(`${e.plugin} ${e.line}`) });
  const gateway = await startGateway({ host });
  const pids = host.list().flatMap((p) => p.pids);
  assert.equal(pids.length, 3);
  const url = `http://127.0.0.1:${gateway.port}`;
  try {
    const ok = await fetch(`${url}/hello?x=1`, {
      method: "POST",
      headers: { "x-api-key": "let-me-in", "content-type": "application/json" },
      body: JSON.stringify({ a: 1 }),
    });
    assert.equal(ok.status, 200);
    const echoed = await ok.json() as { path: string; headers: Record<string, string> };
    assert.equal(echoed.path, "/hello");
    assert.equal(echoed.headers["x-gateway"], "plugin-shm", "the header modifier changed the request upstream saw");
    assert.equal(ok.headers.get("x-powered-by"), "plugin-shm", "and the response");
    assert.equal(ok.headers.get("server"), null, "it dropped the upstream's server header");
    assert.equal(
      ok.headers.get("x-hook-chain"),
      "request-logger,request-validator,header-modifier,header-modifier,request-logger",
    );

    const refused = await fetch(`${url}/hello`);
    assert.equal(refused.status, 401);
    assert.deepEqual(await refused.json(), { error: "missing or wrong x-api-key header" });
    assert.equal(
      refused.headers.get("x-hook-chain"),
      "request-logger,request-validator,header-modifier,request-logger",
      "the validator stopped the request chain: the header modifier's onRequest and the upstream did not run",
    );

    const badBody = await fetch(`${url}/hello`, {
      method: "POST",
      headers: { "x-api-key": "let-me-in", "content-type": "application/json" },
      body: "{nope",
    });
    assert.equal(badBody.status, 400);
    await badBody.body?.cancel();

    const open = await fetch(`${url}/health`);
    assert.equal(open.status, 200, "configured open paths need no key");
    await open.body?.cancel();

    assert.equal(await host.call("request-logger", "count"), 4);
    assert.ok(lines.some((l) => l.includes('"event":"response"') && l.includes('"status":401')), lines.join("\n"));
  } finally {
    await gateway.close();
  }
  for (const pid of pids) assert.equal(processRunning(pid), false);
});

test("a hook plugin that throws is skipped and named; the gateway keeps answering", async () => {
  const host = new PluginHost({ dirs: [gatewayPlugins, `${fixtures}/gateway_broken`], logger: () => {} });
  const gateway = await startGateway({ host });
  try {
    const res = await fetch(`http://127.0.0.1:${gateway.port}/x`, { headers: { "x-api-key": "let-me-in" } });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("x-hooks-skipped"), "broken-hook");
    assert.equal((await res.json() as { headers: Record<string, string> }).headers["x-gateway"], "plugin-shm");
  } finally {
    await gateway.close();
  }
});
