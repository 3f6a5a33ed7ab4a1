import assert from "node:assert/strict";
import fc from "fast-check";
import { test } from "../../tests/_harness.ts";
import { L, ringWriteOffset } from "../native/layout.ts";
import { FrameCorruptError } from "./errors.ts";
import { RingReader, RingWriter } from "./_ring.ts";

function segment(ringBytes: number): ArrayBuffer {
  return new ArrayBuffer(L.header_bytes + 2 * ringBytes);
}

test("received frames equal sent frames for random sizes and interleavings, across the wrap point", () => {
  fc.assert(
    fc.property(
      fc.constantFrom(4096, 8192, 65536),
      fc.array(fc.record({ size: fc.nat({ max: 1500 }), drain: fc.boolean() }), { minLength: 1, maxLength: 300 }),
      fc.nat({ max: 4095 }),
      (ringBytes, plan, startOffset) => {
        const buffer = segment(ringBytes);
        // Start both indices somewhere inside the ring and near the u32 limit,
        // so the wrap of the ring and of the counters are both exercised.
        const start = (0xffff_f000 + startOffset * 8) >>> 0;
        new Uint32Array(buffer)[ringWriteOffset(0) >> 2] = start;
        new Uint32Array(buffer)[(ringWriteOffset(0) + L.line_bytes) >> 2] = start;
        const writer = new RingWriter(buffer, 0, ringBytes);
        const reader = new RingReader(buffer, 0, ringBytes);
        const sent: Uint8Array[] = [];
        const received: Uint8Array[] = [];
        const drain = () => {
          for (let n = reader.next(); n >= 0; n = reader.next()) {
            received.push(reader.u8.slice(reader.payloadOffset, reader.payloadOffset + n));
            reader.release();
          }
        };
        for (const [i, step] of plan.entries()) {
          const size = Math.min(step.size, writer.payloadBytesMax);
          const payload = Uint8Array.from({ length: size }, (_, k) => (i * 13 + k) & 255);
          while (!writer.tryWrite(payload, 0, size, 0)) {
            writer.publish();
            drain();
          }
          sent.push(payload);
          if (step.drain) {
            writer.publish();
            drain();
          }
        }
        writer.publish();
        drain();
        assert.deepEqual(received, sent);
      },
    ),
    { numRuns: 200 },
  );
});

test("several frames become visible with one publish", () => {
  const buffer = segment(4096);
  const writer = new RingWriter(buffer, 0, 4096);
  const reader = new RingReader(buffer, 0, 4096);
  for (let i = 0; i < 5; i++) assert.ok(writer.tryWrite(new Uint8Array([i]), 0, 1, 0));
  assert.equal(reader.next(), -1, "nothing is visible before publish");
  writer.publish();
  let count = 0;
  while (reader.next() >= 0) {
    reader.release();
    count++;
  }
  assert.equal(count, 5);
});

test("a frame length beyond the ring is reported as corrupt", () => {
  const buffer = segment(4096);
  const u32 = new Uint32Array(buffer);
  u32[L.header_bytes >> 2] = 1 << 20;
  u32[ringWriteOffset(0) >> 2] = 64;
  const reader = new RingReader(buffer, 0, 4096);
  assert.throws(() => reader.next(), FrameCorruptError);
});

test("unknown frame flags and a write index past the ring are corrupt", () => {
  const buffer = segment(4096);
  const u32 = new Uint32Array(buffer);
  u32[(L.header_bytes >> 2) + 1] = 0x80;
  u32[ringWriteOffset(0) >> 2] = 16;
  assert.throws(() => new RingReader(buffer, 0, 4096).next(), /unknown flags/);
  u32[ringWriteOffset(0) >> 2] = 8192;
  assert.throws(() => new RingReader(buffer, 0, 4096).next(), /ahead of the read index/);
});

test("held frames stay intact until released, in any order, while the writer fills the ring and wraps", () => {
  fc.assert(
    fc.property(
      fc.array(
        fc.record({ size: fc.nat({ max: 1000 }), hold: fc.boolean(), releasePick: fc.nat({ max: 7 }) }),
        { minLength: 1, maxLength: 300 },
      ),
      fc.nat({ max: 511 }),
      (plan, startOffset) => {
        const ringBytes = 4096;
        const buffer = segment(ringBytes);
        const start = (0xffff_f000 + startOffset * 8) >>> 0;
        new Uint32Array(buffer)[ringWriteOffset(0) >> 2] = start;
        new Uint32Array(buffer)[(ringWriteOffset(0) + L.line_bytes) >> 2] = start;
        const writer = new RingWriter(buffer, 0, ringBytes);
        const reader = new RingReader(buffer, 0, ringBytes);
        const held: { slot: number; view: Uint8Array; want: Uint8Array }[] = [];
        const check = () => {
          for (const h of held) assert.deepEqual(h.view, h.want, "a held frame was overwritten");
        };
        const releaseOne = (pick: number) => {
          const [h] = held.splice(pick % held.length, 1);
          reader.releaseHeld(h.slot);
        };
        for (const [i, step] of plan.entries()) {
          const payload = Uint8Array.from({ length: step.size }, (_, k) => (i * 29 + k) & 255);
          while (!writer.tryWrite(payload, 0, step.size, 0)) {
            writer.publish();
            // Read what there is; with no room left and frames held, give the one picked back.
            let read = false;
            for (let n = reader.next(); n >= 0; n = reader.next()) {
              read = true;
              const view = new Uint8Array(buffer, reader.payloadOffset, n);
              if (step.hold) held.push({ slot: reader.hold(), view, want: view.slice() });
              else reader.release();
            }
            check();
            if (!read) {
              assert.ok(held.length > 0, "a ring with nothing held and nothing to read has room");
              releaseOne(step.releasePick);
            }
          }
          if (held.length > 0 && step.releasePick === 0) releaseOne(i);
        }
        check();
        while (held.length > 0) releaseOne(0);
        assert.equal(reader.heldCount, 0);
      },
    ),
    { numRuns: 200 },
  );
});

test("a large frame into an empty ring goes to the ring's start behind a padding frame; never when that would not fit", () => {
  const ringBytes = 2 << 20; // Frames up to 512 KiB.
  const buffer = segment(ringBytes);
  const writer = new RingWriter(buffer, 0, ringBytes);
  const reader = new RingReader(buffer, 0, ringBytes);
  const data = L.header_bytes;
  const large = (seq: number, length: number) => Uint8Array.from({ length }, (_, k) => (seq * 7 + k) & 255);
  const readOne = () => {
    const n = reader.next();
    const bytes = reader.u8.slice(reader.payloadOffset, reader.payloadOffset + n);
    const at = reader.payloadOffset - 8 - data;
    reader.release();
    return { bytes, at };
  };
  // Small frames are not moved: the first large one goes where they end (no room before it yet).
  assert.ok(writer.tryWrite(new Uint8Array(100), 0, 100, 0));
  assert.ok(writer.tryWrite(large(1, 300_000), 0, 300_000, 0));
  writer.publish();
  assert.equal(readOne().at, 0);
  const first = readOne();
  assert.equal(first.at, 112, "a large frame that does not fit before the position stays where it is");
  assert.deepEqual(first.bytes, large(1, 300_000));
  // Now the ring is empty and the position is past 300 KiB: the next large frame rewinds to 0, and until the reader
  // passes the padding behind it, the ring has no room for another.
  assert.ok(writer.tryWrite(large(2, 300_000), 0, 300_000, 0));
  assert.ok(!writer.tryWrite(large(9, 300_000), 0, 300_000, 0), "the padding holds the rest of the ring");
  writer.publish();
  const second = readOne();
  assert.equal(second.at, 0, "rewound to the ring's start");
  assert.deepEqual(second.bytes, large(2, 300_000));
  // Not empty (a small frame is unread): the next large one goes after it, however much room is before it.
  assert.ok(writer.tryWrite(new Uint8Array(100), 0, 100, 0));
  assert.ok(writer.tryWrite(large(3, 300_000), 0, 300_000, 0));
  writer.publish();
  assert.equal(readOne().at, 300_008);
  const third = readOne();
  assert.equal(third.at, 300_120, "behind an unread frame nothing rewinds");
  assert.deepEqual(third.bytes, large(3, 300_000));
  assert.equal(reader.next(), -1);
});
