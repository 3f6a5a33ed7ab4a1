import assert from "node:assert/strict";
import { ChannelClosedError } from "../src/errors.ts";
import { ShmChannel } from "../src/transport/shm_channel.ts";
import { segmentsOf, test } from "./_harness.ts";

// Found while hunting the fuzzer's hangs: a send waiting for space, with unread data of the peer in this
// side's ring, spun the event loop in microtasks forever once the peer closed (no timer, no I/O ran again).
// Without the fix this test never ends (not even its own timeout can fire); with it, the waiting sends fail.
test("sends waiting for space fail with peer-closed when the peer closes, even with its data unread", async () => {
  const before = segmentsOf().length;
  const a = ShmChannel.create({ ringBytes: 4096, spinMicros: 0 });
  const b = ShmChannel.attach(a.name, a.token, { spinMicros: 0 });
  try {
    await b.send(new Uint8Array(10)); // Never read by a.
    const sends = Array.from({ length: 8 }, () => a.send(new Uint8Array(900)));
    let timerRan = false;
    await new Promise((resolve) => setTimeout(resolve, 20)).then(() => (timerRan = true));
    b.close();
    const results = await Promise.allSettled(sends);
    assert.ok(timerRan);
    const rejected = results.filter((r) => r.status === "rejected");
    // Four fit in the ring; the rest were waiting when the peer closed.
    assert.ok(rejected.length > 0 && rejected.length < 8, JSON.stringify(results.map((r) => r.status)));
    for (const r of rejected) {
      const reason = (r as PromiseRejectedResult).reason;
      assert.ok(reason instanceof ChannelClosedError, String(reason));
      assert.equal(reason.code, "peer-closed");
    }
    // What the peer wrote before it closed is still delivered, then the channel reports the close.
    assert.equal((await a.receive()).length, 10);
    await assert.rejects(a.receive(), (error: unknown) => error instanceof ChannelClosedError);
  } finally {
    a.close();
    b.close();
  }
  assert.equal(segmentsOf().length, before);
}, { timeoutMs: 10_000 });
