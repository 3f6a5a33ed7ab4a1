/**
 * One table from several benchmark runs' JSON lines (bench/channel_bench.ts
 * and bench/shmipc/views.ts --json under Deno and Bun, bench/shmipc --json
 * under Go): per message size, each transport's ping-pong p50 / p99 and
 * one-way messages per second, side by side, then per size whether our
 * channel beats shmipc-go. `make bench-shmipc` runs everything in one go and
 * calls this.
 *
 *     deno run -A bench/side_by_side.ts a.jsonl b.jsonl …
 *
 * Columns: `shm_view` is our channel used as shmipc-go is used (receiveView()
 * and releaseView(): the receiver reads the ring in place, as ReadBytes +
 * ReleaseReadAndReuse read shmipc-go's buffer; see bench/shmipc/views.ts for
 * each side's work per message); `shm` is the copying receive() that RPC
 * uses (bench/channel_bench.ts); `unix` a unix socket from the same runtime.
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
/**
 * The transports compared, in column order within a runtime: ours (views, copies, and a unix socket from the same
 * runtime) and shmipc-go's (with Go's unix socket).
 */
const wanted = ["shm_view", "shm", "unix", "shmipc"];
const runtimes = [...new Set(rows.map((r) => r.runtime))];
const columns = [...new Set(rows.filter((r) => wanted.includes(r.transport)).map((r) => `${r.runtime} ${r.transport}`))]
  .sort((a, b) => {
    const [ra, ta] = a.split(" ");
    const [rb, tb] = b.split(" ");
    return runtimes.indexOf(ra) - runtimes.indexOf(rb) || wanted.indexOf(ta) - wanted.indexOf(tb);
  });
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

// Per size: ours (each runtime's shm_view, the API that works as shmipc-go's does) against shmipc-go, same run.
const shmipc = (bench: string, size: number) => find(bench, "go shmipc", size);
const lines: string[] = [];
for (const size of sizes) {
  for (const runtime of runtimes.filter((r) => r !== "go")) {
    const ours = (bench: string) => find(bench, `${runtime} shm_view`, size);
    const rtt = ours("channel.rtt")?.p50_us;
    const theirsRtt = shmipc("channel.rtt", size)?.p50_us;
    const tput = ours("channel.throughput")?.msgs_per_s;
    const theirsTput = shmipc("channel.throughput", size)?.msgs_per_s;
    if (rtt == null || theirsRtt == null || tput == null || theirsTput == null) continue;
    const verdict = (better: boolean) => better ? "faster" : "SLOWER";
    lines.push(
      `- ${label(size)}, ${runtime} shm_view vs go shmipc: round trip ${verdict(rtt < theirsRtt)} ` +
        `(p50 ${num(rtt)} vs ${num(theirsRtt)} µs), one-way ${verdict(tput > theirsTput)} ` +
        `(${num(tput, 0)} vs ${num(theirsTput, 0)} msgs/s)`,
    );
  }
}
if (lines.length > 0) console.log(`\n${lines.join("\n")}`);
