/**
 * Charts from benchmark JSON lines (bench/channel_bench.ts --json, bench/shmipc
 * --json), as plain SVG with no dependencies, into bench/:
 *
 * - latency_by_size.svg: round-trip p50 by message size, one line per transport (log-log);
 * - rtt_tails.svg: round-trip p50, p99 and p99.9 at 64 B per transport (the distribution's shape);
 * - throughput_by_size.svg: one-way messages per second by message size (log-log);
 * - calls_per_s.svg: pipelined echo calls per second through PluginHost, per host runtime and transport
 *   (bench/rpc_bench.ts --json rows), with each bar's echo p50 printed above it;
 * - tails_causes.svg: what the slow 64 B round trips had happen during them (bench/tails_bench.ts --json
 *   `tails.attribution` rows of channel.rtt): per cause, the share among all samples, those at or above p99
 *   and at or above p99.9, per runtime.
 *
 * A chart is written only when its rows are among the inputs, so one call can
 * take any mix of files:
 *
 *     deno run -A bench/charts.ts a.jsonl b.jsonl …   (make bench and make bench-shmipc run it)
 *
 * @module
 */

import { readFileSync, writeFileSync } from "node:fs";
import process from "node:process";

interface Row {
  bench: string;
  runtime: string;
  transport: string;
  size: number;
  p50_us: number | null;
  p99_us: number | null;
  p999_us: number | null;
  msgs_per_s: number | null;
  /** tails.attribution rows (bench/tails_bench.ts): which bench, the cause and its shares in percent. */
  of?: string;
  cause?: string;
  all_pct?: number | null;
  p99_pct?: number | null;
  p999_pct?: number | null;
}

const rows: Row[] = process.argv.slice(2).flatMap((file) =>
  readFileSync(file, "utf8").split("\n").filter((line) => line.startsWith("{")).map((line) => JSON.parse(line) as Row)
);
const wanted = new Set(["shm", "unix", "shmipc"]);
const series = [...new Set(rows.filter((r) => wanted.has(r.transport)).map((r) => `${r.runtime} ${r.transport}`))];
const colours = ["#1f77b4", "#aec7e8", "#d62728", "#ff9896", "#2ca02c", "#98df8a", "#9467bd", "#c5b0d5"];
const colourOf = (name: string) => colours[series.indexOf(name) % colours.length];

/** Chart geometry, pixels. */
const width = 720, height = 420, left = 70, right = 170, top = 40, bottom = 50;
const plotW = width - left - right, plotH = height - top - bottom;

const escape = (text: string) => text.replace(/[<>&]/g, (c) => ({ "<": "&lt;", ">": "&gt;", "&": "&amp;" })[c]!);
const sizeLabel = (size: number) =>
  size >= 1 << 20 ? `${size >> 20} MiB` : size >= 1024 ? `${size >> 10} KiB` : `${size} B`;
const numLabel = (v: number) =>
  v >= 1e6 ? `${+(v / 1e6).toPrecision(2)} M` : v >= 1e3 ? `${+(v / 1e3).toPrecision(2)} k` : `${+v.toPrecision(2)}`;

function frame(title: string, yLabel: string, body: string[], keys = series, colour = colourOf): string {
  const legend = keys.map((name, i) =>
    `<rect x="${width - right + 15}" y="${top + i * 20}" width="12" height="12" fill="${colour(name)}"/>` +
    `<text x="${width - right + 32}" y="${top + i * 20 + 11}">${escape(name)}</text>`
  );
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${width / 2}" y="22" text-anchor="middle" font-size="15">${escape(title)}</text>`,
    `<text transform="translate(16 ${top + plotH / 2}) rotate(-90)" text-anchor="middle">${escape(yLabel)}</text>`,
    `<rect x="${left}" y="${top}" width="${plotW}" height="${plotH}" fill="none" stroke="#999"/>`,
    ...body,
    ...legend,
    `</svg>`,
  ].join("\n");
}

/** A log-scaled axis over [min, max], decades as grid lines. */
function logScale(values: number[], from: number, span: number, invert: boolean) {
  const lo = Math.floor(Math.log10(Math.min(...values))), hi = Math.ceil(Math.log10(Math.max(...values)));
  const at = (v: number) => {
    const t = (Math.log10(v) - lo) / Math.max(1, hi - lo);
    return invert ? from + span - t * span : from + t * span;
  };
  const decades = Array.from({ length: hi - lo + 1 }, (_, i) => 10 ** (lo + i));
  return { at, decades };
}

function lineChart(file: string, title: string, yLabel: string, bench: string, pick: (r: Row) => number | null): void {
  const points = rows.filter((r) => r.bench === bench && series.includes(`${r.runtime} ${r.transport}`) && pick(r));
  if (points.length === 0) return;
  const sizes = [...new Set(points.map((r) => r.size))].sort((a, b) => a - b);
  const x = (size: number) => left + (sizes.indexOf(size) / Math.max(1, sizes.length - 1)) * plotW;
  const y = logScale(points.map((r) => pick(r)!), top, plotH, true);
  const body = [
    ...y.decades.map((d) =>
      `<line x1="${left}" x2="${left + plotW}" y1="${y.at(d)}" y2="${y.at(d)}" stroke="#eee"/>` +
      `<text x="${left - 6}" y="${y.at(d) + 4}" text-anchor="end">${numLabel(d)}</text>`
    ),
    ...sizes.map((s) => `<text x="${x(s)}" y="${top + plotH + 18}" text-anchor="middle">${sizeLabel(s)}</text>`),
    `<text x="${left + plotW / 2}" y="${height - 10}" text-anchor="middle">message size</text>`,
  ];
  for (const name of series) {
    const own = points.filter((r) => `${r.runtime} ${r.transport}` === name).sort((a, b) => a.size - b.size);
    if (own.length === 0) continue;
    const path = own.map((r, i) => `${i ? "L" : "M"}${x(r.size).toFixed(1)},${y.at(pick(r)!).toFixed(1)}`).join("");
    body.push(`<path d="${path}" fill="none" stroke="${colourOf(name)}" stroke-width="2"/>`);
    for (const r of own) {
      body.push(`<circle cx="${x(r.size)}" cy="${y.at(pick(r)!)}" r="3" fill="${colourOf(name)}"/>`);
    }
  }
  writeFileSync(file, frame(title, yLabel, body));
  console.error(`wrote ${file}`);
}

function tailsChart(file: string): void {
  const points = series.map((name) =>
    rows.find((r) => r.bench === "channel.rtt" && `${r.runtime} ${r.transport}` === name && r.size === 64)
  ).filter((r): r is Row => r !== undefined && r.p50_us !== null);
  if (points.length === 0) return;
  const values = points.flatMap((r) => [r.p50_us!, r.p99_us ?? r.p50_us!, r.p999_us ?? r.p50_us!]);
  const y = logScale(values, top, plotH, true);
  const group = plotW / points.length;
  const body = y.decades.map((d) =>
    `<line x1="${left}" x2="${left + plotW}" y1="${y.at(d)}" y2="${y.at(d)}" stroke="#eee"/>` +
    `<text x="${left - 6}" y="${y.at(d) + 4}" text-anchor="end">${numLabel(d)}</text>`
  );
  points.forEach((r, i) => {
    const name = `${r.runtime} ${r.transport}`;
    [r.p50_us, r.p99_us, r.p999_us].forEach((v, j) => {
      if (v === null) return;
      const x = left + i * group + group * 0.15 + j * group * 0.24;
      const base = top + plotH;
      body.push(
        `<rect x="${x}" y="${y.at(v)}" width="${group * 0.22}" height="${base - y.at(v)}" fill="${colourOf(name)}" ` +
          `opacity="${1 - j * 0.3}"><title>${escape(name)} ${["p50", "p99", "p99.9"][j]}: ${
            v.toFixed(1)
          } µs</title></rect>`,
      );
    });
    body.push(
      `<text x="${left + i * group + group / 2}" y="${top + plotH + 18}" text-anchor="middle">${escape(name)}</text>`,
    );
  });
  body.push(
    `<text x="${left + plotW / 2}" y="${
      height - 10
    }" text-anchor="middle">each group: p50, p99, p99.9 (lighter)</text>`,
  );
  writeFileSync(file, frame("Round trip at 64 B: median and tails", "µs (log)", body));
  console.error(`wrote ${file}`);
}

/** Grouped bars on a linear axis: one group per host runtime, one bar per transport. */
function callsChart(file: string): void {
  const calls = rows.filter((r) => r.bench === "rpc.throughput" && r.msgs_per_s);
  if (calls.length === 0) return;
  const hosts = [...new Set(calls.map((r) => r.runtime))];
  const transports = [...new Set(calls.map((r) => r.transport))];
  const palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"];
  const colourOfTransport = (name: string) => palette[transports.indexOf(name) % palette.length];
  const p50Of = (r: Row) =>
    rows.find((e) => e.bench === "rpc.rtt" && e.runtime === r.runtime && e.transport === r.transport)?.p50_us;
  const max = Math.max(...calls.map((r) => r.msgs_per_s!));
  const step = 10 ** Math.floor(Math.log10(max)) / (max / 10 ** Math.floor(Math.log10(max)) > 4 ? 1 : 2);
  const y = (v: number) => top + plotH - (v / (Math.ceil(max / step) * step)) * plotH;
  const body: string[] = [];
  for (let v = 0; v <= max + step; v += step) {
    body.push(
      `<line x1="${left}" x2="${left + plotW}" y1="${y(v)}" y2="${y(v)}" stroke="#eee"/>` +
        `<text x="${left - 6}" y="${y(v) + 4}" text-anchor="end">${numLabel(v || 0)}</text>`,
    );
  }
  const group = plotW / hosts.length, bar = (group * 0.8) / transports.length;
  hosts.forEach((host, i) => {
    transports.forEach((transport, j) => {
      const r = calls.find((c) => c.runtime === host && c.transport === transport);
      if (!r) return;
      const x = left + i * group + group * 0.1 + j * bar;
      const p50 = p50Of(r);
      body.push(
        `<rect x="${x}" y="${y(r.msgs_per_s!)}" width="${bar * 0.9}" height="${top + plotH - y(r.msgs_per_s!)}" ` +
          `fill="${colourOfTransport(transport)}"><title>${escape(`${host} host, ${transport}`)}: ${
            numLabel(r.msgs_per_s!)
          } calls/s</title></rect>`,
      );
      if (p50) {
        body.push(
          `<text x="${x + bar * 0.45}" y="${y(r.msgs_per_s!) - 4}" text-anchor="middle" font-size="9">${
            p50.toFixed(p50 < 10 ? 1 : 0)
          }</text>`,
        );
      }
    });
    body.push(
      `<text x="${left + i * group + group / 2}" y="${top + plotH + 18}" text-anchor="middle">${
        escape(host)
      } host</text>`,
    );
  });
  body.push(
    `<text x="${left + plotW / 2}" y="${height - 10}" text-anchor="middle">` +
      `pipelined echo calls (256 in flight); the figure above a bar is one call's p50 in µs</text>`,
  );
  writeFileSync(
    file,
    frame("Echo calls per second through PluginHost", "calls/s", body, transports, colourOfTransport),
  );
  console.error(`wrote ${file}`);
}

/** The causes tails_causes.svg shows (of bench/_tails.ts's), with short labels. */
const chartedCauses: [string, string][] = [
  ["self switched out (schedstat slices)", "self switched out"],
  ["peer switched out", "peer switched out"],
  ["self spin yielded and waited for a CPU", "yielded, waited"],
  ["self parked and woken", "self parked"],
  ["self GC", "self GC"],
  ["peer GC", "peer GC"],
  ["a timer fired, either side", "timer fired"],
];

/** Grouped bars, linear 0-100 %: one group per cause, per runtime three bars (all, >= p99, >= p99.9). */
function causesChart(file: string): void {
  const shares = rows.filter((r) => r.bench === "tails.attribution" && r.of === "tails.channel.rtt");
  if (shares.length === 0) return;
  const runtimes = [...new Set(shares.map((r) => r.runtime))];
  const palette = ["#1f77b4", "#d62728", "#2ca02c"];
  const colourOfRuntime = (name: string) => palette[runtimes.indexOf(name) % palette.length];
  const y = (pct: number) => top + plotH - (pct / 100) * plotH;
  const body: string[] = [];
  for (let pct = 0; pct <= 100; pct += 25) {
    body.push(
      `<line x1="${left}" x2="${left + plotW}" y1="${y(pct)}" y2="${y(pct)}" stroke="#eee"/>` +
        `<text x="${left - 6}" y="${y(pct) + 4}" text-anchor="end">${pct} %</text>`,
    );
  }
  const group = plotW / chartedCauses.length;
  const bar = (group * 0.84) / (runtimes.length * 3);
  chartedCauses.forEach(([cause, label], i) => {
    runtimes.forEach((runtime, k) => {
      const r = shares.find((e) => e.runtime === runtime && e.cause === cause);
      [r?.all_pct, r?.p99_pct, r?.p999_pct].forEach((pct, j) => {
        if (pct === null || pct === undefined) return;
        const x = left + i * group + group * 0.08 + (k * 3 + j) * bar;
        body.push(
          `<rect x="${x}" y="${y(pct)}" width="${bar * 0.9}" height="${top + plotH - y(pct)}" ` +
            `fill="${colourOfRuntime(runtime)}" opacity="${0.35 + j * 0.325}"><title>${escape(runtime)}, ${
              escape(cause)
            }, ${["all samples", ">= p99", ">= p99.9"][j]}: ${pct} %</title></rect>`,
        );
      });
    });
    body.push(
      `<text x="${left + i * group + group / 2}" y="${top + plotH + 16}" text-anchor="middle" font-size="10">${
        escape(label)
      }</text>`,
    );
  });
  body.push(
    `<text x="${left + plotW / 2}" y="${height - 10}" text-anchor="middle">` +
      `per runtime: all samples, >= p99, >= p99.9 (darker)</text>`,
  );
  writeFileSync(
    file,
    frame("What happened during 64 B round trips", "share of samples", body, runtimes, colourOfRuntime),
  );
  console.error(`wrote ${file}`);
}

const dir = new URL(".", import.meta.url).pathname;
lineChart(
  `${dir}latency_by_size.svg`,
  "Round trip p50 by message size",
  "µs (log)",
  "channel.rtt",
  (r) => r.p50_us,
);
tailsChart(`${dir}rtt_tails.svg`);
lineChart(
  `${dir}throughput_by_size.svg`,
  "One-way messages per second by size",
  "messages/s (log)",
  "channel.throughput",
  (r) => r.msgs_per_s,
);
callsChart(`${dir}calls_per_s.svg`);
causesChart(`${dir}tails_causes.svg`);
