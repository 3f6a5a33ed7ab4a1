/**
 * Wake-up designs side by side, in one run: how long a parked receiver takes
 * to see a message. One process holds both sides; the receiver parks, the
 * sender sends, and the time from the send to the receiver having the message
 * is one sample. Three designs, run in rotating order within each round so
 * that machine load hits all of them alike:
 *
 * - `shm_waiter` (today's default): the receiver parks in receive() at once
 *   (spinMicros 0), which arms its native waiter thread; the sender sees the
 *   parked bits and futex-wakes it; the thread calls back through the
 *   runtime's cross-thread callback (Deno.UnsafeCallback.threadSafe, bun:ffi
 *   JSCallback threadsafe, koffi's N-API relay on Node). Two hops.
 * - `shm_fd_doorbell` (issue 12's one-hop design): the message goes through the
 *   same ring, but the receiver parks by raising a flag and watching a file
 *   descriptor with the runtime's own poller (node:net on a unix socket here,
 *   under every runtime); the sender writes one byte to it only when the flag
 *   is up, so a busy channel still makes no syscall. No waiter thread.
 * - `shm_channel_doorbell`: the same through ShmChannel.useDoorbell with the
 *   doorbell the plugin launch sets up (listenDoorbell / connectDoorbell: the
 *   runtime's own unix sockets), parked in receive(). (Until 2026-11-23 this
 *   row used socketDoorbell over node:net under every runtime.)
 * - `unix`: the same 64 B message over a unix socket, for the ratio.
 *
 * Caveat (why this is a design comparison, not the final figure): sender and
 * receiver share one thread, so the doorbell and socket rows never pay the
 * kernel waking a sleeping thread, while `shm_waiter` does (its waiter thread
 * sleeps in futex). The cross-process parked→woken round trip is
 * channel_bench's `--only=wake`.
 *
 * Then the same question between two processes (rows `wake.cross`): the pinger sleeps 2 ms, so its peer
 * (bench/_echo_peer.ts) has parked, sends 64 B and awaits the echo; one sample is that round trip, both
 * sides woken from parked. Designs, rotating order per round, against the same peer over a unix socket:
 *
 * - `shm`: both sides as the defaults (spin 50 µs, then the futex waiter thread).
 * - `shm_block_peer`: the peer parks blocking (ShmChannelOptions.blockMicros 10 ms, longer than the gap):
 *   its wake-up is one futex hop into its JS thread (issue 12, design a).
 * - `shm_block_both`: and the pinger, which awaits an answer, blocks up to 1 ms after its spin (design b).
 * - `shm_block_both_spin0`: the same with no spin on the pinger: it sleeps in the futex at once and leaves
 *   the core to the peer (2 vCPUs here).
 * - `unix`: the same peer over a unix socket (node:net, as channel_bench's wake row).
 *
 * Run: deno run -A bench/wake_bench.ts | bun bench/wake_bench.ts |
 *      make dist && node dist/bench/wake_bench.js   [--calls=N] [--rounds=N] [--cross=N] [--only=same|cross] [--json]
 *
 * @module
 */

import { spawn } from "node:child_process";
import net from "node:net";
import os from "node:os";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { ShmChannel, type ShmChannelOptions } from "../mod.ts";
import {
  childEnv,
  Env,
  frame,
  frameHeaderBytes,
  FrameParser,
  message as benchMessage,
  Op,
  readyLine,
} from "./_protocol.ts";
import { connectDoorbell, listenDoorbell } from "../src/transport/_doorbell.ts";
import { type BenchRow, latencyRow, printRows, runtime } from "./_stats.ts";

const json = process.argv.includes("--json");
const calls = Number(process.argv.find((a) => a.startsWith("--calls="))?.slice(8)) || 5_000;
const rounds = Number(process.argv.find((a) => a.startsWith("--rounds="))?.slice(9)) || 3;
const crossCalls = Number(process.argv.find((a) => a.startsWith("--cross="))?.slice(8)) || 300;
const only = process.argv.find((a) => a.startsWith("--only="))?.slice(7);
const warmupCalls = Math.min(calls, 500);
const messageBytes = 64;
const rows: BenchRow[] = [];

type Design = "shm_waiter" | "shm_fd_doorbell" | "shm_channel_doorbell" | "unix";
const designs: Design[] = ["shm_waiter", "shm_fd_doorbell", "shm_channel_doorbell", "unix"];

/** A connected unix socket pair inside this process, through the runtime's own socket API. */
interface SocketPair {
  onData(listener: (chunk: Uint8Array) => void): void;
  write(bytes: Uint8Array): void;
  close(): void;
}

function socketPath(): string {
  return `${os.tmpdir()}/pshm-wake-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}.sock`;
}

/**
 * Deno.connect / Bun.connect where they exist: node:net under Deno and Bun is
 * a compatibility layer whose stream machinery costs tens of µs per 'data',
 * which would hide the wake-up being measured.
 */
function socketPair(): Promise<SocketPair> {
  if (runtime === "deno") return denoPair();
  if (runtime === "bun") return bunPair();
  return nodePair();
}

async function nodePair(): Promise<SocketPair> {
  const path = socketPath();
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(path, resolve);
  });
  const accepted = new Promise<net.Socket>((resolve) => server.once("connection", resolve));
  const writer = net.connect(path);
  await new Promise<void>((resolve, reject) => {
    writer.once("connect", resolve);
    writer.once("error", reject);
  });
  const reader = await accepted;
  writer.setNoDelay(true);
  return {
    onData: (listener) => reader.on("data", listener),
    write: (bytes) => writer.write(bytes),
    close() {
      reader.destroy();
      writer.destroy();
      server.close();
    },
  };
}

interface DenoConn {
  read(buffer: Uint8Array): Promise<number | null>;
  write(bytes: Uint8Array): Promise<number>;
  close(): void;
}
interface DenoUnix {
  listen(options: { transport: "unix"; path: string }): { accept(): Promise<DenoConn>; close(): void };
  connect(options: { transport: "unix"; path: string }): Promise<DenoConn>;
  removeSync(path: string): void;
}

async function denoPair(): Promise<SocketPair> {
  const deno = (globalThis as unknown as { Deno: DenoUnix }).Deno;
  const path = socketPath();
  const listener = deno.listen({ transport: "unix", path });
  const writer = await deno.connect({ transport: "unix", path });
  const reader = await listener.accept();
  let listener_: ((chunk: Uint8Array) => void) | undefined;
  const pump = (async () => {
    const buffer = new Uint8Array(64 * 1024);
    for (;;) {
      const n = await reader.read(buffer).catch(() => null);
      if (n === null) return;
      listener_?.(buffer.subarray(0, n));
    }
  })();
  return {
    onData: (listener) => listener_ = listener,
    write: (bytes) => void writer.write(bytes),
    close() {
      writer.close();
      reader.close();
      listener.close();
      void pump;
      try {
        deno.removeSync(path);
      } catch { /* already gone */ }
    },
  };
}

interface BunSocket {
  write(bytes: Uint8Array): number;
  end(): void;
}
interface BunUnix {
  listen(options: { unix: string; socket: { data(socket: BunSocket, chunk: Uint8Array): void } }): { stop(): void };
  connect(options: { unix: string; socket: { data(): void } }): Promise<BunSocket>;
}

async function bunPair(): Promise<SocketPair> {
  const bun = (globalThis as unknown as { Bun: BunUnix }).Bun;
  const path = socketPath();
  let listener_: ((chunk: Uint8Array) => void) | undefined;
  const server = bun.listen({ unix: path, socket: { data: (_socket, chunk) => listener_?.(chunk) } });
  const writer = await bun.connect({ unix: path, socket: { data() {} } });
  return {
    onData: (listener) => listener_ = listener,
    write: (bytes) => void writer.write(bytes),
    close() {
      writer.end();
      server.stop();
    },
  };
}

/** One yield to the event loop, so the receiver has parked before the send. */
const settle = () => new Promise((resolve) => setTimeout(resolve, 0));

async function measureWaiter(count: number): Promise<number[]> {
  const a = ShmChannel.create({ spinMicros: 0 });
  const b = ShmChannel.attach(a.name, a.token, { spinMicros: 0 });
  await a.waitForPeer(10_000);
  try {
    const message = new Uint8Array(messageBytes);
    const samples: number[] = [];
    for (let i = 0; i < count; i++) {
      const received = a.receive();
      await settle();
      const started = performance.now();
      await b.send(message);
      await received;
      samples.push(performance.now() - started);
    }
    return samples;
  } finally {
    b.close();
    a.close();
  }
}

async function measureDoorbell(count: number): Promise<number[]> {
  // Neither side ever calls receive(), so no waiter thread is armed and the
  // channel's own parked bits stay clear: send() makes no wake syscall. The
  // doorbell flag below is the receiver's "parked, ring me" declaration.
  const a = ShmChannel.create({ spinMicros: 0 });
  const b = ShmChannel.attach(a.name, a.token, { spinMicros: 0 });
  await a.waitForPeer(10_000);
  const bell = await socketPair();
  const ding = new Uint8Array(1);
  let parked = false;
  let onMessage: ((bytes: Uint8Array) => void) | undefined;
  const drain = () => {
    parked = false;
    const bytes = a.tryReceive();
    if (bytes && onMessage) {
      const deliver = onMessage;
      onMessage = undefined;
      deliver(bytes);
    }
  };
  bell.onData(drain);
  try {
    const message = new Uint8Array(messageBytes);
    const samples: number[] = [];
    for (let i = 0; i < count; i++) {
      const received = new Promise<Uint8Array>((resolve) => onMessage = resolve);
      parked = true; // Declared before the peer could look, as the parked bits are.
      await settle();
      const started = performance.now();
      await b.send(message);
      if (parked) bell.write(ding);
      await received;
      samples.push(performance.now() - started);
    }
    return samples;
  } finally {
    bell.close();
    b.close();
    a.close();
  }
}

/** The channel with the doorbell the plugin launch sets up (runtime's own sockets), parked in receive(). */
async function measureChannelDoorbell(count: number): Promise<number[]> {
  const listener = await listenDoorbell();
  const a = ShmChannel.create({ spinMicros: 0 });
  listener.onAccepted((end) => a.useDoorbell(end, false));
  const b = ShmChannel.attach(a.name, a.token, { spinMicros: 0 });
  try {
    b.useDoorbell(await connectDoorbell(listener.address), true);
  } finally {
    listener.close();
  }
  await a.waitForPeer(10_000);
  // a parks on its doorbell once b's first ring arrived.
  while (a.wakePath !== "doorbell") await settle();
  try {
    const message = new Uint8Array(messageBytes);
    const samples: number[] = [];
    for (let i = 0; i < count; i++) {
      const received = a.receive();
      await settle();
      const started = performance.now();
      await b.send(message);
      await received;
      samples.push(performance.now() - started);
    }
    return samples;
  } finally {
    b.close();
    a.close();
  }
}

async function measureUnix(count: number): Promise<number[]> {
  const pair = await socketPair();
  let pending = 0;
  let onMessage: (() => void) | undefined;
  pair.onData((chunk) => {
    pending += chunk.length;
    if (pending >= messageBytes && onMessage) {
      pending -= messageBytes;
      const deliver = onMessage;
      onMessage = undefined;
      deliver();
    }
  });
  try {
    const message = new Uint8Array(messageBytes);
    const samples: number[] = [];
    for (let i = 0; i < count; i++) {
      const received = new Promise<void>((resolve) => onMessage = resolve);
      await settle();
      const started = performance.now();
      pair.write(message);
      await received;
      samples.push(performance.now() - started);
    }
    return samples;
  } finally {
    pair.close();
  }
}

const measure: Record<Design, (count: number) => Promise<number[]>> = {
  shm_waiter: measureWaiter,
  shm_fd_doorbell: measureDoorbell,
  shm_channel_doorbell: measureChannelDoorbell,
  unix: measureUnix,
};

const notes: Record<Design, string> = {
  shm_waiter: "send → parked receive(): futex → waiter thread → thread-safe callback",
  shm_fd_doorbell: "send + 1 B doorbell → runtime poller → tryReceive()",
  shm_channel_doorbell: "ShmChannel.useDoorbell, runtime's own sockets → parked receive()",
  unix: "64 B write → 'data' on the reading socket",
};

const ratios: string[] = [];
for (let round = 0; round < rounds && only !== "cross"; round++) {
  const order = designs.map((_, i) => designs[(i + round) % designs.length]);
  const p50: Partial<Record<Design, number>> = {};
  for (const design of order) {
    const samples = (await measure[design](warmupCalls + calls)).slice(warmupCalls);
    const row = latencyRow("wake.delivery", design, samples, `${runtime}, round ${round + 1}: ${notes[design]}`);
    rows.push(row);
    p50[design] = row.p50_us ?? undefined;
  }
  const ratio = (design: Design) => p50[design] !== undefined && p50.unix ? (p50[design]! / p50.unix).toFixed(2) : "-";
  ratios.push(
    `round ${round + 1}: p50 / unix socket p50: shm_waiter ${ratio("shm_waiter")}×, ` +
      `shm_fd_doorbell ${ratio("shm_fd_doorbell")}×, shm_channel_doorbell ${ratio("shm_channel_doorbell")}×`,
  );
}
// ------------------------------------------------------------------ between two processes

type CrossDesign = "shm" | "shm_block_peer" | "shm_block_both" | "shm_block_both_spin0" | "unix";
const crossDesigns: CrossDesign[] = ["shm", "shm_block_peer", "shm_block_both", "shm_block_both_spin0", "unix"];
/** The pause before each ping: long enough that both sides have spun out and parked. */
const crossGapMs = 2;
/** The peer's blocking park: longer than the gap, so a ping finds it blocked, not parked on the event loop. */
const crossPeerBlockMicros = 10_000;
/** The pinger's blocking wait for its answer. */
const crossPingerBlockMicros = 1_000;

const crossSetup: Record<Exclude<CrossDesign, "unix">, { pinger: ShmChannelOptions; peerBlockMicros?: number }> = {
  shm: { pinger: {} },
  shm_block_peer: { pinger: {}, peerBlockMicros: crossPeerBlockMicros },
  shm_block_both: { pinger: { blockMicros: crossPingerBlockMicros }, peerBlockMicros: crossPeerBlockMicros },
  shm_block_both_spin0: {
    pinger: { spinMicros: 0, blockMicros: crossPingerBlockMicros },
    peerBlockMicros: crossPeerBlockMicros,
  },
};

const crossNotes: Record<CrossDesign, string> = {
  shm: "defaults both sides: spin 50 µs, futex → waiter thread → callback",
  shm_block_peer: `peer blockMicros ${crossPeerBlockMicros}: one futex hop into its JS thread`,
  shm_block_both: `and pinger blockMicros ${crossPingerBlockMicros} after its 50 µs spin`,
  shm_block_both_spin0: `pinger spinMicros 0 + blockMicros ${crossPingerBlockMicros}, peer as above`,
  unix: "node:net unix socket, the same peer program",
};

const peerFile = fileURLToPath(
  new URL(`./_echo_peer.${import.meta.url.endsWith(".js") ? "js" : "ts"}`, import.meta.url),
);

/** How long a cross-process peer may take to print READY. */
const peerStartMs = 30_000;

/** Starts bench/_echo_peer.ts under this runtime; resolves once it printed READY. */
async function startPeer(env: Record<string, string>): Promise<{ stop(): Promise<void> }> {
  const args = runtime === "deno" ? ["run", "-A", peerFile] : [peerFile];
  const child = spawn(process.execPath, args, { env: childEnv(env), stdio: ["ignore", "pipe", "inherit"] });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  await readyLine(child, "the wake_bench peer", peerStartMs);
  return {
    async stop() {
      const killer = setTimeout(() => child.kill("SIGKILL"), 5_000);
      await exited;
      clearTimeout(killer);
    },
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function crossShm(design: Exclude<CrossDesign, "unix">, count: number): Promise<number[]> {
  const setup = crossSetup[design];
  const channel = ShmChannel.create(setup.pinger);
  const env: Record<string, string> = { [Env.transport]: "shm", [Env.name]: channel.name, [Env.token]: channel.token };
  if (setup.peerBlockMicros) env[Env.blockMicros] = String(setup.peerBlockMicros);
  let peer: { stop(): Promise<void> } | undefined;
  try {
    peer = await startPeer(env);
    await channel.waitForPeer(10_000);
    const ping = benchMessage(Op.echo, messageBytes);
    const samples: number[] = [];
    for (let i = 0; i < count; i++) {
      await sleep(crossGapMs);
      const started = performance.now();
      await channel.send(ping);
      const echo = await channel.receive();
      samples.push(performance.now() - started);
      if (echo.length !== messageBytes) throw new Error(`wake_bench: echo of ${echo.length} bytes`);
    }
    await channel.send(benchMessage(Op.quit, messageBytes));
    return samples;
  } finally {
    await peer?.stop();
    channel.close();
  }
}

async function crossUnix(count: number): Promise<number[]> {
  const path = socketPath();
  const peer = await startPeer({ [Env.transport]: "unix", [Env.socketPath]: path });
  const socket = net.connect(path);
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("error", reject);
    });
    let onFrame: ((f: Uint8Array) => void) | undefined;
    const parser = new FrameParser((f) => onFrame?.(f));
    socket.on("data", (chunk: Uint8Array) => parser.push(chunk));
    const ping = frame(benchMessage(Op.echo, messageBytes));
    const samples: number[] = [];
    for (let i = 0; i < count; i++) {
      await sleep(crossGapMs);
      const echoed = new Promise<Uint8Array>((resolve) => onFrame = resolve);
      const started = performance.now();
      socket.write(ping);
      const echo = await echoed;
      samples.push(performance.now() - started);
      if (echo.length !== frameHeaderBytes + messageBytes) throw new Error("wake_bench: short unix echo");
    }
    socket.write(frame(benchMessage(Op.quit, messageBytes)));
    return samples;
  } finally {
    await peer.stop();
    socket.destroy();
  }
}

const crossRatios: string[] = [];
for (let round = 0; round < rounds && only !== "same"; round++) {
  const order = crossDesigns.map((_, i) => crossDesigns[(i + round) % crossDesigns.length]);
  const p50: Partial<Record<CrossDesign, number>> = {};
  for (const design of order) {
    const warm = Math.min(50, crossCalls);
    const all = design === "unix" ? await crossUnix(warm + crossCalls) : await crossShm(design, warm + crossCalls);
    const row = latencyRow(
      "wake.cross",
      design,
      all.slice(warm),
      `${runtime}, round ${round + 1}, ${crossGapMs} ms gap: ${crossNotes[design]}`,
    );
    rows.push(row);
    p50[design] = row.p50_us ?? undefined;
  }
  crossRatios.push(
    `cross round ${round + 1}: p50 / unix p50: ` +
      crossDesigns.filter((d) => d !== "unix").map((d) =>
        `${d} ${p50[d] !== undefined && p50.unix ? (p50[d]! / p50.unix).toFixed(2) : "-"}×`
      ).join(", "),
  );
}

printRows(rows, json);
if (!json) {
  console.log(`load average at the end (1/5/15 min): ${os.loadavg().map((l) => l.toFixed(2)).join(" / ")}`);
  for (const line of [...ratios, ...crossRatios]) console.log(line);
}
