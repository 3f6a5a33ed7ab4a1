/**
 * Percentiles, rows and output shared by the RPC and supervision benchmarks:
 * a human table, or with --json one object per line.
 *
 * @module
 */

/** One result line. Fields that do not apply are null. */
export interface BenchRow {
  bench: string;
  runtime: "deno" | "bun" | "node";
  transport: string;
  size: number | null;
  p50_us: number | null;
  p99_us: number | null;
  p999_us: number | null;
  max_us?: number | null;
  msgs_per_s: number | null;
  bytes_per_s: number | null;
  note?: string;
}

/** The runtime running the benchmark. */
export const runtime: "deno" | "bun" | "node" = "Bun" in globalThis ? "bun" : "Deno" in globalThis ? "deno" : "node";

/** The p-th percentile (0..1) of ascending samples. */
export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}

/** A latency row from samples in milliseconds. */
export function latencyRow(bench: string, transport: string, samplesMs: number[], note?: string): BenchRow {
  const sorted = [...samplesMs].sort((a, b) => a - b);
  const us = (ms: number) => Math.round(ms * 1000 * 100) / 100;
  return {
    bench,
    runtime,
    transport,
    size: null,
    p50_us: us(percentile(sorted, 0.5)),
    p99_us: us(percentile(sorted, 0.99)),
    p999_us: us(percentile(sorted, 0.999)),
    max_us: us(sorted[sorted.length - 1]),
    msgs_per_s: null,
    bytes_per_s: null,
    note,
  };
}

/** A throughput row. */
export function rateRow(bench: string, transport: string, count: number, elapsedMs: number, note?: string): BenchRow {
  return {
    bench,
    runtime,
    transport,
    size: null,
    p50_us: null,
    p99_us: null,
    p999_us: null,
    msgs_per_s: Math.round(count / (elapsedMs / 1000)),
    bytes_per_s: null,
    note,
  };
}

function cell(value: number | null | undefined): string {
  if (value === null || value === undefined || Number.isNaN(value)) return "—";
  if (value >= 1e6) return `${(value / 1e6).toFixed(2)}M`;
  if (value >= 1e4) return `${(value / 1e3).toFixed(1)}k`;
  return String(value);
}

/** Prints rows as a table or as JSON lines. */
export function printRows(rows: BenchRow[], json: boolean): void {
  if (json) {
    for (const r of rows) console.log(JSON.stringify(r));
    return;
  }
  const header = ["bench", "runtime", "transport", "p50 µs", "p99 µs", "p99.9 µs", "max µs", "per s", "note"];
  const lines = rows.map((r) => [
    r.bench,
    r.runtime,
    r.transport,
    cell(r.p50_us),
    cell(r.p99_us),
    cell(r.p999_us),
    cell(r.max_us),
    cell(r.msgs_per_s),
    r.note ?? "",
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
  const fmt = (l: string[]) => l.map((c, i) => c.padEnd(widths[i])).join("  ");
  console.log(fmt(header));
  for (const l of lines) console.log(fmt(l));
}
