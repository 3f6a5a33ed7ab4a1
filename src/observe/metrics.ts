/**
 * Per-plugin metrics: calls, errors by code, latency histograms, in-flight
 * calls, cancellations and deadline misses per plugin and method; state,
 * restarts, crashes and reloads per plugin; memory and CPU per instance, read
 * from /proc. Exposed as Prometheus text through prom-client's registry and as
 * JSON and CSV snapshots, with a short history for the dashboard's charts.
 *
 * The call path only bumps plain numbers (see {@link PluginMetrics.instrumentation}):
 * prom-client's own `observe()` hashes its labels on every call, which costs
 * more than a shared-memory call itself. The numbers are turned into
 * prom-client metric families when scraped (_exposition.ts).
 *
 * @module
 */

import { readTreeUsage } from "../host/process_tree.ts";
import { Registry } from "prom-client";
import { type MethodStats, type PluginCounters, registerFamilies } from "./_exposition.ts";
import type { PluginInfo, StateEvent } from "../host/host.ts";
import type { HeartbeatEvent, HostEvents, InstanceTransportStats } from "../host/types.ts";
import type { CallInstrumentation } from "./instrumentation.ts";

/** What the metrics need from a host: its plugins and its lifecycle events. */
export interface ObservedHost {
  /** The plugins loaded now (PluginHost.list()). */
  list(): PluginInfo[];
  /** Subscribes to lifecycle events (PluginHost.onState); returns the unsubscribe function. */
  onState(listener: (event: StateEvent) => void): () => void;
  /**
   * The host's event bus. When present, memory-limit actions, permission
   * denials and heartbeat round trips are counted. (Not "resource" events:
   * listening to them makes the host read every process tree every
   * `resourceSampleMs`; metrics read /proc themselves, at most once a second.)
   */
  on?<K extends keyof HostEvents>(type: K, listener: (event: HostEvents[K]) => void): () => void;
  /** Transport counters of every serving instance (PluginHost.transportStats); read at each scrape. */
  transportStats?(): InstanceTransportStats[];
}

/**
 * How old a reading of a process tree from /proc may be and still be reported:
 * one reading serves every family of a scrape, the sampler and the admin API
 * (50 sandboxed plugins: about 900 /proc reads per reading, ~9 ms in Deno).
 */
export const processReadingMaxAgeMs = 1_000;
/** Readings kept before stale ones (of processes gone) are dropped. */
const readingsKeptMax = 256;

/**
 * Latency bucket upper bounds in seconds: from 1 µs (a shared-memory call takes
 * a few) to 30 s (a long deadline), roughly ×2.5 apart.
 */
export const latencyBucketsSeconds: readonly number[] = Object.freeze([
  0.000001,
  0.0000025,
  0.000005,
  0.00001,
  0.000025,
  0.00005,
  0.0001,
  0.00025,
  0.0005,
  0.001,
  0.0025,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
  30,
]);

/** Methods tracked per plugin; calls to further names count under `methodOverflowLabel`. */
export const methodsPerPluginMax = 256;
/** Error codes tracked per method; further codes count under `codeOverflowLabel`. */
export const errorCodesPerMethodMax = 32;
/** The method label for calls past {@link methodsPerPluginMax} distinct names. */
export const methodOverflowLabel = "_other";
/** The code label for errors past {@link errorCodesPerMethodMax} distinct codes. */
export const codeOverflowLabel = "_other";
/** Default interval between history samples. */
export const sampleIntervalMsDefault = 1_000;
/** Default number of history samples kept per plugin (5 minutes at the default interval). */
export const historyPointsDefault = 300;
/** With `timedCallEvery: "auto"`, methods called less often than this per second have every call timed. */
export const timeEveryCallBelowPerSecond = 1_000;
/** With `timedCallEvery: "auto"`, one call in this many is timed above that rate. */
export const autoTimedCallEvery = 8;
/** Window over which the summary's rates and percentiles are computed. */
export const summaryWindowMs = 60_000;

/** Counters for one plugin, with its history. */
interface PluginStats extends PluginCounters {
  /** History samples, oldest first. */
  readonly history: Sample[];
  /** CPU seconds per pid at the previous sample, for utilisation. */
  cpuSecondsByPid: Map<number, number>;
  /** The processes as of the last sample. */
  processes: ProcessSample[];
}

/** One history sample of a plugin, cumulative counters included for deltas. */
interface Sample {
  at: number;
  calls: number;
  errors: number;
  buckets: Float64Array;
  rssBytes: number;
  cpuSeconds: number;
}

/** Memory and CPU of one plugin process, read from /proc. */
export interface ProcessSample {
  /** The process id. */
  pid: number;
  /** Resident memory, in bytes. */
  rssBytes: number;
  /** User plus system CPU time used so far, in seconds. */
  cpuSeconds: number;
}

/** One point of a plugin's chart series. */
export interface SeriesPoint {
  /** Milliseconds since the epoch. */
  at: number;
  /** Calls completed per second over the interval. */
  callsPerSecond: number;
  /** Calls that failed per second over the interval. */
  errorsPerSecond: number;
  /** Null when no call completed in the interval. */
  p50Seconds: number | null;
  /** 99th percentile call latency over the interval, in seconds; null when no call completed. */
  p99Seconds: number | null;
  /** Resident memory of all the plugin's processes, in bytes. */
  rssBytes: number;
  /** CPU seconds used per second of wall time, over all instances (1 = one core). */
  cpuCores: number;
}

/** Per-method figures in a snapshot. */
export interface MethodSnapshot {
  /** The plugin's name. */
  plugin: string;
  /** The method's name (or the overflow label once a plugin has too many methods). */
  method: string;
  /** Calls completed since the metrics started. */
  calls: number;
  /** Of those, calls that failed. */
  errors: number;
  /** Failed calls by error code (capped; the rest under the overflow label). */
  errorsByCode: Record<string, number>;
  /** Calls the caller cancelled. */
  cancellations: number;
  /** Calls that exceeded their deadline. */
  deadlineMisses: number;
  /** Calls in flight now. */
  inFlight: number;
  /** Total time of completed calls, in seconds. */
  sumSeconds: number;
  /** Median call latency, in seconds; null before the first call completed. */
  p50Seconds: number | null;
  /** 99th percentile call latency, in seconds; null before the first call completed. */
  p99Seconds: number | null;
}

/** Per-plugin figures in a snapshot: totals and the last minute. */
export interface PluginSummary {
  /** The plugin's name. */
  plugin: string;
  /** Calls completed since the metrics started, all methods. */
  calls: number;
  /** Of those, calls that failed. */
  errors: number;
  /** Calls in flight now. */
  inFlight: number;
  /** Restarts by supervision since the metrics started. */
  restarts: number;
  /** Times a plugin process ended unexpectedly. */
  crashes: number;
  /** Hot reloads that succeeded. */
  reloads: number;
  /** Hot reloads that failed (the old instance kept serving). */
  reloadFailures: number;
  /** Over the last {@link summaryWindowMs} of samples; null before two samples exist. */
  callsPerSecond: number | null;
  /** Median call latency over the summary window, in seconds; null without calls. */
  p50Seconds: number | null;
  /** 99th percentile call latency over the summary window, in seconds; null without calls. */
  p99Seconds: number | null;
  /** Resident memory of all the plugin's processes, in bytes. */
  rssBytes: number;
  /** CPU time all the plugin's processes used so far, in seconds. */
  cpuSeconds: number;
  /** Each process of the plugin as last sampled. */
  processes: ProcessSample[];
}

/** Options for {@link PluginMetrics}. */
export interface PluginMetricsOptions {
  /** Metric name prefix. Default "plugin_shm_". */
  prefix?: string;
  /** History sample interval; 0 disables the timer (call `sample()` yourself). Default 1000 ms. */
  sampleIntervalMs?: number;
  /** History samples kept per plugin. Default 300. */
  historyPoints?: number;
  /**
   * Measure the latency of one call in this many (the histogram then holds
   * that sample; call and error counts stay exact). Two clock reads are most
   * of the per-call cost: about 180 ns under Deno and 70 ns under Bun, 8–10 %
   * of a shared-memory echo call. Default "auto": every call of a method
   * called fewer than {@link timeEveryCallBelowPerSecond} times a second (its
   * rate as of the last history sample), one in {@link autoTimedCallEvery}
   * above, where the clock would cost most and the sample is large anyway.
   */
  timedCallEvery?: number | "auto";
}

/**
 * Collects a host's metrics. Create it before loading plugins so that every
 * lifecycle event is counted, pass `instrumentation` to the host, and call
 * `close()` when done.
 *
 * @example
 * ```ts ignore
 * import { PluginHost } from "../../mod.ts";
 * import { PluginMetrics } from "./metrics.ts";
 * const metrics = new PluginMetrics();
 * const host = new PluginHost({ dirs: ["examples/plugins"], instrumentation: metrics.instrumentation });
 * metrics.observe(host);
 * await host.load("echo");
 * await host.call("echo", "echo", [1]);
 * console.log(await metrics.prometheus());
 * metrics.close();
 * await host.close();
 * ```
 */
export class PluginMetrics {
  /** The prom-client registry holding only this object's metrics (no default Node metrics). */
  readonly registry: Registry;
  /** Pass this as the host's `instrumentation` option. */
  readonly instrumentation: CallInstrumentation;
  readonly #plugins = new Map<string, PluginStats>();
  readonly #hosts: ObservedHost[] = [];
  readonly #unsubscribe: (() => void)[] = [];
  readonly #historyPoints: number;
  /** "auto" timing (see timedCallEvery): sample() sets each method's timeEvery from its call rate. */
  readonly #autoTiming: boolean;
  /** One call in this many is timed for a new method. */
  readonly #timeEvery: number;
  readonly #timer: ReturnType<typeof setInterval> | undefined;
  /** The transport counters read at the start of the scrape in progress (see prometheus()). */
  #transportSnapshot: InstanceTransportStats[] | undefined;
  // A one-entry cache: consecutive calls usually go to the same method.
  #lastPlugin = "";
  #lastMethod = "";
  #lastStats: MethodStats | undefined;
  /** The latest reading of each process tree, by root pid (see processReadingMaxAgeMs). */
  readonly #readings = new Map<number, { at: number; sample: ProcessSample; processes: number }>();
  /** Memory-limit actions by plugin, limit and action. */
  readonly #limitActions = new Map<string, { plugin: string; limit: string; action: string; count: number }>();
  /** The last heartbeat round trip per pid. */
  readonly #heartbeats = new Map<number, HeartbeatEvent>();
  /** Permission denials by plugin. */
  readonly #denials = new Map<string, number>();

  /** Creates the metrics in a fresh {@link registry} and samples every `sampleIntervalMs` (the timer never keeps the process alive). */
  constructor(options: PluginMetricsOptions = {}) {
    this.#historyPoints = Math.max(2, options.historyPoints ?? historyPointsDefault);
    this.registry = new Registry();
    registerFamilies(this.registry, options.prefix ?? "plugin_shm_", {
      plugins: this.#plugins,
      list: () => this.#list(),
      process: (pid) => this.#process(pid),
      processCount: (pid) => this.#reading(pid)?.processes,
      heartbeats: this.#heartbeats,
      transportStats: () => this.#transportSnapshot ?? this.#transportStats(),
      limitActions: this.#limitActions,
      denials: this.#denials,
    });
    const every = options.timedCallEvery ?? "auto";
    this.#autoTiming = every === "auto";
    this.#timeEvery = every === "auto" ? 1 : Math.max(1, Math.floor(every));
    this.instrumentation = {
      begin: (plugin, method) => {
        const stats = this.#method(plugin, method);
        stats.inFlight++;
        // -1 marks a call that is counted but not timed.
        return stats.timeEvery === 1 || ++stats.tick % stats.timeEvery === 0 ? performance.now() : -1;
      },
      end: (plugin, method, state, error) => {
        const stats = this.#method(plugin, method);
        stats.inFlight--;
        stats.calls++;
        if (error !== undefined) countError(stats, error);
        if ((state as number) < 0) return;
        const seconds = (performance.now() - (state as number)) / 1000;
        stats.timed++;
        stats.sumSeconds += seconds;
        let i = 0;
        while (i < latencyBucketsSeconds.length && seconds > latencyBucketsSeconds[i]) i++;
        stats.buckets[i]++;
      },
    };
    const intervalMs = options.sampleIntervalMs ?? sampleIntervalMsDefault;
    if (intervalMs > 0) {
      this.#timer = setInterval(() => this.sample(), intervalMs);
      // Sampling must never keep a process alive on its own.
      (this.#timer as { unref?: () => void }).unref?.();
    }
  }

  /** Counts `host`'s lifecycle events and reports its plugins' states and processes. */
  observe(host: ObservedHost): this {
    this.#hosts.push(host);
    this.#unsubscribe.push(host.onState((event) => this.#onState(event)));
    if (host.on) {
      this.#unsubscribe.push(
        host.on("heartbeat", (event) => void (event.pid !== undefined && this.#heartbeats.set(event.pid, event))),
        host.on("limit", (event) => {
          const key = `${event.plugin}\0${event.limit}\0${event.action}`;
          const entry = this.#limitActions.get(key) ??
            { plugin: event.plugin, limit: event.limit, action: event.action, count: 0 };
          entry.count++;
          this.#limitActions.set(key, entry);
        }),
        host.on("permission-denied", (event) => {
          this.#denials.set(event.plugin, (this.#denials.get(event.plugin) ?? 0) + 1);
        }),
      );
    }
    return this;
  }

  /** Stops sampling and unsubscribes from every host. Idempotent. */
  close(): void {
    clearInterval(this.#timer);
    for (const unsubscribe of this.#unsubscribe.splice(0)) unsubscribe();
  }

  /** Same as {@link close}: for `using metrics = new PluginMetrics()`. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** The Prometheus text exposition (format 0.0.4). */
  prometheus(): Promise<string> {
    // One reading of every instance's transport counters serves the eight transport families of this scrape.
    this.#transportSnapshot = this.#transportStats();
    return this.registry.metrics().finally(() => (this.#transportSnapshot = undefined));
  }

  #transportStats(): InstanceTransportStats[] {
    return this.#hosts.flatMap((host) => host.transportStats?.() ?? []);
  }

  /** The content type to serve {@link prometheus} with. */
  get contentType(): string {
    return this.registry.contentType;
  }

  /** Takes a history sample of every plugin now (the timer does this every interval). */
  sample(): void {
    const now = Date.now();
    if (this.#autoTiming) {
      for (const stats of this.#plugins.values()) {
        for (const m of stats.methods.values()) {
          const perSecond = (m.calls - m.callsAtSample) * 1000 / Math.max(1, now - m.sampledAt);
          m.timeEvery = perSecond >= timeEveryCallBelowPerSecond ? autoTimedCallEvery : 1;
          m.callsAtSample = m.calls;
          m.sampledAt = now;
        }
      }
    }
    for (const info of this.#list()) {
      const stats = this.#plugin(info.name);
      const buckets = new Float64Array(latencyBucketsSeconds.length + 1);
      let calls = 0;
      let errors = 0;
      for (const m of stats.methods.values()) {
        calls += m.calls;
        for (const n of m.errors.values()) errors += n;
        for (let i = 0; i < buckets.length; i++) buckets[i] += m.buckets[i];
      }
      const processes = info.pids.map((pid) => this.#process(pid)).filter((p) => p !== undefined);
      const cpuByPid = new Map(processes.map((p) => [p.pid, p.cpuSeconds]));
      // CPU is accumulated per pid so that a restarted instance does not make the total go backwards.
      const previous = stats.history.at(-1);
      let cpuSeconds = previous?.cpuSeconds ?? 0;
      for (const p of processes) cpuSeconds += p.cpuSeconds - (stats.cpuSecondsByPid.get(p.pid) ?? 0);
      stats.cpuSecondsByPid = cpuByPid;
      stats.processes = processes;
      const rssBytes = processes.reduce((sum, p) => sum + p.rssBytes, 0);
      stats.history.push({ at: now, calls, errors, buckets, rssBytes, cpuSeconds });
      if (stats.history.length > this.#historyPoints) stats.history.shift();
    }
  }

  /** A plugin's chart series, one point per sample interval, oldest first. */
  series(plugin: string): SeriesPoint[] {
    const history = this.#plugins.get(plugin)?.history ?? [];
    const points: SeriesPoint[] = [];
    for (let i = 1; i < history.length; i++) {
      points.push(seriesPoint(history[i - 1], history[i]));
    }
    return points;
  }

  /**
   * Per-plugin totals and last-minute figures. Process figures are those of
   * the last sample, or read from /proc now with `live` (or before any sample).
   */
  summary(plugin: string, options: { live?: boolean } = {}): PluginSummary {
    const stats = this.#plugins.get(plugin);
    const sampled = stats?.history.length ? stats.processes : undefined;
    const processes = options.live || !sampled
      ? (this.#list().find((p) => p.name === plugin)?.pids ?? []).map((pid) => this.#process(pid))
        .filter((p) => p !== undefined)
      : sampled;
    let calls = 0;
    let errors = 0;
    let inFlight = 0;
    for (const m of stats?.methods.values() ?? []) {
      calls += m.calls;
      inFlight += m.inFlight;
      for (const n of m.errors.values()) errors += n;
    }
    const history = stats?.history ?? [];
    const last = history.at(-1);
    const first = last && (history.find((s) => last.at - s.at <= summaryWindowMs) ?? history[0]);
    const windowed = first && last && first !== last ? seriesPoint(first, last) : undefined;
    return {
      plugin,
      calls,
      errors,
      inFlight,
      restarts: stats?.restarts ?? 0,
      crashes: stats?.crashes ?? 0,
      reloads: stats?.reloads ?? 0,
      reloadFailures: stats?.reloadFailures ?? 0,
      callsPerSecond: windowed?.callsPerSecond ?? null,
      p50Seconds: windowed?.p50Seconds ?? null,
      p99Seconds: windowed?.p99Seconds ?? null,
      rssBytes: processes.reduce((sum, p) => sum + p.rssBytes, 0),
      cpuSeconds: processes.reduce((sum, p) => sum + p.cpuSeconds, 0),
      processes,
    };
  }

  /** Every plugin method's figures since start. */
  methods(): MethodSnapshot[] {
    const rows: MethodSnapshot[] = [];
    for (const [plugin, stats] of this.#plugins) {
      for (const m of stats.methods.values()) {
        let errors = 0;
        for (const n of m.errors.values()) errors += n;
        rows.push({
          plugin,
          method: m.method,
          calls: m.calls,
          errors,
          errorsByCode: Object.fromEntries(m.errors),
          cancellations: m.cancellations,
          deadlineMisses: m.deadlineMisses,
          inFlight: m.inFlight,
          sumSeconds: m.sumSeconds,
          p50Seconds: quantile(0.5, m.buckets),
          p99Seconds: quantile(0.99, m.buckets),
        });
      }
    }
    return rows;
  }

  /** {@link methods} as CSV (RFC 4180, header first). */
  csv(): string {
    const header = [
      "plugin",
      "method",
      "calls",
      "errors",
      "cancellations",
      "deadline_misses",
      "in_flight",
      "sum_seconds",
      "p50_seconds",
      "p99_seconds",
    ];
    const lines = [header.join(",")];
    for (const r of this.methods()) {
      lines.push([
        csvField(r.plugin),
        csvField(r.method),
        r.calls,
        r.errors,
        r.cancellations,
        r.deadlineMisses,
        r.inFlight,
        r.sumSeconds,
        r.p50Seconds ?? "",
        r.p99Seconds ?? "",
      ].join(","));
    }
    return `${lines.join("\r\n")}\r\n`;
  }

  /** A process' figures: the host's fresh reading, else read from /proc now. */
  #process(pid: number): ProcessSample | undefined {
    return this.#reading(pid)?.sample;
  }

  /** The tree under `pid` as read at most processReadingMaxAgeMs ago, or now. */
  #reading(pid: number): { at: number; sample: ProcessSample; processes: number } | undefined {
    const now = performance.now();
    const kept = this.#readings.get(pid);
    if (kept && now - kept.at <= processReadingMaxAgeMs) return kept;
    if (this.#readings.size > readingsKeptMax) {
      for (const [old, r] of this.#readings) if (now - r.at > processReadingMaxAgeMs) this.#readings.delete(old);
    }
    const usage = readTreeUsage(pid);
    if (!usage) {
      this.#readings.delete(pid); // Gone.
      return undefined;
    }
    const reading = {
      at: now,
      sample: { pid, rssBytes: usage.rssBytes, cpuSeconds: usage.cpuSeconds },
      processes: usage.pids.length,
    };
    this.#readings.set(pid, reading);
    return reading;
  }

  #list(): PluginInfo[] {
    return this.#hosts.flatMap((h) => h.list());
  }

  #plugin(name: string): PluginStats {
    let stats = this.#plugins.get(name);
    if (!stats) {
      stats = {
        methods: new Map(),
        restarts: 0,
        crashes: 0,
        reloads: 0,
        reloadFailures: 0,
        history: [],
        cpuSecondsByPid: new Map(),
        processes: [],
      };
      this.#plugins.set(name, stats);
    }
    return stats;
  }

  #method(plugin: string, method: string): MethodStats {
    if (method === this.#lastMethod && plugin === this.#lastPlugin && this.#lastStats) return this.#lastStats;
    const methods = this.#plugin(plugin).methods;
    let stats = methods.get(method);
    if (!stats) {
      // One slot stays free for the overflow label.
      const label = methods.size < methodsPerPluginMax - 1 ? method : methodOverflowLabel;
      stats = methods.get(label) ?? newMethodStats(label, this.#timeEvery);
      methods.set(label, stats);
    }
    this.#lastPlugin = plugin;
    this.#lastMethod = method;
    this.#lastStats = stats;
    return stats;
  }

  #onState(event: StateEvent): void {
    const stats = this.#plugin(event.plugin);
    if (event.state === "crashed") stats.crashes++;
    else if (event.state === "restarting") stats.restarts++;
    else if (event.state === "reloaded") stats.reloads++;
    else if (event.state === "rolled-back") stats.reloadFailures++;
  }
}

function newMethodStats(method: string, timeEvery: number): MethodStats {
  return {
    method,
    timeEvery,
    tick: 0,
    callsAtSample: 0,
    sampledAt: Date.now(),
    calls: 0,
    timed: 0,
    inFlight: 0,
    cancellations: 0,
    deadlineMisses: 0,
    sumSeconds: 0,
    buckets: new Float64Array(latencyBucketsSeconds.length + 1),
    errors: new Map(),
  };
}

function countError(stats: MethodStats, error: unknown): void {
  const raw = (error as { code?: unknown })?.code;
  let code = typeof raw === "string" && raw !== "" ? raw : (error as Error)?.name ?? "unknown";
  if (code === "cancelled") stats.cancellations++;
  else if (code === "deadline_exceeded") stats.deadlineMisses++;
  if (!stats.errors.has(code) && stats.errors.size >= errorCodesPerMethodMax) code = codeOverflowLabel;
  stats.errors.set(code, (stats.errors.get(code) ?? 0) + 1);
}

/**
 * The q-quantile of non-cumulative bucket counts, interpolated linearly inside
 * the bucket as Prometheus's histogram_quantile() does; null without samples.
 */
export function quantile(q: number, buckets: ArrayLike<number>): number | null {
  let total = 0;
  for (let i = 0; i < buckets.length; i++) total += buckets[i];
  if (total === 0) return null;
  const rank = q * total;
  let cumulative = 0;
  for (let i = 0; i < buckets.length; i++) {
    const count = buckets[i];
    if (count > 0 && cumulative + count >= rank) {
      if (i >= latencyBucketsSeconds.length) return latencyBucketsSeconds[latencyBucketsSeconds.length - 1];
      const lower = i === 0 ? 0 : latencyBucketsSeconds[i - 1];
      const upper = latencyBucketsSeconds[i];
      return lower + (upper - lower) * ((rank - cumulative) / count);
    }
    cumulative += count;
  }
  return latencyBucketsSeconds[latencyBucketsSeconds.length - 1];
}

function seriesPoint(before: Sample, after: Sample): SeriesPoint {
  const seconds = Math.max(0.001, (after.at - before.at) / 1000);
  const delta = after.buckets.map((n, i) => n - before.buckets[i]);
  return {
    at: after.at,
    callsPerSecond: (after.calls - before.calls) / seconds,
    errorsPerSecond: (after.errors - before.errors) / seconds,
    p50Seconds: quantile(0.5, delta),
    p99Seconds: quantile(0.99, delta),
    rssBytes: after.rssBytes,
    cpuCores: Math.max(0, after.cpuSeconds - before.cpuSeconds) / seconds,
  };
}

/**
 * Reads the resident memory and CPU time of a plugin instance from /proc: the process and its descendants (a
 * sandboxed instance's pid is the launcher's, the runtime runs below it); undefined once it is gone.
 */
export function readProcess(pid: number): ProcessSample | undefined {
  const usage = readTreeUsage(pid);
  return usage && { pid, rssBytes: usage.rssBytes, cpuSeconds: usage.cpuSeconds };
}

function csvField(text: string): string {
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}
