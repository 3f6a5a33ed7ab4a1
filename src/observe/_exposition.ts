/**
 * The Prometheus families of {@link PluginMetrics}: each reads the plain
 * counters the metrics keep (see metrics.ts) when prom-client asks for it at a
 * scrape, so nothing here runs on the call path. Private to observe/.
 *
 * @module
 */

import type { Metric, Registry } from "prom-client";
import type { PluginInfo, PluginState } from "../host/host.ts";
import type { HeartbeatEvent, InstanceTransportStats } from "../host/types.ts";
import { latencyBucketsSeconds, type ProcessSample } from "./metrics.ts";

/** Counters for one plugin method. */
export interface MethodStats {
  readonly method: string;
  calls: number;
  /** Calls whose latency was measured (all of them unless `timedCallEvery` > 1). */
  timed: number;
  inFlight: number;
  cancellations: number;
  deadlineMisses: number;
  sumSeconds: number;
  /** Non-cumulative counts per bucket; the last slot is +Inf. */
  readonly buckets: Float64Array;
  readonly errors: Map<string, number>;
  /** Time one call in this many now (see PluginMetricsOptions.timedCallEvery), and the calls since the last timed one. */
  timeEvery: number;
  tick: number;
  /** `calls` and Date.now() at the last history sample, for the call rate that picks `timeEvery` in "auto". */
  callsAtSample: number;
  sampledAt: number;
}

/** Counters for one plugin (the history fields are the metrics' own). */
export interface PluginCounters {
  readonly methods: Map<string, MethodStats>;
  restarts: number;
  crashes: number;
  reloads: number;
  reloadFailures: number;
}

/** What the families read, at each scrape. */
export interface ExpositionSource {
  readonly plugins: ReadonlyMap<string, PluginCounters>;
  /** The plugins of every observed host. */
  list(): PluginInfo[];
  /** The process tree under `pid`, as read at most a second ago. */
  process(pid: number): ProcessSample | undefined;
  /** How many processes that tree holds. */
  processCount(pid: number): number | undefined;
  /** The last heartbeat round trip per pid (stale ones are dropped here). */
  readonly heartbeats: Map<number, HeartbeatEvent>;
  transportStats(): InstanceTransportStats[];
  readonly limitActions: ReadonlyMap<string, { plugin: string; limit: string; action: string; count: number }>;
  readonly denials: ReadonlyMap<string, number>;
}

interface Value {
  metricName?: string;
  labels: Record<string, string | number>;
  value: number;
}

const pluginStates: readonly PluginState[] = [
  "starting",
  "running",
  "restarting",
  "reloading",
  "draining",
  "stopped",
  "failed",
];

/** Registers every family in `registry`, named `prefix` + name. */
export function registerFamilies(registry: Registry, prefix: string, source: ExpositionSource): void {
  const family = (name: string, help: string, type: "counter" | "gauge" | "histogram", values: () => Value[]) => {
    const metric = {
      name: prefix + name,
      help,
      type,
      aggregator: "sum",
      get: () => ({ ...metric, values: values() }),
    };
    // prom-client formats and escapes any object with this shape; its own metric
    // classes would cost a label hash per call on the call path.
    registry.registerMetric(metric as unknown as Metric);
  };
  const perMethod = (pick: (m: MethodStats) => number) => () => {
    const values: Value[] = [];
    for (const [plugin, stats] of source.plugins) {
      for (const m of stats.methods.values()) values.push({ labels: { plugin, method: m.method }, value: pick(m) });
    }
    return values;
  };
  const perPlugin = (pick: (p: PluginCounters) => number) => () =>
    [...source.plugins].map(([plugin, stats]) => ({ labels: { plugin }, value: pick(stats) }));

  family("calls_total", "Calls completed, successful or not.", "counter", perMethod((m) => m.calls));
  family("call_errors_total", "Calls that failed, by error code.", "counter", () => {
    const values: Value[] = [];
    for (const [plugin, stats] of source.plugins) {
      for (const m of stats.methods.values()) {
        for (const [code, n] of m.errors) values.push({ labels: { plugin, method: m.method, code }, value: n });
      }
    }
    return values;
  });
  family(
    "call_duration_seconds",
    "Call latency as the host sees it (every call, or one in timedCallEvery above the auto threshold).",
    "histogram",
    () => {
      const values: Value[] = [];
      const name = prefix + "call_duration_seconds";
      for (const [plugin, stats] of source.plugins) {
        for (const m of stats.methods.values()) {
          let cumulative = 0;
          for (let i = 0; i < latencyBucketsSeconds.length; i++) {
            cumulative += m.buckets[i];
            const labels = { plugin, method: m.method, le: latencyBucketsSeconds[i] };
            values.push({ metricName: `${name}_bucket`, labels, value: cumulative });
          }
          const labels = { plugin, method: m.method };
          values.push({ metricName: `${name}_bucket`, labels: { ...labels, le: "+Inf" }, value: m.timed });
          values.push({ metricName: `${name}_sum`, labels, value: m.sumSeconds });
          values.push({ metricName: `${name}_count`, labels, value: m.timed });
        }
      }
      return values;
    },
  );
  family("calls_in_flight", "Calls sent and not yet settled.", "gauge", perMethod((m) => m.inFlight));
  family(
    "call_cancellations_total",
    "Calls cancelled by their caller.",
    "counter",
    perMethod((m) => m.cancellations),
  );
  family(
    "call_deadline_misses_total",
    "Calls that exceeded their deadline.",
    "counter",
    perMethod((m) => m.deadlineMisses),
  );
  family(
    "plugin_state",
    "1 for the plugin's current state, 0 for the others.",
    "gauge",
    () =>
      source.list().flatMap((info) =>
        pluginStates.map((state) => ({ labels: { plugin: info.name, state }, value: info.state === state ? 1 : 0 }))
      ),
  );
  family(
    "plugin_info",
    "Plugin version, runtime and transport (value always 1).",
    "gauge",
    () =>
      source.list().map((info) => ({
        labels: { plugin: info.name, version: info.version, runtime: info.runtime, transport: info.transport },
        value: 1,
      })),
  );
  family(
    "plugin_restarts_total",
    "Automatic restarts after a crash or stall.",
    "counter",
    perPlugin((p) => p.restarts),
  );
  family("plugin_crashes_total", "Instances that crashed.", "counter", perPlugin((p) => p.crashes));
  family("plugin_reloads_total", "Hot reloads that completed.", "counter", perPlugin((p) => p.reloads));
  family(
    "plugin_reload_failures_total",
    "Hot reloads that failed and were rolled back.",
    "counter",
    perPlugin((p) => p.reloadFailures),
  );
  const perProcess = (pick: (p: ProcessSample) => number) => () =>
    source.list().flatMap((info) =>
      info.pids.map((pid) => source.process(pid)).filter((p) => p !== undefined).map((p) => ({
        labels: { plugin: info.name, pid: p.pid },
        value: pick(p),
      }))
    );
  family(
    "instance_resident_memory_bytes",
    "Resident memory of each plugin process.",
    "gauge",
    perProcess((p) => p.rssBytes),
  );
  family(
    "instance_cpu_seconds_total",
    "User and system CPU time of each plugin process.",
    "counter",
    perProcess((p) => p.cpuSeconds),
  );
  family(
    "instance_processes",
    "Processes in each plugin instance's tree (the runtime, a sandbox launcher, children), read from /proc.",
    "gauge",
    () =>
      source.list().flatMap((info) =>
        info.pids.flatMap((pid) => {
          const processes = source.processCount(pid);
          return processes === undefined ? [] : [{ labels: { plugin: info.name, pid }, value: processes }];
        })
      ),
  );
  family(
    "instance_heartbeat_rtt_seconds",
    "Round trip of the instance's last heartbeat (PING to PONG): how quickly its event loop answers.",
    "gauge",
    () => {
      const values: Value[] = [];
      // Over shm the host pings a beating plugin only every pingEveryChecks-th heartbeat (20 s by default), so a
      // reading stays until its process is no longer an instance: an age limit made the gauge come and go.
      const live = new Set(source.list().flatMap((p) => p.pids));
      for (const [pid, e] of source.heartbeats) {
        if (!live.has(pid)) source.heartbeats.delete(pid);
        else values.push({ labels: { plugin: e.plugin, pid }, value: e.rttMs / 1000 });
      }
      return values;
    },
  );
  const perTransport = (pick: (s: InstanceTransportStats) => Value[]) => () => source.transportStats().flatMap(pick);
  const instanceLabels = (s: InstanceTransportStats) => ({ plugin: s.plugin, pid: s.pid ?? "none" });
  const byDirection = (
    name: string,
    help: string,
    sent: (s: InstanceTransportStats) => number,
    received: (s: InstanceTransportStats) => number,
  ) =>
    family(
      name,
      `${help}, by direction (sent = host to plugin).`,
      "counter",
      perTransport((s) => [
        { labels: { ...instanceLabels(s), direction: "sent" }, value: sent(s) },
        { labels: { ...instanceLabels(s), direction: "received" }, value: received(s) },
      ]),
    );
  byDirection(
    "instance_messages_total",
    "Messages on the host's connection to each instance",
    (s) => s.messagesSent,
    (s) => s.messagesReceived,
  );
  byDirection(
    "instance_transport_bytes_total",
    "Bytes of messages on the host's connection to each instance",
    (s) => s.bytesSent,
    (s) => s.bytesReceived,
  );
  byDirection(
    "instance_stream_items_total",
    "Stream items (STREAM_DATA frames) on each instance's connection",
    (s) => s.streamItemsSent,
    (s) => s.streamItemsReceived,
  );
  byDirection(
    "instance_stream_bytes_total",
    "Frame bytes of those stream items",
    (s) => s.streamBytesSent,
    (s) => s.streamBytesReceived,
  );
  family(
    "instance_ring_used_bytes",
    "Bytes waiting in each shared-memory ring of an instance (ring=send: host to plugin, receive: plugin to host).",
    "gauge",
    perTransport((s) =>
      s.ringBytes === 0 ? [] : [
        { labels: { ...instanceLabels(s), ring: "send" }, value: s.sendRingUsedBytes },
        { labels: { ...instanceLabels(s), ring: "receive" }, value: s.receiveRingUsedBytes },
      ]
    ),
  );
  family(
    "instance_ring_capacity_bytes",
    "Capacity of each shared-memory ring of an instance (both rings are this size).",
    "gauge",
    perTransport((s) => s.ringBytes === 0 ? [] : [{ labels: instanceLabels(s), value: s.ringBytes }]),
  );
  family(
    "instance_wakeups_sent_total",
    "Times the host woke the instance's parked side (a wake syscall or doorbell ring).",
    "counter",
    perTransport((s) => s.ringBytes === 0 ? [] : [{ labels: instanceLabels(s), value: s.wakeupsSent }]),
  );
  family(
    "instance_wakeups_received_total",
    "Times the host's side of the instance's connection was woken after parking.",
    "counter",
    perTransport((s) => s.ringBytes === 0 ? [] : [{ labels: instanceLabels(s), value: s.wakeupsReceived }]),
  );
  family(
    "instance_spin_yields_total",
    "Times the host's side gave up the CPU while it spun for the instance (sched_yield): each a syscall and a chance " +
      "to be switched out, where the slow round trips come from on a loaded machine (bench/tails_bench.ts).",
    "counter",
    perTransport((s) =>
      s.ringBytes === 0 || s.spinYields === undefined ? [] : [{ labels: instanceLabels(s), value: s.spinYields }]
    ),
  );
  family(
    "plugin_limit_actions_total",
    "Times the host paused, resumed or killed an instance for a memory limit of its manifest.",
    "counter",
    () =>
      [...source.limitActions.values()].map((e) => ({
        labels: { plugin: e.plugin, limit: e.limit, action: e.action },
        value: e.count,
      })),
  );
  family(
    "plugin_permission_denials_total",
    "Calls the host refused because the plugin's manifest does not grant them.",
    "counter",
    () => [...source.denials].map(([plugin, count]) => ({ labels: { plugin }, value: count })),
  );
}
