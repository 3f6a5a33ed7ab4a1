/**
 * Channel benchmarks: ShmChannel against the transports a user would pick
 * instead (unix domain socket, loopback TCP, child_process IPC, a worker).
 *
 *     deno run -A bench/channel_bench.ts [--json] [--quick] [--only=...] [--transports=...] [--wake-rounds=N]
 *     bun bench/channel_bench.ts [--json] [--quick] [--only=...] [--transports=...] [--wake-rounds=N]
 *
 * --only=rtt,throughput,wake,idle and --transports=shm,unix,tcp,child_ipc,worker
 * pick parts (default: everything); --quick runs ~10x fewer iterations.
 *
 * Every peer is a child process of the same runtime (bench/_echo_peer.ts),
 * except `worker`, which is a worker thread (bench/_worker_peer.ts).
 *
 * - channel.rtt: ping-pong through an echo peer, percentiles of single round
 *   trips timed with performance.now(), after a warm-up. On shm both sides
 *   hand each received message back with release() once done with it, as
 *   shmipc-go's bench does with ReleaseReadAndReuse (a large message then
 *   reuses a buffer instead of faulting in a new one).
 * - channel.throughput: one-way; N messages as fast as possible, the peer
 *   counts them and answers once at the end (the time includes that answer).
 *   Two sender loops are tried and the better one is reported; the note says
 *   which: `await-each` (`await ch.send(m)` / socket.write with drain) and
 *   `batch-K` (shm: keep the send promise and await it every K messages;
 *   sockets: cork and uncork every K frames). The peer drains shm with
 *   tryReceive() and waits with receive() only when the ring is empty. For
 *   1 MiB the `shm` row uses 8 MiB rings (`shm_ring1m`: the default ring).
 * - Diagnostics: `shm_busypoll` (neither side awaits; both spin on
 *   tryReceive()) and `shm_cpeer` (the peer is zig-out/bin/c_peer) split the
 *   shm numbers into ring cost and JavaScript cost.
 * - channel.wake: the pinger sleeps ~2 ms between pings so the peer has
 *   parked; round trip of each ping. Two shm designs side by side (issue 12),
 *   `--wake-rounds=N` times in alternating order: `shm` (futex -> native
 *   waiter thread -> thread-safe callback) and `shm_doorbell` (a unix socket
 *   each side's runtime polls, set up as at plugin launch; its `channel.rtt`
 *   64 B row is the busy path, which must ring nothing).
 * - channel.idle_cpu: both sides parked in receive() for ~3 s; CPU time of
 *   both processes (process.cpuUsage(), the peer reports its own), as percent
 *   of one core.
 *
 * Output: a table on stdout, or with --json one object per line with the keys
 * bench, runtime, transport, size, p50_us, p99_us, p999_us, msgs_per_s,
 * bytes_per_s, then two extra keys, cpu_pct (channel.idle_cpu) and note.
 * Progress goes to stderr.
 *
 * @module
 */

import process from "node:process";
import net from "node:net";
import os from "node:os";
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createHash } from "node:crypto";
import { fileURLToPath } from "node:url";
import { ShmChannel, type ShmChannelOptions } from "../mod.ts";
import { listenDoorbell } from "../src/transport/_doorbell.ts";
import {
  childArgs,
  childEnv,
  type CountReport,
  type CpuReport,
  Env,
  frame,
  frameHeaderBytes,
  FrameParser,
  message,
  Op,
  type PeerTransport,
  readyLine,
  replyJson,
  runtime,
} from "./_protocol.ts";

// ---------------------------------------------------------------- options

const argv = process.argv.slice(2);
const jsonOutput = argv.includes("--json");
const quick = argv.includes("--quick");
const listArg = (name: string) => {
  const arg = argv.find((a) => a.startsWith(`--${name}=`));
  return arg ? new Set(arg.slice(name.length + 3).split(",")) : undefined;
};
const only = listArg("only");
const transports = listArg("transports");
/** Rounds of the shm wake comparison (futex waiter vs doorbell), alternating which goes first. */
const wakeRounds = Number(argv.find((a) => a.startsWith("--wake-rounds="))?.slice(14)) || 1;
for (const a of argv) {
  if (
    a !== "--json" && a !== "--quick" && !a.startsWith("--only=") && !a.startsWith("--transports=") &&
    !a.startsWith("--wake-rounds=")
  ) {
    console.error(
      `unknown argument ${a}; usage: channel_bench.ts [--json] [--quick] [--only=rtt,throughput,wake,idle] ` +
        `[--transports=shm,unix,tcp,child_ipc,worker] [--wake-rounds=N]`,
    );
    process.exit(2);
  }
}
function wanted(part: "rtt" | "throughput" | "wake" | "idle"): boolean {
  return only === undefined || only.has(part);
}
/** `shm` stands for every shm variant (ring sizes, spin 0, diagnostics). */
function wantedTransport(transport: "shm" | "unix" | "tcp" | "child_ipc" | "worker"): boolean {
  return transports === undefined || transports.has(transport);
}

const KiB = 1024;
const MiB = 1024 * KiB;
const sizes = [64, 4 * KiB, 64 * KiB, MiB];
const scale = quick ? 0.1 : 1;
const count = (n: number, min = 20) => Math.max(min, Math.round(n * scale));

/** Round trips per size (measured; warm-up is extra). */
const rttIterations: Record<number, number> = { 64: 100_000, [4 * KiB]: 50_000, [64 * KiB]: 10_000, [MiB]: 1_000 };
/** Each rtt cell also stops after this long (measured part), so slow transports stay bounded. */
const rttCapMs = quick ? 200 : 1_500;
/** Messages per throughput run per size; each run also stops after `throughputCapMs`. */
const throughputMessages: Record<number, number> = {
  64: 2_000_000,
  [4 * KiB]: 250_000,
  [64 * KiB]: 20_000,
  [MiB]: 1_500,
};
const throughputCapMs = quick ? 400 : 2_500;
/** Messages per batch in the `batch` strategy: about 256 KiB per batch, 4 to 256 messages (a power of two). */
function batchSize(size: number): number {
  return Math.max(4, Math.min(256, 2 ** Math.floor(Math.log2((256 * KiB) / size))));
}
const wakePings = count(300, 30);
const wakeGapMs = 2;
const idleWindowMs = quick ? 1_000 : 3_000;
const ipcIterations = count(20_000, 200);
const workerIterations = count(50_000, 500);
const peerStartMs = 30_000;
const stepTimeoutMs = 60_000;
const watchdogMs = quick ? 150_000 : 300_000;

const peerFile = fileURLToPath(new URL("./_echo_peer.ts", import.meta.url));
const workerUrl = new URL("./_worker_peer.ts", import.meta.url).href;

// ---------------------------------------------------------------- results

interface Row {
  bench: string;
  runtime: string;
  transport: string;
  size: number | null;
  p50_us: number | null;
  p99_us: number | null;
  p999_us: number | null;
  msgs_per_s: number | null;
  bytes_per_s: number | null;
  cpu_pct: number | null;
  note: string | null;
}

const rows: Row[] = [];
const notes: string[] = [];

function progress(text: string): void {
  console.error(`[${runtime} ${new Date().toISOString().slice(11, 19)}] ${text}`);
}

function row(partial: Partial<Row> & Pick<Row, "bench" | "transport">): Row {
  const r: Row = {
    bench: partial.bench,
    runtime,
    transport: partial.transport,
    size: partial.size ?? null,
    p50_us: partial.p50_us ?? null,
    p99_us: partial.p99_us ?? null,
    p999_us: partial.p999_us ?? null,
    msgs_per_s: partial.msgs_per_s ?? null,
    bytes_per_s: partial.bytes_per_s ?? null,
    cpu_pct: partial.cpu_pct ?? null,
    note: partial.note ?? null,
  };
  rows.push(r);
  progress(describe(r));
  return r;
}

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** Nearest-rank percentile of sorted samples (milliseconds), in µs. */
function percentile(sorted: Float64Array, p: number): number {
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1));
  return round(sorted[index] * 1000, 3);
}

function latencyRow(bench: string, transport: string, size: number | null, samples: Float64Array, note?: string) {
  const sorted = samples.slice().sort();
  return row({
    bench,
    transport,
    size,
    p50_us: percentile(sorted, 0.5),
    p99_us: percentile(sorted, 0.99),
    p999_us: percentile(sorted, 0.999),
    note: note ?? `n=${samples.length}`,
  });
}

function sizeLabel(size: number | null): string {
  if (size === null) return "-";
  if (size >= MiB && size % MiB === 0) return `${size / MiB} MiB`;
  if (size >= KiB && size % KiB === 0) return `${size / KiB} KiB`;
  return `${size} B`;
}

function si(x: number | null, unit = ""): string {
  if (x === null) return "-";
  if (x >= 1e9) return `${(x / 1e9).toFixed(2)} G${unit}`;
  if (x >= 1e6) return `${(x / 1e6).toFixed(2)} M${unit}`;
  if (x >= 1e3) return `${(x / 1e3).toFixed(1)} k${unit}`;
  return `${x.toFixed(0)} ${unit}`.trim();
}

function num(x: number | null, digits = 2): string {
  return x === null ? "-" : x.toFixed(digits);
}

function describe(r: Row): string {
  const parts = [r.bench, r.transport, sizeLabel(r.size)];
  if (r.p50_us !== null) parts.push(`p50 ${num(r.p50_us)} µs, p99 ${num(r.p99_us)} µs, p99.9 ${num(r.p999_us)} µs`);
  if (r.msgs_per_s !== null) parts.push(`${si(r.msgs_per_s, "msg/s")}, ${si(r.bytes_per_s, "B/s")}`);
  if (r.cpu_pct !== null) parts.push(`${num(r.cpu_pct, 3)} % of a core`);
  if (r.note) parts.push(`(${r.note})`);
  return parts.join("  ");
}

const benchOrder = ["channel.rtt", "channel.throughput", "channel.wake", "channel.idle_cpu"];
const transportOrder = [
  "shm",
  "shm_ring8m",
  "shm_ring1m",
  "shm_doorbell",
  "shm_spin0",
  "shm_busypoll",
  "shm_cpeer",
  "unix",
  "tcp",
  "child_ipc",
  "worker",
];

function sortedRows(): Row[] {
  return rows.slice().sort((a, b) =>
    benchOrder.indexOf(a.bench) - benchOrder.indexOf(b.bench) ||
    (a.size ?? 0) - (b.size ?? 0) ||
    transportOrder.indexOf(a.transport) - transportOrder.indexOf(b.transport)
  );
}

function printTable(): void {
  const header = [
    "bench",
    "runtime",
    "transport",
    "size",
    "p50_us",
    "p99_us",
    "p999_us",
    "msgs_per_s",
    "bytes_per_s",
    "cpu_pct",
    "note",
  ];
  const body = sortedRows().map((r) => [
    r.bench,
    r.runtime,
    r.transport,
    sizeLabel(r.size),
    num(r.p50_us),
    num(r.p99_us),
    num(r.p999_us),
    si(r.msgs_per_s),
    si(r.bytes_per_s, "B/s"),
    num(r.cpu_pct, 3),
    r.note ?? "",
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells: string[]) =>
    "| " + cells.map((c, i) => (i >= 4 && i <= 9 ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join(" | ") +
    " |";
  console.log(line(header));
  console.log(
    "|" + widths.map((w, i) => (i >= 4 && i <= 9 ? "-".repeat(w + 1) + ":" : "-".repeat(w + 2))).join("|") + "|",
  );
  for (const b of body) console.log(line(b));
}

function printJson(): void {
  for (const r of sortedRows()) console.log(JSON.stringify(r));
}

function find(bench: string, transport: string, size: number | null): Row | undefined {
  return rows.find((r) => r.bench === bench && r.transport === transport && r.size === size);
}

/** The targets of the channel, checked against this run. */
function targetLines(): string[] {
  const out: string[] = [];
  const verdict = (ok: boolean | undefined) => ok === undefined ? "NOT MEASURED" : ok ? "met" : "MISSED";
  const rtt = find("channel.rtt", "shm", 64);
  out.push(
    `64 B RTT p50 <= 1.5 us: ${verdict(rtt && rtt.p50_us! <= 1.5)} (${num(rtt?.p50_us ?? null)} us)`,
    `64 B RTT p99 <= 10 us: ${verdict(rtt && rtt.p99_us! <= 10)} (${num(rtt?.p99_us ?? null)} us)`,
  );
  const unix = find("channel.rtt", "unix", 64);
  const ratio = rtt && unix ? unix.p50_us! / rtt.p50_us! : undefined;
  out.push(
    `shm >= 10x faster than unix socket at 64 B (RTT p50): ${verdict(ratio === undefined ? undefined : ratio >= 10)} (${
      ratio === undefined ? "-" : ratio.toFixed(1)
    }x: unix ${num(unix?.p50_us ?? null)} us vs shm ${num(rtt?.p50_us ?? null)} us)`,
  );
  const tput64 = find("channel.throughput", "shm", 64);
  const tputUnix = find("channel.throughput", "unix", 64);
  const tputRatio = tput64 && tputUnix ? tput64.msgs_per_s! / tputUnix.msgs_per_s! : undefined;
  out.push(
    `(for reference: shm/unix one-way 64 B throughput ratio ${tputRatio === undefined ? "-" : tputRatio.toFixed(1)}x)`,
    `one-way 64 B >= 3 M msgs/s: ${verdict(tput64 && tput64.msgs_per_s! >= 3e6)} (${
      si(tput64?.msgs_per_s ?? null)
    } msgs/s)`,
  );
  const tput1m = find("channel.throughput", "shm", MiB);
  out.push(
    `1 MiB one-way >= 3 GB/s: ${verdict(tput1m && tput1m.bytes_per_s! >= 3e9)} (${
      si(tput1m?.bytes_per_s ?? null, "B/s")
    }, ${tput1m?.note ?? ""})`,
  );
  for (const transport of ["shm", "shm_doorbell"]) {
    const wake = find("channel.wake", transport, 64);
    const unixWake = find("channel.wake", "unix", 64);
    const half = wake && unixWake ? wake.p50_us! <= 0.5 * unixWake.p50_us! : undefined;
    out.push(
      `${transport}: parked->woken RTT p50 <= 40 us: ${verdict(wake && wake.p50_us! <= 40)} (${
        num(wake?.p50_us ?? null)
      } us); <= 0.5x unix socket's: ${verdict(half)} (unix ${num(unixWake?.p50_us ?? null)} us)`,
    );
  }
  const idle = find("channel.idle_cpu", "shm", null);
  out.push(`idle < 1% of a core: ${verdict(idle && idle.cpu_pct! < 1)} (${num(idle?.cpu_pct ?? null, 3)} %)`);
  return out;
}

// ---------------------------------------------------------------- cleanup

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Rejects when `promise` takes longer than `ms`. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

const openChannels = new Set<ShmChannel>();
/** Names of every segment this run created, to check none is left in /dev/shm. */
const createdSegments = new Set<string>();
const peers = new Set<Peer>();
const socketPaths = new Set<string>();
const workers = new Set<Worker>();

/** Last-resort cleanup, synchronous: usable from signal handlers and the watchdog. */
function cleanupNow(): void {
  for (const ch of openChannels) {
    try {
      ch.close();
    } catch { /* already closed */ }
  }
  openChannels.clear();
  for (const w of workers) w.terminate();
  workers.clear();
  for (const p of peers) p.kill("SIGKILL");
  for (const path of socketPaths) rmSync(path, { force: true });
  socketPaths.clear();
}

/** A peer child process: bench/_echo_peer.ts (prints READY) or the C echo peer. */
class Peer {
  readonly label: string;
  readonly child: ChildProcess;
  readonly exited: Promise<void>;
  #exited = false;

  private constructor(label: string, child: ChildProcess) {
    this.label = label;
    this.child = child;
    this.exited = new Promise((resolve) => {
      child.once("exit", (code, signal) => {
        this.#exited = true;
        peers.delete(this);
        if (code !== 0 && signal !== "SIGKILL" && signal !== "SIGTERM") {
          progress(`peer ${label} (pid ${child.pid}) exited with code ${code} signal ${signal}`);
        }
        resolve();
      });
    });
    // A failed spawn emits "error" and no "exit".
    child.once("error", (error) => {
      progress(`peer ${label}: ${error.message}`);
      this.#exited = true;
      peers.delete(this);
    });
  }

  /** Spawns `command` and returns once it runs (no READY handshake). */
  static spawn(label: string, command: string, args: string[], env: Record<string, string>, ipc = false): Peer {
    const child = spawn(command, args, {
      env: childEnv(env),
      stdio: ipc ? ["ignore", "pipe", "inherit", "ipc"] : ["ignore", "pipe", "inherit"],
    });
    const peer = new Peer(label, child);
    peers.add(peer);
    return peer;
  }

  /** Starts bench/_echo_peer.ts for `transport` and waits for its READY line (returns what follows READY). */
  static async start(transport: PeerTransport, env: Record<string, string>): Promise<{ peer: Peer; ready: string }> {
    const peer = Peer.spawn(
      transport,
      process.execPath,
      childArgs(peerFile),
      { ...env, [Env.transport]: transport },
      transport === "child_ipc",
    );
    const child = peer.child;
    try {
      const ready = await readyLine(child, `peer ${transport}`, peerStartMs);
      return { peer, ready };
    } catch (error) {
      await peer.stop(0);
      throw error;
    }
  }

  kill(signal: "SIGTERM" | "SIGKILL"): void {
    if (!this.#exited) this.child.kill(signal);
  }

  /** Waits up to `graceMs` for the peer to exit by itself, then kills it; always awaits the exit. */
  async stop(graceMs = 5_000): Promise<void> {
    if (!this.#exited && graceMs > 0) await Promise.race([this.exited, sleep(graceMs)]);
    if (!this.#exited) {
      this.kill("SIGKILL");
      await within(this.exited, 10_000, `peer ${this.label} to exit after SIGKILL`);
    }
  }
}

// ---------------------------------------------------------------- shm

interface Session {
  /** Ping-pong `n` echoes of `size` bytes after `warm` unmeasured ones, `gapMs` apart; round trips in ms. */
  rtt(size: number, n: number, warm: number, gapMs?: number, capMs?: number): Promise<Float64Array>;
  /** Sends `n` messages (or as many as fit in the time cap); returns what the peer counted and the time. */
  throughput(size: number, n: number, strategy: "await-each" | "batch"): Promise<{ sent: number; ms: number }>;
  close(): Promise<void>;
}

function checkEcho(r: Uint8Array, size: number, tag: number, transport: string): void {
  if (r.length !== size || r[1] !== tag) {
    throw new Error(`${transport}: bad echo, got ${r.length} bytes tag ${r[1]}, want ${size} bytes tag ${tag}`);
  }
}

function checkCount(report: CountReport, sent: number, size: number, transport: string): void {
  if (report.count !== sent || report.bytes !== sent * size) {
    throw new Error(
      `${transport}: peer counted ${report.count} messages / ${report.bytes} bytes, sent ${sent} / ${sent * size}`,
    );
  }
}

/** Who answers on the other side of an shm channel. */
type ShmPeerKind =
  /** bench/_echo_peer.ts: `await receive()` / `await send()`. */
  | "js"
  /** bench/_echo_peer.ts spinning on tryReceive() and not awaiting send (diagnostic). */
  | "js-busy-poll"
  /** zig-out/bin/c_peer: blocking pshm_receive / pshm_send in C (diagnostic). */
  | "c";

const cPeerFile = fileURLToPath(new URL("../zig-out/bin/c_peer", import.meta.url));
const libDir = fileURLToPath(new URL("../zig-out/lib", import.meta.url));

class ShmSession implements Session {
  readonly channel: ShmChannel;
  readonly kind: ShmPeerKind;
  readonly #peer: Peer;

  private constructor(channel: ShmChannel, peer: Peer, kind: ShmPeerKind) {
    this.channel = channel;
    this.#peer = peer;
    this.kind = kind;
  }

  /**
   * `doorbell`: the peer is woken (and wakes this side) through a doorbell socket set up as the plugin launch
   * does (src/transport/_doorbell.ts), instead of futex → waiter thread → thread-safe callback.
   */
  static async open(options: ShmChannelOptions = {}, kind: ShmPeerKind = "js", doorbell = false): Promise<ShmSession> {
    const channel = ShmChannel.create(options);
    openChannels.add(channel);
    createdSegments.add(channel.name);
    const bell = doorbell ? await listenDoorbell() : undefined;
    bell?.onAccepted((end) => channel.useDoorbell(end, false));
    try {
      let peer: Peer;
      if (kind === "c") {
        const ldPath = [libDir, process.env.LD_LIBRARY_PATH].filter(Boolean).join(":");
        peer = Peer.spawn("c_peer", cPeerFile, [channel.name, channel.token], { LD_LIBRARY_PATH: ldPath });
      } else {
        const env: Record<string, string> = { [Env.name]: channel.name, [Env.token]: channel.token };
        if (options.spinMicros !== undefined) env[Env.spinMicros] = String(options.spinMicros);
        if (kind === "js-busy-poll") env[Env.peerMode] = "busy-poll";
        if (bell) Object.assign(env, { [Env.doorbellPath]: bell.address.path, [Env.doorbellKey]: bell.address.key });
        peer = (await Peer.start("shm", env)).peer;
      }
      try {
        await within(channel.waitForPeer(peerStartMs), peerStartMs + 1000, `${kind} shm peer to attach`);
        // The peer's first ring says it holds its end; until then this side parks on the futex.
        for (const started = performance.now(); bell && channel.wakePath !== "doorbell";) {
          if (performance.now() - started > peerStartMs) throw new Error("the shm peer never rang its doorbell");
          await sleep(1);
        }
      } catch (error) {
        await peer.stop(0);
        throw error;
      }
      return new ShmSession(channel, peer, kind);
    } catch (error) {
      channel.close();
      openChannels.delete(channel);
      throw error;
    } finally {
      bell?.close();
    }
  }

  /**
   * Like {@link rtt} with neither side awaiting: `send()` without await, then
   * spin on `tryReceive()` (the peer does the same in busy-poll mode). This is
   * the floor of the ring and the copies, without the promise machinery.
   */
  async rttBusyPoll(size: number, n: number, warm: number, capMs = Infinity): Promise<Float64Array> {
    const ch = this.channel;
    const msg = message(Op.echo, size);
    const samples = new Float64Array(n);
    let deadline = Infinity;
    for (let i = -warm; i < n; i++) {
      const tag = i & 0xff;
      msg[1] = tag;
      const t0 = performance.now();
      void ch.send(msg); // 64 B into an empty ring: always the fast path
      let r: Uint8Array | undefined;
      for (let polls = 1; (r = ch.tryReceive()) === undefined; polls++) {
        if ((polls & 0xffff) === 0 && performance.now() - t0 > 5_000) throw new Error("shm busy-poll: no echo in 5 s");
      }
      const t1 = performance.now();
      if (i >= 0) samples[i] = t1 - t0;
      checkEcho(r, size, tag, "shm busy-poll");
      if (i === 0) deadline = t1 + capMs;
      else if ((i & 255) === 0 && t1 > deadline) return samples.subarray(0, i + 1);
      if ((i & 1023) === 0) await sleep(0); // let the event loop breathe now and then
    }
    return samples;
  }

  async rtt(size: number, n: number, warm: number, gapMs = 0, capMs = Infinity): Promise<Float64Array> {
    const ch = this.channel;
    const msg = message(Op.echo, size);
    const samples = new Float64Array(n);
    let deadline = Infinity;
    for (let i = -warm; i < n; i++) {
      if (gapMs > 0) await sleep(gapMs);
      const tag = i & 0xff;
      msg[1] = tag;
      const t0 = performance.now();
      await ch.send(msg);
      const r = await ch.receive();
      const t1 = performance.now();
      if (i >= 0) samples[i] = t1 - t0;
      checkEcho(r, size, tag, "shm");
      ch.release(r); // As shmipc-go's ReleaseReadAndReuse: a large message's buffer is reused.
      if (i === 0) deadline = t1 + capMs;
      else if ((i & 255) === 0 && t1 > deadline) return samples.subarray(0, i + 1);
    }
    return samples;
  }

  async throughput(size: number, n: number, strategy: "await-each" | "batch"): Promise<{ sent: number; ms: number }> {
    const ch = this.channel;
    const msg = message(Op.count, size);
    const k = batchSize(size);
    let sent = 0;
    const t0 = performance.now();
    const deadline = t0 + throughputCapMs;
    if (strategy === "await-each") {
      while (sent < n) {
        await ch.send(msg);
        if ((++sent & (k - 1)) === 0 && performance.now() > deadline) break;
      }
    } else {
      let last: Promise<void> = Promise.resolve();
      while (sent < n) {
        last = ch.send(msg);
        if ((++sent & (k - 1)) === 0) {
          await last;
          if (performance.now() > deadline) break;
        }
      }
      await last;
    }
    await ch.send(message(Op.end, 64));
    const report = replyJson<CountReport>(await ch.receive());
    const ms = performance.now() - t0;
    checkCount(report, sent, size, "shm");
    return { sent, ms };
  }

  /** Both sides parked in receive() for `windowMs`: CPU of this process and of the peer. */
  async idleCpu(windowMs: number): Promise<{ self: number; peer: number; wallMs: number }> {
    const ch = this.channel;
    await ch.send(message(Op.cpuMark, 64));
    const ack = await ch.receive();
    if (ack[0] !== Op.cpuMark) throw new Error(`shm: expected a cpu mark ack, got opcode ${ack[0]}`);
    const cpu0 = process.cpuUsage();
    const wall0 = performance.now();
    const reply = ch.receive(); // nothing comes until we ask: this side parks
    await sleep(windowMs);
    const used = process.cpuUsage(cpu0);
    const wallMs = performance.now() - wall0;
    await ch.send(message(Op.cpuReport, 64));
    const peer = replyJson<CpuReport>(await within(reply, stepTimeoutMs, "shm peer cpu report"));
    return {
      self: (used.user + used.system) / (wallMs * 1000) * 100,
      peer: (peer.user_us + peer.system_us) / peer.wall_us * 100,
      wallMs,
    };
  }

  async close(): Promise<void> {
    try {
      // The C peer exits when this side closes; the JS peer when told to quit.
      if (this.kind !== "c" && !this.channel.closed) await this.channel.send(message(Op.quit, 64));
      if (this.kind === "c") this.channel.close();
      await this.#peer.stop();
    } finally {
      this.channel.close();
      openChannels.delete(this.channel);
      await this.#peer.stop(0);
    }
  }
}

// ---------------------------------------------------------------- sockets

class SocketSession implements Session {
  readonly kind: "unix" | "tcp";
  readonly #socket: net.Socket;
  readonly #peer: Peer;
  readonly #frames: Uint8Array[] = [];
  #head = 0;
  #waiter: { resolve(f: Uint8Array): void; reject(e: Error): void } | undefined;
  #failure: Error | undefined;

  private constructor(kind: "unix" | "tcp", socket: net.Socket, peer: Peer) {
    this.kind = kind;
    this.#socket = socket;
    this.#peer = peer;
    const parser = new FrameParser((f) => {
      const waiter = this.#waiter;
      if (waiter) {
        this.#waiter = undefined;
        waiter.resolve(f);
      } else {
        this.#frames.push(f);
      }
    });
    socket.on("data", (chunk: Uint8Array) => parser.push(chunk));
    const fail = (error: Error) => {
      this.#failure ??= error;
      const waiter = this.#waiter;
      this.#waiter = undefined;
      waiter?.reject(this.#failure);
    };
    socket.on("error", fail);
    socket.on("close", () => fail(new Error(`${kind} socket closed`)));
  }

  static async open(kind: "unix" | "tcp"): Promise<SocketSession> {
    const path = kind === "unix" ? `${os.tmpdir()}/pshm-bench-${process.pid}-${Date.now()}.sock` : "";
    if (path) socketPaths.add(path);
    const { peer, ready } = await Peer.start(kind, path ? { [Env.socketPath]: path } : {});
    try {
      const socket = await within(
        new Promise<net.Socket>((resolve, reject) => {
          const s = kind === "unix"
            ? net.createConnection(path, () => resolve(s))
            : net.createConnection(Number(ready), "127.0.0.1", () => resolve(s));
          s.once("error", reject);
        }),
        peerStartMs,
        `connect to the ${kind} peer`,
      );
      if (kind === "tcp") socket.setNoDelay(true);
      return new SocketSession(kind, socket, peer);
    } catch (error) {
      await peer.stop(0);
      throw error;
    }
  }

  /** The next frame from the peer, header included. */
  next(): Promise<Uint8Array> {
    if (this.#head < this.#frames.length) {
      const f = this.#frames[this.#head++];
      if (this.#head === this.#frames.length) {
        this.#frames.length = 0;
        this.#head = 0;
      }
      return Promise.resolve(f);
    }
    if (this.#failure) return Promise.reject(this.#failure);
    return new Promise((resolve, reject) => (this.#waiter = { resolve, reject }));
  }

  #drain(): Promise<void> {
    return within(
      new Promise<void>((resolve, reject) => {
        const onDrain = () => (this.#socket.off("error", onError), resolve());
        const onError = (e: Error) => (this.#socket.off("drain", onDrain), reject(e));
        this.#socket.once("drain", onDrain);
        this.#socket.once("error", onError);
      }),
      stepTimeoutMs,
      `${this.kind} socket drain`,
    );
  }

  async rtt(size: number, n: number, warm: number, gapMs = 0, capMs = Infinity): Promise<Float64Array> {
    const socket = this.#socket;
    const framed = frame(message(Op.echo, size));
    const samples = new Float64Array(n);
    let deadline = Infinity;
    for (let i = -warm; i < n; i++) {
      if (gapMs > 0) await sleep(gapMs);
      const tag = i & 0xff;
      framed[frameHeaderBytes + 1] = tag; // safe: the previous write was echoed, so it left our buffers
      const t0 = performance.now();
      socket.write(framed);
      const r = await this.next();
      const t1 = performance.now();
      if (i >= 0) samples[i] = t1 - t0;
      checkEcho(r.subarray(frameHeaderBytes), size, tag, this.kind);
      if (i === 0) deadline = t1 + capMs;
      else if ((i & 255) === 0 && t1 > deadline) return samples.subarray(0, i + 1);
    }
    return samples;
  }

  async throughput(size: number, n: number, strategy: "await-each" | "batch"): Promise<{ sent: number; ms: number }> {
    const socket = this.#socket;
    const framed = frame(message(Op.count, size));
    const k = batchSize(size);
    let sent = 0;
    const t0 = performance.now();
    const deadline = t0 + throughputCapMs;
    if (strategy === "await-each") {
      while (sent < n) {
        if (!socket.write(framed)) await this.#drain();
        if ((++sent & (k - 1)) === 0 && performance.now() > deadline) break;
      }
    } else {
      socket.cork();
      while (sent < n) {
        socket.write(framed);
        if ((++sent & (k - 1)) === 0) {
          socket.uncork();
          if (socket.writableNeedDrain) await this.#drain();
          if (performance.now() > deadline) break;
          socket.cork();
        }
      }
      if (socket.writableCorked) socket.uncork();
    }
    socket.write(frame(message(Op.end, 64)));
    const report = replyJson<CountReport>((await within(this.next(), stepTimeoutMs, "count report")).subarray(4));
    const ms = performance.now() - t0;
    checkCount(report, sent, size, this.kind);
    return { sent, ms };
  }

  async close(): Promise<void> {
    try {
      if (!this.#failure) this.#socket.end(frame(message(Op.quit, 64)));
      await this.#peer.stop();
    } finally {
      this.#socket.destroy();
      await this.#peer.stop(0);
    }
  }
}

// ---------------------------------------------------------------- child_process IPC and worker

/** Round trips of a 64-character string through child_process IPC (JSON serialization). */
async function childIpcRtt(n: number, warm: number, capMs = Infinity): Promise<Float64Array> {
  const { peer } = await Peer.start("child_ipc", {});
  try {
    const child = peer.child;
    let waiter: ((m: unknown) => void) | undefined;
    child.on("message", (m: unknown) => {
      const w = waiter;
      waiter = undefined;
      w?.(m);
    });
    const payload = "x".repeat(63);
    const samples = new Float64Array(n);
    let deadline = Infinity;
    for (let i = -warm; i < n; i++) {
      const msg = String.fromCharCode(65 + (i & 15)) + payload;
      const t0 = performance.now();
      const reply = new Promise<unknown>((resolve) => (waiter = resolve));
      child.send(msg);
      const r = await reply;
      const t1 = performance.now();
      if (i >= 0) samples[i] = t1 - t0;
      if (r !== msg) throw new Error(`child_ipc: bad echo ${String(r).slice(0, 16)}`);
      if (i === 0) deadline = t1 + capMs;
      else if ((i & 255) === 0 && t1 > deadline) return samples.subarray(0, i + 1);
    }
    child.send("quit");
    await peer.stop();
    return samples;
  } finally {
    await peer.stop(0);
  }
}

/** Round trips of a 64-byte Uint8Array through a worker's postMessage (structured clone). */
async function workerRtt(n: number, warm: number, capMs = Infinity): Promise<Float64Array> {
  const worker = new Worker(workerUrl, { type: "module" });
  workers.add(worker);
  try {
    let waiter: ((m: Uint8Array) => void) | undefined;
    worker.onmessage = (event: MessageEvent) => {
      const w = waiter;
      waiter = undefined;
      w?.(event.data as Uint8Array);
    };
    const msg = message(Op.echo, 64);
    const samples = new Float64Array(n);
    let deadline = Infinity;
    for (let i = -warm; i < n; i++) {
      const tag = i & 0xff;
      msg[1] = tag;
      const t0 = performance.now();
      const reply = new Promise<Uint8Array>((resolve) => (waiter = resolve));
      worker.postMessage(msg);
      const r = await (i === -warm ? within(reply, peerStartMs, "worker to start") : reply);
      const t1 = performance.now();
      if (i >= 0) samples[i] = t1 - t0;
      checkEcho(r, 64, tag, "worker");
      if (i === 0) deadline = t1 + capMs;
      else if ((i & 255) === 0 && t1 > deadline) return samples.subarray(0, i + 1);
    }
    worker.postMessage("quit");
    return samples;
  } finally {
    worker.terminate();
    workers.delete(worker);
  }
}

// ---------------------------------------------------------------- the runs

async function runRtt(session: Session, transport: string, size: number, note?: string): Promise<void> {
  const n = count(rttIterations[size]);
  const warm = Math.max(Math.min(2_000, n), 20);
  progress(`rtt ${transport} ${sizeLabel(size)}: ${warm} warm-up + up to ${n} round trips / ${rttCapMs} ms`);
  const samples = await within(
    session.rtt(size, n, warm, 0, rttCapMs),
    stepTimeoutMs * 2,
    `rtt ${transport} ${sizeLabel(size)}`,
  );
  latencyRow("channel.rtt", transport, size, samples, `n=${samples.length}${note ? `; ${note}` : ""}`);
}

async function runThroughput(session: Session, transport: string, size: number, note?: string): Promise<void> {
  const n = count(throughputMessages[size]);
  progress(`throughput ${transport} ${sizeLabel(size)}: up to ${n} messages per strategy`);
  // Warm-up: a tenth of a run, unreported.
  await within(session.throughput(size, Math.max(20, Math.round(n / 10)), "await-each"), stepTimeoutMs, "warm-up");
  let best: { sent: number; ms: number; strategy: string } | undefined;
  const tried: string[] = [];
  for (const strategy of ["await-each", "batch"] as const) {
    const result = await within(session.throughput(size, n, strategy), stepTimeoutMs, `throughput ${strategy}`);
    const shm = transport.startsWith("shm");
    const label = strategy === "batch"
      ? `${shm ? "batch" : "cork"}-${batchSize(size)}`
      : shm
      ? "await-each"
      : "write-each";
    const rate = result.sent / result.ms * 1000;
    tried.push(`${label} ${si(rate)}msg/s`);
    if (!best || rate > best.sent / best.ms * 1000) best = { ...result, strategy: label };
  }
  const msgs = best!.sent / best!.ms * 1000;
  row({
    bench: "channel.throughput",
    transport,
    size,
    msgs_per_s: Math.round(msgs),
    bytes_per_s: Math.round(msgs * size),
    note: `best of ${tried.join(" / ")}: ${best!.strategy}; n=${best!.sent}${note ? `; ${note}` : ""}`,
  });
}

async function runIdle(session: ShmSession, transport: string): Promise<void> {
  progress(`idle_cpu ${transport}: ${idleWindowMs} ms with both sides parked`);
  const idle = await within(session.idleCpu(idleWindowMs), stepTimeoutMs, "idle cpu");
  row({
    bench: "channel.idle_cpu",
    transport,
    cpu_pct: round(idle.self + idle.peer, 4),
    note: `this process ${idle.self.toFixed(3)} % + peer ${idle.peer.toFixed(3)} % over ${
      (idle.wallMs / 1000).toFixed(1)
    } s`,
  });
}

async function runWake(session: Session, transport: string, note: string): Promise<void> {
  progress(`wake ${transport}: ${wakePings} pings ${wakeGapMs} ms apart`);
  // CPU time of this process per ping (the sleep's timer included, alike for every row): what a wake-up
  // costs in work rather than in waiting, which machine load distorts far less than the latency.
  const cpu0 = process.cpuUsage();
  const samples = await within(session.rtt(64, wakePings, 10, wakeGapMs), stepTimeoutMs, `wake ${transport}`);
  const cpu = process.cpuUsage(cpu0);
  const cpuPerPingUs = (cpu.user + cpu.system) / (wakePings + 10);
  latencyRow(
    "channel.wake",
    transport,
    64,
    samples,
    `n=${wakePings}, ${wakeGapMs} ms between pings; this process ${cpuPerPingUs.toFixed(1)} us CPU per ping; ${note}`,
  );
}

async function withSession<S extends Session>(open: () => Promise<S>, body: (s: S) => Promise<void>): Promise<void> {
  const session = await open();
  try {
    await body(session);
  } finally {
    await session.close();
  }
}

/** Which channel code this run measured: git HEAD and a hash of the channel's sources and library. */
function codeUnderTest(): string {
  const root = new URL("../", import.meta.url);
  const read = (path: string) => readFileSync(new URL(path, root), "utf8").trim();
  let head = "unknown";
  try {
    head = read(".git/HEAD");
    if (head.startsWith("ref: ")) {
      const ref = head.slice(5);
      try {
        head = read(`.git/${ref}`);
      } catch {
        head = read(".git/packed-refs").split("\n").find((l) => l.endsWith(` ${ref}`))?.split(" ")[0] ?? "unknown";
      }
    }
  } catch { /* not a git checkout */ }
  const files = [
    "src/transport/shm_channel.ts",
    "src/transport/_ring.ts",
    "src/native/native.ts",
    "src/native/_deno.ts",
    "src/native/_bun.ts",
    "zig-out/lib/libpluginshm.so",
  ];
  const hash = createHash("sha256");
  for (const f of files) {
    try {
      hash.update(readFileSync(new URL(f, root)));
    } catch {
      hash.update(`missing ${f}`);
    }
  }
  return `git HEAD ${head.slice(0, 7)}; sha256 of ${files.join(", ")}: ${hash.digest("hex").slice(0, 12)}`;
}

function timerOverhead(): number {
  const d = new Float64Array(20_000);
  for (let i = 0; i < d.length; i++) {
    const a = performance.now();
    const b = performance.now();
    d[i] = b - a;
  }
  d.sort();
  return d[d.length >> 1] * 1000;
}

const codeAtStart = codeUnderTest();

async function main(): Promise<void> {
  notes.push(`code under test: ${codeAtStart}`);
  const overhead = timerOverhead();
  notes.push(
    `performance.now() back-to-back p50 ${overhead.toFixed(3)} us (included in every latency sample, not subtracted)`,
  );
  const ring8m = 8 * MiB;

  // shm, default options (ring 1 MiB, spinMicros 50).
  const shm = wantedTransport("shm");
  if (shm) {
    await withSession(() => ShmSession.open(), async (s) => {
      if (wanted("rtt")) {
        for (const size of sizes) await runRtt(s, "shm", size, size === MiB ? "ring 1 MiB" : undefined);
      }
      if (wanted("throughput")) {
        for (const size of sizes) {
          await runThroughput(s, size === MiB ? "shm_ring1m" : "shm", size, size === MiB ? "ring 1 MiB (default)" : "");
        }
      }
      if (wanted("idle")) await runIdle(s, "shm");
    });
  }

  // The two wake-up designs side by side (issue 12), same peer program, same spin (50 µs, the default),
  // alternating which goes first per round: futex → waiter thread → thread-safe callback ("shm", the
  // channel's own default) and the doorbell socket the plugin launch sets up ("shm_doorbell").
  if (shm && (wanted("wake") || wanted("idle") || wanted("rtt"))) {
    for (let round = 0; round < wakeRounds; round++) {
      const order = round % 2 === 0 ? [false, true] : [true, false];
      for (const doorbell of order) {
        if (!doorbell && !wanted("wake")) continue;
        const label = doorbell ? "shm_doorbell" : "shm";
        const of = wakeRounds > 1 ? `; round ${round + 1} of ${wakeRounds}` : "";
        await withSession(() => ShmSession.open({}, "js", doorbell), async (s) => {
          // The busy path: a doorbell must cost nothing while the peer is not parked.
          if (doorbell && wanted("rtt")) await runRtt(s, label, 64, `busy ping-pong, doorbell set up${of}`);
          if (wanted("wake")) {
            const how = doorbell ? "doorbell socket, runtime's own poller" : "futex -> waiter thread -> callback";
            await runWake(s, label, `spinMicros 50 (default) both sides; ${how}${of}`);
          }
          if (doorbell && wanted("idle")) await runIdle(s, label);
        });
      }
    }
  }

  // shm with 8 MiB rings for 1 MiB messages.
  if (shm && (wanted("rtt") || wanted("throughput"))) {
    await withSession(() => ShmSession.open({ ringBytes: ring8m }), async (s) => {
      if (wanted("rtt")) await runRtt(s, "shm_ring8m", MiB, "ring 8 MiB");
      if (wanted("throughput")) await runThroughput(s, "shm", MiB, "ring 8 MiB");
    });
  }

  // shm parking at once.
  if (shm && wanted("wake")) {
    await withSession(
      () => ShmSession.open({ spinMicros: 0 }),
      (s) => runWake(s, "shm_spin0", "spinMicros 0 both sides"),
    );
  }

  // Diagnostics that split the shm numbers: the ring without promises, and a C peer.
  if (shm && wanted("rtt")) {
    await withSession(() => ShmSession.open({}, "js-busy-poll"), async (s) => {
      const n = count(rttIterations[64]);
      progress(`rtt shm_busypoll 64 B: ${n} round trips, both sides spinning on tryReceive()`);
      const samples = await within(s.rttBusyPoll(64, n, 2_000, rttCapMs), stepTimeoutMs, "rtt shm busy-poll");
      latencyRow(
        "channel.rtt",
        "shm_busypoll",
        64,
        samples,
        `n=${samples.length}; diagnostic: both sides send() without await and spin on tryReceive()`,
      );
    });
  }
  if (shm && (wanted("rtt") || wanted("wake")) && existsSync(cPeerFile)) {
    await withSession(() => ShmSession.open({}, "c"), async (s) => {
      const note = "diagnostic: JS side as in shm, peer is zig-out/bin/c_peer (blocking pshm_receive/pshm_send)";
      if (wanted("rtt")) await runRtt(s, "shm_cpeer", 64, note);
      if (wanted("wake")) await runWake(s, "shm_cpeer", note);
    });
  } else if (shm && (wanted("rtt") || wanted("wake"))) {
    notes.push(`${cPeerFile} is missing (make build): shm_cpeer rows skipped`);
  }

  for (const kind of ["unix", "tcp"] as const) {
    if (!wantedTransport(kind)) continue;
    await withSession(() => SocketSession.open(kind), async (s) => {
      if (wanted("rtt")) { for (const size of sizes) await runRtt(s, kind, size); }
      if (wanted("throughput")) { for (const size of sizes) await runThroughput(s, kind, size); }
      if (wanted("wake")) await runWake(s, kind, "epoll-parked peer");
    });
  }

  if (wanted("rtt") && wantedTransport("child_ipc")) {
    progress(`rtt child_ipc 64 B: ${ipcIterations} round trips`);
    const ipc = await within(
      childIpcRtt(ipcIterations, Math.min(500, ipcIterations), rttCapMs),
      stepTimeoutMs,
      "child_ipc",
    );
    latencyRow("channel.rtt", "child_ipc", 64, ipc, `n=${ipc.length}; 64-char string, JSON serialization`);
  }
  if (wanted("rtt") && wantedTransport("worker")) {
    progress(`rtt worker 64 B: ${workerIterations} round trips`);
    const w = await within(
      workerRtt(workerIterations, Math.min(1_000, workerIterations), rttCapMs),
      stepTimeoutMs,
      "worker",
    );
    latencyRow("channel.rtt", "worker", 64, w, `n=${w.length}; Uint8Array(64) postMessage, in-process thread`);
  }
}

// ---------------------------------------------------------------- entry

function listShm(): string[] {
  try {
    return readdirSync("/dev/shm");
  } catch {
    return [];
  }
}

const watchdog = setTimeout(() => {
  console.error(`[${runtime}] watchdog: the benchmark took over ${watchdogMs / 1000} s; cleaning up and exiting`);
  cleanupNow();
  process.exit(2);
}, watchdogMs);
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    console.error(`[${runtime}] ${signal}: cleaning up`);
    cleanupNow();
    process.exit(130);
  });
}

let failed = false;
const started = performance.now();
try {
  await main();
} catch (error) {
  failed = true;
  console.error(`[${runtime}] benchmark failed:`, error);
} finally {
  cleanupNow();
  for (const p of [...peers]) await p.stop(0);
  clearTimeout(watchdog);
}

if (codeUnderTest() !== codeAtStart) {
  notes.push("WARNING: the channel sources or library changed during this run; its numbers mix two versions");
  progress("WARNING: the channel sources or library changed during this run");
}

// Only this run's segments: other processes may be using plugin-shm meanwhile.
const leaked = listShm().filter((f) => createdSegments.has(f));
if (leaked.length > 0) {
  failed = true;
  console.error(`[${runtime}] LEAK: segments left in /dev/shm: ${leaked.join(", ")}`);
}
for (const path of socketPaths) if (existsSync(path)) rmSync(path, { force: true });

if (jsonOutput) {
  printJson();
  for (const n of notes) console.error(`[${runtime}] note: ${n}`);
} else {
  printTable();
  console.log("");
  for (const n of notes) console.log(`note: ${n}`);
  console.log(`targets (${runtime}):`);
  for (const t of targetLines()) console.log(`  ${t}`);
}
progress(`done in ${((performance.now() - started) / 1000).toFixed(1)} s`);
process.exit(failed ? 1 : 0);
