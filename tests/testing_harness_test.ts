/**
 * The plugin authors' test harness (plugin-shm/testing) on the bundled
 * examples: a real process over shm, a typed client, captured logs and
 * events, fake host functions that can fail or hang, and nothing left after
 * close(). These are also the example plugins' own tests.
 */
import assert from "node:assert/strict";
import { DeadlineExceededError, ManifestError, RemoteError } from "../mod.ts";
import { HarnessError, startPlugin } from "../testing.ts";
import { examples, fixtures, processRunning, segmentsOf, test } from "./_harness.ts";

interface EchoMethods {
  add(a: number, b: number): number;
  echo<T>(value: T): T;
  askHost(): unknown;
  lastEvent(): unknown;
}

interface KvMethods {
  get(key: string): unknown;
  set(key: string, value: unknown): boolean;
  keys(): string[];
}

test("startPlugin() runs the echo example in its own process and calls it through a typed client", async () => {
  const echo = await startPlugin<EchoMethods>(`${examples}/echo`, { hostFunctions: { now: () => "fixed-time" } });
  const pid = echo.info.pid;
  try {
    assert.equal(echo.name, "echo");
    assert.notEqual(pid, undefined);
    assert.notEqual(pid, process.pid);
    assert.equal(await echo.client.add(2, 3), 5);
    assert.deepEqual(await echo.client.echo({ a: [1, "b"] }), { a: [1, "b"] });
    assert.equal(await echo.call("mul", [4, 5]), 20);
    await echo.emit("hello", { n: 1 });
    // Events are one-way: a call after it is served after it.
    assert.deepEqual(await echo.client.lastEvent(), { name: "hello", data: { n: 1 } });
  } finally {
    await echo.close();
  }
  assert.equal(processRunning(pid), false, "the plugin process is gone after close()");
  await echo.close(); // idempotent
});

test("a fake host function answers, is recorded, can be made to fail, to hang, and restored", async () => {
  let answers = 0;
  const echo = await startPlugin<EchoMethods>(`${examples}/echo`, {
    hostFunctions: { now: () => `time-${++answers}` },
  });
  try {
    assert.equal(await echo.client.askHost(), "time-1");
    assert.deepEqual(echo.hostCalls.map((c) => [c.name, c.args]), [["now", []]]);

    echo.failHost("now", new Error("clock broke"));
    const failed = await echo.client.askHost().catch((e) => e);
    assert.ok(failed instanceof RemoteError, `a failing host function fails the plugin's call: ${failed}`);
    assert.match(failed.message, /clock broke/);
    assert.equal(answers, 1, "the fake did not run while failing");

    echo.hangHost("now");
    const hung = await echo.call("askHost", [], { deadlineMs: 300 }).catch((e) => e);
    assert.ok(hung instanceof DeadlineExceededError, `a hanging host function runs the call out: ${hung}`);

    echo.restoreHost("now");
    assert.equal(await echo.client.askHost(), "time-2");
    assert.equal(echo.hostCalls.length, 4, "every call was recorded, failed and hung ones too");

    assert.throws(
      () => echo.failHost("clock"),
      (e: unknown) => e instanceof HarnessError && e.code === "unknown_host_function" && /known: now/.test(e.message),
    );
  } finally {
    await echo.close();
  }
});

test("logs and events of a Bun plugin are captured and can be waited for", async () => {
  const kv = await startPlugin<KvMethods>(`${examples}/kv`);
  try {
    const ready = await kv.waitForLog("kv ready");
    assert.equal(ready.stream, "stdout");
    assert.equal(ready.plugin, "kv");
    assert.equal(await kv.client.set("a", 1), true);
    const changed = await kv.waitForEvent("changed");
    assert.deepEqual(changed.data, { key: "a" });
    assert.deepEqual(await kv.client.keys(), ["a"]);
    const never = await kv.waitForEvent("deleted", { timeoutMs: 50 }).catch((e) => e);
    assert.ok(never instanceof HarnessError && never.code === "timeout", String(never));
    assert.match(never.message, /emitted no event "deleted"/);
  } finally {
    await kv.close();
  }
});

test("reload() through the harness keeps a Bun plugin's state and close() still leaves nothing behind", async () => {
  const kv = await startPlugin<KvMethods>(`${examples}/kv`);
  const pids: number[] = [...kv.info.pids];
  try {
    await kv.client.set("kept", "yes");
    await kv.reload();
    pids.push(...kv.info.pids);
    assert.equal(await kv.client.get("kept"), "yes");
  } finally {
    await kv.close();
  }
  for (const pid of pids) assert.equal(processRunning(pid), false, `plugin ${pid} is gone`);
  assert.deepEqual(segmentsOf(pids), []);
});

test("startPlugin() on a directory without a valid manifest throws the ManifestError and starts nothing", async () => {
  const error = await startPlugin(`${fixtures}/bad_manifest`).catch((e) => e);
  assert.ok(error instanceof ManifestError, String(error));
  const missing = await startPlugin(`${fixtures}/no_such_plugin`).catch((e) => e);
  assert.ok(missing instanceof Error, String(missing));
});

test("the transform example streams through the harness, chunk by chunk, in order", async () => {
  const transform = await startPlugin(`${examples}/transform`);
  try {
    const input = async function* () {
      for (const text of ["hello ", "shm ", "world"]) yield new TextEncoder().encode(text);
    };
    let out = "";
    for await (const chunk of transform.stream("upper", [], input())) {
      out += new TextDecoder().decode(chunk as Uint8Array);
    }
    assert.equal(out, "HELLO SHM WORLD");
    let chunks = 0;
    for await (const chunk of transform.stream("generate", [5, 1024])) {
      assert.equal((chunk as Uint8Array).length, 1024);
      assert.equal((chunk as Uint8Array)[0], chunks++);
    }
    assert.equal(chunks, 5);
  } finally {
    await transform.close();
  }
});

test("an ungranted host function never reaches the fake: the plugin is refused and hostCalls stays empty", async () => {
  const bare = await startPlugin(`${fixtures}/host_caller_bare`, { hostFunctions: { now: () => "never" } });
  try {
    const answer = await bare.call("ask", ["now"]) as Record<string, unknown>;
    assert.equal(answer.code, "permission_denied");
    assert.deepEqual(bare.hostCalls, []);
  } finally {
    await bare.close();
  }
});
