/**
 * Operations overhead, measured through the public API:
 *
 * - ops.metrics_scrape: GET /metrics through the admin app with N loaded plugins (target ≤ 10 ms p50 at 50).
 * - ops.api_plugins: GET /api/plugins with N loaded plugins (target ≤ 2 ms p50 at 50).
 * - ops.echo_metrics_off / ops.echo_metrics_on: an echo call's round trip without and with the
 *   metrics' call instrumentation (target: on ≤ off + 5 % at p50), in alternating blocks so that
 *   machine drift hits both alike.
 *
 * Until the host takes the `instrumentation` option, "on" wraps host.call() in exactly the
 * begin/end pair the host's call path will make.
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
import { LogStore, PluginMetrics } from "../observe.ts";
import { type BenchRow, latencyRow, printRows } from "./_stats.ts";

const quick = process.argv.includes("--quick");
const json = process.argv.includes("--json");
const pluginsFlag = process.argv.indexOf("--plugins");
const pluginCount = pluginsFlag > 0 ? Number(process.argv[pluginsFlag + 1]) : quick ? 3 : 50;
const requests = quick ? 50 : 1_000;
const echoBlocks = quick ? 4 : 40;
const echoBlockCalls = quick ? 250 : 1_000;
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
// The same metrics timing one call in 8 (counts stay exact).
const sampledMetrics = new PluginMetrics({ sampleIntervalMs: 0, timedCallEvery: 8 });
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
  rows.push(latencyRow("ops.metrics_scrape", `${pluginCount} plugins`, scrape, "target ≤ 10 ms p50 at 50 plugins"));
  log("GET /api/plugins");
  const list = await timeRequests(async () => await app.request("/api/plugins", { headers }), requests);
  rows.push(latencyRow("ops.api_plugins", `${pluginCount} plugins`, list, "target ≤ 2 ms p50 at 50 plugins"));

  log("echo calls, metrics off and on in alternating blocks");
  const off: number[] = [];
  const on: number[] = [];
  const onSampled: number[] = [];
  const instrumented = async (instr: typeof instrumentation, into: number[], i: number) => {
    const started = performance.now();
    const state = instr.begin("echo", "echo");
    try {
      await host.call("echo", "echo", [i]);
      instr.end("echo", "echo", state);
    } catch (error) {
      instr.end("echo", "echo", state, error);
      throw error;
    }
    into.push(performance.now() - started);
  };
  // Same shape as `instrumented`, so that only begin/end differ.
  const plain = async (into: number[], i: number) => {
    const started = performance.now();
    await host.call("echo", "echo", [i]);
    into.push(performance.now() - started);
  };
  for (let i = 0; i < 2_000; i++) await host.call("echo", "echo", [i]); // warm-up
  for (let block = 0; block < echoBlocks; block++) {
    for (let i = 0; i < echoBlockCalls; i++) await plain(off, i);
    for (let i = 0; i < echoBlockCalls; i++) await instrumented(instrumentation, on, i);
    for (let i = 0; i < echoBlockCalls; i++) await instrumented(sampledMetrics.instrumentation, onSampled, i);
  }
  rows.push(latencyRow("ops.echo_metrics_off", "shm", off));
  rows.push(latencyRow("ops.echo_metrics_on", "shm", on, "target ≤ off + 5 % at p50"));
  rows.push(latencyRow("ops.echo_metrics_on_1in8", "shm", onSampled, "timedCallEvery: 8"));
} finally {
  metrics.close();
  sampledMetrics.close();
  await host.close();
  rmSync(dir, { recursive: true, force: true });
}
printRows(rows, json);
