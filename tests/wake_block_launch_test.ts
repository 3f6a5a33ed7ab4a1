/**
 * wake: "block" in the plugin launch (issue 12): the host hands each shm plugin its block bound in the launch
 * variables, plugins under Deno, Bun and Node answer calls that find them parked, and the host blocks while it
 * awaits their answers. Runs under every host runtime, sandboxed as by default.
 */
import assert from "node:assert/strict";
import { PluginHost, type PluginHostOptions } from "../mod.ts";
import { launchEnv } from "../src/protocol/launch.ts";
import { pluginBlockMicros } from "../src/transport/factory.ts";
import { examples, processRunning, root, segmentsLeft, segmentsOf, test } from "./_harness.ts";

/** One plugin per runtime. */
const plugins = [
  { name: "echo", dir: `${examples}/echo`, call: ["echo", ["hi"]], answer: "hi" }, // Deno
  { name: "kv", dir: `${examples}/kv`, call: ["size", []], answer: 0 }, // Bun
  { name: "node-echo", dir: `${root}tests/fixtures/node_echo`, call: ["echo", ["hi"]], answer: "hi" }, // Node
] as const;

/** Longer than the spin (both sides parked when the next call comes), shorter than the plugin's block bound. */
const idleMs = 3;
const rounds = 8;

test(
  'wake: "block" passes the plugins their bound; parked plugins answer and the host blocks for the answers',
  async () => {
    const segmentsBefore = segmentsOf();
    const launched: Record<string, string>[] = [];
    // Records what the default planner would launch with, and launches exactly that.
    const launchPlanner = {
      plan: (_manifest: unknown, base: { env: Record<string, string> }) => {
        launched.push(base.env);
        return base;
      },
    };
    const host = new PluginHost({ wake: "block", launchPlanner } as unknown as PluginHostOptions);
    const pids = new Set<number>();
    host.onState(() => host.list().forEach((p) => p.pids.forEach((pid) => pids.add(pid))));
    try {
      for (const plugin of plugins) {
        await host.load(plugin.dir);
        for (let i = 0; i < rounds; i++) {
          await new Promise((resolve) => setTimeout(resolve, idleMs));
          assert.deepEqual(await host.call(plugin.name, plugin.call[0], [...plugin.call[1]]), plugin.answer);
        }
        const stats = host.transportStats().find((s) => s.plugin === plugin.name);
        assert.ok(stats, `no transport stats for ${plugin.name}`);
        assert.ok(stats.blockedParks! > 0, `${plugin.name}: ${JSON.stringify(stats)}`);
        assert.ok(stats.wakeupsSent > 0, `the plugin was parked and woken: ${JSON.stringify(stats)}`);
      }
      assert.equal(launched.length, plugins.length);
      for (const env of launched) assert.equal(env[launchEnv.blockMicros], String(pluginBlockMicros));
    } finally {
      await host.close();
    }
    for (const pid of pids) assert.ok(!processRunning(pid), `plugin process ${pid} is gone after close()`);
    assert.deepEqual(await segmentsLeft([process.pid, ...pids], segmentsBefore), [], "no segment of ours left");
  },
  { timeoutMs: 120_000 },
);
