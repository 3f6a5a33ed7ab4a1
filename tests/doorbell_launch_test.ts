/**
 * The doorbell in the plugin launch (issue 12): plugins under Deno, Bun and
 * Node connect the doorbell their host sets up and are woken through it while
 * parked; either side without one falls back to the futex; strangers on the
 * socket change nothing; a plugin killed while parked is still seen to crash.
 * Runs under every host runtime, sandboxed as by default.
 */
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { type LogEntry, PluginCrashedError, PluginHost, type PluginHostOptions, type StateEvent } from "../mod.ts";
import { launchEnv } from "../src/protocol/launch.ts";
import { listenTransport } from "../src/transport/factory.ts";
import { directoryPrefix, doorbellKeyBytes } from "../src/transport/_doorbell.ts";
import {
  examples,
  openSockets,
  processRunning,
  root,
  segmentsLeft,
  segmentsOf,
  socketsLeft,
  test,
} from "./_harness.ts";

/** One plugin per runtime. */
const plugins = [
  { name: "echo", dir: `${examples}/echo`, call: ["echo", ["hi"]], answer: "hi" }, // Deno
  { name: "kv", dir: `${examples}/kv`, call: ["size", []], answer: 0 }, // Bun
  { name: "node-echo", dir: `${root}tests/fixtures/node_echo`, call: ["echo", ["hi"]], answer: "hi" }, // Node
] as const;

/** Longer than any spin (50 µs by default), so both sides are parked when the next call comes. */
const idleMs = 30;
const rounds = 8;

/** This process's doorbell directories (other processes, e.g. other test runs, have their own pid in the name). */
function doorbellDirs(): string[] {
  return readdirSync(tmpdir()).filter((name) => name.startsWith(`${directoryPrefix}${process.pid}-`));
}

async function withHost(
  options: PluginHostOptions,
  body: (host: PluginHost, logs: LogEntry[], events: StateEvent[]) => Promise<void>,
): Promise<void> {
  const logs: LogEntry[] = [];
  const events: StateEvent[] = [];
  const segmentsBefore = segmentsOf();
  const socketsBefore = openSockets();
  const dirsBefore = doorbellDirs();
  // The doorbell is opt-in (wakeDefault is "futex"): these tests ask for it unless they say otherwise.
  const host = new PluginHost({ logger: (entry) => logs.push(entry), wake: "doorbell", ...options });
  host.onState((event) => events.push(event));
  const pids = new Set<number>();
  host.onState(() => host.list().forEach((p) => p.pids.forEach((pid) => pids.add(pid))));
  try {
    await body(host, logs, events);
  } finally {
    await host.close();
    for (const pid of pids) assert.ok(!processRunning(pid), `plugin process ${pid} is gone after close()`);
    assert.deepEqual(await segmentsLeft([process.pid, ...pids], segmentsBefore), [], "no segment of ours left");
    // Generous: a runtime closes a socket's descriptor once its pending read is cancelled, a loop turn or so later,
    // and a loaded machine stretches loop turns.
    assert.deepEqual(await socketsLeft(socketsBefore, 10_000), [], "no socket of ours left open");
    assert.deepEqual(doorbellDirs().filter((d) => !dirsBefore.includes(d)), [], "no doorbell directory left");
  }
}

/** Calls after an idle pause each, so every call finds the plugin parked. */
async function parkedCalls(host: PluginHost, plugin: (typeof plugins)[number]): Promise<void> {
  for (let i = 0; i < rounds; i++) {
    await new Promise((resolve) => setTimeout(resolve, idleMs));
    assert.deepEqual(await host.call(plugin.name, plugin.call[0], [...plugin.call[1]]), plugin.answer);
  }
}

function statsOf(host: PluginHost, name: string) {
  const stats = host.transportStats().find((s) => s.plugin === name);
  assert.ok(stats, `no transport stats for ${name}`);
  return stats;
}

function noDoorbellLines(logs: LogEntry[]): string[] {
  return logs.map((entry) => entry.line).filter((line) => /no doorbell/.test(line));
}

test(
  "Deno, Bun and Node plugins launched with the doorbell answer calls after being parked, woken through it",
  async () => {
    await withHost({}, async (host, logs) => {
      for (const plugin of plugins) await host.load(plugin.dir);
      for (const plugin of plugins) {
        await parkedCalls(host, plugin);
        const stats = statsOf(host, plugin.name);
        // The plugin parked on its doorbell (it does so only once the host accepted its key) and the host rang it.
        assert.ok(stats.doorbellWakeupsSent! > 0, `${plugin.name}: ${JSON.stringify(stats)}`);
      }
      assert.deepEqual(noDoorbellLines(logs), []);
    });
  },
  { timeoutMs: 120_000 },
);

test(
  'wake: "futex" launches plugins without a doorbell; parked plugins are still woken, through the futex',
  async () => {
    await withHost({ wake: "futex" }, async (host) => {
      await host.load(plugins[0].dir);
      await parkedCalls(host, plugins[0]);
      const stats = statsOf(host, plugins[0].name);
      assert.ok(stats.wakeupsSent > 0, JSON.stringify(stats));
      assert.equal(stats.doorbellWakeupsSent, 0);
      assert.equal(stats.doorbellWakeupsReceived, 0);
    });
  },
  { timeoutMs: 60_000 },
);

test("a plugin that does not connect the doorbell its host offers is woken through the futex", async () => {
  // A launch planner that drops the doorbell variables: the plugin knows of no doorbell, like a plugin written
  // from docs/protocol.md that ignores them; the host listens for one that never comes.
  const launchPlanner = {
    plan: (_manifest: unknown, base: { env: Record<string, string> }) => {
      const env = { ...base.env };
      delete env[launchEnv.doorbell];
      delete env[launchEnv.doorbellKey];
      return { ...base, env };
    },
  };
  await withHost({ launchPlanner } as unknown as PluginHostOptions, async (host) => {
    for (const plugin of plugins.slice(0, 2)) {
      await host.load(plugin.dir);
      await parkedCalls(host, plugin);
      const stats = statsOf(host, plugin.name);
      assert.ok(stats.wakeupsSent > 0, JSON.stringify(stats));
      assert.equal(stats.doorbellWakeupsSent, 0);
      assert.equal(stats.doorbellWakeupsReceived, 0);
    }
  });
}, { timeoutMs: 60_000 });

/** A stranger's connection to `path`: writes `bytes` (if any) and reports how it ended. */
function stranger(path: string, bytes?: Uint8Array): Promise<"closed by the host" | "refused" | "still open"> {
  return new Promise((resolve) => {
    const socket = connect(path);
    const timer = setTimeout(() => (socket.destroy(), resolve("still open")), 20_000);
    socket.on("connect", () => bytes && socket.write(bytes));
    socket.on("data", () => {}); // A stranger is never answered; if it were, the close below would still come.
    socket.on("error", (error: Error & { code?: string }) => {
      clearTimeout(timer);
      resolve(error.code === "ENOENT" || error.code === "ECONNREFUSED" ? "refused" : "closed by the host");
    });
    socket.on("close", () => (clearTimeout(timer), resolve("closed by the host")));
  });
}

test("strangers on the doorbell socket (wrong key, garbage, a flood of idle connections) change nothing", async () => {
  const attempts: Promise<string>[] = [];
  let path = "";
  // The stranger learns the path as early as anyone can: before the plugin even starts.
  const launchPlanner = {
    plan: (_manifest: unknown, base: { env: Record<string, string> }) => {
      path = base.env[launchEnv.doorbell];
      assert.ok(path, "the host offers a doorbell");
      attempts.push(stranger(path, new Uint8Array(doorbellKeyBytes))); // the wrong key
      attempts.push(stranger(path, new Uint8Array(doorbellKeyBytes * 3).fill(7))); // key-sized garbage and more
      for (let i = 0; i < 12; i++) attempts.push(stranger(path)); // connects and says nothing
      return base;
    },
  };
  await withHost({ launchPlanner } as unknown as PluginHostOptions, async (host, logs) => {
    await host.load(plugins[0].dir);
    await parkedCalls(host, plugins[0]);
    // The plugin's own doorbell got through all the same.
    assert.ok(statsOf(host, plugins[0].name).doorbellWakeupsSent! > 0);
    assert.deepEqual(noDoorbellLines(logs), []);
    // Every stranger was closed (the listener closes the rest once the plugin's key arrived) ...
    assert.deepEqual(new Set(await Promise.all(attempts)), new Set(["closed by the host"]));
    // ... and nobody can connect any more: the socket and its directory are gone.
    assert.equal(await stranger(path, new Uint8Array(doorbellKeyBytes)), "refused");
    assert.deepEqual(await host.call("echo", "add", [2, 3]), 5);
  });
}, { timeoutMs: 60_000 });

test("a plugin killed while parked on its doorbell is reported as crashed, its pending call failed", async () => {
  await withHost({ restart: false }, async (host, _logs, events) => {
    await host.load(plugins[0].dir);
    await parkedCalls(host, plugins[0]);
    assert.ok(statsOf(host, "echo").doorbellWakeupsSent! > 0);
    // Both sides parked: the plugin in its timer, the host waiting for the answer.
    const pending = host.call("echo", "sleep", [60_000]);
    await new Promise((resolve) => setTimeout(resolve, 200));
    process.kill(host.list()[0].pid!, "SIGKILL");
    await assert.rejects(pending, PluginCrashedError);
    assert.ok(events.some((event) => event.plugin === "echo" && event.state === "crashed"));
  });
}, { timeoutMs: 60_000 });

test('an unknown wake option is refused with a TypeError naming "doorbell" and "futex"', async () => {
  assert.throws(
    () => new PluginHost({ wake: "bell" as "doorbell" }),
    (error: Error) =>
      error instanceof TypeError && /wake must be "doorbell", "futex" or "block", got "bell"/.test(error.message),
  );
  await assert.rejects(
    listenTransport("shm", { wake: "poll" as "futex" }),
    (error: Error) => error instanceof TypeError && /wake must be "doorbell", "futex" or "block"/.test(error.message),
  );
});
