import assert from "node:assert/strict";
import { cpSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import {
  PluginCrashedError,
  PluginHost,
  type PluginHostOptions,
  PluginNotFoundError,
  PluginStalledError,
  ReloadError,
  type StateEvent,
} from "../mod.ts";
import { examples, fixtures, processRunning as alive, root, segmentsLeft, segmentsOf, test } from "./_harness.ts";

async function until(what: string, check: () => boolean, limitMs = 20_000): Promise<void> {
  const started = Date.now();
  while (!check()) {
    if (Date.now() - started > limitMs) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function withHost(options: PluginHostOptions, body: (host: PluginHost, events: StateEvent[]) => Promise<void>) {
  const host = new PluginHost({ dirs: [examples], logger: () => {}, restartBackoffMs: 20, ...options });
  const events: StateEvent[] = [];
  const segmentsBefore = segmentsOf();
  host.onState((e) => events.push(e));
  const pids = new Set<number>();
  host.onState(() => host.list().forEach((p) => p.pids.forEach((pid) => pids.add(pid))));
  try {
    await body(host, events);
  } finally {
    await host.close();
    for (const pid of pids) assert.ok(!alive(pid), `plugin process ${pid} is gone after close()`);
    assert.deepEqual(await segmentsLeft([process.pid, ...pids], segmentsBefore), [], "no segment of ours left");
  }
}

test("a crashed plugin is restarted with backoff and serves again; waiting calls get through", async () => {
  await withHost({}, async (host, events) => {
    await host.load("echo");
    // The host's pid of the instance (the sandbox launcher's); inside its PID namespace the plugin sees another.
    const before = host.list()[0].pid;
    host.call("echo", "exit", [4]).catch(() => {});
    await until("the crash", () => events.some((e) => e.state === "crashed"));
    const crashedAt = performance.now();
    // A call made while it restarts waits (policy "wait") and succeeds.
    assert.equal(await host.call("echo", "add", [1, 2]), 3);
    console.log(`crash → serving again in ${(performance.now() - crashedAt).toFixed(0)} ms`);
    assert.notEqual(host.list()[0].pid, before);
    const kinds = events.map((e) => e.state);
    assert.ok(kinds.indexOf("crashed") < kinds.indexOf("restarting"), kinds.join(","));
    assert.ok(kinds.lastIndexOf("ready") > kinds.indexOf("restarting"), kinds.join(","));
    assert.ok(events.every((e) => typeof e.at === "number" && e.reason.length > 0));
  });
}, { timeoutMs: 60_000 });

test("a crash loop reaches the limit, the plugin stays failed, and restart() brings it back", async () => {
  await withHost({ dirs: [fixtures], crashLimit: 3, crashWindowMs: 60_000 }, async (host, events) => {
    await host.load("crashy");
    await until("failed", () => host.list()[0].state === "failed");
    assert.equal(events.filter((e) => e.state === "crashed").length, 3);
    assert.match(events.at(-1)!.reason, /3 crashes within 60000 ms \(limit 3\)/);
    await assert.rejects(host.call("crashy", "ping"), (e: unknown) => {
      assert.ok(e instanceof PluginNotFoundError);
      assert.match(e.message, /is failed; restart it with host.restart\("crashy"\)/);
      return true;
    });
    const info = await host.restart("crashy");
    assert.equal(info.state, "running");
    assert.equal(info.crashes, 0);
  });
}, { timeoutMs: 60_000 });

test("a plugin stuck in a synchronous loop is detected, killed and restarted; its calls fail as stalled", async () => {
  await withHost({ heartbeatIntervalMs: 100, stallTimeoutMs: 400, stallGraceMs: 300 }, async (host, events) => {
    await host.load("echo");
    await assert.rejects(host.call("echo", "spin", [120_000]), PluginStalledError);
    const kinds = events.map((e) => e.state);
    assert.ok(kinds.includes("unresponsive"), kinds.join(","));
    assert.equal(await host.call("echo", "add", [2, 2]), 4, "restarted and serving");
  });
}, { timeoutMs: 60_000 });

test("SIGKILL of a plugin during a stream fails the stream with PluginCrashedError", async () => {
  await withHost({}, async (host) => {
    const info = await host.load("transform");
    let chunks = 0;
    await assert.rejects(
      (async () => {
        for await (const _ of host.stream("transform", "generate", [1_000_000, 4096])) {
          if (++chunks === 50) process.kill(info.pid!, "SIGKILL");
        }
      })(),
      PluginCrashedError,
    );
    assert.ok(chunks >= 50);
  });
}, { timeoutMs: 60_000 });

test("a hot reload under steady load fails no call and keeps the kv store's state", async () => {
  await withHost({}, async (host, events) => {
    await host.load("kv");
    for (let i = 0; i < 100; i++) await host.call("kv", "set", [`k${i}`, i]);
    const oldPid = host.list()[0].pid;
    let stop = false;
    // Calls each worker completed; the reload starts once every worker has
    // made calls and ends only after every worker made more, so calls were in
    // flight across the swap whatever the machine's speed.
    const done = [0, 0, 0, 0];
    const failures: unknown[] = [];
    const worker = async (w: number) => {
      for (let i = 0; !stop; i++) {
        try {
          assert.equal(await host.call("kv", "get", [`k${(w * 7 + i) % 100}`]), (w * 7 + i) % 100);
          await host.call("kv", "set", [`w${w}`, i]);
          done[w] += 2;
        } catch (error) {
          failures.push(error);
          if (failures.length > 5) throw error;
        }
      }
    };
    const workers = [0, 1, 2, 3].map(worker);
    await until("every worker calling", () => done.every((n) => n > 0));
    const reloading = host.reload("kv");
    const beforeSwap = [...done];
    await reloading;
    const afterSwap = [...done];
    await until("every worker calling the new instance", () => done.every((n, w) => n > afterSwap[w]));
    stop = true;
    await Promise.allSettled(workers);
    assert.deepEqual(failures.map(String), []);
    assert.ok(done.every((n, w) => n > beforeSwap[w]), "every worker's calls went on through the reload");
    assert.notEqual(host.list()[0].pid, oldPid, "a new process serves");
    assert.equal(await host.call("kv", "size"), 104, "state was handed over");
    console.log(events.find((e) => e.state === "reloaded")?.reason);
  });
}, { timeoutMs: 60_000 });

test("a reload to a broken version is rolled back and the old instance keeps serving", async () => {
  const dir = mkdtempSync(`${tmpdir()}/pshm-reload-`);
  cpSync(`${examples}/kv`, `${dir}/kv`, { recursive: true });
  // The copy imports the SDK by a relative path; point it at this checkout.
  const entry = `${dir}/kv/main.ts`;
  const source = (await import("node:fs")).readFileSync(entry, "utf8").replace(
    "../../../plugin.ts",
    `${root}plugin.ts`,
  );
  writeFileSync(entry, source);
  try {
    await withHost({ dirs: [dir] }, async (host, events) => {
      await host.load("kv");
      await host.call("kv", "set", ["a", 1]);
      writeFileSync(entry, `throw new Error("broken build");\n`);
      await assert.rejects(host.reload("kv"), (e: unknown) => {
        assert.ok(e instanceof ReloadError);
        assert.match(e.message, /rolled back: .*broken build/s);
        return true;
      });
      assert.equal(events.at(-1)?.state, "rolled-back");
      assert.equal(await host.call("kv", "get", ["a"]), 1, "the old instance still serves, with its state");
      assert.equal(host.list()[0].state, "running");
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, { timeoutMs: 60_000 });

test("in a pool, killing one instance fails only its own calls; the others keep serving", async () => {
  await withHost({ instances: { echo: 3 } }, async (host) => {
    const info = await host.load("echo");
    assert.equal(info.pids.length, 3);
    const calls = Array.from({ length: 6 }, () => host.call("echo", "sleep", [400]).then(() => "ok", (e) => e));
    await new Promise((r) => setTimeout(r, 100));
    process.kill(info.pids[1], "SIGKILL");
    const results = await Promise.all(calls);
    const crashed = results.filter((r) => r instanceof PluginCrashedError);
    assert.equal(crashed.length, 2, "the killed instance had two of the six calls");
    assert.equal(results.filter((r) => r === "ok").length, 4);
    for (let i = 0; i < 10; i++) assert.equal(await host.call("echo", "add", [i, 1]), i + 1);
  });
}, { timeoutMs: 60_000 });

test("stopping the host lets calls in flight finish and refuses new ones", async () => {
  await withHost({}, async (host) => {
    await host.load("echo");
    const inFlight = [host.call("echo", "sleep", [300]), host.call("echo", "sleep", [300])];
    await new Promise((r) => setTimeout(r, 50));
    const stopping = host.unload("echo");
    await assert.rejects(host.call("echo", "add", [1, 1]), PluginNotFoundError);
    assert.deepEqual(await Promise.all(inFlight), ["slept 300 ms", "slept 300 ms"]);
    await stopping;
    assert.equal(host.list()[0].state, "stopped");
  });
}, { timeoutMs: 60_000 });
