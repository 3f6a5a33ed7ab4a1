/**
 * Dependencies between plugins: loaded in order, cycles / missing plugins /
 * versions outside a range refused with the chain named, calls between
 * plugins gated by permissions.plugins, a dependency's reload failing no
 * dependent's call, and unloading a needed plugin refused unless forced.
 */
import assert from "node:assert/strict";
import { DependencyError, PluginHost } from "../mod.ts";
import { manifestProblems } from "../src/host/manifest.ts";
import { fixtures, processRunning, test } from "./_harness.ts";

const deps = `${fixtures}/deps`;

async function withHost(fn: (host: PluginHost) => Promise<void>): Promise<void> {
  const host = new PluginHost({ dirs: [deps], logger: () => {} });
  try {
    await fn(host);
  } finally {
    const pids = host.list().flatMap((p) => p.pids);
    await host.close();
    for (const pid of pids) assert.equal(processRunning(pid), false, `plugin ${pid} is gone`);
  }
}

test("loading a plugin loads its dependencies first; it calls them through the host with its grant", async () => {
  await withHost(async (host) => {
    const order: string[] = [];
    host.onState((e) => e.state === "started" && order.push(e.plugin));
    await host.load("dep-user");
    assert.deepEqual(order, ["dep-store", "dep-user"], "the dependency's process is spawned first");
    assert.equal(host.list().find((p) => p.name === "dep-store")?.state, "running");
    assert.equal(await host.call("dep-user", "put", ["k", 42]), true);
    assert.equal(await host.call("dep-user", "read", ["k"]), 42);
    assert.equal(await host.call("dep-store", "get", ["k"]), 42, "the same store the host sees");
  });
});

test("a call to a plugin outside permissions.plugins is refused with a typed error and an event", async () => {
  await withHost(async (host) => {
    const denied: string[] = [];
    host.on("permission-denied", (e) => denied.push(`${e.plugin} ${e.permission}`));
    await host.load("dep-nogrant");
    const answer = await host.call("dep-nogrant", "read", ["k"]) as Record<string, unknown>;
    assert.equal(answer.ok, false);
    assert.equal(answer.code, "permission_denied");
    assert.match(String(answer.message), /may not call plugin "dep-store"; add "dep-store" to permissions\.plugins/);
    assert.deepEqual(denied, ["dep-nogrant plugins:dep-store"]);
  });
});

test("reloading a dependency fails no dependent's call", async () => {
  await withHost(async (host) => {
    await host.load("dep-user");
    let stop = false;
    let calls = 0;
    const failures: unknown[] = [];
    const load = (async () => {
      while (!stop) {
        await host.call("dep-user", "put", ["n", calls]).catch((e) => failures.push(e));
        calls++;
      }
    })();
    await host.reload("dep-store");
    await host.reload("dep-store");
    stop = true;
    await load;
    assert.deepEqual(failures, []);
    assert.ok(calls > 0);
    assert.equal(await host.call("dep-user", "read", ["n"]), calls - 1, "the state moved with the reloads");
  });
});

test("unloading a plugin others need is refused unless forced", async () => {
  await withHost(async (host) => {
    await host.load("dep-user");
    const refused = await host.unload("dep-store").catch((e) => e);
    assert.ok(refused instanceof DependencyError, String(refused));
    assert.equal(refused.code, "in_use");
    assert.match(refused.message, /"dep-store" is needed by dep-user; unload them first, or pass \{force: true\}/);
    assert.equal(host.list().find((p) => p.name === "dep-store")?.state, "running");
    await host.unload("dep-user");
    await host.unload("dep-store");
    assert.equal(host.list().find((p) => p.name === "dep-store")?.state, "stopped");
    await host.load("dep-user");
    await host.unload("dep-store", { force: true });
    assert.equal(host.list().find((p) => p.name === "dep-store")?.state, "stopped");
  });
});

test("cycles, missing plugins and versions outside a range are refused before anything starts, naming the chain", async () => {
  await withHost(async (host) => {
    const cycle = await host.load("dep-cycle-a").catch((e) => e);
    assert.ok(cycle instanceof DependencyError, String(cycle));
    assert.equal(cycle.code, "cycle");
    assert.deepEqual(cycle.chain, ["dep-cycle-a", "dep-cycle-b", "dep-cycle-a"]);
    assert.match(cycle.message, /dep-cycle-a → dep-cycle-b → dep-cycle-a/);

    const missing = await host.load("dep-missing").catch((e) => e);
    assert.equal(missing.code, "missing", String(missing));
    assert.match(missing.message, /dep-missing → dep-ghost: no plugin "dep-ghost"/);

    const conflict = await host.load("dep-newer").catch((e) => e);
    assert.equal(conflict.code, "conflict", String(conflict));
    assert.match(conflict.message, /dep-newer needs dep-store \^2\.0\.0, but dep-store is 1\.2\.3/);

    assert.deepEqual(host.list().filter((p) => p.state === "running"), [], "nothing started");

    // The host keeps serving: a good load still works.
    await host.load("dep-user");
    const stillConflict = await host.load("dep-newer").catch((e) => e);
    assert.match(stillConflict.message, /already loaded for: dep-user needs \^1\.2\.0/);
  });
});

test("a dependency range that does not parse is a manifest problem on its field", () => {
  const problems = manifestProblems({
    name: "x",
    version: "1.0.0",
    runtime: "bun",
    entry: "main.ts",
    dependencies: { kv: "not a range", "Bad Name": "^1.0.0" },
  });
  assert.deepEqual(problems.map((p) => p.field).sort(), ["dependencies.Bad Name", "dependencies.kv"]);
  assert.match(problems.find((p) => p.field === "dependencies.kv")!.message, /must be a version range/);
});
