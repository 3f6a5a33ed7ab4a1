import assert from "node:assert/strict";
import fc from "fast-check";
import { handshakeFrame, rssMiB, runHandshake, runRpcSequence, sequence, tally } from "./_fuzz.ts";
import { segmentsOf, test } from "./_harness.ts";

// Modest counts: `make fuzz` runs the million. A failure prints fast-check's seed and the shrunk frames.
const rpcRuns = Number(process.env.FUZZ_RPC_RUNS ?? 1500);
const handshakeRuns = Number(process.env.FUZZ_HANDSHAKE_RUNS ?? 500);
/** Growth of resident memory over the runs that counts as unbounded, in MiB (the frames are at most 64 KiB). */
const rssGrowthMiBMax = 256;

test("fuzzed frame sequences end in an answer or a typed close that every pending call gets", async () => {
  const seen = tally();
  const before = segmentsOf().length;
  await fc.assert(fc.asyncProperty(sequence, (frames) => runRpcSequence(frames, seen)), { numRuns: 50 });
  const warm = rssMiB();
  await fc.assert(fc.asyncProperty(sequence, (frames) => runRpcSequence(frames, seen)), { numRuns: rpcRuns });
  assert.ok(rssMiB() - warm < rssGrowthMiBMax, `resident memory grew from ${warm} to ${rssMiB()} MiB`);
  assert.equal(seen.sequences, rpcRuns + 50);
  // The generator reaches both outcomes, and more than one kind of close.
  assert.ok(seen.alive > 0, "no sequence left the endpoint up");
  assert.ok(Object.keys(seen.closed).length > 1, `closes seen: ${JSON.stringify(seen.closed)}`);
  assert.equal(segmentsOf().length, before, "every channel's segment is gone");
}, { timeoutMs: 600_000 });

test("fuzzed handshake frames are accepted or refused with a typed error, on both sides", async () => {
  const seen = tally();
  await fc.assert(
    fc.asyncProperty(handshakeFrame, fc.boolean(), (bytes, hostSide) => runHandshake(bytes, hostSide, seen)),
    { numRuns: handshakeRuns },
  );
  assert.equal(seen.sequences, handshakeRuns);
  assert.ok(seen.alive > 0 && Object.keys(seen.closed).length > 1, JSON.stringify(seen));
}, { timeoutMs: 600_000 });
