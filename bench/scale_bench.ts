/**
 * Scale: many plugin processes under one host. `--plugins` (default 64)
 * copies of the echo plugin, each its own process and (by default) its own
 * sandbox, then:
 *
 * - scale.calls: every plugin called at once by `--callers` per plugin for `--seconds`: aggregate calls/s,
 *   and the latency of each call (p50, p99, p99.9);
 * - scale.idle_cpu: all of them idle for `--seconds`: CPU of the host and of every plugin process tree, as
 *   percent of one core (/proc read once before and once after).
 *
 *     deno run -A bench/scale_bench.ts [--json] [--plugins=64] [--callers=4] [--seconds=5] [--sandbox=off] [--wake=futex|doorbell|block]
 *
 * @module
 */

import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { PluginHost } from "../mod.ts";
import { wakeDefault } from "../src/transport/factory.ts";
import { readTreeUsage } from "../src/host/process_tree.ts";
import { type BenchRow, latencyRow, printRows, rateRow, runtime } from "./_stats.ts";

const arg = (name: string, fallback: number) =>
  Number(process.argv.find((a) => a.startsWith(`--${name}=`))?.split("=")[1] ?? fallback);
const json = process.argv.includes("--json");
const plugins = arg("plugins", 64);
const callers = arg("callers", 4);
const seconds = arg("seconds", 5);
const sandbox = process.argv.includes("--sandbox=off") ? "off" : "required";
// The host's default wake-up unless one is named (it was "doorbell" here while the host's default became "futex").
const wakeArg = process.argv.find((a) => a.startsWith("--wake="))?.slice("--wake=".length);
if (wakeArg !== undefined && wakeArg !== "futex" && wakeArg !== "doorbell" && wakeArg !== "block") {
  throw new RangeError(`--wake must be futex, doorbell or block, got ${wakeArg}`);
}
const wake = wakeArg as "futex" | "doorbell" | "block" | undefined;
const wakeNote = wake ?? `${wakeDefault} (default)`;
const log = (text: string) => json || console.error(`… ${text}`);

const root = fileURLToPath(new URL("..", import.meta.url));
// The copies live three levels under the repository, as examples/plugins/echo does, so that the plugin's
// relative import of the SDK (../../../plugin.ts) still resolves.
mkdirSync(join(root, ".scratch"), { recursive: true });
const work = mkdtempSync(join(root, ".scratch", "scale-"));
const names: string[] = [];
for (let i = 0; i < plugins; i++) {
  const name = `echo-${i}`;
  const dir = join(work, name);
  cpSync(join(root, "examples/plugins/echo"), dir, { recursive: true });
  writeFileSync(
    join(dir, "plugin.json"),
    JSON.stringify({
      name,
      version: "1.0.0",
      runtime: "deno",
      entry: "main.ts",
      permissions: { hostFunctions: ["now"] },
    }),
  );
  names.push(name);
}
const host = new PluginHost({
  dirs: [work],
  sandbox,
  wake,
  logger: () => {},
  hostFunctions: { now: () => Date.now() },
});
const rows: BenchRow[] = [];
try {
  const started = performance.now();
  log(`loading ${plugins} plugins (sandbox ${sandbox})`);
  for (let i = 0; i < names.length; i += 8) await Promise.all(names.slice(i, i + 8).map((n) => host.load(n)));
  log(`loaded in ${((performance.now() - started) / 1000).toFixed(1)} s`);

  log(`calling: ${callers} callers per plugin for ${seconds} s`);
  const samples: number[] = [];
  let calls = 0;
  const until = performance.now() + seconds * 1000;
  const caller = async (name: string) => {
    while (performance.now() < until) {
      const t0 = performance.now();
      await host.call(name, "echo", [calls]);
      samples.push(performance.now() - t0);
      calls++;
    }
  };
  const t0 = performance.now();
  await Promise.all(names.flatMap((name) => Array.from({ length: callers }, () => caller(name))));
  const elapsed = performance.now() - t0;
  rows.push(latencyRow("scale.calls", `shm x${plugins}`, samples, `${callers} callers per plugin`));
  rows.push(
    rateRow("scale.calls", `shm x${plugins}`, calls, elapsed, `aggregate, sandbox ${sandbox}, wake ${wakeNote}`),
  );

  log(`idle for ${seconds} s`);
  // Read /proc once before and once after, so that the measuring costs nothing in between.
  const pids = host.list().flatMap((p) => p.pids);
  const cpuOf = () => pids.reduce((sum, pid) => sum + (readTreeUsage(pid)?.cpuSeconds ?? 0), 0);
  const pluginBefore = cpuOf();
  const hostBefore = process.cpuUsage();
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  const hostCpu = process.cpuUsage(hostBefore);
  const pluginCpu = cpuOf() - pluginBefore;
  const hostPct = ((hostCpu.user + hostCpu.system) / 1e6 / seconds) * 100;
  const pluginPct = (pluginCpu / seconds) * 100;
  rows.push({
    bench: "scale.idle_cpu",
    runtime,
    transport: `shm x${plugins}`,
    size: null,
    p50_us: null,
    p99_us: null,
    p999_us: null,
    msgs_per_s: null,
    bytes_per_s: null,
    note: `host ${hostPct.toFixed(2)} % + ${pids.length} plugins ${
      pluginPct.toFixed(2)
    } % of one core (all idle, wake ${wakeNote})`,
  });
} finally {
  await host.close();
  rmSync(work, { recursive: true, force: true });
}
printRows(rows, json);
