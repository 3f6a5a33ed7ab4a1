/**
 * Per-sample evidence for bench/tails_bench.ts: what happened to a process
 * while one round trip was in flight. The bench, its channel peer
 * (bench/_tails_peer.ts) and its echo plugin (bench/plugins/tails-echo) each
 * keep a {@link Probe} and take one snapshot of cumulative counters per
 * sample; the difference of two snapshots is that sample's evidence.
 *
 * What each counter is and why it is cheap enough to read per sample
 * (measured here: every read is well under a microsecond except where said):
 *
 * - `runNs`, `waitNs`, `slices`: /proc/thread-self/schedstat of the JS thread
 *   (time on CPU, time runnable but waiting for a CPU, times scheduled in),
 *   one pread of an fd opened once (0.4-0.8 µs). `slices` grows when the
 *   thread was switched out and back in for any reason; `waitNs` when it was
 *   ready to run and had no CPU: preemption, or a yield that lost the CPU.
 * - `volCs`, `involCs`, `minFlt`: process.resourceUsage() context switches
 *   and minor page faults (every thread of the process, so the runtime's
 *   helper threads count too).
 * - `gcs`: a garbage collection ran. Deno (V8): the used heap
 *   (node:v8 getHeapStatistics, 0.3 µs) dropped between two snapshots; V8's
 *   PerformanceObserver "gc" entries never arrive in Deno 2.9 nor Bun 1.x
 *   (checked). Bun (JSC): bun:jsc heapSize(), the size after the last
 *   collection, changed (0.3 µs). A FinalizationRegistry canary was tried and
 *   dropped: its callbacks wait for an event-loop turn, which a busy
 *   round-trip loop does not take, so collections merge.
 * - `timers`: callbacks of setTimeout/setInterval that ran (counted by
 *   wrapping the globals before the code under test is imported:
 *   {@link countTimers}).
 * - `wakeups`, `yields`: the shm channel's stats(): parked and woken, and
 *   spin iterations that gave the CPU away (sched_yield).
 *
 * @module
 */

import process from "node:process";
import { closeSync, openSync, readSync, writeFileSync } from "node:fs";
import { getHeapStatistics } from "node:v8";

/** Opcodes of the tails bench's channel peer (bench/_tails_peer.ts) on top of bench/_protocol.ts's `Op`. */
export const TailsOp = { probe: 20, dump: 21 } as const;

/** Counters a snapshot holds, in this order. */
export const probeFields = [
  "runNs",
  "waitNs",
  "slices",
  "volCs",
  "involCs",
  "minFlt",
  "gcs",
  "timers",
  "wakeups",
  "yields",
] as const;
/** One of {@link probeFields}. */
export type ProbeField = typeof probeFields[number];
const fieldCount = probeFields.length;
const F = Object.fromEntries(probeFields.map((f, i) => [f, i])) as Record<ProbeField, number>;

/** The runtime running this file. */
export const probeRuntime: "deno" | "bun" | "node" = "Bun" in globalThis
  ? "bun"
  : "Deno" in globalThis
  ? "deno"
  : "node";

let timerFires = 0;
let timersWrapped = false;

/**
 * Wraps the global setTimeout and setInterval so that every callback they run
 * bumps a counter. Call it before importing the code under test, so that the
 * host's own timers (heartbeats, deadlines) are counted too.
 */
export function countTimers(): void {
  if (timersWrapped) return;
  timersWrapped = true;
  const g = globalThis as unknown as Record<string, (...args: unknown[]) => unknown>;
  for (const name of ["setTimeout", "setInterval"]) {
    const original = g[name];
    g[name] = function (callback: unknown, ...rest: unknown[]) {
      if (typeof callback !== "function") return original.call(globalThis, callback, ...rest);
      const counted = function (this: unknown, ...args: unknown[]) {
        timerFires++;
        return (callback as (...a: unknown[]) => unknown).apply(this, args);
      };
      return original.call(globalThis, counted, ...rest);
    };
  }
}

/** Reads /proc/thread-self/schedstat of the thread that opened it, again and again. */
interface SchedstatReader {
  /** Fills `buf` from offset 0 of the file; returns the byte count. */
  read(buf: Uint8Array): number;
  close(): void;
}

const schedstatPath = "/proc/thread-self/schedstat";

/**
 * node:fs where it may read /proc; else (a sandboxed Deno plugin: Deno lets
 * only --allow-all read /proc/thread-self, and a plugin has --allow-ffi) the
 * same open and pread through libc.
 */
function openSchedstat(): SchedstatReader {
  try {
    const fd = openSync(schedstatPath, "r");
    return { read: (buf) => readSync(fd, buf, 0, buf.length, 0), close: () => closeSync(fd) };
  } catch (error) {
    if (probeRuntime !== "deno") throw error;
  }
  const libc = Deno.dlopen("libc.so.6", {
    open: { parameters: ["buffer", "i32"], result: "i32" },
    pread: { parameters: ["i32", "buffer", "usize", "i64"], result: "isize" },
    close: { parameters: ["i32"], result: "i32" },
  });
  const fd = libc.symbols.open(new TextEncoder().encode(`${schedstatPath}\0`), 0);
  if (fd < 0) {
    libc.close();
    throw new Error(`cannot open ${schedstatPath} through libc; grant the plugin read access to /proc`);
  }
  return {
    read: (buf) => Math.max(0, Number(libc.symbols.pread(fd, buf, BigInt(buf.length), 0n))),
    close: () => {
      libc.symbols.close(fd);
      libc.close();
    },
  };
}

/** The nice value the `nice` part of bench/tails_bench.ts gives its autogroup (the bench and its peer). */
export const boostedNice = -10;

/**
 * Sets the nice value of this process's autogroup (Linux with sched_autogroup_enabled: every process of this
 * session, so the bench and the peer it spawned, against the other sessions' tasks; a task's own nice only
 * weighs inside its autogroup). Needs root to go below 0. The `nice` part of bench/tails_bench.ts uses it to test
 * whether the tails are other tasks preempting ours: an operator's knob, not a default.
 */
export function setAutogroupNice(nice: number): void {
  writeFileSync("/proc/self/autogroup", String(nice));
}

/** Where a probe reads the channel's wake-up and yield counters from (absent: zeros). */
export type StatsSource = () => { wakeupsReceived: number; spinYields?: number } | undefined;

/** Snapshots of cumulative counters, one per sample boundary, kept in one preallocated array. */
export class Probe {
  /** snapshots × {@link probeFields}, row-major. */
  readonly data: Float64Array;
  readonly #schedstat: SchedstatReader;
  readonly #buf = new Uint8Array(128);
  readonly #stats: StatsSource;
  #taken = 0;
  #lastHeap = 0;
  #gcCount = 0;
  /** The heap figure that changes at each collection: V8's used heap, JSC's size after the last collection. */
  readonly #heap: () => number;

  constructor(snapshotsMax: number, stats: StatsSource = () => undefined) {
    this.data = new Float64Array(snapshotsMax * fieldCount);
    this.#schedstat = openSchedstat();
    this.#stats = stats;
    this.#heap = heapFigure();
  }

  /** Snapshots taken since the last reset. */
  get taken(): number {
    return this.#taken;
  }

  /** Starts over: the next snapshot is number 0. */
  reset(): void {
    this.#taken = 0;
  }

  /** Takes the next snapshot (ignored once the array is full). */
  snap(): void {
    const i = this.#taken;
    if ((i + 1) * fieldCount > this.data.length) return;
    this.#taken = i + 1;
    const d = this.data;
    const o = i * fieldCount;
    this.#readSchedstat(d, o);
    const usage = process.resourceUsage();
    d[o + F.volCs] = usage.voluntaryContextSwitches;
    d[o + F.involCs] = usage.involuntaryContextSwitches;
    d[o + F.minFlt] = usage.minorPageFault;
    const heap = this.#heap();
    if (heap !== this.#lastHeap) {
      // V8: the used heap only grows between collections. JSC: the figure changes only at a collection.
      if (probeRuntime === "bun" || heap < this.#lastHeap) this.#gcCount++;
      this.#lastHeap = heap;
    }
    d[o + F.gcs] = this.#gcCount;
    d[o + F.timers] = timerFires;
    // NaN when this side has no channel counters to read (the echo plugin): "unknown", not "none".
    const stats = this.#stats();
    d[o + F.wakeups] = stats?.wakeupsReceived ?? NaN;
    d[o + F.yields] = stats?.spinYields ?? NaN;
  }

  /** Parses "run_ns wait_ns slices\n" without allocating. */
  #readSchedstat(d: Float64Array, o: number): void {
    const buf = this.#buf;
    const n = this.#schedstat.read(buf);
    let field = 0;
    let value = 0;
    for (let j = 0; j < n && field < 3; j++) {
      const c = buf[j];
      if (c >= 48 && c <= 57) value = value * 10 + (c - 48);
      else {
        d[o + field] = value;
        field++;
        value = 0;
      }
    }
  }

  /** The snapshots as plain arrays, for JSON. */
  dump(): number[][] {
    const out: number[][] = [];
    for (let i = 0; i < this.#taken; i++) {
      out.push(Array.from(this.data.subarray(i * fieldCount, (i + 1) * fieldCount)));
    }
    return out;
  }

  close(): void {
    this.#schedstat.close();
  }
}

/**
 * A heap figure that tells a collection ran: V8's used heap size (node:v8, 0.3 µs), which only grows between
 * collections; Bun: bun:jsc heapSize(), the heap's size after the last collection (0.3 µs), which changes at
 * each collection, eden or full, and at nothing else (checked against Bun.gc() in known windows).
 */
function heapFigure(): () => number {
  if (probeRuntime !== "bun") return () => getHeapStatistics().used_heap_size;
  const meta = import.meta as unknown as { require(id: string): { heapSize(): number } };
  const jsc = meta.require("bun:jsc");
  return () => jsc.heapSize();
}

/** The per-sample differences of consecutive snapshots: sample i is snapshot i + 1 minus snapshot i. */
export function deltas(snapshots: ArrayLike<number>[] | Float64Array, samples: number): Float64Array {
  const out = new Float64Array(samples * fieldCount);
  const at = (i: number, f: number) =>
    snapshots instanceof Float64Array ? snapshots[i * fieldCount + f] : (snapshots[i] as ArrayLike<number>)[f];
  for (let i = 0; i < samples; i++) {
    for (let f = 0; f < fieldCount; f++) out[i * fieldCount + f] = at(i + 1, f) - at(i, f);
  }
  return out;
}

/**
 * A cause a slow sample can be blamed on, tested per sample on both ends' deltas: true, false, or undefined
 * when that end keeps no such counter (the row then reads n/a).
 */
export interface Cause {
  name: string;
  test(self: Float64Array, peer: Float64Array | undefined, o: number): boolean | undefined;
}

function over(field: ProbeField, side: "self" | "peer"): Cause["test"] {
  return (self, peer, o) => {
    const d = side === "self" ? self : peer;
    if (d === undefined || Number.isNaN(d[o + F[field]])) return undefined;
    return d[o + F[field]] > 0;
  };
}

function both(a: Cause["test"], b: Cause["test"]): Cause["test"] {
  return (self, peer, o) => {
    const x = a(self, peer, o);
    const y = b(self, peer, o);
    return x === undefined || y === undefined ? undefined : x && y;
  };
}

function either(a: Cause["test"], b: Cause["test"]): Cause["test"] {
  return (self, peer, o) => Boolean(a(self, peer, o) || b(self, peer, o));
}

/** The causes the tables show, in order; a sample may have several. */
export const causes: Cause[] = [
  { name: "self switched out (schedstat slices)", test: over("slices", "self") },
  { name: "self waited for a CPU (schedstat wait > 0)", test: over("waitNs", "self") },
  { name: "peer switched out", test: over("slices", "peer") },
  { name: "peer waited for a CPU", test: over("waitNs", "peer") },
  { name: "involuntary ctx switch, either process", test: either(over("involCs", "self"), over("involCs", "peer")) },
  { name: "minor page fault, either process", test: either(over("minFlt", "self"), over("minFlt", "peer")) },
  { name: "self GC", test: over("gcs", "self") },
  { name: "peer GC", test: over("gcs", "peer") },
  { name: "self parked and woken", test: over("wakeups", "self") },
  { name: "peer parked and woken", test: over("wakeups", "peer") },
  { name: "self spin yielded", test: over("yields", "self") },
  { name: "self spin yielded and waited for a CPU", test: both(over("yields", "self"), over("waitNs", "self")) },
  { name: "peer spin yielded", test: over("yields", "peer") },
  { name: "a timer fired, either side", test: either(over("timers", "self"), over("timers", "peer")) },
  {
    name: "none of the above",
    test: (s, p, o) => !causes.slice(0, -1).some((c) => c.test(s, p, o)),
  },
];

/** Share of samples with each cause: all samples, those at or above p99, at or above p99.9. */
export interface Attribution {
  cause: string;
  /** null: an end keeps no such counter (the echo plugin has no channel stats). */
  all_pct: number | null;
  p99_pct: number | null;
  p999_pct: number | null;
}

/** The result of {@link attribute}: the shares and how many samples each group held. */
export interface AttributionTable {
  rows: Attribution[];
  n: number;
  nP99: number;
  nP999: number;
  /** Mean runqueue wait (µs, self + peer) per sample: all, ≥ p99, ≥ p99.9. */
  waitUs: [number, number, number];
  /**
   * p50 / p99 / p99.9 (µs) and count of the samples in which neither end was switched out: what the round trip
   * costs when no other task takes the CPU, an estimate of a quiet machine's distribution from a loaded one.
   */
  undisturbed: { p50_us: number; p99_us: number; p999_us: number; n: number };
}

/** Blames the samples at and above p99 and p99.9 on {@link causes}, against the share among all samples. */
export function attribute(samplesMs: ArrayLike<number>, self: Float64Array, peer?: Float64Array): AttributionTable {
  const n = samplesMs.length;
  const sorted = Float64Array.from(samplesMs).sort();
  const threshold = (p: number) => sorted[Math.min(n - 1, Math.floor(p * n))];
  const groups = [() => true, (x: number) => x >= threshold(0.99), (x: number) => x >= threshold(0.999)];
  const counts = causes.map(() => [0, 0, 0]);
  const sizes = [0, 0, 0];
  const wait = [0, 0, 0];
  for (let i = 0; i < n; i++) {
    const o = i * fieldCount;
    const waited = (self[o + F.waitNs] + (peer?.[o + F.waitNs] ?? 0)) / 1000;
    for (let g = 0; g < 3; g++) {
      if (!groups[g](samplesMs[i])) continue;
      sizes[g]++;
      wait[g] += waited;
      for (let c = 0; c < causes.length; c++) {
        const hit = causes[c].test(self, peer, o);
        if (hit === undefined) counts[c][g] = NaN;
        else if (hit) counts[c][g]++;
      }
    }
  }
  const undisturbed: number[] = [];
  for (let i = 0; i < n; i++) {
    const o = i * fieldCount;
    if (self[o + F.slices] === 0 && (peer === undefined || peer[o + F.slices] === 0)) undisturbed.push(samplesMs[i]);
  }
  undisturbed.sort((a, b) => a - b);
  const quantileUs = (p: number) =>
    undisturbed.length === 0
      ? NaN
      : Math.round(undisturbed[Math.min(undisturbed.length - 1, Math.floor(p * undisturbed.length))] * 100_000) / 100;
  const pct = (x: number, of: number) => of === 0 || Number.isNaN(x) ? null : Math.round((x / of) * 1000) / 10;
  return {
    rows: causes.map((c, i) => ({
      cause: c.name,
      all_pct: pct(counts[i][0], sizes[0]),
      p99_pct: pct(counts[i][1], sizes[1]),
      p999_pct: pct(counts[i][2], sizes[2]),
    })),
    n: sizes[0],
    nP99: sizes[1],
    nP999: sizes[2],
    waitUs: [0, 1, 2].map((g) => Math.round((wait[g] / Math.max(1, sizes[g])) * 10) / 10) as [number, number, number],
    undisturbed: {
      p50_us: quantileUs(0.5),
      p99_us: quantileUs(0.99),
      p999_us: quantileUs(0.999),
      n: undisturbed.length,
    },
  };
}

/** Prints an {@link AttributionTable} as a markdown table under a title. */
export function printAttribution(
  title: string,
  table: AttributionTable,
  print: (line: string) => void = console.log,
): void {
  print(`\n${title}`);
  print(`| cause | all (n=${table.n}) | >= p99 (n=${table.nP99}) | >= p99.9 (n=${table.nP999}) |`);
  print("|---|---:|---:|---:|");
  const cell = (x: number | null) => x === null ? "n/a" : `${x} %`;
  for (const r of table.rows) {
    print(`| ${r.cause} | ${cell(r.all_pct)} | ${cell(r.p99_pct)} | ${cell(r.p999_pct)} |`);
  }
  print(
    `| mean runqueue wait, self + peer, µs | ${table.waitUs[0]} | ${table.waitUs[1]} | ${table.waitUs[2]} |`,
  );
  const u = table.undisturbed;
  print(
    u.n === 0
      ? "No sample in which neither end was switched out."
      : `Samples in which neither end was switched out (n=${u.n}): p50 ${u.p50_us} µs, p99 ${u.p99_us} µs, ` +
        `p99.9 ${u.p999_us} µs`,
  );
}
