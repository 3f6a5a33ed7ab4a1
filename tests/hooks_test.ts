/**
 * Hooks: host.runHook() runs every running plugin's handler for a hook in
 * priority order (higher first), each may change the context or stop the
 * chain; a handler that throws or overruns is skipped (policy "skip") or
 * fails the run with a HookError naming the plugin (policy "fail"); a hook
 * nobody declared is a HookError too, and the host keeps serving.
 */
import assert from "node:assert/strict";
import { DeadlineExceededError, HookError, PluginHost } from "../mod.ts";
import { manifestProblems } from "../src/host/manifest.ts";
import { definePlugin } from "../plugin.ts";
import { fixtures, processRunning, test } from "./_harness.ts";

const dir = `${fixtures}/hooks`;

async function withHooks(fn: (host: PluginHost) => Promise<void>, names = ["hook-a", "hook-b", "hook-bad"]) {
  const host = new PluginHost({ dirs: [dir], logger: () => {} });
  const pids: number[] = [];
  try {
    for (const name of names) pids.push(...(await host.load(name)).pids);
    await fn(host);
  } finally {
    await host.close();
  }
  for (const pid of pids) assert.equal(processRunning(pid), false, `plugin ${pid} is gone`);
}

test("runHook() runs every declaring plugin in priority order, each seeing the context as the last left it", async () => {
  await withHooks(async (host) => {
    const result = await host.runHook("onThing", { trail: [] as string[] });
    assert.deepEqual(result.context.trail, ["b", "bad", "a"], "priorities 20, 15, 10");
    assert.deepEqual(result.ran, ["hook-b", "hook-bad", "hook-a"]);
    assert.deepEqual(result.skipped, []);
    assert.equal(result.stoppedBy, undefined);
  });
});

test("a handler that stops the chain ends it: later handlers do not run", async () => {
  await withHooks(async (host) => {
    const result = await host.runHook("onThing", { trail: [] as string[], stopAt: "b" });
    assert.deepEqual(result.context.trail, ["b"]);
    assert.deepEqual(result.ran, ["hook-b"]);
    assert.equal(result.stoppedBy, "hook-b");
  });
});

test('a throwing handler is skipped under policy "skip" and fails the run under "fail", naming the plugin', async () => {
  await withHooks(async (host) => {
    const skipped = await host.runHook("onThing", { trail: [] as string[], boom: true });
    assert.deepEqual(skipped.context.trail, ["b", "a"], "the context goes on as it was before the failed handler");
    assert.deepEqual(skipped.skipped.map((s) => s.plugin), ["hook-bad"]);
    assert.match(String((skipped.skipped[0].error as Error).message), /exploded on purpose/);

    const failed = await host.runHook("onThing", { trail: [] as string[], boom: true }, { policy: "fail" })
      .catch((e) => e);
    assert.ok(failed instanceof HookError, String(failed));
    assert.equal(failed.code, "hook_failed");
    assert.equal(failed.plugin, "hook-bad");
    assert.match(failed.message, /Hook "onThing" failed in plugin "hook-bad": .*exploded on purpose/);

    // Everyone keeps serving.
    const again = await host.runHook("onThing", { trail: [] as string[] });
    assert.deepEqual(again.ran, ["hook-b", "hook-bad", "hook-a"]);
  });
});

test("a handler that overruns its deadline is isolated the same way", async () => {
  await withHooks(async (host) => {
    const skipped = await host.runHook("onThing", { trail: [] as string[], slow: true }, { deadlineMs: 200 });
    assert.deepEqual(skipped.context.trail, ["b", "a"]);
    assert.ok(skipped.skipped[0].error instanceof DeadlineExceededError, String(skipped.skipped[0].error));

    const failed = await host.runHook("onThing", { trail: [] as string[], slow: true }, {
      deadlineMs: 200,
      policy: "fail",
    }).catch((e) => e);
    assert.ok(failed instanceof HookError && failed.cause instanceof DeadlineExceededError, String(failed));
  });
});

test("a hook nobody declared, a bad policy and a bad hook declaration are clear errors", async () => {
  await withHooks(async (host) => {
    const unknown = await host.runHook("onThang", {}).catch((e) => e);
    assert.ok(unknown instanceof HookError, String(unknown));
    assert.equal(unknown.code, "unknown_hook");
    assert.match(unknown.message, /No loaded plugin declares hook "onThang"; declared hooks: onThing/);
    await assert.rejects(host.runHook("onThing", {}, { policy: "ignore" as "skip" }), TypeError);
    await assert.rejects(host.runHook("onThing", {}, { deadlineMs: 0 }), RangeError);
  }, ["hook-a"]);
  const problems = manifestProblems({
    name: "x",
    version: "1.0.0",
    runtime: "bun",
    entry: "main.ts",
    hooks: { "on-request": { priority: 1 }, onOk: { priority: "high" }, onTypo: { prio: 1 } },
  });
  assert.deepEqual(problems.map((p) => p.field).sort(), [
    "hooks.on-request",
    "hooks.onOk.priority",
    "hooks.onTypo.prio",
  ]);
});

test("definePlugin() refuses a hook priority in code (the manifest's is the one the host uses) and a hook without a handler", () => {
  const withPriority = { handler: () => {}, priority: 5 } as unknown as { handler: () => void };
  assert.throws(
    () => definePlugin({ name: "x", version: "1.0.0", methods: {}, hooks: { onThing: withPriority } }),
    /declare its priority in plugin\.json, "hooks": \{"onThing": \{"priority": 5\}\}, not in code/,
  );
  assert.throws(
    () => definePlugin({ name: "x", version: "1.0.0", methods: {}, hooks: { onThing: {} as { handler: () => void } } }),
    /a hook is a function \(or \{handler\}\)/,
  );
});
