import assert from "node:assert/strict";
import { ChannelClosedError, ShmChannel } from "../mod.ts";
import { cPeerPath, matchesPattern, pattern, peerPath, runtime, shmSegments, startPeer, test } from "./_harness.ts";

const sizes = [0, 1, 7, 64, 1000, 4096, 65_536, 300_000, 2_500_000];

for (const peer of ["deno", "bun", "node", "native"] as const) {
  test(`${runtime} host and ${peer} peer exchange messages of every size, in order`, async () => {
    const channel = ShmChannel.create({ ringBytes: 1 << 16 });
    const child = peer === "native"
      ? startPeer("native", cPeerPath, {}, [channel.name, channel.token])
      : startPeer(peer, peerPath("echo_peer.ts"), { PSHM_NAME: channel.name, PSHM_TOKEN: channel.token });
    try {
      await channel.waitForPeer(20_000);
      for (let round = 0; round < 3; round++) {
        for (const [i, size] of sizes.entries()) {
          const seq = round * 100 + i;
          await channel.send(pattern(seq, size));
          const echo = await channel.receive();
          assert.equal(echo.length, size);
          assert.ok(matchesPattern(seq, echo), `echo of message ${seq} (${size} bytes)`);
        }
      }
      // Pipelined: many in flight before the first echo is read.
      const count = 2000;
      const reading = (async () => {
        for (let seq = 0; seq < count; seq++) assert.ok(matchesPattern(seq, await channel.receive()));
      })();
      for (let seq = 0; seq < count; seq++) await channel.send(pattern(seq, 16 + (seq % 300)));
      await reading;
    } finally {
      channel.close();
      const { code } = await child.exited;
      assert.equal(code, 0, `peer exit code; stderr: ${child.stderr()}`);
    }
    assert.ok(!shmSegments().includes(channel.name));
  }, { timeoutMs: 60_000 });
}

test(`${runtime} host receives 20000 frames from a streaming peer with no torn or reordered byte`, async () => {
  const channel = ShmChannel.create({ ringBytes: 1 << 14 });
  const other = runtime === "deno" ? "bun" : "deno";
  const child = startPeer(other, peerPath("echo_peer.ts"), {
    PSHM_NAME: channel.name,
    PSHM_TOKEN: channel.token,
    PSHM_MODE: "stream",
    PSHM_COUNT: "20000",
  });
  try {
    for (let seq = 0; seq < 20_000; seq++) {
      const message = await channel.receive();
      assert.equal(message.length, 8 + (seq % 200));
      assert.ok(matchesPattern(seq, message), `frame ${seq} is intact`);
    }
  } finally {
    child.child.kill("SIGKILL");
    await child.exited;
    channel.close();
  }
}, { timeoutMs: 60_000 });

test(`a peer killed with SIGKILL mid-stream fails pending receive() with peer-died and frees the segment`, async () => {
  const channel = ShmChannel.create({ ringBytes: 1 << 12 });
  const child = startPeer(runtime, peerPath("echo_peer.ts"), {
    PSHM_NAME: channel.name,
    PSHM_TOKEN: channel.token,
    PSHM_MODE: "stream",
    PSHM_COUNT: "100000000",
  });
  let received = 0;
  for (; received < 500; received++) assert.ok(matchesPattern(received, await channel.receive()));
  child.child.kill("SIGKILL");
  await child.exited;
  const killedAt = performance.now();
  const error = await (async () => {
    try {
      for (;;) assert.ok(matchesPattern(received, await channel.receive()), `frame ${received++}`);
    } catch (e) {
      return e;
    }
  })();
  assert.ok(error instanceof ChannelClosedError, String(error));
  assert.equal(error.code, "peer-died");
  assert.match(error.message, /died; restart it/);
  assert.ok(channel.closed);
  await assert.rejects(channel.send(new Uint8Array(1)), ChannelClosedError);
  console.log(`peer death noticed ${(performance.now() - killedAt).toFixed(0)} ms after the kill`);
  assert.ok(!shmSegments().includes(channel.name));
}, { timeoutMs: 30_000 });

test("a peer that writes a frame longer than the ring gets the channel closed as corrupt, without a hang", async () => {
  const channel = ShmChannel.create({ ringBytes: 1 << 12, spinMicros: 0 });
  const child = startPeer(runtime, peerPath("echo_peer.ts"), {
    PSHM_NAME: channel.name,
    PSHM_TOKEN: channel.token,
    PSHM_MODE: "garbage",
  });
  try {
    await assert.rejects(channel.receive(), (e: unknown) => {
      assert.ok(e instanceof ChannelClosedError);
      assert.equal(e.code, "corrupt");
      assert.match(e.message, /corrupt frame .* beyond the 1016-byte frame limit/);
      return true;
    });
    // This process keeps serving: a fresh channel works.
    const a = ShmChannel.create();
    const b = ShmChannel.attach(a.name, a.token);
    await a.send(pattern(1, 10));
    assert.ok(matchesPattern(1, await b.receive()));
    b.close();
    a.close();
  } finally {
    child.child.kill("SIGKILL");
    await child.exited;
    channel.close();
  }
}, { timeoutMs: 30_000 });

test("64 channels in one process: idle, then all active at once", async () => {
  const channels = Array.from({ length: 64 }, () => ShmChannel.create({ ringBytes: 1 << 12, spinMicros: 0 }));
  const child = startPeer(runtime, peerPath("multi_peer.ts"), {
    PSHM_CHANNELS: JSON.stringify(channels.map((c) => [c.name, c.token])),
  });
  try {
    await Promise.all(channels.map((c) => c.waitForPeer(20_000)));
    // Every channel parked on both sides; nothing is lost across the idle time.
    const pending = channels.map((c) => c.receive());
    await new Promise((r) => setTimeout(r, 300));
    await Promise.all(channels.map((c, i) => c.send(pattern(i, 32))));
    const echoes = await Promise.all(pending);
    echoes.forEach((m, i) => assert.ok(matchesPattern(i, m), `channel ${i}`));
    for (let round = 0; round < 20; round++) {
      await Promise.all(channels.map(async (c, i) => {
        await c.send(pattern(round * 64 + i, 100));
        assert.ok(matchesPattern(round * 64 + i, await c.receive()));
      }));
    }
  } finally {
    for (const c of channels) c.close();
    const { code, signal } = await child.exited;
    assert.equal(code, 0, `signal ${signal}; stderr: ${child.stderr()}`);
  }
}, { timeoutMs: 60_000 });

test("livenessCheckMs out of range is a RangeError that names the range; in range the channel works as before", async () => {
  for (const bad of [0, 1.5, -1, 3_600_001, Number.NaN]) {
    assert.throws(() => ShmChannel.create({ livenessCheckMs: bad }), (e: unknown) => {
      assert.ok(e instanceof RangeError, String(e));
      assert.match(e.message, /livenessCheckMs must be an integer from 1 to 3600000/);
      return true;
    });
  }
  // How late a parked side notices a dead peer with each interval is proven in zig/waiter.zig's tests.
  const a = ShmChannel.create({ livenessCheckMs: 3_600_000 });
  const b = ShmChannel.attach(a.name, a.token, { livenessCheckMs: 1 });
  try {
    const received = b.receive();
    await new Promise((resolve) => setTimeout(resolve, 20)); // b parks and its waiter checks a every 1 ms.
    await a.send(pattern(7, 100));
    assert.ok(matchesPattern(7, await received));
  } finally {
    b.close();
    a.close();
  }
  assert.ok(!shmSegments().includes(a.name));
});

for (const peer of ["deno", "bun", "node"] as const) {
  test(`a ${peer} peer that sends without awaiting and exits at once still delivers every message`, async () => {
    const channel = ShmChannel.create({ ringBytes: 1 << 12 });
    const child = startPeer(peer, peerPath("echo_peer.ts"), {
      PSHM_NAME: channel.name,
      PSHM_TOKEN: channel.token,
      PSHM_MODE: "burst-exit",
      PSHM_COUNT: "5",
    });
    try {
      const { code } = await child.exited;
      assert.equal(code, 0, `peer exit code; stderr: ${child.stderr()}`);
      // Sends after the first of a turn are published together at the turn's end; an exit ends the turn first.
      for (let seq = 0; seq < 5; seq++) {
        const message = await channel.receive();
        assert.equal(message.length, 8 + seq);
        assert.ok(matchesPattern(seq, message), `message ${seq} is intact`);
      }
      await assert.rejects(channel.receive(), ChannelClosedError);
    } finally {
      channel.close();
    }
    assert.ok(!shmSegments().includes(channel.name));
  }, { timeoutMs: 30_000 });
}
