/**
 * Our channel measured the way bench/shmipc/main.go measures shmipc-go: the
 * same ping-pong and one-way runs at 64 B, 4 KiB, 64 KiB and 1 MiB, between
 * two processes (this file re-runs itself as the peer), with the same work per
 * message on both sides, so bench/side_by_side.ts can put them in one table.
 *
 *     deno run -A bench/shmipc/views.ts [--json] [--quick] [--modes=view,copy] [--sizes=64,4096] [--ring=BYTES]
 *     bun bench/shmipc/views.ts [--json] [--quick] [--modes=view,copy] [--sizes=64,4096] [--ring=BYTES]
 *
 * Per message, side by side (shmipc-go's calls are those of main.go):
 *
 * | step | shmipc-go (`shmipc`) | ours, `shm_view` | ours, `shm_copy` |
 * |---|---|---|---|
 * | send | BufferWriter().WriteBytes(msg): one copy into shared memory, then Flush | `send(msg)`: one copy into the ring, published at once | same |
 * | receive | BufferReader().ReadBytes(n): a slice of the shared buffer, no copy | `receiveView()` (`tryReceiveView()` first in the peer): an array over the ring, no copy | `receive()`: a copy out of the ring |
 * | done | ReleaseReadAndReuse() | `releaseView(view)` | `release(message)` (reuses large buffers) |
 * | echo peer | receives (and releases), then sends its own reply buffer of the same size | same | same |
 * | count peer | receives and releases each; one 8-byte answer at the end | same | same |
 *
 * Neither side reads the payload beyond what it needs (ours checks the length,
 * Go's ReadBytes returns n bytes). The sender waits for the answer only at the
 * end of a one-way run; Go's Flush blocks when its queue is full, ours keeps
 * the send promise and awaits it every 64 messages (a full ring makes it
 * wait). Rings: at least 1 MiB and 8 × the message, so a message is one frame
 * (a quarter of the ring at most) and is read in place; shmipc-go gets a
 * 64 MiB buffer of slices of the message's size + 64.
 *
 * Output rows have the keys of bench/channel_bench.ts --json; transport
 * `shm_view` (and `shm_copy` with --modes=view,copy).
 *
 * @module
 */

import process from "node:process";
import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { ShmChannel } from "../../mod.ts";
import { type BenchRow, latencyRow, printRows, rateRow } from "../_stats.ts";
import { childArgs } from "../_protocol.ts";

type Mode = "view" | "copy";

const KiB = 1024;
const MiB = 1024 * KiB;
/** A one-way run awaits its send promise every this many messages. */
const sendBatch = 64;
/** Every run stops after this long (measured part), so a slow size stays bounded. */
const runCapMs = 3_000;
/** The peer gives up after this long without its parent. */
const peerLifetimeMs = 10 * 60 * 1000;

const env = process.env;
const self = fileURLToPath(import.meta.url);

/** --ring=BYTES: one ring size for every message size (e.g. 1 MiB, to measure the copy that fragmented views fall back to). */
let ringBytesFixed = 0;

function ringBytesFor(size: number): number {
  if (ringBytesFixed > 0) return ringBytesFixed;
  let ring = MiB;
  while (ring < 8 * size) ring *= 2;
  return ring;
}

function ringLabel(size: number): string {
  const ring = ringBytesFor(size);
  return ring >= MiB ? `${ring / MiB} MiB` : `${ring / KiB} KiB`;
}

/**
 * Takes one message in `mode` if one is there and hands it back at once (nobody reads it): its length, or -1.
 * Synchronous, so a message that is already there costs no promise (Go's ReadBytes does not either).
 */
function tryTake(ch: ShmChannel, mode: Mode): number {
  const message = mode === "view" ? ch.tryReceiveView() : ch.tryReceive();
  if (message === undefined) return -1;
  if (mode === "view") ch.releaseView(message);
  else ch.release(message);
  return message.length;
}

/** Waits for one message in `mode`, and hands it back at once: its length. */
async function take(ch: ShmChannel, mode: Mode): Promise<number> {
  const message = mode === "view" ? await ch.receiveView() : await ch.receive();
  if (mode === "view") ch.releaseView(message);
  else ch.release(message);
  return message.length;
}

async function servePeer(): Promise<void> {
  setTimeout(() => process.exit(3), peerLifetimeMs).unref?.();
  const mode = env.PSHM_VIEWS_MODE as Mode;
  const size = Number(env.PSHM_VIEWS_SIZE);
  const ch = ShmChannel.attach(env.PSHM_NAME!, env.PSHM_TOKEN!);
  const reply = new Uint8Array(size);
  try {
    if (env.PSHM_VIEWS_RUN === "pingpong") {
      for (;;) {
        if (tryTake(ch, mode) < 0) await take(ch, mode);
        await ch.send(reply);
      }
    }
    for (;;) {
      // An 8-byte count, then that many messages, then one 8-byte answer (as main.go's "count" peer).
      const header = await ch.receive();
      const count = new DataView(header.buffer, header.byteOffset, 8).getUint32(0, true);
      let bytes = 0;
      for (let i = 0; i < count; i++) {
        const length = tryTake(ch, mode);
        bytes += length >= 0 ? length : await take(ch, mode);
      }
      const answer = new Uint8Array(8);
      new DataView(answer.buffer).setUint32(0, bytes / size, true);
      await ch.send(answer);
    }
  } catch {
    // The parent closed the channel: done.
  } finally {
    ch.close();
  }
}

async function startPeer(run: "pingpong" | "count", mode: Mode, size: number): Promise<[ShmChannel, ChildProcess]> {
  const ringBytes = ringBytesFor(size);
  const ch = ShmChannel.create({ ringBytes });
  // Diagnostic: PSHM_VIEWS_PEER_FLAGS (e.g. "--cpu-prof --cpu-prof-dir=.scratch/prof" under Deno) go to the peer's runtime.
  const flags = env.PSHM_VIEWS_PEER_FLAGS?.split(" ").filter(Boolean) ?? [];
  const args = childArgs(self);
  const child = spawn(process.execPath, args[0] === "run" ? ["run", ...flags, ...args.slice(1)] : [...flags, ...args], {
    env: {
      ...env,
      PSHM_VIEWS_PEER: "1",
      PSHM_VIEWS_RUN: run,
      PSHM_VIEWS_MODE: mode,
      PSHM_VIEWS_SIZE: String(size),
      PSHM_NAME: ch.name,
      PSHM_TOKEN: ch.token,
    },
    stdio: ["ignore", "inherit", "inherit"],
  });
  try {
    await ch.waitForPeer(20_000);
  } catch (error) {
    child.kill("SIGKILL");
    ch.close();
    throw error;
  }
  return [ch, child];
}

async function stop(ch: ShmChannel, child: ChildProcess): Promise<void> {
  ch.close();
  if (child.exitCode === null) await new Promise((resolve) => child.once("exit", resolve));
}

async function pingPong(mode: Mode, size: number, quick: boolean): Promise<BenchRow> {
  let rounds = size >= 64 * KiB ? 2000 : 20_000;
  if (quick) rounds = Math.max(20, rounds / 10);
  const [ch, child] = await startPeer("pingpong", mode, size);
  const msg = new Uint8Array(size);
  const samples: number[] = [];
  const warm = Math.ceil(rounds / 10);
  let deadline = Infinity;
  try {
    for (let i = 0; i < rounds + warm; i++) {
      const t0 = performance.now();
      await ch.send(msg);
      const length = await take(ch, mode);
      const t1 = performance.now();
      if (length !== size) throw new Error(`echo of ${length} bytes, want ${size}`);
      if (i === warm) deadline = t1 + runCapMs;
      if (i >= warm) samples.push(t1 - t0);
      if (t1 > deadline) break;
    }
  } finally {
    await stop(ch, child);
  }
  const row = latencyRow(
    "channel.rtt",
    `shm_${mode}`,
    samples,
    `ping-pong, n=${samples.length}, ring ${ringLabel(size)}`,
  );
  row.size = size;
  row.msgs_per_s = Math.round(samples.length / (samples.reduce((a, b) => a + b, 0) / 1000));
  return row;
}

async function oneWay(mode: Mode, size: number, quick: boolean): Promise<BenchRow> {
  let count = size >= MiB ? 500 : size >= 64 * KiB ? 5000 : 200_000;
  if (quick) count = Math.max(sendBatch, count / 10);
  const [ch, child] = await startPeer("count", mode, size);
  const msg = new Uint8Array(size);
  const header = new Uint8Array(8);
  new DataView(header.buffer).setUint32(0, count, true);
  let ms: number;
  let wakeups = "";
  try {
    const t0 = performance.now();
    await ch.send(header);
    let last: Promise<void> = Promise.resolve();
    for (let i = 1; i <= count; i++) {
      last = ch.send(msg);
      if (i % sendBatch === 0) await last;
    }
    await last;
    const answer = await ch.receive();
    ms = performance.now() - t0;
    const counted = new DataView(answer.buffer, answer.byteOffset, 8).getUint32(0, true);
    if (counted !== count) throw new Error(`the peer counted ${counted} messages, sent ${count}`);
    const stats = ch.stats();
    wakeups = `; sender woke the peer ${stats.wakeupsSent}x, was woken ${stats.wakeupsReceived}x`;
  } finally {
    await stop(ch, child);
  }
  const row = rateRow(
    "channel.throughput",
    `shm_${mode}`,
    count,
    ms,
    `one-way, ${count} messages, ring ${ringLabel(size)}${wakeups}`,
  );
  row.size = size;
  row.bytes_per_s = Math.round(count * size / (ms / 1000));
  return row;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const json = args.includes("--json");
  const quick = args.includes("--quick");
  const option = (name: string) => args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
  const modes = (option("modes") ?? "view").split(",") as Mode[];
  const sizes = (option("sizes") ?? `64,${4 * KiB},${64 * KiB},${MiB}`).split(",").map(Number);
  ringBytesFixed = Number(option("ring") ?? 0);
  for (const m of modes) if (m !== "view" && m !== "copy") throw new Error(`--modes: view or copy, got ${m}`);
  const rows: BenchRow[] = [];
  for (const size of sizes) {
    // Modes alternate within a size, so that a noisy moment hits both.
    for (const mode of modes) {
      console.error(`… shm_${mode} ${size} B`);
      rows.push(await pingPong(mode, size, quick));
      rows.push(await oneWay(mode, size, quick));
    }
  }
  printRows(rows, json);
}

if (env.PSHM_VIEWS_PEER === "1") {
  await servePeer();
  process.exit(0);
} else {
  await main();
  process.exit(0);
}
