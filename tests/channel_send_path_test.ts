import assert from "node:assert/strict";
import { ChannelClosedError, ShmChannel } from "../mod.ts";
import { decodeHeader, decodePayload, encodeFrameInPlace, FrameKind } from "../src/protocol/frame.ts";
import { test } from "./_harness.ts";

function pair(options = {}): [ShmChannel, ShmChannel] {
  const a = ShmChannel.create(options);
  const b = ShmChannel.attach(a.name, a.token, options);
  return [a, b];
}

test("sendRange() sends only the range, as one message, small and fragmented", async () => {
  const [a, b] = pair({ ringBytes: 4096 });
  const bytes = new Uint8Array(3000).map((_, i) => i % 251);
  await a.sendRange(bytes, 7, 107);
  assert.deepEqual(await b.receive(), bytes.subarray(7, 107));
  // Over one frame of a 4 KiB ring (1 KiB): fragments, received whole.
  const big = b.receive();
  await a.sendRange(bytes, 100, 2900);
  assert.deepEqual(await big, bytes.subarray(100, 2900));
  await a.sendRange(bytes, 5, 5);
  assert.equal((await b.receive()).length, 0);
  b.close();
  a.close();
});

test("sendRange() refuses a range outside the array with a RangeError and the channel keeps working", async () => {
  const [a, b] = pair();
  const bytes = new Uint8Array(10);
  for (const [start, end] of [[-1, 5], [4, 3], [0, 11], [Number.NaN, 2]]) {
    await assert.rejects(a.sendRange(bytes, start, end), RangeError);
  }
  assert.equal(a.stats().messagesSent, 0);
  await a.sendRange(bytes, 2, 4);
  assert.equal((await b.receive()).length, 2);
  b.close();
  a.close();
});

test("frames encoded in place stay intact while they wait for ring space behind later encodes", async () => {
  // A 4 KiB ring holds a few of these; the rest wait in the send queue while more frames are encoded.
  const [a, b] = pair({ ringBytes: 4096 });
  const count = 40;
  const sends: Promise<void>[] = [];
  for (let i = 0; i < count; i++) {
    const frame = encodeFrameInPlace(FrameKind.event, i, ["item", "x".repeat(300) + i]);
    sends.push(a.sendRange(frame.bytes, frame.start, frame.end));
  }
  for (let i = 0; i < count; i++) {
    const bytes = await b.receive();
    assert.equal(decodeHeader(bytes).id, i);
    assert.deepEqual(decodePayload(bytes), ["item", "x".repeat(300) + i]);
  }
  await Promise.all(sends);
  b.close();
  a.close();
});

test("messages sent in one turn without awaiting arrive in order, also when the sender closes right after", async () => {
  // Writes after the first in a turn are published together by a microtask; close() must publish them first.
  const [a, b] = pair();
  for (let i = 0; i < 5; i++) a.send(new Uint8Array([i]));
  a.close();
  for (let i = 0; i < 5; i++) assert.deepEqual(await b.receive(), new Uint8Array([i]));
  await assert.rejects(b.receive(), (e: unknown) => e instanceof ChannelClosedError && e.code === "peer-closed");
  b.close();
});

test("a side that polls with tryReceive() publishes what it sent first: a loop that never yields is still answered", () => {
  const [a, b] = pair();
  try {
    const message = (n: number) => new Uint8Array([n, n, n]);
    // Sends in one turn: the first is published at once, the second waits for the turn's end (a microtask).
    void b.send(message(1));
    void b.send(message(2));
    assert.deepEqual(a.tryReceive(), message(1));
    assert.equal(a.tryReceive(), undefined, "the second is not visible before b publishes");
    // b polls for an answer without yielding (a busy-poll loop): that publishes its second message.
    assert.equal(b.tryReceive(), undefined);
    assert.deepEqual(a.tryReceive(), message(2));
    // Still the same turn (publishTask has not run): more sends wait, and tryReceiveView() publishes them too.
    void b.send(message(3));
    void b.send(message(4));
    assert.equal(a.tryReceive(), undefined);
    assert.equal(b.tryReceiveView(), undefined);
    assert.deepEqual(a.tryReceive(), message(3));
    assert.deepEqual(a.tryReceive(), message(4));
  } finally {
    b.close();
    a.close();
  }
});
