import assert from "node:assert/strict";
import { ChannelClosedError, MessageTooLargeError, ShmChannel } from "../mod.ts";
import { matchesPattern, pattern, shmSegments, test } from "./_harness.ts";

function pair(options = {}): [ShmChannel, ShmChannel] {
  const a = ShmChannel.create(options);
  const b = ShmChannel.attach(a.name, a.token, options);
  return [a, b];
}

test("a message sent on one side is received on the other, both ways", async () => {
  const [a, b] = pair();
  await a.send(pattern(1, 64));
  assert.ok(matchesPattern(1, await b.receive()));
  await b.send(pattern(2, 100));
  assert.ok(matchesPattern(2, await a.receive()));
  b.close();
  a.close();
});

test("the segment name leaves /dev/shm as soon as the peer attaches", () => {
  const a = ShmChannel.create();
  assert.ok(shmSegments().includes(a.name));
  const b = ShmChannel.attach(a.name, a.token);
  assert.ok(!shmSegments().includes(a.name));
  b.close();
  a.close();
});

test("a creator that closes before anyone attaches removes its segment", () => {
  const a = ShmChannel.create();
  a.close();
  assert.ok(!shmSegments().includes(a.name));
});

test("messages larger than the ring are split and reassembled", async () => {
  const [a, b] = pair({ ringBytes: 4096 });
  const big = pattern(7, 200_000);
  const received = b.receive();
  await a.send(big);
  const got = await received;
  assert.equal(got.length, big.length);
  assert.ok(matchesPattern(7, got));
  b.close();
  a.close();
});

test("back-to-back fragmented messages of every awkward size arrive intact and in buffers of their own", async () => {
  // A 4 KiB ring carries frames of up to 1016 payload bytes; the sizes hit a frame exactly, a frame plus one,
  // the ring's size (the first reassembly guess), past it (the buffer grows), and messageBytesMax (10_000, not a
  // power of two: the grown buffer is capped there), with small unfragmented messages in between.
  const [a, b] = pair({ ringBytes: 4096, messageBytesMax: 10_000 });
  const sizes = [1016, 1017, 3, 4096, 4097, 8192, 10_000, 1, 2033, 9_999];
  const received: Uint8Array[] = [];
  const reading = (async () => {
    for (let i = 0; i < sizes.length; i++) received.push(await b.receive());
  })();
  for (let i = 0; i < sizes.length; i++) await a.send(pattern(i + 1, sizes[i]));
  await reading;
  for (let i = 0; i < sizes.length; i++) {
    assert.equal(received[i].length, sizes[i], `message ${i}`);
    assert.ok(matchesPattern(i + 1, received[i]), `message ${i} of ${sizes[i]} bytes`);
  }
  b.close();
  a.close();
});

test("a released large message's buffer carries the next large message, whole or fragmented", async () => {
  for (const ringBytes of [1 << 20, 4096]) {
    const [a, b] = pair({ ringBytes });
    // Receive while sending: a 4 KiB ring holds a fragment of these at a time.
    const transfer = async (seq: number, length: number) => {
      const received = b.receive();
      await a.send(pattern(seq, length));
      return await received;
    };
    const first = await transfer(1, 100_000);
    assert.ok(matchesPattern(1, first));
    const kept = first.buffer;
    b.release(first);
    const second = await transfer(2, 90_000);
    assert.ok(second.buffer === kept, `ring ${ringBytes}: the released buffer is reused`);
    assert.equal(second.length, 90_000);
    assert.ok(matchesPattern(2, second), `ring ${ringBytes}: the reused buffer holds the new message only`);
    // Not released: the next message gets a buffer of its own and `second` stays intact.
    const third = await transfer(3, 100_000);
    assert.ok(third.buffer !== second.buffer);
    assert.ok(matchesPattern(2, second) && matchesPattern(3, third));
    b.close();
    a.close();
  }
});

test("release() ignores small messages, foreign buffers and a second release of the same message", async () => {
  const [a, b] = pair();
  b.release(new Uint8Array(200_000)); // Not received from this channel.
  await a.send(pattern(1, 100));
  b.release(await b.receive()); // Small: carved from a shared slab, never reused whole.
  await a.send(pattern(2, 100_000));
  const big = await b.receive();
  b.release(big);
  b.release(big);
  await a.send(pattern(3, 100_000));
  await a.send(pattern(4, 100_000));
  const [x, y] = [await b.receive(), await b.receive()];
  assert.ok(x.buffer !== y.buffer, "a buffer released twice is still handed out once");
  assert.ok(matchesPattern(3, x) && matchesPattern(4, y));
  b.close();
  a.close();
});

test("send() waits for space when the ring is full and loses nothing", async () => {
  const [a, b] = pair({ ringBytes: 4096, spinMicros: 0 });
  const sends: Promise<void>[] = [];
  for (let i = 0; i < 200; i++) sends.push(a.send(pattern(i, 500)));
  let settled = 0;
  for (const s of sends) s.then(() => settled++);
  await new Promise((r) => setTimeout(r, 20));
  assert.ok(settled < 200, "a 4 KiB ring cannot take 100 KB without a reader");
  for (let i = 0; i < 200; i++) assert.ok(matchesPattern(i, await b.receive()), `message ${i}`);
  await Promise.all(sends);
  b.close();
  a.close();
});

test("concurrent receive() calls resolve in order", async () => {
  const [a, b] = pair({ spinMicros: 0 });
  const pending = [b.receive(), b.receive(), b.receive()];
  for (let i = 0; i < 3; i++) await a.send(pattern(i, 10));
  const got = await Promise.all(pending);
  got.forEach((m, i) => assert.ok(matchesPattern(i, m)));
  b.close();
  a.close();
});

test("a message over messageBytesMax is refused with a clear error and the channel keeps working", async () => {
  const [a, b] = pair({ messageBytesMax: 1000 });
  await assert.rejects(a.send(new Uint8Array(1001)), (e: unknown) => {
    assert.ok(e instanceof MessageTooLargeError);
    assert.match(e.message, /exceeds messageBytesMax \(1000 bytes\)/);
    return true;
  });
  await a.send(pattern(3, 1000));
  assert.ok(matchesPattern(3, await b.receive()));
  b.close();
  a.close();
});

test("receive() after the peer closed drains what it sent, then fails with peer-closed", async () => {
  const [a, b] = pair();
  await b.send(pattern(1, 8));
  b.close();
  assert.ok(matchesPattern(1, await a.receive()));
  await assert.rejects(a.receive(), (e: unknown) => e instanceof ChannelClosedError && e.code === "peer-closed");
  assert.ok(a.closed);
  a.close();
});

test("tryReceive() drains, then throws once the peer has closed, so a polling loop ends", () => {
  const [a, b] = pair();
  b.close();
  assert.throws(() => {
    for (let i = 0; i < 1000; i++) a.tryReceive();
  }, (e: unknown) => e instanceof ChannelClosedError && e.code === "peer-closed");
  a.close();
});

test("a pending receive() fails when the peer closes", async () => {
  const [a, b] = pair({ spinMicros: 0 });
  const pending = a.receive();
  setTimeout(() => b.close(), 10);
  await assert.rejects(pending, (e: unknown) => e instanceof ChannelClosedError && e.code === "peer-closed");
  a.close();
});

test("async iteration ends when the peer closes", async () => {
  const [a, b] = pair();
  for (let i = 0; i < 5; i++) await b.send(pattern(i, 16));
  b.close();
  let n = 0;
  for await (const m of a) assert.ok(matchesPattern(n++, m));
  assert.equal(n, 5);
  a.close();
});

test("close() is idempotent and later calls fail with a local ChannelClosedError", async () => {
  const [a, b] = pair();
  a.close();
  a.close();
  await assert.rejects(
    a.send(new Uint8Array(1)),
    (e: unknown) => e instanceof ChannelClosedError && e.code === "local",
  );
  await assert.rejects(a.receive(), (e: unknown) => e instanceof ChannelClosedError && e.code === "local");
  b.close();
});

test("waitForPeer() resolves when the peer attaches and times out with advice otherwise", async () => {
  const a = ShmChannel.create({ spinMicros: 0 });
  const waiting = a.waitForPeer(5000);
  const b = ShmChannel.attach(a.name, a.token);
  await waiting;
  assert.ok(a.peerPid > 0);
  b.close();
  a.close();
  const lonely = ShmChannel.create();
  await assert.rejects(lonely.waitForPeer(50), /No peer attached .* within 50 ms/);
  lonely.close();
});

test("options are validated before anything native happens", () => {
  assert.throws(() => ShmChannel.create({ ringBytes: 5000 }), RangeError);
  assert.throws(() => ShmChannel.create({ ringBytes: 1024 }), /power of two from 4096/);
  assert.throws(() => ShmChannel.create({ messageBytesMax: 0 }), RangeError);
  assert.throws(() => ShmChannel.create({ spinMicros: -1 }), RangeError);
});
