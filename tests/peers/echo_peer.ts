/**
 * A test peer: attaches to PSHM_NAME with PSHM_TOKEN and, by PSHM_MODE:
 * - "echo" (default): sends every message back until the other side closes;
 * - "stream": sends PSHM_COUNT numbered, self-checking messages, then waits;
 * - "garbage": writes a frame whose length exceeds the ring, then waits;
 * - "burst-exit": sends PSHM_COUNT numbered messages without awaiting them and exits at once (process.exit).
 */
import { getNative, ShmChannel } from "../../mod.ts";
import { pattern } from "../_harness.ts";
import { L, ringDataOffset, ringWriteOffset, sideOffset } from "../../src/native/layout.ts";

const env = (globalThis as unknown as { process: { env: Record<string, string | undefined> } }).process.env;
const name = env.PSHM_NAME!;
const token = env.PSHM_TOKEN!;
const mode = env.PSHM_MODE ?? "echo";

if (mode === "garbage") {
  // Speaks the ring by hand to write what a buggy peer would.
  const native = getNative();
  const handle = native.attach(name, Uint8Array.from(token.match(/../g)!, (h) => parseInt(h, 16)));
  const u32 = new Uint32Array(native.map(handle));
  const ringBytes = u32[L.off_ring_bytes >> 2];
  const data = ringDataOffset(1, ringBytes) >> 2;
  u32[data] = ringBytes * 2;
  u32[data + 1] = 0;
  Atomics.store(u32, ringWriteOffset(1) >> 2, 64);
  Atomics.and(u32, (sideOffset(0) + L.off_side_parked) >> 2, 0);
  native.wake(handle, 0);
  await new Promise((r) => setTimeout(r, 10_000));
  native.close(handle);
} else {
  const channel = ShmChannel.attach(name, token);
  if (mode === "burst-exit") {
    const count = Number(env.PSHM_COUNT ?? "3");
    for (let seq = 0; seq < count; seq++) void channel.send(pattern(seq, 8 + seq));
    (globalThis as unknown as { process: { exit(code: number): never } }).process.exit(0);
  }
  if (mode === "stream") {
    const count = Number(env.PSHM_COUNT ?? "1000");
    for (let seq = 0; seq < count; seq++) await channel.send(pattern(seq, 8 + (seq % 200)));
    await new Promise((r) => setTimeout(r, 60_000));
  } else {
    for await (const message of channel) await channel.send(message);
  }
  channel.close();
}
