import assert from "node:assert/strict";
import fc from "fast-check";
import { FrameKind } from "../src/protocol/frame.ts";
import { frame, fuzzSeed, handshakeFrame, rssMiB, runHandshake, runRpcSequence, sequence, tally } from "./_fuzz.ts";
import { segmentsLeft, segmentsOf, test } from "./_harness.ts";

// Modest counts so `make test` stays short; `make fuzz` (tests/fuzz_long.ts) runs the million.
// Replay a failure with FUZZ_SEED=<printed seed> (fast-check also prints the shrunk frames and a path).
const rpcRuns = Number(process.env.FUZZ_RPC_RUNS ?? 6000);
const handshakeRuns = Number(process.env.FUZZ_HANDSHAKE_RUNS ?? 3000);
/** Growth of resident memory over the runs that counts as unbounded, in MiB (the frames are at most 64 KiB). */
const rssGrowthMiBMax = 256;
const warmUpRuns = 50;

test("fuzzed frame sequences end in an answer or a typed close that every pending call gets", async () => {
  const seed = fuzzSeed();
  console.log(`protocol fuzz: seed ${seed} (replay with FUZZ_SEED=${seed})`);
  const seen = tally();
  const before = segmentsOf();
  const property = fc.asyncProperty(sequence, (frames) => runRpcSequence(frames, seen));
  await fc.assert(property, { numRuns: warmUpRuns, seed });
  const warm = rssMiB();
  await fc.assert(property, { numRuns: rpcRuns, seed: seed + 1 });
  assert.ok(rssMiB() - warm < rssGrowthMiBMax, `resident memory grew from ${warm} to ${rssMiB()} MiB`);
  assert.equal(seen.sequences, rpcRuns + warmUpRuns);
  // The generator reaches both outcomes, and more than one kind of close.
  assert.ok(seen.alive > 0, "no sequence left the endpoint up");
  assert.ok(Object.keys(seen.closed).length > 1, `closes seen: ${JSON.stringify(seen.closed)}`);
  // A closed channel lets go of its segment on the next turn of the event loop: wait for it (up to 2 s).
  assert.deepEqual(await segmentsLeft([process.pid], before), [], "every channel's segment is gone");
}, { timeoutMs: 600_000 });

test("fuzzed handshake frames are accepted or refused with a typed error, on both sides", async () => {
  const seed = fuzzSeed();
  console.log(`handshake fuzz: seed ${seed} (replay with FUZZ_SEED=${seed})`);
  const seen = tally();
  await fc.assert(
    fc.asyncProperty(handshakeFrame, fc.boolean(), (bytes, hostSide) => runHandshake(bytes, hostSide, seen)),
    { numRuns: handshakeRuns, seed },
  );
  assert.equal(seen.sequences, handshakeRuns);
  assert.ok(seen.alive > 0 && Object.keys(seen.closed).length > 1, JSON.stringify(seen));
}, { timeoutMs: 600_000 });

// Found by the fuzzer: the call left the pending table before its payload was decoded, so the close
// that followed could not reject it and the caller waited forever.
test("a RESPONSE with truncated MessagePack closes the endpoint and rejects the call it answers", async () => {
  const seen = tally();
  const truncatedDouble = new Uint8Array([0xcb, 231, 99, 232, 202, 109, 14]);
  await runRpcSequence([frame(FrameKind.response, 1, truncatedDouble, 0xff)], seen);
  assert.deepEqual(seen.closed, { "ProtocolError:protocol": 1 });
}, { timeoutMs: 10_000 });
