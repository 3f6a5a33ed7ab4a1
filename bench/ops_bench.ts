/**
 * Operations overhead, measured through the public API:
 *
 * - ops.metrics_scrape: GET /metrics through the admin app with N loaded plugins (target ≤ 10 ms p50 at 50).
 * - ops.api_plugins: GET /api/plugins with N loaded plugins (target ≤ 2 ms p50 at 50).
 * - ops.echo_off / ops.echo_metrics / ops.echo_metrics_tracing / ops.echo_metrics_every_call: an
 *   echo call's round trip through hosts that differ only in their options: none; the metrics' call
 *   instrumentation with its default timing (a busy method: one call in 8 timed); that plus tracing
 *   through @opentelemetry/api with no SDK registered (target: ≤ off + 5 % at p50); metrics timing
 *   every call. Each host has its own echo plugin process; they run in alternating blocks in the
 *   same run so that machine drift hits all alike.
 *
 * Run: deno run -A bench/ops_bench.ts [--json] [--quick] [--plugins N]   (or: bun bench/ops_bench.ts)
 *
 * @module
 */

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { PluginHost } from "../mod.ts";
import { createAdminApp } from "../admin.ts";
import { createHostTracing, LogStore, PluginMetrics } from "../observe.ts";
import { type BenchRow, latencyRow, printRows } from "./_stats.ts";

const quick = process.argv.includes("--quick");
const json = process.argv.includes("--json");
const pluginsFlag = process.argv.indexOf("--plugins");
const pluginCount = pluginsFlag > 0 ? Number(process.argv[pluginsFlag + 1]) : quick ? 3 : 50;
const requests = quick ? 50 : 1_000;
const echoBlocks = quick ? 4 : 40;
const echoBlockCalls = quick ? 250 : 1_000;
const echoWarmUpCalls = quick ? 200 : 1_000;
const root = fileURLToPath(new URL("..", import.meta.url));
const rows: BenchRow[] = [];
const token = "bench-token-0123456789abcdef";

function log(text: string): void {
  if (!json) console.error(`… ${text}`);
}

/** N copies of a minimal echo plugin, alternately Deno and Bun. */
function makePlugins(dir: string, count: number): string[] {
  const names: string[] = [];
  for (let i = 0; i < count; i++) {
    const name = `echo-${i}`;
    const runtime = i % 2 === 0 ? "deno" : "bun";
    mkdirSync(join(dir, name));
    writeFileSync(
      join(dir, name, "plugin.json"),
      JSON.stringify({ name, version: "1.0.0", runtime, entry: "main.ts" }),
    );
    writeFileSync(
      join(dir, name, "main.ts"),
      `import { definePlugin } from ${JSON.stringify(`${root}plugin.ts`)};\n` +
        `export default definePlugin({ name: ${
          JSON.stringify(name)
        }, version: "1.0.0", methods: { echo: (v: unknown) => v } });\n`,
    );
    names.push(name);
  }
  return names;
}

/** A latency row that also reports throughput: sequential operations per second of the time they took. */
function row(bench: string, transport: string, samplesMs: number[], note: string): BenchRow {
  const totalMs = samplesMs.reduce((sum, ms) => sum + ms, 0);
  return {
    ...latencyRow(bench, transport, samplesMs, note),
    msgs_per_s: Math.round(samplesMs.length * 1000 / totalMs),
  };
}

async function timeRequests(fetch: () => Promise<Response>, n: number): Promise<number[]> {
  for (let i = 0; i < Math.min(n, 20); i++) await (await fetch()).arrayBuffer(); // warm-up
  const samples: number[] = [];
  for (let i = 0; i < n; i++) {
    const started = performance.now();
    const res = await fetch();
    await res.arrayBuffer();
    samples.push(performance.now() - started);
    if (res.status !== 200) throw new Error(`HTTP ${res.status}`);
  }
  return samples;
}

// Inside the project (a git-ignored folder), so that the plugins resolve the project's packages.
mkdirSync(`${root}.scratch`, { recursive: true });
const dir = mkdtempSync(`${root}.scratch/ops-bench-`);
const logs = new LogStore();
const metrics = new PluginMetrics({ sampleIntervalMs: 1_000 });
// The echo variants' metrics: the default ("auto": every call timed below 1000 calls/s per method, one in 8 above;
// sample() after each block's warm-up gives it the block's rate), and every call timed (the clock's full cost).
const echoMetrics = new PluginMetrics({ sampleIntervalMs: 0 });
const everyCallMetrics = new PluginMetrics({ sampleIntervalMs: 0, timedCallEvery: 1 });
const host = new PluginHost({ dirs: [dir, `${root}examples/plugins`], logger: logs.logger });
metrics.observe(host);
const app = createAdminApp(host, { token, metrics, logs });
const headers = { authorization: `Bearer ${token}` };
const instrumentation = metrics.instrumentation;
try {
  const names = makePlugins(dir, pluginCount);
  log(`loading ${pluginCount} plugins`);
  for (let i = 0; i < names.length; i += 10) await Promise.all(names.slice(i, i + 10).map((n) => host.load(n)));
  await host.load("echo");
  // Give every plugin a few methods' worth of series, as a real scrape would see.
  for (const name of names) {
    for (let i = 0; i < 20; i++) {
      const state = instrumentation.begin(name, "echo");
      await host.call(name, "echo", [i]);
      instrumentation.end(name, "echo", state);
    }
  }
  metrics.sample();

  log("scraping /metrics");
  const scrape = await timeRequests(async () => await app.request("/metrics", { headers }), requests);
  rows.push(row("ops.metrics_scrape", `${pluginCount} plugins`, scrape, "target ≤ 10 ms p50 at 50 plugins"));
  log("GET /api/plugins");
  const list = await timeRequests(async () => await app.request("/api/plugins", { headers }), requests);
  rows.push(row("ops.api_plugins", `${pluginCount} plugins`, list, "target ≤ 2 ms p50 at 50 plugins"));

  log("echo calls through hosts without and with metrics and tracing, in alternating blocks");
  const variants = [
    { name: "ops.echo_off", note: "no instrumentation, no tracing", options: {} },
    {
      name: "ops.echo_metrics",
      note: "default (auto timing); target ≤ off + 5 % at p50",
      options: { instrumentation: echoMetrics.instrumentation },
    },
    {
      name: "ops.echo_metrics_tracing",
      note: "metrics + tracing API, no SDK; target ≤ off + 5 % at p50",
      options: { instrumentation: echoMetrics.instrumentation, tracing: createHostTracing() },
    },
    {
      name: "ops.echo_metrics_every_call",
      note: "timedCallEvery: 1 (two clock reads per call)",
      options: { instrumentation: everyCallMetrics.instrumentation },
    },
  ].map((v) => ({ ...v, samples: [] as number[] }));
  // A fresh host (and echo process) per variant and block, in rotating order: on this machine a
  // plugin process keeps whichever wake-up behaviour its placement gave it (3 µs or 140 µs p50,
  // seen with identical options), so long-lived processes would compare placements, not options.
  for (let block = 0; block < echoBlocks; block++) {
    for (let k = 0; k < variants.length; k++) {
      const v = variants[(block + k) % variants.length];
      const host = new PluginHost({ dirs: [`${root}examples/plugins`], logger: () => {}, ...v.options });
      try {
        await host.load("echo");
        echoMetrics.sample();
        for (let i = 0; i < echoWarmUpCalls; i++) await host.call("echo", "echo", [i]);
        echoMetrics.sample(); // The warm-up's rate: a busy method, timed one call in 8.
        for (let i = 0; i < echoBlockCalls; i++) {
          const started = performance.now();
          await host.call("echo", "echo", [i]);
          v.samples.push(performance.now() - started);
        }
      } finally {
        await host.close();
      }
    }
  }
  const p50 = (samples: number[]) => [...samples].sort((a, b) => a - b)[samples.length >> 1];
  const offP50 = p50(variants[0].samples);
  for (const v of variants) {
    const overhead = v === variants[0] ? "" : ` (p50 ${((p50(v.samples) / offP50 - 1) * 100).toFixed(1)} % vs off)`;
    rows.push(row(v.name, "shm", v.samples, v.note + overhead));
  }
} finally {
  metrics.close();
  echoMetrics.close();
  everyCallMetrics.close();
  await host.close();
  rmSync(dir, { recursive: true, force: true });
}
printRows(rows, json);
