import assert from "node:assert/strict";
import { deflateRawSync } from "node:zlib";
import { ProtocolError, RemoteError } from "../src/protocol/errors.ts";
import {
  decodeHeader,
  decodePayload,
  encodeFrame,
  flagCompressed,
  flagOpener,
  FrameKind,
  type FrameKindValue,
} from "../src/protocol/frame.ts";
import { acceptHello, compressionThresholdBytesDefault, sendHello } from "../src/protocol/handshake.ts";
import { RpcPeer } from "../src/protocol/rpc.ts";
import { ShmChannel } from "../src/transport/shm_channel.ts";
import type { Transport } from "../src/transport/transport.ts";
import { test } from "./_harness.ts";

const deflate = { algorithm: "deflate", thresholdBytes: 1024 } as const;

/** A real channel pair; `sent` records every frame side a sends (flags byte and length). */
function channels(messageBytesMax?: number) {
  const options = messageBytesMax ? { messageBytesMax } : {};
  const a = ShmChannel.create(options);
  const b = ShmChannel.attach(a.name, a.token, options);
  const sent: { flags: number; bytes: number }[] = [];
  const recorded: Transport = {
    kind: a.kind,
    messageBytesMax: a.messageBytesMax,
    send: (frame: Uint8Array) => {
      sent.push({ flags: frame[1], bytes: frame.length });
      return a.send(frame);
    },
    receive: () => a.receive(),
    close: () => a.close(),
    get closed() {
      return a.closed;
    },
  };
  return { a, b, recorded, sent };
}

function peers(compressClient: boolean, compressServer: boolean) {
  const { b, recorded, sent } = channels();
  const server = new RpcPeer(b, {
    remoteName: "host",
    heartbeatIntervalMs: 0,
    handlers: { echo: ([x]) => x },
    compression: compressServer ? deflate : undefined,
  });
  const client = new RpcPeer(recorded, {
    remoteName: "plugin",
    heartbeatIntervalMs: 0,
    compression: compressClient ? deflate : undefined,
  });
  const served = server.run();
  client.run();
  return { client, server, served, sent, b, close: () => (client.close(), server.close()) };
}

test("with compression agreed, a compressible payload crosses compressed and an incompressible one as is", async () => {
  const { client, sent, close } = peers(true, true);
  try {
    const text = "the same words again and again, ".repeat(4000);
    assert.equal(await client.call("echo", [text]), text);
    assert.ok((sent[0].flags & flagCompressed) !== 0, "the request went compressed");
    assert.ok(sent[0].bytes < text.length / 10, `${sent[0].bytes} bytes on the wire for ${text.length}`);
    const noise = new Uint8Array(100_000);
    for (let i = 0; i < noise.length; i += 65_536) crypto.getRandomValues(noise.subarray(i, i + 65_536));
    assert.deepEqual(await client.call("echo", [noise]), noise);
    assert.equal(sent[1].flags & flagCompressed, 0, "random bytes do not shrink: sent as they are");
    assert.equal(await client.call("echo", ["small"]), "small");
    assert.equal(sent[2].flags & flagCompressed, 0, "under the threshold: not compressed");
  } finally {
    close();
  }
});

test("a compressed request to a side that agreed on no compression is refused as bad_request and it keeps serving", async () => {
  const { client, close } = peers(true, false);
  try {
    await assert.rejects(
      client.call("echo", ["x".repeat(10_000)]),
      (e) => e instanceof RemoteError && e.code === "bad_request" && /agreed on no compression/.test(e.message),
    );
    assert.equal(await client.call("echo", ["small"]), "small");
  } finally {
    close();
  }
});

for (
  const [what, payload, pattern] of [
    ["garbage that does not inflate", new Uint8Array([1, 2, 3, 4, 255, 255, 0, 9]), /does not inflate/],
    ["a payload that inflates past messageBytesMax", deflateRawSync(new Uint8Array(2 << 20)), /at most 1048576 bytes/],
  ] as const
) {
  test(`a compressed frame holding ${what}: a request gets bad_request, any other frame is a ProtocolError`, async () => {
    const { a, b } = channels(1 << 20);
    const server = new RpcPeer(b, { remoteName: "host", heartbeatIntervalMs: 0, compression: deflate });
    const served = server.run();
    const frame = (kind: FrameKindValue, flags: number) => {
      const bytes = new Uint8Array(8 + payload.length);
      bytes.set(encodeFrame(kind, 1, null, flags | flagCompressed).subarray(0, 8));
      bytes.set(payload, 8);
      return bytes;
    };
    try {
      await a.send(frame(FrameKind.request, flagOpener));
      const reply = await a.receive();
      assert.equal(decodeHeader(reply).kind, FrameKind.error);
      const error = decodePayload(reply) as { code: string; message: string };
      assert.equal(error.code, "bad_request");
      assert.match(error.message, pattern);
      await a.send(frame(FrameKind.event, 0));
      await served;
      assert.ok(server.closedWith instanceof ProtocolError, String(server.closedWith));
      assert.match(server.closedWith!.message, pattern);
    } finally {
      server.close();
      a.close();
    }
  });
}

test("the handshake turns compression on only when the plugin's HELLO offers it (an older plugin gets none)", async () => {
  const hello = { token: "t", versions: [1, 1] as const, name: "p", version: "1", runtime: "deno", methods: [] };
  for (const offered of [undefined, ["zstd"], ["zstd", "deflate"]]) {
    const a = ShmChannel.create();
    const b = ShmChannel.attach(a.name, a.token);
    try {
      const host = acceptHello(a, {
        token: "t",
        versions: [1, 1],
        heartbeatIntervalMs: 0,
        timeoutMs: 5000,
        compression: { algorithm: "deflate", thresholdBytes: compressionThresholdBytesDefault },
      });
      const welcome = await sendHello(b, offered ? { ...hello, compression: offered } : hello, 5000);
      const accepted = await host;
      const expected = offered?.includes("deflate")
        ? { algorithm: "deflate", thresholdBytes: compressionThresholdBytesDefault }
        : undefined;
      assert.deepEqual(welcome.compression, expected, `offered ${offered}`);
      assert.deepEqual(accepted.compression, expected);
    } finally {
      a.close();
      b.close();
    }
  }
});
