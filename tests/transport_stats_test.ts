import assert from "node:assert/strict";
import { ShmChannel } from "../mod.ts";
import { pattern, test } from "./_harness.ts";

test("a channel's stats count messages and bytes both ways and the bytes waiting in each ring", async () => {
  const a = ShmChannel.create();
  const b = ShmChannel.attach(a.name, a.token);
  try {
    for (let i = 0; i < 10; i++) await a.send(pattern(i, 100));
    const waiting = a.stats();
    assert.equal(waiting.messagesSent, 10);
    assert.equal(waiting.bytesSent, 1000);
    assert.ok(waiting.sendRingUsedBytes >= 1000, `send ring holds ${waiting.sendRingUsedBytes} bytes`);
    assert.equal(b.stats().receiveRingUsedBytes, waiting.sendRingUsedBytes);
    assert.ok(waiting.ringBytes > 0);
    for (let i = 0; i < 10; i++) await b.receive();
    const read = b.stats();
    assert.equal(read.messagesReceived, 10);
    assert.equal(read.bytesReceived, 1000);
    assert.equal(read.receiveRingUsedBytes, 0);
    assert.equal(a.stats().sendRingUsedBytes, 0);
  } finally {
    b.close();
    a.close();
  }
});

test("a channel counts the wake-ups it gives its parked peer and the ones it takes", async () => {
  const a = ShmChannel.create({ spinMicros: 0 });
  const b = ShmChannel.attach(a.name, a.token, { spinMicros: 0 });
  try {
    for (let i = 0; i < 3; i++) {
      const next = b.receive(); // b parks: nothing to read yet.
      await new Promise((resolve) => setTimeout(resolve, 20));
      await a.send(pattern(i, 10));
      await next;
    }
    assert.ok(a.stats().wakeupsSent >= 1, `a woke b ${a.stats().wakeupsSent} times`);
    assert.ok(b.stats().wakeupsReceived >= 1, `b was woken ${b.stats().wakeupsReceived} times`);
    assert.equal(a.stats().wakeupsReceived, 0);
  } finally {
    b.close();
    a.close();
  }
});

test("a channel counts the times its spin gave the CPU away while it waited, and none when it parks at once", async () => {
  // A long spin budget so that the spin surely reaches its first yield, however loaded the machine.
  const a = ShmChannel.create({ spinMicros: 2_000 });
  const b = ShmChannel.attach(a.name, a.token, { spinMicros: 0 });
  try {
    const next = a.receive(); // a spins, then parks: nothing comes until we send.
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.ok(a.stats().spinYields! >= 1, `a yielded ${a.stats().spinYields} times`);
    const other = b.receive(); // spinMicros 0: b parks at once and never yields.
    await b.send(pattern(1, 10));
    await a.send(pattern(2, 10));
    await Promise.all([next, other]);
    assert.equal(b.stats().spinYields, 0);
  } finally {
    b.close();
    a.close();
  }
});
