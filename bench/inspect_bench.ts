/**
 * What an inspector costs a plugin's cold start: load to first answer of the
 * same small plugin (tests/fixtures/spinner*) per runtime, sandboxed as by
 * default, with no inspector, with `blameStalls` (Deno and Bun: an inspector
 * listening from the start; Node: only its port set, opened at a stall) and
 * with `load(name, {inspect: true})` (a debugger's inspector, whose URL the
 * host fetches before load() returns). The modes are interleaved run by run,
 * so a machine that gets busier slows all of them alike.
 *
 * `deno run -A bench/inspect_bench.ts [--runs N]` (or bun, or node on dist/).
 * Prints one JSON line per run, then median, min and max per runtime and mode.
 *
 * @module
 */

import process from "node:process";
import { fileURLToPath } from "node:url";
import { PluginHost } from "../mod.ts";

const runsArg = process.argv.indexOf("--runs");
const runs = runsArg >= 0 ? Number(process.argv[runsArg + 1]) : 10;
const fixtures = fileURLToPath(new URL("../tests/fixtures", import.meta.url));
const plugins = { deno: "spinner", bun: "spinner-bun", node: "spinner-node" } as const;
type Mode = "off" | "blameStalls" | "inspect";
const modes: Mode[] = ["off", "blameStalls", "inspect"];

async function coldStartMs(name: string, mode: Mode): Promise<number> {
  const host = new PluginHost({ dirs: [fixtures], logger: () => {}, blameStalls: mode === "blameStalls" });
  try {
    const started = performance.now();
    await host.load(name, mode === "inspect" ? { inspect: true } : {});
    await host.call(name, "add", [1, 2]);
    return performance.now() - started;
  } finally {
    await host.close();
  }
}

const results = new Map<string, number[]>();
for (let run = 0; run < runs; run++) {
  for (const [runtime, name] of Object.entries(plugins)) {
    for (const mode of modes) {
      const ms = await coldStartMs(name, mode);
      const key = `${runtime} ${mode}`;
      results.set(key, [...(results.get(key) ?? []), ms]);
      console.log(JSON.stringify({ run, runtime, mode, coldStartMs: Number(ms.toFixed(1)) }));
    }
  }
}
console.log(`cold start, load() to first answer, ${runs} run(s) each, sandboxed:`);
for (const [key, values] of results) {
  const sorted = [...values].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)];
  console.log(
    `${key.padEnd(18)} median ${median.toFixed(1).padStart(7)} ms  min ${sorted[0].toFixed(1).padStart(7)}  ` +
      `max ${sorted.at(-1)!.toFixed(1).padStart(7)}`,
  );
}
