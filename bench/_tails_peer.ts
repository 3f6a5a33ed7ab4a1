/**
 * The channel peer of bench/tails_bench.ts: attaches to the ShmChannel named
 * by PSHM_NAME / PSHM_TOKEN and echoes 64-byte messages as
 * bench/_echo_peer.ts does (tryReceive, else `await receive()`; `await send()`;
 * release), and on request keeps a {@link Probe} snapshot after each echo, so
 * the bench can tell what happened on this side during each round trip.
 *
 * Opcodes (first payload byte): {@link Op.echo}, {@link Op.quit}, and
 * {@link TailsOp}: start probing (u32 LE count of echoes at bytes 4..7, 0 =
 * stop) and dump the snapshots as JSON.
 *
 * @module
 */

import { countTimers, Probe, TailsOp } from "./_tails.ts";
import process from "node:process";
import { setTimeout as nodeSetTimeout } from "node:timers";
import { ChannelClosedError, ShmChannel } from "../mod.ts";
import { Env, jsonMessage, Op } from "./_protocol.ts";

countTimers();

const lifetimeMs = 10 * 60 * 1000;
nodeSetTimeout(() => {
  console.error("tails peer: lifetime exceeded, exiting");
  process.exit(3);
}, lifetimeMs).unref();

async function serve(): Promise<void> {
  const name = process.env[Env.name];
  const token = process.env[Env.token];
  if (!name || !token) throw new Error(`${Env.name} and ${Env.token} must be set`);
  const channel = ShmChannel.attach(name, token);
  let probe: Probe | undefined;
  let probing = false;
  console.log("READY");
  try {
    for (;;) {
      const m = channel.tryReceive() ?? await channel.receive();
      const op = m[0];
      if (op === Op.echo) {
        await channel.send(m);
        channel.release(m);
        if (probing) probe!.snap();
      } else if (op === TailsOp.probe) {
        const n = new DataView(m.buffer, m.byteOffset, m.byteLength).getUint32(4, true);
        probe?.close();
        probe = n > 0 ? new Probe(n + 1, () => channel.stats()) : undefined;
        probing = probe !== undefined;
        await channel.send(jsonMessage(TailsOp.probe, {}));
        probe?.snap(); // Snapshot 0: the window of the first echo starts once the ack is out.
      } else if (op === TailsOp.dump) {
        probing = false;
        await channel.send(jsonMessage(TailsOp.dump, probe?.dump() ?? []));
      } else if (op === Op.quit) {
        return;
      } else {
        throw new Error(`tails peer: unknown opcode ${op}`);
      }
    }
  } catch (error) {
    if (error instanceof ChannelClosedError) return;
    throw error;
  } finally {
    probe?.close();
    channel.close();
  }
}

try {
  await serve();
  process.exit(0);
} catch (error) {
  console.error("tails peer failed:", error);
  process.exit(1);
}
