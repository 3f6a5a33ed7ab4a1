/**
 * The protocol fuzzer shared by tests/protocol_fuzz_test.ts (a few thousand
 * sequences in `make test`) and tests/fuzz_long.ts (`make fuzz`, a million).
 * A raw side writes generated and mutated frames straight into a real
 * ShmChannel; on the other end runs the code under test (an RpcPeer, or
 * acceptHello / sendHello). Each sequence checks: the endpoint either still
 * answers a well-formed request, or it closed with a typed plugin-shm error
 * that every pending call got too.
 *
 * @module
 */

import assert from "node:assert/strict";
import { deflateRawSync } from "node:zlib";
import fc from "fast-check";
import { Packr } from "msgpackr";
import { ChannelClosedError, HandshakeError, ProtocolError, RemoteError } from "../src/errors.ts";
import { decodeHeader, decodePayload, flagCompressed, flagOpener, FrameKind } from "../src/protocol/frame.ts";
import { acceptHello, sendHello } from "../src/protocol/handshake.ts";
import { RpcPeer } from "../src/protocol/rpc.ts";
import { ShmChannel } from "../src/transport/shm_channel.ts";

/** The message limit of the side under test; the raw side may send up to 4x this ("oversized"). */
export const fuzzMessageBytesMax = 16 * 1024;
const rawMessageBytesMax = 4 * fuzzMessageBytesMax;
// Room for a whole sequence (8 frames of up to 64 KiB): the raw side never waits for a reader that has quit.
const ringBytes = 1024 * 1024;
// The probe's id: one the generator never writes (it writes small ids, nat() up to 2^31 - 1, and reusedId).
const probeId = 0xffff_fffe;
// An id above 2^31 that generated frames share, so the endpoint sees large ids reused across frames.
const reusedId = 0xffff_fff0;
const token = "fuzz-token";

const packr = new Packr({ useRecords: false, moreTypes: false, int64AsType: "number" });

/** One raw frame: the 8-byte header (kind, flags, reserved, id) and `payload`, unchecked. */
export function frame(kind: number, id: number, payload: Uint8Array, flags = 0, reserved = 0): Uint8Array {
  const bytes = new Uint8Array(8 + payload.length);
  bytes[0] = kind;
  bytes[1] = flags;
  bytes[2] = reserved & 255;
  bytes[3] = reserved >>> 8;
  new DataView(bytes.buffer).setUint32(4, id >>> 0, true);
  bytes.set(payload, 8);
  return bytes;
}

function pack(value: unknown): Uint8Array {
  return packr.pack(value) as Uint8Array;
}

/** `depth` nested one-element arrays around nil, written by hand (no encoder recursion). */
function nested(depth: number): Uint8Array {
  const bytes = new Uint8Array(depth + 1).fill(0x91);
  bytes[depth] = 0xc0;
  return bytes;
}

/** MessagePack headers that declare far more than follows. */
const hugeDeclarations: Uint8Array[] = [
  [0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0], // array32 of 4 Gi items
  [0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 0x61], // map32
  [0xdb, 0xff, 0xff, 0xff, 0xff, 0x61], // str32
  [0xc6, 0xff, 0xff, 0xff, 0xff, 0x00], // bin32
  [0xc9, 0xff, 0xff, 0xff, 0xff, 0x01], // ext32
  [0x93, 0xdb, 0x7f, 0xff, 0xff, 0xff], // [str32 of 2 Gi, ...]
  [0xdc, 0xff, 0xff], // array16, nothing follows
].map((b) => new Uint8Array(b));

const method = fc.oneof(
  fc.constantFrom("echo", "fail", "nope", ""),
  fc.string({ maxLength: 300 }),
);
const value = fc.oneof(
  { weight: 3, arbitrary: fc.jsonValue({ maxDepth: 4 }) },
  { weight: 1, arbitrary: fc.anything({ maxDepth: 3, withBigInt: false, withTypedArray: true }) },
);
const errorMap = fc.record(
  { code: fc.oneof(fc.string(), fc.integer()), message: fc.oneof(fc.string(), value), stack: value },
  { requiredKeys: [] },
);

/** A payload for `kind` that is right, nearly right, or plainly wrong. */
function payloadFor(kind: number): fc.Arbitrary<Uint8Array> {
  const valid: fc.Arbitrary<unknown> = kind === FrameKind.request
    ? fc.tuple(
      method,
      fc.array(value, { maxLength: 4 }),
      fc.oneof(fc.constant(null), fc.integer({ min: -5, max: 100 })),
    )
    : kind === FrameKind.streamOpen
    ? fc.tuple(fc.constantFrom("count", "nope"), fc.array(fc.nat(3), { maxLength: 2 }), fc.boolean())
    : kind === FrameKind.error || kind === FrameKind.streamEnd
    ? fc.oneof(errorMap, fc.constant(null))
    : kind === FrameKind.event
    ? fc.tuple(fc.string(), value)
    : kind === FrameKind.streamCredit
    ? fc.integer({ min: -2, max: 40 })
    : kind === FrameKind.ping || kind === FrameKind.pong
    ? fc.oneof(fc.double(), fc.constant(null))
    : kind === FrameKind.hello
    ? helloValue
    : kind === FrameKind.welcome
    ? fc.record({ version: fc.integer({ min: -1, max: 3 }), heartbeatIntervalMs: fc.integer({ min: -1, max: 5000 }) })
    : fc.oneof(fc.constant(null), value);
  return fc.oneof(
    { weight: 6, arbitrary: valid.map(pack) },
    { weight: 2, arbitrary: value.map(pack) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }) },
    { weight: 1, arbitrary: fc.integer({ min: 1, max: 200 }).map(nested) },
    { weight: 1, arbitrary: fc.constantFrom(...hugeDeclarations) },
    { weight: 1, arbitrary: fc.constant(new Uint8Array(0)) },
  );
}

const helloValue = fc.record({
  token: fc.oneof(fc.constant(token), fc.string(), fc.integer()),
  versions: fc.oneof(fc.constant([1, 1]), fc.array(fc.integer({ min: -1, max: 3 }), { maxLength: 3 }), value),
  name: fc.oneof(fc.constant("fuzz"), value),
  version: fc.oneof(fc.constant("1.0.0"), value),
  runtime: fc.oneof(fc.constant("deno"), value),
  methods: fc.oneof(fc.array(fc.string(), { maxLength: 4 }), value),
}, { requiredKeys: [] });

/** One frame on the wire: generated, then possibly mutated. */
export const frameBytes: fc.Arbitrary<Uint8Array> = fc.oneof(
  {
    weight: 12,
    arbitrary: fc.integer({ min: 1, max: 14 }).chain((kind) =>
      fc.tuple(
        fc.constant(kind),
        fc.oneof(fc.integer({ min: 0, max: 3 }), fc.constant(reusedId), fc.nat()),
        payloadFor(kind),
        fc.constantFrom(0, 1, 1, 0xff),
        fc.constantFrom(0, 0, 0, 1, 0xffff),
      ).map(([kind, id, payload, flags, reserved]) => frame(kind, id, payload, flags, reserved))
    ),
  },
  // Unknown kinds, and headers cut short.
  {
    weight: 1,
    arbitrary: fc.tuple(fc.integer({ min: 0, max: 255 }), fc.nat()).map(([k, id]) => frame(k, id, pack(null))),
  },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 7 }) },
  // Over the receiver's messageBytesMax.
  {
    weight: 1,
    arbitrary: fc.integer({ min: fuzzMessageBytesMax + 1, max: rawMessageBytesMax - 8 }).map((n) =>
      frame(FrameKind.event, 0, new Uint8Array(n))
    ),
  },
  // Compressed payloads (flag 2): DEFLATE of a payload, or bytes that do not inflate.
  {
    weight: 1,
    arbitrary: fc.integer({ min: 1, max: 14 }).chain((kind) =>
      fc.tuple(fc.constant(kind), fc.oneof(payloadFor(kind).map((p) => deflateRawSync(p)), fc.uint8Array()))
    ).map(([kind, payload]) => frame(kind, 1, payload, flagOpener | flagCompressed)),
  },
  // Random bit flips in a valid frame.
  {
    weight: 2,
    arbitrary: fc.tuple(
      fc.integer({ min: 1, max: 14 }).chain((kind) => payloadFor(kind).map((p) => frame(kind, 1, p, 1))),
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }),
    ).map(([bytes, flips]) => {
      for (const [at, byte] of flips) bytes[at % bytes.length] = byte;
      return bytes;
    }),
  },
);

/** A sequence of frames for one connection. */
export const sequence: fc.Arbitrary<Uint8Array[]> = fc.array(frameBytes, { minLength: 1, maxLength: 8 });

function pair(): { raw: ShmChannel; tested: ShmChannel } {
  const raw = ShmChannel.create({ ringBytes, messageBytesMax: rawMessageBytesMax, spinMicros: 0 });
  const tested = ShmChannel.attach(raw.name, raw.token, { messageBytesMax: fuzzMessageBytesMax, spinMicros: 0 });
  return { raw, tested };
}

/** True for an error of plugin-shm's own that may end a connection. */
export function isTypedClose(error: unknown): boolean {
  return error instanceof ProtocolError || error instanceof ChannelClosedError || error instanceof HandshakeError;
}

/** What the runs saw, for the report. */
export interface FuzzTally {
  sequences: number;
  alive: number;
  closed: Record<string, number>;
}

/** A new, empty tally. */
export function tally(): FuzzTally {
  return { sequences: 0, alive: 0, closed: {} };
}

/**
 * Drives one RpcPeer with `frames`, then probes it. Resolves when the
 * endpoint answered the probe or closed; assertion failures reject.
 */
export async function runRpcSequence(frames: Uint8Array[], seen: FuzzTally): Promise<void> {
  const { raw, tested } = pair();
  const peer = new RpcPeer(tested, {
    remoteName: "fuzzer",
    heartbeatIntervalMs: 0,
    streamCreditWindow: 4,
    handlers: {
      echo: (args) => args,
      fail: () => {
        throw Object.assign(new Error("asked to fail"), { code: "asked" });
      },
    },
    streamHandlers: {
      count: async function* (input, args) {
        for (let i = 0; i < Number(args[0] ?? 0); i++) yield i;
        for await (const item of input) yield item;
      },
    },
    onEvent: () => {},
  });
  const running = peer.run();
  // A call of the tested side's own, pending while the frames arrive (id 1).
  const pending = peer.call("pending", []).then(
    (value) => ({ value }),
    (error: unknown) => ({ error }),
  );
  try {
    for (const bytes of frames) {
      if (peer.closedWith) break;
      try {
        await raw.send(bytes);
      } catch (error) {
        if (error instanceof ChannelClosedError) break; // The tested side closed already.
        throw error;
      }
    }
    // The probe: a well-formed request. An endpoint still up must answer it.
    let answered = false;
    await raw.send(frame(FrameKind.request, probeId, pack(["echo", ["probe"], null]), 1)).catch(() => {});
    for (;;) {
      let bytes: Uint8Array;
      try {
        bytes = await raw.receive();
      } catch (error) {
        assert.ok(error instanceof ChannelClosedError, `raw side: ${error}`);
        break;
      }
      const header = decodeHeader(bytes);
      if (header.id === probeId && header.kind === FrameKind.response) {
        assert.deepEqual(decodePayload(bytes), ["probe"]);
        answered = true;
        break;
      }
      // ERROR for the probe: the tested side is draining or garbled it, which the fuzzer may have caused.
      if (header.id === probeId && header.kind === FrameKind.error) {
        answered = true;
        break;
      }
    }
    if (answered) {
      assert.equal(peer.closedWith, undefined);
      seen.alive++;
      peer.close();
    } else {
      await running;
      const closedWith = peer.closedWith;
      assert.ok(isTypedClose(closedWith), `the endpoint closed with an untyped error: ${closedWith}`);
      const name = `${closedWith!.name}:${(closedWith as { code?: string }).code}`;
      seen.closed[name] = (seen.closed[name] ?? 0) + 1;
    }
    await running;
    const outcome = await pending;
    if ("error" in outcome) {
      // Either the fuzzer answered call 1 with an ERROR, or the call got the error the endpoint closed with.
      assert.ok(
        outcome.error instanceof RemoteError || outcome.error === peer.closedWith,
        `a pending call got ${outcome.error}, not the close error ${peer.closedWith}`,
      );
    }
    assert.equal(peer.pendingCalls, 0);
    assert.equal(peer.servingCalls, 0);
    seen.sequences++;
  } finally {
    peer.close();
    raw.close();
    tested.close();
    await macrotask();
  }
}

/** One HELLO-side frame against acceptHello, or one answer against sendHello. */
export async function runHandshake(bytes: Uint8Array, hostSide: boolean, seen: FuzzTally): Promise<void> {
  const { raw, tested } = pair();
  try {
    await raw.send(bytes).catch(() => {});
    try {
      if (hostSide) {
        const { hello } = await acceptHello(tested, {
          token,
          versions: [1, 1],
          heartbeatIntervalMs: 0,
          timeoutMs: 60_000,
        });
        assert.equal(hello.token, token);
      } else {
        const welcome = await sendHello(
          tested,
          { token, versions: [1, 1], name: "fuzz", version: "1.0.0", runtime: "deno", methods: [] },
          60_000,
        );
        assert.equal(typeof welcome.version, "number");
      }
      seen.alive++;
    } catch (error) {
      assert.ok(isTypedClose(error), `the handshake failed with an untyped error: ${error}`);
      const name = `${(error as Error).name}:${(error as { code?: string }).code}`;
      seen.closed[name] = (seen.closed[name] ?? 0) + 1;
    }
    seen.sequences++;
  } finally {
    raw.close();
    tested.close();
    await macrotask();
  }
}

/**
 * One turn of the event loop. A closed channel's handle is freed when its waiter thread's last callback
 * has run on the event loop; a run of sequences that all complete in microtasks (the raw side finds its
 * data already there) would otherwise use up the library's 1024 handles under Deno.
 */
function macrotask(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

/** HELLO-ish frames (a host receives them) and WELCOME-ish frames (a plugin receives them). */
export const handshakeFrame: fc.Arbitrary<Uint8Array> = fc.oneof(
  { weight: 4, arbitrary: payloadFor(FrameKind.hello).map((p) => frame(FrameKind.hello, 0, p)) },
  { weight: 3, arbitrary: payloadFor(FrameKind.welcome).map((p) => frame(FrameKind.welcome, 0, p)) },
  { weight: 2, arbitrary: payloadFor(FrameKind.error).map((p) => frame(FrameKind.error, 0, p)) },
  { weight: 2, arbitrary: frameBytes },
);

/** The fixed seed of `make test`, or FUZZ_SEED to replay a printed one ("random" picks a new one). */
export function fuzzSeed(): number {
  const given = process.env.FUZZ_SEED;
  if (given === "random") return Math.floor(Math.random() * 0x7fff_ffff);
  return given ? Number(given) : 13_2026;
}

/** Resident memory in MiB. */
export function rssMiB(): number {
  return process.memoryUsage().rss / (1024 * 1024);
}
