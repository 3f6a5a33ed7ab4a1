/**
 * What a runtime's thread-safe callback costs. One process holds both sides
 * of a channel; side A parks in receive() at once (spinMicros 0, so it arms
 * its waiter thread), then side B sends. The time from B's send to A's
 * receive() resolving is the wake-up delivery: the waiter thread sees the
 * doorbell and calls back through the runtime's cross-thread callback —
 * Deno.UnsafeCallback.threadSafe, bun:ffi JSCallback (threadsafe), or on Node
 * koffi's N-API relay, which also blocks the waiter thread until the
 * JavaScript callback has returned.
 *
 * Run: deno run -A bench/wake_bench.ts | bun bench/wake_bench.ts |
 *      make dist && node dist/bench/wake_bench.js   [--calls=N] [--json]
 *
 * @module
 */

import process from "node:process";
import { ShmChannel } from "../mod.ts";
import { type BenchRow, latencyRow, printRows, runtime } from "./_stats.ts";

const json = process.argv.includes("--json");
const calls = Number(process.argv.find((a) => a.startsWith("--calls="))?.slice(8)) || 5_000;
const warmupCalls = Math.min(calls, 500);
const rows: BenchRow[] = [];

const a = ShmChannel.create({ spinMicros: 0 });
const b = ShmChannel.attach(a.name, a.token, { spinMicros: 0 });
await a.waitForPeer(10_000);
try {
  const message = new Uint8Array(64);
  const samples: number[] = [];
  for (let i = 0; i < warmupCalls + calls; i++) {
    const received = a.receive();
    // Let A find the ring empty and park before B sends.
    await new Promise((resolve) => setTimeout(resolve, 0));
    const started = performance.now();
    await b.send(message);
    await received;
    if (i >= warmupCalls) samples.push(performance.now() - started);
  }
  rows.push(latencyRow("wake.delivery", "shm_parked", samples, `${runtime}: send → parked receive() resolves`));
} finally {
  b.close();
  a.close();
}
printRows(rows, json);
