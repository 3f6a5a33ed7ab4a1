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
