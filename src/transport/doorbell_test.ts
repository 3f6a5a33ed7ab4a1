import assert from "node:assert/strict";
import net from "node:net";
import os from "node:os";
import process from "node:process";
import { peerPath, runtime, startPeer, test } from "../../tests/_harness.ts";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { type Doorbell, ShmChannel, socketDoorbell } from "./shm_channel.ts";
import { connectDoorbell, directoryPrefix, doorbellKeyBytes, listenDoorbell } from "./_doorbell.ts";
import { ConnectError } from "./errors.ts";

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

/** A host and a plugin end set up as the plugin launch does: listen, connect with the key, hand both to channels. */
async function launchedPair(wrap: (pluginEnd: Doorbell) => Doorbell = (d) => d) {
  const listener = await listenDoorbell();
  const host = ShmChannel.create({ spinMicros: 0 });
  listener.onAccepted((doorbell) => host.useDoorbell(doorbell, false));
  const plugin = ShmChannel.attach(host.name, host.token, { spinMicros: 0 });
  try {
    plugin.useDoorbell(wrap(await connectDoorbell(listener.address)), true);
  } catch (error) {
    plugin.close();
    host.close();
    throw error;
  } finally {
    listener.close();
  }
  await host.waitForPeer(10_000);
  return { host, plugin, path: listener.address.path };
}

/** Both sides echo `count` messages; every receive parks first (spinMicros 0). */
async function pingPong(host: ShmChannel, plugin: ShmChannel, count: number): Promise<void> {
  const echo = (async () => {
    for (let i = 0; i < count; i++) await plugin.send(await plugin.receive());
  })();
  for (let i = 0; i < count; i++) {
    const message = new Uint8Array([i & 0xff, i >> 8, 9]);
    const reply = host.receive();
    await new Promise((resolve) => setTimeout(resolve, 0)); // Both sides park before the send.
    await host.send(message);
    assert.deepEqual(await reply, message);
  }
  await echo;
}

test("a doorbell set up as at plugin launch wakes both parked sides through the runtime's own socket", async () => {
  const { host, plugin, path } = await launchedPair();
  try {
    // The socket and its private directory are gone once the plugin's end connected.
    assert.equal(existsSync(path), false);
    assert.equal(existsSync(dirname(path)), false);
    // The host learns that the plugin rings only from the plugin's first ring.
    for (let i = 0; i < 100 && host.wakePath !== "doorbell"; i++) await new Promise((r) => setTimeout(r, 5));
    assert.equal(host.wakePath, "doorbell");
    assert.equal(plugin.wakePath, "doorbell");
    const before = host.stats().wakeupsReceived;
    await pingPong(host, plugin, 50);
    // The host parked and was woken for (nearly) every reply: by the doorbell, since it armed no waiter.
    assert.ok(host.stats().wakeupsReceived - before > 0);
    assert.ok(plugin.stats().wakeupsSent > 0);
  } finally {
    plugin.close();
    host.close();
  }
});

test("a channel whose doorbell peer went away parks on the futex again and keeps delivering", async () => {
  // The plugin's end, wrapped so the test can break the socket under the channel as a crash would: the
  // descriptor closes and the channel hears of it, like the host's end does from the kernel.
  let breakSocket = () => {};
  const { host, plugin } = await launchedPair((inner) => ({
    ring: () => inner.ring(),
    listen(onRing, onEnd) {
      inner.listen(onRing, onEnd);
      breakSocket = () => (inner.close(), onEnd?.());
    },
    close: () => inner.close(),
  }));
  try {
    for (let i = 0; i < 100 && host.wakePath !== "doorbell"; i++) await new Promise((r) => setTimeout(r, 5));
    assert.equal(host.wakePath, "doorbell");
    const parked = host.receive();
    await new Promise((resolve) => setTimeout(resolve, 10)); // The host parks on the doorbell.
    breakSocket();
    const wakePath = (channel: ShmChannel): string => channel.wakePath; // Read afresh, not narrowed.
    for (let i = 0; i < 200 && (wakePath(host) !== "futex" || wakePath(plugin) !== "futex"); i++) {
      await new Promise((r) => setTimeout(r, 5));
    }
    assert.equal(host.wakePath, "futex");
    assert.equal(plugin.wakePath, "futex");
    await plugin.send(new Uint8Array([42]));
    assert.deepEqual(await parked, new Uint8Array([42]));
    await pingPong(host, plugin, 20);
  } finally {
    plugin.close();
    host.close();
  }
});

test("a connection to the doorbell with the wrong key is closed and the plugin's own still gets through", async () => {
  const listener = await listenDoorbell();
  const accepted: Doorbell[] = [];
  listener.onAccepted((doorbell) => accepted.push(doorbell));
  try {
    const wrong = { path: listener.address.path, key: "00".repeat(doorbellKeyBytes) };
    await assert.rejects(connectDoorbell(wrong), (error: Error) => error instanceof ConnectError);
    // Short keys and garbage are refused before anything is sent.
    await assert.rejects(connectDoorbell({ path: listener.address.path, key: "abc" }), TypeError);
    assert.equal(accepted.length, 0);
    assert.equal(existsSync(listener.address.path), true);
    const right = await connectDoorbell(listener.address);
    assert.equal(accepted.length, 1);
    assert.equal(existsSync(listener.address.path), false);
    // Nobody else gets in afterwards: the socket file is gone.
    await assert.rejects(connectDoorbell(listener.address), (error: Error) => error instanceof ConnectError);
    right.close();
  } finally {
    listener.close();
    for (const doorbell of accepted) doorbell.close();
  }
});

test("closing a doorbell listener nobody connected to removes its socket and directory", async () => {
  const listener = await listenDoorbell();
  const { path } = listener.address;
  assert.equal(existsSync(path), true);
  listener.close();
  listener.close();
  assert.equal(existsSync(dirname(path)), false);
  await assert.rejects(connectDoorbell(listener.address), (error: Error) => error instanceof ConnectError);
});

test("an idle doorbell keeps no process alive: channels and sockets left open, the process still exits", async () => {
  // And, on the way, the first listener of a process removes what a killed host left: a directory named for a
  // process that is gone (a finished child's pid), not one named for a live process (ours).
  const gone = startPeer(runtime, peerPath("doorbell_idle.ts"), { PSHM_EXIT_AT_ONCE: "1" });
  await gone.exited;
  const stale = mkdtempSync(join(tmpdir(), `${directoryPrefix}${gone.child.pid}-`));
  const live = mkdtempSync(join(tmpdir(), `${directoryPrefix}${process.pid}-`));
  const peer = startPeer(runtime, peerPath("doorbell_idle.ts"), {});
  const { code, signal } = await peer.exited;
  assert.equal(signal, null, peer.stderr());
  assert.equal(code, 0, peer.stderr());
  assert.match(peer.stdout(), /wake paths: host doorbell, plugin doorbell/);
  assert.equal(existsSync(stale), false, "the stale directory was swept");
  assert.equal(existsSync(live), true, "a live process's directory was left alone");
  rmSync(live, { recursive: true });
}, { timeoutMs: 30_000 });

test("with a doorbell set up, a pair that never parks rings nothing and makes no wake-up at all", async () => {
  const { host, plugin } = await launchedPair();
  try {
    for (let i = 0; i < 100 && host.wakePath !== "doorbell"; i++) await new Promise((r) => setTimeout(r, 5));
    const before = [host.stats(), plugin.stats()];
    // Each message is in the ring before its receive(): nobody waits, so nobody parks.
    for (let i = 0; i < 500; i++) {
      await host.send(new Uint8Array([i & 0xff]));
      assert.deepEqual(await plugin.receive(), new Uint8Array([i & 0xff]));
      await plugin.send(new Uint8Array([i & 0xff, 1]));
      assert.deepEqual(await host.receive(), new Uint8Array([i & 0xff, 1]));
    }
    for (const [i, channel] of [host, plugin].entries()) {
      const after = channel.stats();
      assert.equal(after.wakeupsSent - before[i].wakeupsSent, 0);
      assert.equal(after.doorbellWakeupsSent! - before[i].doorbellWakeupsSent!, 0);
    }
  } finally {
    plugin.close();
    host.close();
  }
});
