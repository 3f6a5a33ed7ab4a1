/**
 * The two-process demo: this process creates a channel, starts a Bun peer
 * (examples/_demo_peer.ts) that uppercases whatever it receives, sends a few
 * messages and measures a quick round trip. Run it with `make demo`.
 */
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { ShmChannel } from "../mod.ts";

const root = fileURLToPath(new URL("..", import.meta.url));
const channel = ShmChannel.create();
const peer = spawn(`${root}node_modules/.bin/bun`, [`${root}examples/_demo_peer.ts`], {
  env: { ...process.env, PSHM_NAME: channel.name, PSHM_TOKEN: channel.token },
  stdio: ["ignore", "inherit", "inherit"],
});
const exited = new Promise((resolve) => peer.on("close", resolve));

await channel.waitForPeer(10_000);
console.log(`channel ${channel.name}: Deno host pid ${process.pid} <-> Bun peer pid ${channel.peerPid}`);
const encoder = new TextEncoder();
const decoder = new TextDecoder();
for (const word of ["hello", "shared", "memory"]) {
  await channel.send(encoder.encode(word));
  console.log(`sent ${JSON.stringify(word)} -> got ${JSON.stringify(decoder.decode(await channel.receive()))}`);
}

const rounds = 20_000;
const ping = new Uint8Array(64);
const started = performance.now();
for (let i = 0; i < rounds; i++) {
  await channel.send(ping);
  await channel.receive();
}
const perRoundUs = ((performance.now() - started) * 1000) / rounds;
console.log(`${rounds} round trips of 64 bytes: ${perRoundUs.toFixed(2)} µs each on average`);

channel.close();
console.log(`peer exited with code ${await exited}`);
