/**
 * plugin-shm/observe: per-plugin metrics (Prometheus text through prom-client,
 * JSON, CSV), bounded per-plugin log buffers with live tail, the host's
 * lifecycle as structured LogTape records, and W3C trace context through
 * OpenTelemetry spans (`createHostTracing()` as the host's `tracing` option).
 *
 * @example
 * ```ts
 * import { PluginHost } from "./mod.ts";
 * import { LogStore, PluginMetrics } from "./observe.ts";
 * const metrics = new PluginMetrics();
 * const logs = new LogStore();
 * const host = new PluginHost({
 *   dirs: ["examples/plugins"],
 *   logger: logs.logger,
 *   instrumentation: metrics.instrumentation,
 * });
 * metrics.observe(host);
 * await host.load("echo");
 * await host.call("echo", "echo", ["hi"]);
 * console.log(await metrics.prometheus());
 * metrics.close();
 * await host.close();
 * ```
 *
 * @module
 */

export type { CallInstrumentation } from "./src/observe/instrumentation.ts";
export {
  autoTimedCallEvery,
  codeOverflowLabel,
  errorCodesPerMethodMax,
  historyPointsDefault,
  latencyBucketsSeconds,
  methodOverflowLabel,
  type MethodSnapshot,
  methodsPerPluginMax,
  type ObservedHost,
  PluginMetrics,
  type PluginMetricsOptions,
  type PluginSummary,
  processReadingMaxAgeMs,
  type ProcessSample,
  quantile,
  readProcess,
  sampleIntervalMsDefault,
  type SeriesPoint,
  summaryWindowMs,
  timeEveryCallBelowPerSecond,
} from "./src/observe/metrics.ts";
export {
  bytesPerPluginMaxDefault,
  hostSource,
  linesPerPluginMaxDefault,
  type LoggedHost,
  logHostEvents,
  type LogLevel,
  logLevels,
  type LogLine,
  type LogQuery,
  type LogStats,
  LogStore,
  type LogStoreOptions,
  queryLimitMax,
} from "./src/observe/logs.ts";
export {
  contextFromTraceparent,
  createHostTracing,
  hostTracerName,
  type HostTracingOptions,
  traceparentOf,
} from "./src/observe/tracing.ts";
