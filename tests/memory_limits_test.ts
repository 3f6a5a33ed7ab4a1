/**
 * The memory budget from the attacker's side: a plugin that allocates past
 * its manifest's `limits.memorySoftMiB` is paused (and resumes when asked);
 * past `limits.memoryMiB` it is killed, its pending call fails with a
 * PluginLimitError, and supervision restarts it. Other plugins keep serving.
 */
import assert from "node:assert/strict";
import process from "node:process";
import {
  DeadlineExceededError,
  type LimitEvent,
  PluginHost,
  PluginLimitError,
  type ResourceEvent,
  type StateEvent,
} from "../mod.ts";
import { examples, fixtures, processRunning, segmentsLeft, segmentsOf, test } from "./_harness.ts";

/** Resolves with the first event of `events` (filled by a listener) that `match` accepts. */
function next<T>(events: T[], match: (event: T) => boolean): Promise<T> {
  return new Promise((resolve) => {
    const look = () => {
      const found = events.find(match);
      if (found) resolve(found);
      else setTimeout(look, 10);
    };
    look();
  });
}

const mib = 1024 * 1024;

test(
  "a plugin over its soft memory limit is paused and resumes when asked; over the hard limit it is killed with PluginLimitError and restarted",
  async () => {
    const segmentsBefore = segmentsOf();
    const limits: LimitEvent[] = [];
    const states: StateEvent[] = [];
    const samples: ResourceEvent[] = [];
    const host = new PluginHost({ dirs: [fixtures, examples], hostFunctions: {} });
    host.on("limit", (event) => limits.push(event));
    host.on("state", (event) => states.push(event));
    const pids: (number | undefined)[] = [];
    try {
      pids.push((await host.load("memory-hog")).pid, (await host.load("echo")).pid);
      const unsubscribe = host.on("resource", (event) => samples.push(event));
      await next(samples, (e) => e.plugin === "memory-hog");
      unsubscribe();
      const sample = samples.find((e) => e.plugin === "memory-hog")!;
      assert.ok(sample.rssBytes > 0 && sample.rssBytes < 256 * mib, `starts under the soft limit: ${sample.rssBytes}`);
      assert.ok(sample.processes >= 1 && sample.cpuSeconds >= 0);

      // Over the soft limit (256 MiB): paused, perhaps in the middle of allocating (the call then waits).
      const growing = host.call("memory-hog", "grow", [260], { deadlineMs: 60_000 });
      const paused = await next(limits, (e) => e.action === "paused");
      assert.equal(paused.plugin, "memory-hog");
      assert.equal(paused.limit, "memorySoftMiB");
      assert.equal(paused.limitBytes, 256 * mib);
      assert.ok(paused.rssBytes > paused.limitBytes);
      assert.ok(states.some((e) => e.plugin === "memory-hog" && e.state === "paused"));
      // A paused plugin answers nothing; the others serve on.
      await assert.rejects(host.call("memory-hog", "ping", [], { deadlineMs: 300 }), DeadlineExceededError);
      assert.equal(await host.call("echo", "add", [2, 3]), 5);

      // Resumed on request, and not paused again while it stays over.
      assert.equal(host.resume("memory-hog"), 1);
      const resumed = await next(limits, (e) => e.action === "resumed");
      assert.equal(resumed.reason, "asked");
      assert.ok((await growing as number) >= 260, "the call that was paused mid-way completes once resumed");
      assert.equal(await host.call("memory-hog", "ping"), "pong");
      assert.equal(host.resume("memory-hog"), 0, "nothing left to resume");

      // Over the hard limit (400 MiB): killed, the pending call gets PluginLimitError.
      // The host's pid of the instance (the sandbox launcher's): inside its PID namespace the plugin sees another.
      const firstPid = host.list().find((p) => p.name === "memory-hog")!.pid!;
      await assert.rejects(host.call("memory-hog", "grow", [200, 30_000], { deadlineMs: 60_000 }), (error: unknown) => {
        assert.ok(error instanceof PluginLimitError, `got ${String(error)}`);
        assert.equal(error.code, "limit_exceeded");
        assert.equal(error.limit, "memoryMiB");
        assert.match(error.message, /over its limit limits\.memoryMiB = 400 MiB/);
        assert.match(error.message, /raise limits\.memoryMiB in its plugin\.json/);
        return true;
      });
      const killed = await next(limits, (e) => e.action === "killed");
      assert.equal(killed.limit, "memoryMiB");
      assert.equal(killed.pid, firstPid);
      // Restarted by the normal policy, with fresh memory.
      await next(
        states,
        (e) => e.plugin === "memory-hog" && e.state === "ready" && !e.reason.includes(`pid ${firstPid}`),
      );
      assert.equal(await host.call("memory-hog", "ping", [], { deadlineMs: 30_000 }), "pong");
      const secondPid = host.list().find((p) => p.name === "memory-hog")!.pid!;
      pids.push(secondPid);
      assert.notEqual(secondPid, firstPid);
      assert.ok(!processRunning(firstPid), "the killed instance is gone");
      assert.equal(await host.call("echo", "add", [2, 3]), 5, "the other plugin never noticed");
    } finally {
      await host.close();
    }
    for (const pid of pids) assert.ok(!processRunning(pid), `plugin ${pid} is gone after close()`);
    assert.deepEqual(await segmentsLeft([process.pid, ...pids], segmentsBefore), []);
  },
  { timeoutMs: 120_000 },
);

test(
  "closing a host while a plugin is paused for memory stops it without waiting for signals to escalate",
  async () => {
    const limits: LimitEvent[] = [];
    const host = new PluginHost({ dirs: [fixtures], stopTimeoutMs: 60_000 });
    host.on("limit", (event) => limits.push(event));
    let pid: number | undefined;
    try {
      pid = (await host.load("memory-hog")).pid;
      host.call("memory-hog", "grow", [260]).catch(() => {/* ends with the host */});
      await next(limits, (e) => e.action === "paused");
    } finally {
      // With a 60 s stop timeout, only a resumed plugin can stop politely before this test's own timeout.
      await host.close();
    }
    assert.ok(!processRunning(pid), "the paused plugin is gone after close()");
  },
  { timeoutMs: 45_000 },
);

test("a host samples plugins without limits only while someone listens for resource events, as often as they come and go", async () => {
  const host = new PluginHost({ dirs: [examples], resourceSampleMs: 20 });
  let pid: number | undefined;
  try {
    pid = (await host.load("echo")).pid;
    for (let round = 0; round < 2; round++) {
      const samples: ResourceEvent[] = [];
      const unsubscribe = host.on("resource", (event) => samples.push(event));
      const sample = await next(samples, (e) => e.plugin === "echo");
      unsubscribe();
      assert.equal(sample.pid, pid, `round ${round}: the sample is of the loaded instance`);
      assert.ok(sample.rssBytes > 0);
    }
    assert.equal(await host.call("echo", "add", [2, 3]), 5);
  } finally {
    await host.close();
  }
  assert.ok(!processRunning(pid), "the plugin is gone after close()");
});
