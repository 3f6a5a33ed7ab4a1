import assert from "node:assert/strict";
import { test } from "../../tests/_harness.ts";
import type { PluginInfo, StateEvent } from "../host/host.ts";
import { latencyBucketsSeconds, methodOverflowLabel, methodsPerPluginMax, PluginMetrics, quantile } from "./metrics.ts";

/** A plugin as list() reports it; fields these tests do not read are left out. */
function fakeInfo(name: string): PluginInfo {
  return {
    name,
    version: "1.0.0",
    runtime: "deno",
    state: "running",
    pid: undefined,
    pids: [],
    transport: "shm",
    methods: [],
    dir: "/nowhere",
    crashes: 0,
    history: [],
  } as PluginInfo;
}

test("quantile() interpolates inside the bucket like histogram_quantile()", () => {
  const buckets = new Float64Array(latencyBucketsSeconds.length + 1);
  buckets[3] = 100; // all in (5 µs, 10 µs]
  assert.ok(Math.abs(quantile(0.5, buckets)! - 0.0000075) < 1e-12);
  assert.equal(quantile(0.5, new Float64Array(buckets.length)), null);
  buckets[buckets.length - 1] = 1000; // +Inf: reported as the largest finite bound
  assert.equal(quantile(0.99, buckets), latencyBucketsSeconds.at(-1));
});

test("calls to more distinct methods than the limit are counted under one overflow label", () => {
  const metrics = new PluginMetrics({ sampleIntervalMs: 0 });
  const listeners: ((e: StateEvent) => void)[] = [];
  metrics.observe({ list: () => [fakeInfo("p")], onState: (l) => (listeners.push(l), () => {}) });
  for (let i = 0; i < methodsPerPluginMax + 50; i++) {
    const state = metrics.instrumentation.begin("p", `m${i}`);
    metrics.instrumentation.end(
      "p",
      `m${i}`,
      state,
      i % 2 ? Object.assign(new Error("x"), { code: `c${i}` }) : undefined,
    );
  }
  const methods = metrics.methods();
  assert.equal(methods.length, methodsPerPluginMax);
  const overflow = methods.find((m) => m.method === methodOverflowLabel)!;
  assert.equal(overflow.calls, 51);
  assert.ok(Object.keys(overflow.errorsByCode).length <= 33);
  metrics.close();
});

test("a histogram observed through the instrumentation has cumulative, increasing buckets", async () => {
  const metrics = new PluginMetrics({ sampleIntervalMs: 0 });
  metrics.observe({ list: () => [fakeInfo("p")], onState: () => () => {} });
  for (let i = 0; i < 10; i++) metrics.instrumentation.end("p", "m", performance.now() - i, undefined);
  const text = await metrics.prometheus();
  const buckets = [...text.matchAll(/call_duration_seconds_bucket\{[^}]*\} (\d+)/g)].map((m) => Number(m[1]));
  assert.equal(buckets.length, latencyBucketsSeconds.length + 1);
  for (let i = 1; i < buckets.length; i++) assert.ok(buckets[i] >= buckets[i - 1]);
  assert.equal(buckets.at(-1), 10);
  assert.doesNotMatch(text, /nodejs_|process_/);
  metrics.close();
});

test("with timedCallEvery, every call is counted and one in N is timed into the histogram", async () => {
  const metrics = new PluginMetrics({ sampleIntervalMs: 0, timedCallEvery: 4 });
  metrics.observe({ list: () => [fakeInfo("p")], onState: () => () => {} });
  for (let i = 0; i < 100; i++) {
    const state = metrics.instrumentation.begin("p", "m");
    metrics.instrumentation.end("p", "m", state, i === 0 ? new Error("first") : undefined);
  }
  const text = await metrics.prometheus();
  assert.match(text, /plugin_shm_calls_total\{plugin="p",method="m"\} 100\n/);
  assert.match(text, /plugin_shm_call_errors_total\{plugin="p",method="m",code="Error"\} 1\n/);
  assert.match(text, /plugin_shm_call_duration_seconds_count\{plugin="p",method="m"\} 25\n/);
  assert.match(text, /plugin_shm_call_duration_seconds_bucket\{plugin="p",method="m",le="\+Inf"\} 25\n/);
  assert.equal(metrics.methods()[0].inFlight, 0);
  metrics.close();
});

test("by default a method is timed on every call until a sample finds it busy, then one call in 8", async () => {
  const metrics = new PluginMetrics({ sampleIntervalMs: 0 });
  metrics.observe({ list: () => [fakeInfo("p")], onState: () => () => {} });
  const calls = async (n: number) => {
    for (let i = 0; i < n; i++) metrics.instrumentation.end("p", "m", metrics.instrumentation.begin("p", "m"));
    const text = await metrics.prometheus();
    return Number(/plugin_shm_call_duration_seconds_count\{plugin="p",method="m"\} (\d+)\n/.exec(text)![1]);
  };
  assert.equal(await calls(200), 200, "not sampled yet: every call timed");
  metrics.sample(); // 200 calls in far less than the 200 ms that would make them 1000 a second: busy.
  assert.equal(await calls(200), 225, "busy: one in 8 of the next 200");
  metrics.sample(); // Still busy: the 200 calls since the last sample.
  metrics.sample(); // No call since the last sample: quiet again.
  assert.equal(await calls(10), 235, "quiet: every call");
  assert.match(await metrics.prometheus(), /plugin_shm_calls_total\{plugin="p",method="m"\} 410\n/);
  metrics.close();
});
