/**
 * Zero-copy receive: ShmChannel.receiveView() / tryReceiveView() hand out
 * arrays over the ring itself, held until releaseView().
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { ChannelClosedError, ShmChannel, ViewError, viewsHeldMax } from "../mod.ts";
import { cPeerPath, matchesPattern, pattern, peerPath, runtime, shmSegments, startPeer, test } from "./_harness.ts";

function pair(options = {}): [ShmChannel, ShmChannel] {
  const a = ShmChannel.create(options);
  const b = ShmChannel.attach(a.name, a.token, options);
  return [a, b];
}

/** True when `view` reads the ring in place (an array over the mapped segment), not a copy. */
function inPlace(view: Uint8Array, ringBytes: number): boolean {
  return view.buffer.byteLength === 4096 + 2 * ringBytes;
}

/** Lines of /proc/self/maps and targets of /proc/self/fd that name the segment: empty once nothing is left. */
function segmentHandles(name: string): string[] {
  const found = readFileSync("/proc/self/maps", "utf8").split("\n").filter((line) => line.includes(name));
  for (const fd of readdirSync("/proc/self/fd")) {
    try {
      const target = readlinkSync(`/proc/self/fd/${fd}`);
      if (target.includes(name)) found.push(target);
    } catch {
      // Closed between the listing and the read.
    }
  }
  return found;
}

async function nothingLeft(name: string): Promise<void> {
  for (const started = Date.now(); segmentHandles(name).length > 0 && Date.now() - started < 2000;) {
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.deepEqual(segmentHandles(name), [], "no mapping or fd of the segment is left");
  assert.ok(!shmSegments().includes(name), "the segment left /dev/shm");
}

test("views read the right bytes in place across the ring's wrap point", async () => {
  const ringBytes = 4096;
  const [a, b] = pair({ ringBytes });
  // Sizes that are not multiples of 8 walk the write position around the 4 KiB ring many times, so frames
  // land right before the wrap point, get padded over it, and start at offset 0.
  for (let seq = 0; seq < 400; seq++) {
    const size = 1 + (seq * 37) % 1016;
    await a.send(pattern(seq, size));
    const view = seq % 2 === 0 ? await b.receiveView() : b.tryReceiveView()!;
    assert.equal(view.length, size);
    assert.ok(inPlace(view, ringBytes), `message ${seq} is a view of the ring`);
    assert.ok(matchesPattern(seq, view), `message ${seq} of ${size} bytes`);
    b.releaseView(view);
  }
  assert.equal(b.tryReceiveView(), undefined, "nothing more to read");
  b.close();
  a.close();
  await nothingLeft(a.name);
});

test("a message of one whole frame is a view; more than a frame, or the ring's size, is a copy held the same way", async () => {
  const ringBytes = 4096;
  const frameMax = ringBytes / 4 - 8; // framePayloadBytesMax: a quarter of the ring, less the header.
  const [a, b] = pair({ ringBytes });
  const transfer = async (seq: number, size: number) => {
    const received = b.receiveView();
    await a.send(pattern(seq, size));
    const view = await received;
    assert.equal(view.length, size);
    assert.ok(matchesPattern(seq, view), `message of ${size} bytes`);
    return view;
  };
  const whole = await transfer(1, frameMax);
  assert.ok(inPlace(whole, ringBytes), "one frame: read in place");
  b.releaseView(whole);
  const many = await transfer(2, frameMax + 1);
  assert.ok(!inPlace(many, ringBytes), "two frames: copied into one buffer");
  const kept = many.buffer;
  b.releaseView(many);
  const ringSized = await transfer(3, ringBytes);
  assert.ok(ringSized.buffer === kept, "the released copy's buffer carries the next fragmented message");
  const huge = await transfer(4, 100_000); // Held while another one arrives: its own buffer.
  assert.ok(huge.buffer !== ringSized.buffer && matchesPattern(3, ringSized));
  b.releaseView(ringSized);
  b.releaseView(huge);
  b.close();
  a.close();
});

test("views are released in any order; the writer gets space back only past the oldest held one", async () => {
  const [a, b] = pair({ ringBytes: 4096 });
  for (let seq = 0; seq < 3; seq++) await a.send(pattern(seq, 500));
  const [x, y, z] = [b.tryReceiveView()!, b.tryReceiveView()!, b.tryReceiveView()!];
  const used = () => b.stats().receiveRingUsedBytes;
  assert.equal(used(), 3 * 512, "three held frames of 8 + 500 bytes, padded to 512");
  b.releaseView(y);
  assert.equal(used(), 3 * 512, "a later view released first frees nothing yet");
  b.releaseView(x);
  assert.equal(used(), 512, "releasing the oldest frees it and the later released one");
  // A copied message behind a held view goes back with it.
  await a.send(pattern(3, 100));
  assert.ok(matchesPattern(3, b.tryReceive()!));
  assert.equal(used(), 512 + 112, "the copied frame waits behind the held view");
  assert.ok(matchesPattern(2, z), "a held view is intact");
  b.releaseView(z);
  assert.equal(used(), 0);
  b.close();
  a.close();
});

test("a held view's bytes stay intact while the writer fills the ring behind it and waits for space", async () => {
  const ringBytes = 4096;
  const [a, b] = pair({ ringBytes, spinMicros: 0 });
  await a.send(pattern(0, 1000));
  const held = b.tryReceiveView()!;
  // 30 more messages of 1000 bytes cannot fit beside the held one: the writer waits, it does not overwrite.
  const sends = Array.from({ length: 30 }, (_, i) => a.send(pattern(i + 1, 1000)));
  for (let seq = 1; seq <= 2; seq++) assert.ok(matchesPattern(seq, await b.receive()));
  assert.ok(matchesPattern(0, held), "the held view is unchanged while the ring is full behind it");
  b.releaseView(held);
  for (let seq = 3; seq <= 30; seq++) assert.ok(matchesPattern(seq, await b.receive()), `message ${seq}`);
  await Promise.all(sends);
  b.close();
  a.close();
});

test("releasing a view twice, or a subarray of one, throws ViewError view_released and the channel serves on", async () => {
  const [a, b] = pair();
  await a.send(pattern(1, 64));
  const view = b.tryReceiveView()!;
  b.releaseView(view);
  assert.throws(() => b.releaseView(view), (e) => e instanceof ViewError && e.code === "view_released");
  await a.send(pattern(2, 64));
  const next = await b.receiveView();
  assert.throws(
    () => b.releaseView(next.subarray(1)),
    (e) => e instanceof ViewError && e.code === "view_released" && /exactly once/.test(e.message),
  );
  assert.ok(matchesPattern(2, next));
  b.releaseView(next);
  await a.send(pattern(3, 64));
  assert.ok(matchesPattern(3, await b.receive()), "the channel still serves");
  b.close();
  a.close();
});

test("releasing an array that is not a view of this channel throws ViewError view_foreign", async () => {
  const [a, b] = pair();
  const [c, d] = pair();
  await c.send(pattern(1, 64));
  const otherChannels = d.tryReceiveView()!;
  await a.send(pattern(2, 64));
  const copied = b.tryReceive()!;
  for (const foreign of [new Uint8Array(64), copied]) {
    assert.throws(
      () => b.releaseView(foreign),
      (e) => e instanceof ViewError && e.code === "view_foreign" && /receiveView\(\)/.test(e.message),
    );
  }
  assert.throws(() => b.releaseView(otherChannels), (e) => e instanceof ViewError);
  d.releaseView(otherChannels);
  await a.send(pattern(3, 64));
  assert.ok(matchesPattern(3, await b.receive()), "the channel still serves");
  for (const ch of [a, b, c, d]) ch.close();
});

test(`holding ${viewsHeldMax} views makes the next receiveView() throw views_exhausted until one is released`, async () => {
  const [a, b] = pair({ ringBytes: 1 << 16 });
  for (let seq = 0; seq <= viewsHeldMax; seq++) await a.send(pattern(seq, 8));
  const views: Uint8Array[] = [];
  for (let seq = 0; seq < viewsHeldMax; seq++) views.push(b.tryReceiveView()!);
  assert.throws(
    () => b.tryReceiveView(),
    (e) => e instanceof ViewError && e.code === "views_exhausted" && /release some/.test(e.message),
  );
  await assert.rejects(b.receiveView(), (e) => e instanceof ViewError && e.code === "views_exhausted");
  b.releaseView(views.shift()!);
  const last = b.tryReceiveView()!;
  assert.ok(matchesPattern(viewsHeldMax, last), "the message waited in the ring");
  for (const [i, v] of views.entries()) assert.ok(matchesPattern(i + 1, v));
  for (const v of [...views, last]) b.releaseView(v);
  assert.equal(b.stats().receiveRingUsedBytes, 0);
  b.close();
  a.close();
});

test("close() ends held views: they read as empty, releasing them does nothing, and nothing of the segment is left", async () => {
  const [a, b] = pair();
  await a.send(pattern(1, 4000));
  const view = await b.receiveView();
  b.close();
  a.close();
  b.releaseView(view); // After close: nothing to give back, no error.
  const detachable = typeof (new ArrayBuffer(0) as { transfer?: unknown }).transfer === "function";
  if (detachable) assert.equal(view.length, 0, "the view no longer reaches the unmapped ring");
  await nothingLeft(a.name);
});

test("when the peer closes, held views stay readable; this side closes once the last one is released", async () => {
  const [a, b] = pair();
  await a.send(pattern(1, 3000));
  await a.send(pattern(2, 100));
  const first = await b.receiveView();
  const second = await b.receiveView();
  a.close();
  await assert.rejects(b.receive(), (e) => e instanceof ChannelClosedError && e.code === "peer-closed");
  assert.ok(!b.closed, "views are held: the channel stays open for them");
  assert.ok(matchesPattern(1, first) && matchesPattern(2, second), "held views still read the peer's bytes");
  b.releaseView(second);
  assert.ok(!b.closed);
  b.releaseView(first);
  assert.ok(b.closed, "the last release closes the side whose peer is gone");
  await nothingLeft(a.name);
});

test(`${runtime} reads 20000 views from a streaming peer process while holding three at a time`, async () => {
  const ringBytes = 1 << 14;
  const channel = ShmChannel.create({ ringBytes });
  const other = runtime === "deno" ? "bun" : "deno";
  const child = startPeer(other, peerPath("echo_peer.ts"), {
    PSHM_NAME: channel.name,
    PSHM_TOKEN: channel.token,
    PSHM_MODE: "stream",
    PSHM_COUNT: "20000",
  });
  try {
    const held: [number, Uint8Array][] = [];
    for (let seq = 0; seq < 20_000; seq++) {
      const view = await channel.receiveView();
      assert.equal(view.length, 8 + (seq % 200));
      assert.ok(inPlace(view, ringBytes));
      held.push([seq, view]);
      if (held.length === 3) {
        // Out of order: the newest first, then the oldest; every held view still checks out.
        for (const [s, v] of held) assert.ok(matchesPattern(s, v), `view ${s} is intact while held`);
        channel.releaseView(held.pop()![1]);
        channel.releaseView(held.shift()![1]);
      }
    }
  } finally {
    child.child.kill("SIGKILL");
    await child.exited;
    channel.close();
  }
  await nothingLeft(channel.name);
}, { timeoutMs: 60_000 });

test(
  "views read the echoes of the native C peer (the Zig ring writer) across the wrap point, two held at a time",
  async () => {
    const ringBytes = 1 << 14;
    const frameMax = ringBytes / 4 - 8;
    const channel = ShmChannel.create({ ringBytes });
    const child = startPeer("native", cPeerPath, {}, [channel.name, channel.token]);
    try {
      await channel.waitForPeer(20_000);
      let previous: [number, Uint8Array] | undefined;
      for (let seq = 0; seq < 500; seq++) {
        const size = seq % 50 === 0 ? frameMax : (seq * 53) % 2000;
        await channel.send(pattern(seq, size));
        const view = await channel.receiveView();
        assert.equal(view.length, size);
        assert.ok(inPlace(view, ringBytes), `echo ${seq} is read in place`);
        assert.ok(matchesPattern(seq, view), `echo ${seq} of ${size} bytes`);
        if (previous) {
          assert.ok(matchesPattern(previous[0], previous[1]), `echo ${previous[0]} is intact while held`);
          channel.releaseView(previous[1]);
        }
        previous = [seq, view];
      }
      channel.releaseView(previous![1]);
    } finally {
      channel.close();
      const { code } = await child.exited;
      assert.equal(code, 0, `C peer exit code; stderr: ${child.stderr()}`);
    }
    await nothingLeft(channel.name);
  },
  { timeoutMs: 60_000 },
);

test(
  "large frames rewound to the ring's start are read by the native C peer (the Zig ring reader), and come back as views",
  async () => {
    const ringBytes = 2 << 20; // Frames up to 512 KiB: a 400 KB message is one frame, rewound when the ring is empty.
    const channel = ShmChannel.create({ ringBytes });
    const child = startPeer("native", cPeerPath, {}, [channel.name, channel.token]);
    try {
      await channel.waitForPeer(20_000);
      for (let seq = 0; seq < 12; seq++) {
        const size = seq % 3 === 0 ? 100 : 400_000 + seq * 8; // Small ones move the position off the ring's start.
        await channel.send(pattern(seq, size));
        const view = await channel.receiveView();
        assert.equal(view.length, size);
        assert.ok(inPlace(view, ringBytes) && matchesPattern(seq, view), `echo ${seq} of ${size} bytes`);
        channel.releaseView(view);
      }
    } finally {
      channel.close();
      const { code } = await child.exited;
      assert.equal(code, 0, `C peer exit code; stderr: ${child.stderr()}`);
    }
    await nothingLeft(channel.name);
  },
  { timeoutMs: 60_000 },
);
