import assert from "node:assert/strict";
import net from "node:net";
import os from "node:os";
import process from "node:process";
import { test } from "../../tests/_harness.ts";
import { type Doorbell, ShmChannel, socketDoorbell } from "./shm_channel.ts";

/** Both ends of a connected unix socket in this process, as doorbells that count what they do. */
async function doorbellPair() {
  const path = `${os.tmpdir()}/pshm-doorbell-test-${process.pid}-${Date.now()}.sock`;
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(path, resolve);
  });
  const accepted = new Promise<net.Socket>((resolve) => server.once("connection", resolve));
  const client = net.connect(path);
  await new Promise<void>((resolve, reject) => {
    client.once("connect", resolve);
    client.once("error", reject);
  });
  const serverEnd = await accepted;
  server.close(); // Stops listening (and removes the path); the connection stays up.
  const counted = (socket: net.Socket) => {
    const inner = socketDoorbell(socket);
    const counts = { rings: 0, closes: 0 };
    const doorbell: Doorbell = {
      ring: () => (counts.rings++, inner.ring()),
      listen: (onRing) => inner.listen(onRing),
      close: () => (counts.closes++, inner.close()),
    };
    return { doorbell, counts };
  };
  return { a: counted(serverEnd), b: counted(client) };
}

test("channels parked on a doorbell are woken by the peer's ring and deliver every message in order", async () => {
  const bells = await doorbellPair();
  // spinMicros 0: every wait parks at once, so every exchange goes through a wake-up.
  const a = ShmChannel.create({ spinMicros: 0, doorbell: bells.a.doorbell });
  const b = ShmChannel.attach(a.name, a.token, { spinMicros: 0, doorbell: bells.b.doorbell });
  try {
    await a.waitForPeer(10_000);
    const echo = (async () => {
      for (let i = 0; i < 200; i++) await b.send(await b.receive());
    })();
    for (let i = 0; i < 200; i++) {
      const message = new Uint8Array([i & 0xff, i >> 8, 7]);
      const reply = a.receive();
      await a.send(message);
      assert.deepEqual(await reply, message);
    }
    await echo;
    // The wake-ups went through the doorbells, not the futex and waiter thread.
    assert.ok(bells.a.counts.rings > 0, "side A never rang B's doorbell");
    assert.ok(bells.b.counts.rings > 0, "side B never rang A's doorbell");
  } finally {
    b.close();
    a.close();
  }
  assert.equal(bells.a.counts.closes, 1);
  assert.equal(bells.b.counts.closes, 1);
});

test("a channel without a doorbell still parks on the waiter thread when its peer has one", async () => {
  // Mixed sides are a misconfiguration the channel tolerates: the side without
  // a doorbell parks on the futex, and its peer, seeing no doorbell bit, wakes that.
  const bells = await doorbellPair();
  const a = ShmChannel.create({ spinMicros: 0 });
  const b = ShmChannel.attach(a.name, a.token, { spinMicros: 0, doorbell: bells.b.doorbell });
  try {
    await a.waitForPeer(10_000);
    for (let i = 0; i < 20; i++) {
      const received = a.receive();
      await new Promise((resolve) => setTimeout(resolve, 0)); // A parks first.
      await b.send(new Uint8Array([i]));
      assert.deepEqual(await received, new Uint8Array([i]));
    }
    assert.equal(bells.b.counts.rings, 0);
  } finally {
    b.close();
    a.close();
    bells.a.doorbell.close();
  }
});
