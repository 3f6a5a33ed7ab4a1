import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { CancelledError, DeadlineExceededError, PluginHost, RemoteError } from "../mod.ts";
import { PluginMetrics } from "../src/observe/metrics.ts";
import type { ResourceEvent } from "../src/host/types.ts";
import { examples, fixtures, processRunning, test } from "./_harness.ts";
import { instrumentedCall, until } from "./_ops.ts";
import { debianTool, pythonPrometheusPath } from "./_ops_tools.ts";

/** Checks `text` with promtool and with Python's prometheus-client parser; returns the parsed families. */
function checkExposition(
  text: string,
): Record<string, { type: string; samples: [string, Record<string, string>, number][] }> {
  const promtool = debianTool("promtool", "prometheus");
  const lint = spawnSync(promtool, ["check", "metrics"], { input: text, encoding: "utf8" });
  assert.equal(lint.status, 0, `promtool check metrics failed:\n${lint.stdout}${lint.stderr}`);
  const script = `
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = {}
for f in text_string_to_metric_families(sys.stdin.read()):
    out[f.name] = {"type": f.type, "samples": [[s.name, s.labels, s.value] for s in f.samples]}
print(json.dumps(out))
`;
  const parsed = spawnSync("python3", ["-c", script], {
    input: text,
    encoding: "utf8",
    env: { ...process.env, PYTHONPATH: pythonPrometheusPath() },
  });
  assert.equal(parsed.status, 0, `prometheus_client could not parse the exposition:\n${parsed.stderr}`);
  return JSON.parse(parsed.stdout);
}

function sample(families: ReturnType<typeof checkExposition>, name: string, labels: Record<string, string>): number {
  for (const family of Object.values(families)) {
    for (const [sampleName, sampleLabels, value] of family.samples) {
      if (sampleName === name && Object.entries(labels).every(([k, v]) => sampleLabels[k] === v)) return value;
    }
  }
  throw new Error(`no sample ${name} ${JSON.stringify(labels)}`);
}

test(
  "metrics count calls, errors by code, cancellations, deadline misses and crashes; promtool accepts them",
  async () => {
    const metrics = new PluginMetrics({ sampleIntervalMs: 0 });
    const host = new PluginHost({ dirs: [examples], logger: () => {}, restartBackoffMs: 10 });
    metrics.observe(host);
    const call = (method: string, args: unknown[] = [], options = {}) =>
      instrumentedCall(host, metrics.instrumentation, { plugin: "echo", method, args, options });
    try {
      await host.load("echo");
      metrics.sample();
      for (let i = 0; i < 20; i++) assert.equal(await call("echo", [i]), i);
      await assert.rejects(call("fail", ["on purpose"]), RemoteError);
      await assert.rejects(call("nope"), RemoteError);
      await assert.rejects(call("sleep", [10_000], { deadlineMs: 30 }), DeadlineExceededError);
      const controller = new AbortController();
      const pending = call("sleep", [10_000], { signal: controller.signal });
      setTimeout(() => controller.abort(), 20);
      await assert.rejects(pending, CancelledError);
      // A crash: the instance exits, the host restarts it, the metrics count both.
      const pid = host.list()[0].pid;
      await call("exit", [3]);
      await until(() => !processRunning(pid) && host.list()[0].state === "running" && host.list()[0].pid !== pid);
      metrics.sample();

      const families = checkExposition(await metrics.prometheus());
      const echo = { plugin: "echo", method: "echo" };
      assert.equal(sample(families, "plugin_shm_calls_total", echo), 20);
      assert.equal(sample(families, "plugin_shm_call_duration_seconds_count", echo), 20);
      assert.equal(sample(families, "plugin_shm_call_duration_seconds_bucket", { ...echo, le: "+Inf" }), 20);
      assert.ok(sample(families, "plugin_shm_call_duration_seconds_sum", echo) > 0);
      assert.equal(
        sample(families, "plugin_shm_call_errors_total", { plugin: "echo", method: "fail", code: "requested_failure" }),
        1,
      );
      assert.equal(
        sample(families, "plugin_shm_call_errors_total", { plugin: "echo", method: "nope", code: "method_not_found" }),
        1,
      );
      assert.equal(sample(families, "plugin_shm_call_deadline_misses_total", { plugin: "echo", method: "sleep" }), 1);
      assert.equal(sample(families, "plugin_shm_call_cancellations_total", { plugin: "echo", method: "sleep" }), 1);
      assert.equal(sample(families, "plugin_shm_calls_in_flight", echo), 0);
      assert.equal(sample(families, "plugin_shm_plugin_crashes_total", { plugin: "echo" }), 1);
      assert.equal(sample(families, "plugin_shm_plugin_restarts_total", { plugin: "echo" }), 1);
      assert.equal(sample(families, "plugin_shm_plugin_state", { plugin: "echo", state: "running" }), 1);
      assert.equal(sample(families, "plugin_shm_plugin_state", { plugin: "echo", state: "failed" }), 0);
      const newPid = String(host.list()[0].pid);
      assert.ok(sample(families, "plugin_shm_instance_resident_memory_bytes", { plugin: "echo", pid: newPid }) > 1e6);
      assert.ok(sample(families, "plugin_shm_instance_cpu_seconds_total", { plugin: "echo", pid: newPid }) >= 0);
      assert.ok(
        !("process_cpu_seconds" in families) && !("nodejs_heap_size_total_bytes" in families),
        "no default metrics",
      );

      const summary = metrics.summary("echo");
      assert.equal(summary.crashes, 1);
      assert.equal(summary.processes.length, 1);
      assert.ok(summary.callsPerSecond !== null && summary.callsPerSecond > 0);
      assert.ok(summary.p50Seconds !== null && summary.p99Seconds! >= summary.p50Seconds);
      const csv = metrics.csv().split("\r\n");
      assert.match(csv[0], /^plugin,method,calls,errors/);
      assert.ok(csv.some((line) => line.startsWith("echo,echo,20,0,")));
    } finally {
      metrics.close();
      await host.close();
    }
  },
  { timeoutMs: 240_000 },
);

test(
  "with the host's instrumentation and events, metrics count calls and denials and show resource readings and heartbeat round trips",
  async () => {
    const metrics = new PluginMetrics({ sampleIntervalMs: 0 });
    const host = new PluginHost({
      dirs: [fixtures],
      logger: () => {},
      resourceSampleMs: 100,
      heartbeatIntervalMs: 50,
      instrumentation: metrics.instrumentation,
      hostFunctions: { now: () => Date.now(), secret: () => "never returned" },
    });
    metrics.observe(host);
    const readings: ResourceEvent[] = [];
    const off = host.on("resource", (event) => void readings.push(event));
    try {
      const info = await host.load("host-caller");
      const denied = (await host.call("host-caller", "ask", ["secret"])) as { ok: boolean; code: string };
      assert.deepEqual([denied.ok, denied.code], [false, "permission_denied"]);
      assert.equal(((await host.call("host-caller", "ask", ["now"])) as { ok: boolean }).ok, true);
      let beats = 0;
      const offBeat = host.on("heartbeat", (e) => void (e.plugin === "host-caller" && beats++));
      await until(() => readings.some((r) => r.plugin === "host-caller") && beats > 0);
      offBeat();
      const families = checkExposition(await metrics.prometheus());
      const labels = { plugin: "host-caller" };
      assert.equal(sample(families, "plugin_shm_calls_total", { ...labels, method: "ask" }), 2);
      assert.equal(sample(families, "plugin_shm_plugin_permission_denials_total", labels), 1);
      const pid = String(info.pid);
      assert.ok(sample(families, "plugin_shm_instance_processes", { ...labels, pid }) >= 1);
      const rss = sample(families, "plugin_shm_instance_resident_memory_bytes", { ...labels, pid });
      // Metrics read /proc themselves (not through "resource" events); both read the same process tree.
      const hostRss = readings.findLast((r) => r.pid === info.pid)!.rssBytes;
      assert.ok(rss > 0 && Math.abs(rss - hostRss) < hostRss / 2, `RSS ${rss} against the host's reading ${hostRss}`);
      const rtt = sample(families, "plugin_shm_instance_heartbeat_rtt_seconds", { ...labels, pid });
      assert.ok(rtt > 0 && rtt < 60, `a heartbeat round trip in seconds, got ${rtt}`);
      // The reading lasts as long as its instance (a beating plugin is pinged only every tenth heartbeat), no longer.
      await host.unload("host-caller");
      const after = checkExposition(await metrics.prometheus());
      assert.throws(() => sample(after, "plugin_shm_instance_heartbeat_rtt_seconds", { ...labels, pid }), /no sample/);
    } finally {
      off();
      metrics.close();
      await host.close();
    }
  },
  { timeoutMs: 60_000 },
);

test(
  "metrics export each instance's messages and bytes both ways, ring fill levels and wake-ups; promtool accepts them",
  async () => {
    const metrics = new PluginMetrics({ sampleIntervalMs: 0 });
    const host = new PluginHost({ dirs: [examples], logger: () => {} });
    metrics.observe(host);
    try {
      await host.load("echo");
      const before = host.transportStats();
      assert.equal(before.length, 1);
      const text = "x".repeat(1000);
      for (let i = 0; i < 10; i++) assert.equal(await host.call("echo", "echo", [text]), text);
      const [after] = host.transportStats();
      assert.equal(after.plugin, "echo");
      assert.equal(after.pid, host.list()[0].pid);
      // Ten requests out and ten responses back, each carrying the 1000-character argument (heartbeats may add more).
      assert.ok(after.messagesSent - before[0].messagesSent >= 10);
      assert.ok(after.messagesReceived - before[0].messagesReceived >= 10);
      assert.ok(after.bytesSent - before[0].bytesSent >= 10_000, `sent ${after.bytesSent - before[0].bytesSent} bytes`);
      assert.ok(after.bytesReceived - before[0].bytesReceived >= 10_000);

      const families = checkExposition(await metrics.prometheus());
      const labels = { plugin: "echo", pid: String(after.pid) };
      const sent = sample(families, "plugin_shm_instance_messages_total", { ...labels, direction: "sent" });
      assert.ok(sent >= after.messagesSent, `exported ${sent} messages sent`);
      assert.ok(
        sample(families, "plugin_shm_instance_transport_bytes_total", { ...labels, direction: "received" }) >=
          after.bytesReceived,
      );
      if (after.ringBytes > 0) { // shm, the default transport
        assert.equal(sample(families, "plugin_shm_instance_ring_capacity_bytes", labels), after.ringBytes);
        const used = sample(families, "plugin_shm_instance_ring_used_bytes", { ...labels, ring: "send" });
        assert.ok(used >= 0 && used <= after.ringBytes);
        assert.ok(sample(families, "plugin_shm_instance_wakeups_sent_total", labels) >= 0);
        // Between calls the host parks and the plugin's response wakes it.
        assert.ok(sample(families, "plugin_shm_instance_wakeups_received_total", labels) >= 1);
        const yields = sample(families, "plugin_shm_instance_spin_yields_total", labels);
        assert.ok(
          yields >= after.spinYields!,
          `exported ${yields} spin yields, the channel counted ${after.spinYields}`,
        );
      }
    } finally {
      metrics.close();
      await host.close();
    }
  },
  { timeoutMs: 120_000 },
);

test(
  "metrics count stream items and their bytes both ways: ten chunks through a stream show ten each way",
  async () => {
    const metrics = new PluginMetrics({ sampleIntervalMs: 0 });
    const host = new PluginHost({ dirs: [examples], logger: () => {} });
    metrics.observe(host);
    try {
      await host.load("transform");
      const input = (async function* () {
        for (let i = 0; i < 10; i++) yield new TextEncoder().encode("a".repeat(1000));
      })();
      let chunks = 0;
      for await (const chunk of host.stream("transform", "upper", [], input)) {
        assert.equal(new TextDecoder().decode(chunk as Uint8Array), "A".repeat(1000));
        chunks++;
      }
      assert.equal(chunks, 10);
      const [stats] = host.transportStats();
      assert.equal(stats.streamItemsSent, 10);
      assert.equal(stats.streamItemsReceived, 10);
      // Each item's frame holds its 1000 bytes plus the frame header and MessagePack framing.
      assert.ok(stats.streamBytesSent >= 10_000 && stats.streamBytesSent < 11_000, `${stats.streamBytesSent} bytes`);
      assert.ok(stats.streamBytesReceived >= 10_000 && stats.streamBytesReceived < 11_000);

      const families = checkExposition(await metrics.prometheus());
      const labels = { plugin: "transform", pid: String(stats.pid) };
      assert.equal(sample(families, "plugin_shm_instance_stream_items_total", { ...labels, direction: "sent" }), 10);
      assert.equal(
        sample(families, "plugin_shm_instance_stream_items_total", { ...labels, direction: "received" }),
        10,
      );
      assert.equal(
        sample(families, "plugin_shm_instance_stream_bytes_total", { ...labels, direction: "received" }),
        stats.streamBytesReceived,
      );
    } finally {
      metrics.close();
      await host.close();
    }
  },
  { timeoutMs: 120_000 },
);
