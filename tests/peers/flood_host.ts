/**
 * A host process of its own for the log-flood test: loads the flood fixture
 * with a LogStore as its logger, lets it write `argv[2]` MiB, and prints one
 * JSON line with its RSS growth (peak during the flood minus before) and what
 * the store holds. Measured in a fresh process so that the test runner's own
 * heap, grown by every test before, does not blur the host's figure. With
 * `noop` as `argv[3]` the plugin's stdout is dropped instead of kept: the
 * host's own share, for comparison.
 */
import process from "node:process";
import { PluginHost } from "../../mod.ts";
import { LogStore } from "../../src/observe/logs.ts";
import { fixtures } from "../_harness.ts";

const floodMiB = Number(process.argv[2] ?? 200);
const logs = new LogStore();
const keep = process.argv[3] !== "noop";
const host = new PluginHost({
  dirs: [fixtures],
  logger: keep ? logs.logger : (e) => e.stream === "stderr" && logs.logger(e),
});
const errorLines = () => logs.query("flood", { level: "error" });
async function until(check: () => boolean, limitMs: number): Promise<void> {
  const started = Date.now();
  while (!check()) {
    if (Date.now() - started > limitMs) throw new Error(`condition not met within ${limitMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
let peak = 0;
const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 25);
try {
  await host.load("flood");
  await host.call("flood", "flood", [1]); // warm up the paths once before measuring
  await until(() => errorLines().length === 1, 10_000);
  const warmUpSeq = errorLines()[0].seq;
  const before = process.memoryUsage().rss;
  peak = before;
  const written = await host.call("flood", "flood", [floodMiB], { deadlineMs: 200_000 }) as number;
  await until(() => logs.query("flood", { level: "error", afterSeq: warmUpSeq }).length === 1, 60_000);
  console.log(JSON.stringify({
    growthBytes: peak - before,
    written,
    stats: logs.stats("flood"),
    newestLevel: logs.query("flood").at(-1)?.level,
  }));
} finally {
  clearInterval(sampler);
  await host.close();
}
