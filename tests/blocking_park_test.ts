import assert from "node:assert/strict";
import process from "node:process";
import { ShmChannel } from "../mod.ts";
import { blockMicrosMax } from "../src/transport/shm_channel.ts";
import { pattern, peerPath, runtime, segmentsOf, startPeer, test } from "./_harness.ts";

/** First byte of a message that asks tests/peers/blocking_peer.ts for its stats (its `statsRequest`). */
const statsRequest = 0xff;
/** Long enough that a ping always finds the peer parked (it spins 50 µs), far below the peer's block bound. */
const gapMs = 3;
const exchanges = 20;

test("blockMicros that is negative, fractional, not a number or over the bound is refused with a RangeError", () => {
  for (const blockMicros of [-1, 1.5, Number.NaN, blockMicrosMax + 1]) {
    assert.throws(
      () => ShmChannel.create({ blockMicros }),
      (error: unknown) =>
        error instanceof RangeError && error.message.includes(`from 0 (off) to ${blockMicrosMax}`) &&
        error.message.includes(String(blockMicros)),
    );
  }
  assert.deepEqual(segmentsOf(), []);
});

test("a side that received last and sent nothing since does not block: an idle server keeps its event loop", async () => {
  const a = ShmChannel.create({ spinMicros: 0, blockMicros: blockMicrosMax });
  const b = ShmChannel.attach(a.name, a.token);
  try {
    await b.send(pattern(0, 32));
    assert.deepEqual(await a.receive(), pattern(0, 32));
    const received = a.receive();
    await new Promise((resolve) => setTimeout(resolve, 1));
    await b.send(pattern(1, 32));
    assert.deepEqual(await received, pattern(1, 32));
    assert.equal(a.stats().blockedParks, 0);
    assert.ok(a.stats().wakeupsReceived >= 1);
  } finally {
    b.close();
    a.close();
  }
});

test("a blocking park that nobody rings times out and falls back to the waiter thread, which delivers", async () => {
  // One thread holds both sides: while `a` blocks, `b` cannot send, so the block always times out.
  const a = ShmChannel.create({ spinMicros: 0, blockMicros: 1_000 });
  const b = ShmChannel.attach(a.name, a.token);
  try {
    for (let i = 0; i < 3; i++) {
      // `a` asks, so it may block while it awaits the answer.
      await a.send(pattern(i, 32));
      const received = a.receive();
      assert.deepEqual(await b.receive(), pattern(i, 32));
      await new Promise((resolve) => setTimeout(resolve, 5));
      await b.send(pattern(i, 64));
      assert.deepEqual(await received, pattern(i, 64));
    }
    const stats = a.stats();
    assert.equal(stats.blockedWakeupsReceived, 0);
    assert.equal(stats.blockedParks, 3, `blocked once per answer awaited: ${JSON.stringify(stats)}`);
    assert.ok(stats.wakeupsReceived >= 3, `woken through the waiter thread: ${JSON.stringify(stats)}`);
  } finally {
    b.close();
    a.close();
  }
  assert.deepEqual(segmentsOf(), []);
});

for (const peer of ["deno", "bun", "node"] as const) {
  test(
    `${runtime} host and ${peer} peer, both parking blocking, are woken in their JS threads and echo intact`,
    async () => {
      const channel = ShmChannel.create({ spinMicros: 0, blockMicros: blockMicrosMax });
      const child = startPeer(peer, peerPath("blocking_peer.ts"), {
        PSHM_NAME: channel.name,
        PSHM_TOKEN: channel.token,
        PSHM_BLOCK_MICROS: String(blockMicrosMax),
      });
      try {
        await channel.waitForPeer(20_000);
        for (let seq = 0; seq < exchanges; seq++) {
          await new Promise((resolve) => setTimeout(resolve, gapMs));
          await channel.send(pattern(seq, 64 + seq));
          assert.deepEqual(await channel.receive(), pattern(seq, 64 + seq));
        }
        await channel.send(new Uint8Array([statsRequest]));
        const peerStats = JSON.parse(new TextDecoder().decode(await channel.receive()));
        // Every ping finds the peer blocked (it blocks up to 100 ms, pings come 3 ms apart).
        assert.ok(peerStats.blockedWakeupsReceived > 0, `peer stats: ${JSON.stringify(peerStats)}`);
        const stats = channel.stats();
        assert.ok(stats.blockedWakeupsReceived! > 0, `host stats: ${JSON.stringify(stats)}`);
      } finally {
        channel.close();
        const { code } = await child.exited;
        assert.equal(code, 0, `peer exit code; stderr: ${child.stderr()}`);
      }
      assert.deepEqual(segmentsOf([process.pid, child.child.pid]), []);
    },
    { timeoutMs: 60_000 },
  );
}

test("an idle channel with blockMicros blocks once, then parks on the waiter without using the CPU", async () => {
  const a = ShmChannel.create({ spinMicros: 0, blockMicros: 1_000 });
  const b = ShmChannel.attach(a.name, a.token);
  try {
    await a.send(pattern(0, 32));
    assert.deepEqual(await b.receive(), pattern(0, 32));
    const received = a.receive();
    await new Promise((resolve) => setTimeout(resolve, 20));
    const before = process.cpuUsage();
    const idleMs = 500;
    await new Promise((resolve) => setTimeout(resolve, idleMs));
    const used = process.cpuUsage(before);
    // A channel that kept blocking or spinning would use about all of it; a parked one next to nothing.
    assert.ok((used.user + used.system) / 1000 < idleMs / 2, `CPU while idle: ${JSON.stringify(used)}`);
    await b.send(pattern(1, 64));
    assert.deepEqual(await received, pattern(1, 64));
    assert.equal(a.stats().blockedWakeupsReceived, 0);
    assert.equal(a.stats().blockedParks, 1);
  } finally {
    b.close();
    a.close();
  }
});

test("a channel does not block while another blocking channel of the process awaits its peer", async () => {
  // A host calling two plugins at once: holding the thread for one answer would hold back the other.
  const a1 = ShmChannel.create({ spinMicros: 0, blockMicros: 1_000 });
  const b1 = ShmChannel.attach(a1.name, a1.token);
  const a2 = ShmChannel.create({ spinMicros: 0, blockMicros: 1_000 });
  const b2 = ShmChannel.attach(a2.name, a2.token);
  try {
    await a1.send(pattern(1, 32));
    await a2.send(pattern(2, 32));
    const first = a1.receive();
    const second = a2.receive();
    await new Promise((resolve) => setTimeout(resolve, 5));
    assert.equal(a1.stats().blockedParks, 0);
    assert.equal(a2.stats().blockedParks, 0);
    await b1.send(await b1.receive());
    await b2.send(await b2.receive());
    assert.deepEqual(await first, pattern(1, 32));
    assert.deepEqual(await second, pattern(2, 32));
    // Alone now (a1 was answered): a2's next call may block again.
    await a2.send(pattern(3, 32));
    const third = a2.receive();
    await new Promise((resolve) => setTimeout(resolve, 5));
    assert.equal(a2.stats().blockedParks, 1);
    await b2.send(await b2.receive());
    assert.deepEqual(await third, pattern(3, 32));
  } finally {
    for (const channel of [b1, a1, b2, a2]) channel.close();
  }
  assert.deepEqual(segmentsOf(), []);
});
