/**
 * Cold start: time from `import` of plugin-shm to the first call answered, a
 * Bun host with a Bun plugin, each run a fresh host process (bench/_cold_host.ts)
 * starting a fresh plugin process. `bun bench/cold_start.ts [--runs N]`.
 * Prints each run and the median, min and max.
 *
 * @module
 */

import { spawnSync } from "node:child_process";
import process from "node:process";
import { fileURLToPath } from "node:url";

const runsArg = process.argv.indexOf("--runs");
const runs = runsArg >= 0 ? Number(process.argv[runsArg + 1]) : 5;
const host = fileURLToPath(new URL("./_cold_host.ts", import.meta.url));
const results: { importMs: number; loadMs: number; firstCallMs: number; processMs: number }[] = [];
for (let i = 0; i < runs; i++) {
  const before = performance.now();
  const out = spawnSync(process.execPath, [host], { encoding: "utf8" });
  const processMs = performance.now() - before;
  if (out.status !== 0) throw new Error(`cold host run ${i} failed: ${out.stderr}`);
  const result = { ...JSON.parse(out.stdout.trim().split("\n").pop()!), processMs };
  results.push(result);
  console.log(JSON.stringify(result));
}
const stats = (key: keyof (typeof results)[number]) => {
  const sorted = results.map((r) => r[key]).sort((a, b) => a - b);
  return `${key}: median ${sorted[Math.floor(sorted.length / 2)].toFixed(1)} ms, ` +
    `min ${sorted[0].toFixed(1)}, max ${sorted.at(-1)!.toFixed(1)} (${runs} runs)`;
};
for (const key of ["firstCallMs", "importMs", "loadMs", "processMs"] as const) console.log(stats(key));
