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
 * Run: deno run -A bench/wake_bench.ts | bun bench/wake_bench.ts |
 *      make dist && node dist/bench/wake_bench.js   [--calls=N] [--rounds=N] [--json]
 *
 * @module
 */

import net from "node:net";
import os from "node:os";
import process from "node:process";
import { ShmChannel } from "../mod.ts";
import { connectDoorbell, listenDoorbell } from "../src/transport/_doorbell.ts";
import { type BenchRow, latencyRow, printRows, runtime } from "./_stats.ts";

const json = process.argv.includes("--json");
const calls = Number(process.argv.find((a) => a.startsWith("--calls="))?.slice(8)) || 5_000;
const rounds = Number(process.argv.find((a) => a.startsWith("--rounds="))?.slice(9)) || 3;
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
for (let round = 0; round < rounds; round++) {
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
printRows(rows, json);
if (!json) {
  console.log(`load average at the end (1/5/15 min): ${os.loadavg().map((l) => l.toFixed(2)).join(" / ")}`);
  for (const line of ratios) console.log(line);
}
