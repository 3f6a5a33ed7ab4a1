/**
 * The long protocol fuzz run behind `make fuzz`: FUZZ_RPC_RUNS frame
 * sequences (default 1,000,000) and FUZZ_HANDSHAKE_RUNS handshakes (default
 * 100,000), in batches of 10,000 with consecutive seeds from FUZZ_SEED (a
 * random one when unset), printing each batch's seed, time and outcomes. A
 * failing batch prints fast-check's shrunk counterexample and exits 1;
 * replay it with `FUZZ_SEED=<batch seed> FUZZ_RPC_RUNS=10000 make fuzz`.
 *
 * @module
 */

import fc from "fast-check";
import { type FuzzTally, handshakeFrame, rssMiB, runHandshake, runRpcSequence, sequence, tally } from "./_fuzz.ts";

const rpcRuns = Number(process.env.FUZZ_RPC_RUNS ?? 1_000_000);
const handshakeRuns = Number(process.env.FUZZ_HANDSHAKE_RUNS ?? 100_000);
const batchRuns = 10_000;
/** Growth of resident memory over the whole run that counts as unbounded, in MiB. */
const rssGrowthMiBMax = 512;
const firstSeed = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : Math.floor(Math.random() * 0x7fff_ffff);

function merge(into: FuzzTally, from: FuzzTally): void {
  into.sequences += from.sequences;
  into.alive += from.alive;
  for (const [name, count] of Object.entries(from.closed)) into.closed[name] = (into.closed[name] ?? 0) + count;
}

async function phase(
  label: string,
  total: number,
  seed: number,
  property: (seen: FuzzTally) => fc.IAsyncProperty<unknown[]>,
): Promise<FuzzTally> {
  const all = tally();
  const startRss = rssMiB();
  const started = performance.now();
  for (let done = 0, batch = 0; done < total; batch++) {
    const runs = Math.min(batchRuns, total - done);
    const batchSeed = seed + batch;
    const seen = tally();
    const t0 = performance.now();
    await fc.assert(property(seen), { numRuns: runs, seed: batchSeed });
    done += runs;
    merge(all, seen);
    const rss = rssMiB();
    console.log(
      `${label}: ${done}/${total} seed ${batchSeed} ${((performance.now() - t0) / 1000).toFixed(1)} s/${runs} ` +
        `rss ${rss.toFixed(0)} MiB alive ${seen.alive} closed ${JSON.stringify(seen.closed)}`,
    );
    if (rss - startRss > rssGrowthMiBMax) {
      throw new Error(`${label}: resident memory grew from ${startRss} to ${rss} MiB; memory is not bounded`);
    }
  }
  const seconds = (performance.now() - started) / 1000;
  console.log(
    `${label}: done, ${all.sequences} in ${seconds.toFixed(0)} s (${(seconds * 10_000 / total).toFixed(1)} s per 10k)`,
  );
  return all;
}

console.log(`make fuzz: ${rpcRuns} frame sequences, ${handshakeRuns} handshakes, first seed ${firstSeed}`);
const rpc = await phase(
  "frame sequences",
  rpcRuns,
  firstSeed,
  (seen) => fc.asyncProperty(sequence, (frames) => runRpcSequence(frames, seen)),
);
const handshakes = await phase(
  "handshakes",
  handshakeRuns,
  firstSeed + 1_000_000,
  (seen) => fc.asyncProperty(handshakeFrame, fc.boolean(), (bytes, hostSide) => runHandshake(bytes, hostSide, seen)),
);
console.log(`frame sequences: ${JSON.stringify(rpc)}`);
console.log(`handshakes: ${JSON.stringify(handshakes)}`);
console.log("make fuzz: passed (no uncaught exception, no hang, every close typed, memory bounded)");
