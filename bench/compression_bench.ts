/**
 * Where compression pays: an echo call through two RpcPeers over a real
 * transport (shm: one ShmChannel; tcp: a loopback socket from
 * listenTransport/connectTransport), with compression off and with the DEFLATE
 * compression the handshake agrees on over TCP, for payload sizes 4 KiB,
 * 64 KiB and 1 MiB, compressible (JSON-like records) and incompressible
 * (random bytes). Both endpoints run in this process, so each sample is the
 * CPU of both sides plus the transport's own cost: the rows compare
 * compression's CPU against the bytes it saves.
 *
 *     deno run -A bench/compression_bench.ts [--json] [--calls=N]
 *     bun bench/compression_bench.ts [--json] [--calls=N]
 *     make dist && node dist/bench/compression_bench.js [--json] [--calls=N]
 *
 * The note of each row gives the request's bytes on the wire.
 *
 * @module
 */

import process from "node:process";
import { compressionThresholdBytesDefault } from "../src/protocol/handshake.ts";
import { RpcPeer } from "../src/protocol/rpc.ts";
import { connectTransport, listenTransport } from "../src/transport/factory.ts";
import { ShmChannel } from "../src/transport/shm_channel.ts";
import type { Transport, TransportKind } from "../src/transport/transport.ts";
import { type BenchRow, latencyRow, printRows } from "./_stats.ts";

const json = process.argv.includes("--json");
const callsArg = Number(process.argv.find((a) => a.startsWith("--calls="))?.slice(8)) || undefined;
const sizes = [4 * 1024, 64 * 1024, 1024 * 1024];
const callsFor = (size: number) => callsArg ?? (size >= 1024 * 1024 ? 100 : size >= 64 * 1024 ? 1000 : 5000);
const rows: BenchRow[] = [];

/** About `size` bytes of MessagePack: records with repeated keys and small varied values, like an API's JSON. */
function compressible(size: number): unknown {
  const records = [];
  for (let i = 0; records.length * 60 < size; i++) {
    records.push({ id: i, name: `user-${i % 97}`, active: i % 3 === 0, score: (i * 37) % 1000, tags: ["a", "b"] });
  }
  return records;
}

function incompressible(size: number): Uint8Array {
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i += 65_536) crypto.getRandomValues(bytes.subarray(i, i + 65_536));
  return bytes;
}

async function pair(kind: TransportKind): Promise<[Transport, Transport]> {
  if (kind === "shm") {
    const a = ShmChannel.create();
    return [a, ShmChannel.attach(a.name, a.token)];
  }
  const listener = await listenTransport(kind);
  try {
    const [client, server] = await Promise.all([
      connectTransport(kind, listener.address, listener.secret),
      listener.accept(5000),
    ]);
    return [client, server];
  } finally {
    listener.close();
  }
}

/** Sizes of the frames a transport sends, to report the bytes on the wire. */
function recording(transport: Transport, sizes: number[]): Transport {
  return {
    kind: transport.kind,
    messageBytesMax: transport.messageBytesMax,
    send: (bytes) => (sizes.push(bytes.length), transport.send(bytes)),
    receive: () => transport.receive(),
    close: () => transport.close(),
    get closed() {
      return transport.closed;
    },
  };
}

async function run(kind: TransportKind, compress: boolean, size: number, data: "json" | "random"): Promise<void> {
  const [a, b] = await pair(kind);
  const wire: number[] = [];
  const compression = compress
    ? { algorithm: "deflate" as const, thresholdBytes: compressionThresholdBytesDefault }
    : undefined;
  const server = new RpcPeer(b, {
    remoteName: "client",
    heartbeatIntervalMs: 0,
    handlers: { echo: ([x]) => x },
    compression,
  });
  const client = new RpcPeer(recording(a, wire), { remoteName: "server", heartbeatIntervalMs: 0, compression });
  server.run();
  client.run();
  try {
    const payload = data === "json" ? compressible(size) : incompressible(size);
    const n = callsFor(size);
    for (let i = 0; i < Math.min(n, 200); i++) await client.call("echo", [payload]);
    const samples: number[] = [];
    for (let i = 0; i < n; i++) {
      const started = performance.now();
      await client.call("echo", [payload]);
      samples.push(performance.now() - started);
    }
    const label = size >= 1024 * 1024 ? `${size >> 20} MiB` : `${size >> 10} KiB`;
    rows.push({
      ...latencyRow(
        "rpc.compression",
        `${kind} ${compress ? "deflate" : "off"}`,
        samples,
        `${label} ${data}; request ${wire[wire.length - 1]} bytes on the wire; n=${n}`,
      ),
      size,
    });
  } finally {
    client.close();
    server.close();
  }
}

for (const size of sizes) {
  for (const data of ["json", "random"] as const) {
    for (const kind of ["shm", "tcp"] as TransportKind[]) {
      for (const compress of [false, true]) {
        if (!json) console.error(`… ${kind} ${compress ? "deflate" : "off"} ${size} ${data}`);
        await run(kind, compress, size, data);
      }
    }
  }
}
printRows(rows, json);
process.exit(0);
