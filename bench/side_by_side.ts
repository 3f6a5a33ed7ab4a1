/**
 * One table from several benchmark runs' JSON lines (bench/channel_bench.ts
 * --json under Deno and Bun, bench/shmipc --json under Go): per message size,
 * each transport's ping-pong p50 / p99 and one-way messages per second, side
 * by side. `make bench-shmipc` runs everything in one go and calls this.
 *
 *     deno run -A bench/side_by_side.ts a.jsonl b.jsonl …
 *
 * @module
 */

import { readFileSync } from "node:fs";
import process from "node:process";

interface Row {
  bench: string;
  runtime: string;
  transport: string;
  size: number;
  p50_us: number | null;
  p99_us: number | null;
  msgs_per_s: number | null;
  note?: string;
}

const rows: Row[] = process.argv.slice(2).flatMap((file) =>
  readFileSync(file, "utf8").split("\n").filter((line) => line.startsWith("{")).map((line) => JSON.parse(line) as Row)
);
/** The transports compared: ours (shm and a unix socket from the same runtime) and shmipc-go's (with Go's unix socket). */
const wanted = new Set(["shm", "unix", "shmipc"]);
const columns = [...new Set(rows.filter((r) => wanted.has(r.transport)).map((r) => `${r.runtime} ${r.transport}`))];
const sizes = [...new Set(rows.map((r) => r.size))].filter((s) => s > 0).sort((a, b) => a - b);
const find = (bench: string, column: string, size: number) =>
  rows.find((r) => r.bench === bench && `${r.runtime} ${r.transport}` === column && r.size === size);
const num = (v: number | null | undefined, digits = 1) =>
  v === null || v === undefined ? "—" : v >= 1000 ? `${(v / 1000).toFixed(digits)}k` : v.toFixed(digits);
const label = (size: number) =>
  size >= 1 << 20 ? `${size >> 20} MiB` : size >= 1024 ? `${size >> 10} KiB` : `${size} B`;

console.log(`| size | measure | ${columns.join(" | ")} |`);
console.log(`|---|---|${columns.map(() => "---").join("|")}|`);
for (const size of sizes) {
  const rtt = columns.map((c) => {
    const r = find("channel.rtt", c, size);
    return r ? `${num(r.p50_us)} / ${num(r.p99_us)}` : "—";
  });
  console.log(`| ${label(size)} | RTT p50 / p99 µs | ${rtt.join(" | ")} |`);
  const tput = columns.map((c) => num(find("channel.throughput", c, size)?.msgs_per_s, 0));
  console.log(`| ${label(size)} | one-way msgs/s | ${tput.join(" | ")} |`);
}
