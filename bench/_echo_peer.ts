/**
 * The peer process of bench/channel_bench.ts. It serves one transport, chosen
 * by PSHM_BENCH_TRANSPORT:
 *
 * - `shm`: attaches to the ShmChannel named by PSHM_NAME / PSHM_TOKEN (with
 *   PSHM_SPIN_MICROS if set); with PSHM_PEER_MODE=busy-poll it spins on
 *   tryReceive() (up to 500 ms idle) and echoes without awaiting the send,
 *   a diagnostic of the ring without the promise machinery;
 * - `unix`: listens on the unix socket PSHM_SOCKET_PATH;
 * - `tcp`: listens on 127.0.0.1, port chosen by the system;
 * - `child_ipc`: answers `process.send` messages from its parent.
 *
 * It prints `READY [port]` on stdout once it serves, then dispatches on the
 * first payload byte (see {@link Op}): echo, count, end, cpu mark/report,
 * quit. It exits when told to, when its parent's side goes away, or after
 * ten minutes whatever happens.
 *
 * @module
 */

import process from "node:process";
import net from "node:net";
import { setTimeout as nodeSetTimeout } from "node:timers";
import { ChannelClosedError, ShmChannel } from "../mod.ts";
import { connectDoorbell } from "../src/transport/_doorbell.ts";
import {
  type CountReport,
  type CpuReport,
  Env,
  frame,
  frameHeaderBytes,
  FrameParser,
  jsonMessage,
  Op,
} from "./_protocol.ts";

const lifetimeMs = 10 * 60 * 1000;
nodeSetTimeout(() => {
  console.error("bench peer: lifetime exceeded, exiting");
  process.exit(3);
}, lifetimeMs).unref();

/** Counts and CPU marks shared by every transport. */
class Tally {
  count = 0;
  bytes = 0;
  #cpu = process.cpuUsage();
  #wall = performance.now();

  take(): CountReport {
    const report = { count: this.count, bytes: this.bytes };
    this.count = 0;
    this.bytes = 0;
    return report;
  }

  mark(): void {
    this.#cpu = process.cpuUsage();
    this.#wall = performance.now();
  }

  cpu(): CpuReport {
    const used = process.cpuUsage(this.#cpu);
    return { user_us: used.user, system_us: used.system, wall_us: (performance.now() - this.#wall) * 1000 };
  }
}

/** In busy-poll mode the peer spins on tryReceive() this long before it falls back to receive(). */
const busyPollIdleMs = 500;

/** Spins on tryReceive() for up to `ms`; never yields to the event loop meanwhile. */
function pollFor(channel: ShmChannel, ms: number): Uint8Array | undefined {
  const deadline = performance.now() + ms;
  for (let i = 1;; i++) {
    const m = channel.tryReceive();
    if (m !== undefined) return m;
    if ((i & 1023) === 0 && performance.now() > deadline) return undefined;
  }
}

async function serveShm(): Promise<void> {
  const name = process.env[Env.name];
  const token = process.env[Env.token];
  if (!name || !token) throw new Error(`${Env.name} and ${Env.token} must be set`);
  const spin = process.env[Env.spinMicros];
  const block = process.env[Env.blockMicros];
  const channel = ShmChannel.attach(name, token, {
    ...(spin === undefined ? {} : { spinMicros: Number(spin) }),
    ...(block === undefined ? {} : { blockMicros: Number(block) }),
  });
  const doorbellPath = process.env[Env.doorbellPath];
  if (doorbellPath) {
    // As the plugin launch does (factory.ts): the parent holds its end first; our first ring says we hold ours.
    channel.useDoorbell(await connectDoorbell({ path: doorbellPath, key: process.env[Env.doorbellKey] ?? "" }), true);
  }
  const busyPoll = process.env[Env.peerMode] === "busy-poll";
  const tally = new Tally();
  console.log("READY");
  try {
    for (;;) {
      // Drain what is already there without a promise per message; wait only when empty.
      let m = channel.tryReceive();
      if (m === undefined && busyPoll) m = pollFor(channel, busyPollIdleMs);
      m ??= await channel.receive();
      const op = m[0];
      if (op === Op.echo) {
        if (busyPoll) {
          // Diagnostic floor: no await. A failed send closes the channel and the next tryReceive throws.
          void channel.send(m);
        } else {
          await channel.send(m);
          channel.release(m); // In the ring now: its buffer may carry the next large message.
        }
      } else if (op === Op.count) {
        tally.count++;
        tally.bytes += m.length;
        channel.release(m);
      } else if (op === Op.end) {
        await channel.send(jsonMessage(Op.end, tally.take()));
      } else if (op === Op.cpuMark) {
        tally.mark();
        await channel.send(jsonMessage(Op.cpuMark, {}));
      } else if (op === Op.cpuReport) {
        await channel.send(jsonMessage(Op.cpuReport, tally.cpu()));
      } else if (op === Op.quit) {
        return;
      } else {
        throw new Error(`bench peer: unknown opcode ${op}`);
      }
    }
  } catch (error) {
    // The parent closed or died: nothing left to serve.
    if (error instanceof ChannelClosedError) return;
    throw error;
  } finally {
    channel.close();
  }
}

function serveSocket(kind: "unix" | "tcp"): Promise<void> {
  return new Promise((resolve, reject) => {
    const tally = new Tally();
    const server = net.createServer((socket) => {
      server.close(); // one client per peer
      if (kind === "tcp") socket.setNoDelay(true);
      const reply = (op: number, value: unknown) => socket.write(frame(jsonMessage(op, value)));
      const parser = new FrameParser((f) => {
        const op = f[frameHeaderBytes];
        if (op === Op.echo) {
          socket.write(f);
        } else if (op === Op.count) {
          tally.count++;
          tally.bytes += f.length - frameHeaderBytes;
        } else if (op === Op.end) {
          reply(Op.end, tally.take());
        } else if (op === Op.cpuMark) {
          tally.mark();
          reply(Op.cpuMark, {});
        } else if (op === Op.cpuReport) {
          reply(Op.cpuReport, tally.cpu());
        } else if (op === Op.quit) {
          socket.end();
        } else {
          socket.destroy(new Error(`bench peer: unknown opcode ${op}`));
        }
      });
      socket.on("data", (chunk: Uint8Array) => parser.push(chunk));
      socket.on("error", reject);
      socket.on("close", () => resolve());
    });
    server.on("error", reject);
    if (kind === "unix") {
      const path = process.env[Env.socketPath];
      if (!path) throw new Error(`${Env.socketPath} must be set`);
      server.listen(path, () => console.log("READY"));
    } else {
      server.listen(0, "127.0.0.1", () => {
        const address = server.address();
        console.log(`READY ${typeof address === "object" && address ? address.port : 0}`);
      });
    }
  });
}

function serveChildIpc(): Promise<void> {
  return new Promise((resolve) => {
    if (typeof process.send !== "function") throw new Error("bench peer: no IPC channel");
    const send = process.send.bind(process);
    process.on("message", (m: unknown) => {
      if (m === "quit") {
        process.disconnect?.();
        resolve();
        return;
      }
      send(m);
    });
    process.on("disconnect", () => resolve());
    console.log("READY");
  });
}

const transport = process.env[Env.transport];
try {
  if (transport === "shm") await serveShm();
  else if (transport === "unix" || transport === "tcp") await serveSocket(transport);
  else if (transport === "child_ipc") await serveChildIpc();
  else throw new Error(`bench peer: ${Env.transport} is ${transport}; want shm, unix, tcp or child_ipc`);
  process.exit(0);
} catch (error) {
  console.error("bench peer failed:", error);
  process.exit(1);
}
