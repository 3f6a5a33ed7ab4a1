import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { createConnection, type Socket } from "node:net";
import { dirname } from "node:path";
import fc from "fast-check";
import { matchesPattern, pattern, test } from "../../tests/_harness.ts";
import { ChannelClosedError, MessageTooLargeError } from "./errors.ts";
import { connectTransport, listenTransport, type TransportOptions } from "./factory.ts";
import { StreamTransport } from "./stream_transport.ts";
import type { Transport, TransportListener } from "./transport.ts";

const kinds = ["unix", "tcp"] as const;
type Kind = (typeof kinds)[number];

interface Pair {
  listener: TransportListener;
  host: Transport;
  plugin: Transport;
  close(): void;
}

/** True when no trace of a listener is left: its unix socket directory is gone. */
function leftNothing(listener: TransportListener): boolean {
  return listener.kind !== "unix" || !existsSync(dirname(listener.address));
}

async function pair(kind: Kind, options: TransportOptions = {}): Promise<Pair> {
  const listener = await listenTransport(kind, options);
  const plugin = await connectTransport(kind, listener.address, listener.secret, options);
  const host = await listener.accept(10_000);
  assert.ok(leftNothing(listener), "the socket file is removed once the plugin connected");
  return {
    listener,
    host,
    plugin,
    close() {
      plugin.close();
      host.close();
      listener.close();
      assert.ok(leftNothing(listener));
    },
  };
}

/** A plain socket connected to a fresh listener, to play a peer that breaks the rules. */
async function rawPeer(
  kind: Kind,
  allowHalfOpen = false,
): Promise<{ listener: TransportListener; host: Transport; raw: Socket }> {
  const listener = await listenTransport(kind);
  const where = kind === "unix"
    ? { path: listener.address }
    : { host: "127.0.0.1", port: Number(listener.address.split(":")[1]) };
  const raw = createConnection({ ...where, allowHalfOpen });
  raw.on("error", () => {});
  await new Promise((resolve) => raw.once("connect", resolve));
  const host = await listener.accept(10_000);
  assert.ok(leftNothing(listener), "the socket file is removed once the peer connected");
  return { listener, host, raw };
}

function frame(message: Uint8Array): Uint8Array {
  const bytes = new Uint8Array(4 + message.length);
  new DataView(bytes.buffer).setUint32(0, message.length, true);
  bytes.set(message, 4);
  return bytes;
}

function write(socket: Socket, bytes: Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => socket.write(bytes, (error) => (error ? reject(error) : resolve())));
}

function closedWith(code: string, message?: RegExp): (error: unknown) => boolean {
  return (error: unknown) => {
    assert.ok(error instanceof ChannelClosedError, `expected a ChannelClosedError, got ${error}`);
    assert.equal(error.code, code);
    if (message) assert.match(error.message, message);
    return true;
  };
}

for (const kind of kinds) {
  test(`${kind}: messages of 0 B, 1 B, 64 B, 64 KiB and 5 MiB arrive intact both ways`, async () => {
    const p = await pair(kind);
    const sizes = [0, 1, 64, 64 * 1024, 5 * 1024 * 1024];
    for (const [seq, size] of sizes.entries()) {
      const [, received] = await Promise.all([p.plugin.send(pattern(seq, size)), p.host.receive()]);
      assert.equal(received.length, size);
      assert.ok(matchesPattern(seq, received), `plugin → host, ${size} bytes`);
      const [, echoed] = await Promise.all([p.host.send(received), p.plugin.receive()]);
      assert.equal(echoed.length, size);
      assert.ok(matchesPattern(seq, echoed), `host → plugin, ${size} bytes`);
    }
    p.close();
  });

  test(`${kind}: 5000 pipelined messages arrive in order`, async () => {
    const p = await pair(kind);
    const count = 5000;
    const sends = Array.from({ length: count }, (_, i) => p.plugin.send(pattern(i, i % 300)));
    const received: Uint8Array[] = [];
    for (let i = 0; i < count; i++) received.push(await p.host.receive());
    await Promise.all(sends);
    // Checked only after all arrived, so a receive buffer reused under an
    // earlier message would show up as a mismatch.
    received.forEach((m, i) => assert.ok(m.length === i % 300 && matchesPattern(i, m), `message ${i}`));
    p.close();
  });

  test(`${kind}: concurrent receive() calls resolve in call order`, async () => {
    const p = await pair(kind);
    const pending = [p.host.receive(), p.host.receive(), p.host.receive()];
    for (let i = 0; i < 3; i++) await p.plugin.send(pattern(i, 10));
    (await Promise.all(pending)).forEach((m, i) => assert.ok(matchesPattern(i, m)));
    p.close();
  });

  test(`${kind}: frames split anywhere across socket writes are reassembled`, async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.nat({ max: 3000 }), { minLength: 1, maxLength: 8 }),
        fc.array(fc.integer({ min: 1, max: 700 }), { minLength: 1, maxLength: 8 }),
        async (sizes, cuts) => {
          const { listener, host, raw } = await rawPeer(kind);
          raw.setNoDelay(true);
          const stream = new Uint8Array(sizes.reduce((n, size) => n + 4 + size, 0));
          let at = 0;
          for (const [seq, size] of sizes.entries()) {
            stream.set(frame(pattern(seq, size)), at);
            at += 4 + size;
          }
          for (let i = 0, offset = 0; offset < stream.length; i++) {
            const end = Math.min(stream.length, offset + cuts[i % cuts.length]);
            await write(raw, stream.subarray(offset, end));
            offset = end;
          }
          for (const [seq, size] of sizes.entries()) {
            const m = await host.receive();
            assert.ok(m.length === size && matchesPattern(seq, m), `message ${seq} of ${size} bytes`);
          }
          raw.destroy();
          host.close();
          listener.close();
        },
      ),
      { numRuns: 15 },
    );
  });

  test(`${kind}: a length prefix over messageBytesMax closes the stream as corrupt, and new transports still work`, async () => {
    const { listener, host, raw } = await rawPeer(kind);
    const rawClosed = new Promise((resolve) => raw.once("close", resolve));
    await write(raw, frame(pattern(1, 20)));
    await write(raw, new Uint8Array([0xff, 0xff, 0xff, 0xff, 1, 2, 3]));
    assert.ok(matchesPattern(1, await host.receive()), "what came before the bad prefix is delivered");
    const corrupt = closedWith(
      "corrupt",
      /announced a 4294967295-byte message .*over messageBytesMax \(67108864\); it is not speaking plugin-shm framing/,
    );
    await assert.rejects(host.receive(), corrupt);
    await assert.rejects(host.receive(), corrupt);
    await assert.rejects(host.send(new Uint8Array(1)), corrupt);
    assert.ok(host.closed);
    await rawClosed;
    host.close();
    listener.close();
    const p = await pair(kind);
    await p.plugin.send(pattern(2, 100));
    assert.ok(matchesPattern(2, await p.host.receive()));
    p.close();
  });

  test(`${kind}: a message over messageBytesMax is refused and the transport keeps working`, async () => {
    const p = await pair(kind, { messageBytesMax: 1000 });
    await assert.rejects(p.plugin.send(new Uint8Array(1001)), (e: unknown) => {
      assert.ok(e instanceof MessageTooLargeError);
      assert.match(e.message, /exceeds messageBytesMax \(1000 bytes\)/);
      return true;
    });
    await p.plugin.send(pattern(3, 1000));
    assert.ok(matchesPattern(3, await p.host.receive()));
    p.close();
  });

  test(`${kind}: after the peer closes, receive() drains what it sent, then fails with peer-closed`, async () => {
    const p = await pair(kind);
    for (let i = 0; i < 3; i++) await p.plugin.send(pattern(i, 1000));
    p.plugin.close();
    for (let i = 0; i < 3; i++) assert.ok(matchesPattern(i, await p.host.receive()));
    await assert.rejects(p.host.receive(), closedWith("peer-closed"));
    assert.ok(p.host.closed);
    await assert.rejects(p.host.send(new Uint8Array(1)), closedWith("peer-closed"));
    p.close();
  });

  test(`${kind}: a pending receive() fails with peer-closed when the peer closes`, async () => {
    const p = await pair(kind);
    const pending = p.host.receive();
    p.plugin.close();
    await assert.rejects(pending, closedWith("peer-closed"));
    p.close();
  });

  test(`${kind}: async iteration yields every message and ends when the peer closes`, async () => {
    const p = await pair(kind);
    for (let i = 0; i < 5; i++) await p.plugin.send(pattern(i, 16));
    p.plugin.close();
    let n = 0;
    for await (const m of p.host as StreamTransport) assert.ok(matchesPattern(n++, m));
    assert.equal(n, 5);
    p.close();
  });

  test(`${kind}: a peer that stops in the middle of a message is reported as peer-died`, async () => {
    const { listener, host, raw } = await rawPeer(kind);
    const pending = host.receive();
    await write(raw, frame(pattern(1, 100)).subarray(0, 50));
    raw.end();
    await assert.rejects(pending, closedWith("peer-died", /middle of a message \(got 46 of 100 bytes\)/));
    host.close();
    listener.close();
  });

  test(`${kind}: a connection reset fails pending calls with peer-died`, async () => {
    const { listener, host, raw } = await rawPeer(kind);
    // A raw peer that never reads: host's send cannot complete, and
    // destroying a socket with unread data makes the kernel reset it.
    raw.pause();
    const receiving = host.receive();
    const sending = host.send(new Uint8Array(32 * 1024 * 1024));
    const sendOutcome = sending.then(() => "sent", (e) => e);
    await write(raw, frame(pattern(1, 8)));
    assert.ok(matchesPattern(1, await receiving));
    const pending = host.receive();
    raw.destroy();
    await assert.rejects(pending, closedWith("peer-died"));
    const outcome = await sendOutcome;
    assert.ok(outcome instanceof ChannelClosedError && outcome.code === "peer-died", `send(): ${outcome}`);
    host.close();
    listener.close();
  });

  test(`${kind}: a reader that falls behind makes send() wait, and nothing is lost`, async () => {
    const p = await pair(kind);
    const count = 96;
    const size = 512 * 1024;
    const sends = Array.from({ length: count }, (_, i) => p.plugin.send(pattern(i, size)));
    let settled = 0;
    for (const s of sends) s.then(() => settled++);
    // Waits until the writer stops making progress (or finishes), however
    // slow the machine: the assertion is about where it stops, not when.
    for (let last = -1, still = 0; still < 5 && settled < count; last = settled) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      still = settled === last ? still + 1 : 0;
    }
    assert.ok(settled < count, `${settled} of ${count} sends of 512 KiB completed while nobody read`);
    for (let i = 0; i < count; i++) {
      const m = await p.host.receive();
      assert.ok(m.length === size && matchesPattern(i, m), `message ${i}`);
    }
    await Promise.all(sends);
    p.close();
  });

  test(`${kind}: close() is idempotent and later calls fail with a local ChannelClosedError`, async () => {
    const p = await pair(kind);
    const pending = p.host.receive();
    p.host.close();
    p.host.close();
    assert.ok(p.host.closed);
    await assert.rejects(pending, closedWith("local", /closed by this side/));
    await assert.rejects(p.host.send(new Uint8Array(1)), closedWith("local"));
    await assert.rejects(p.host.receive(), closedWith("local"));
    await assert.rejects(p.plugin.receive(), closedWith("peer-closed"));
    p.close();
  });

  test(`${kind}: messages sent just before close() still reach the peer`, async () => {
    const p = await pair(kind);
    // 3 MiB: under receiveQueueBytesMax, so every send() can resolve while nobody reads.
    const size = 1024 * 1024;
    const sends = Array.from({ length: 3 }, (_, i) => p.plugin.send(pattern(i, size)));
    await Promise.all(sends);
    p.plugin.close();
    for (let i = 0; i < 3; i++) assert.ok(matchesPattern(i, await p.host.receive()), `message ${i}`);
    await assert.rejects(p.host.receive(), closedWith("peer-closed"));
    p.close();
  });
}

for (const kind of kinds) {
  test(`${kind}: close() lets go of a peer that never closes its end`, async () => {
    const { listener, host, raw } = await rawPeer(kind, true);
    const ended = new Promise((resolve) => raw.once("end", resolve));
    host.close();
    await ended;
    // The host half-closed and waits for the peer's end, at most
    // closeLingerMs; after that its socket is gone and writes to it fail.
    const failed = new Promise<void>((resolve) => raw.once("error", () => resolve()));
    const timer = setInterval(() => raw.write(new Uint8Array(1)), 50);
    await failed;
    clearInterval(timer);
    raw.destroy();
    listener.close();
  }, { timeoutMs: 20_000 });
}

test("StreamTransport validates its options before it touches the socket", () => {
  const socket = {} as Socket;
  assert.throws(() => new StreamTransport(socket, { kind: "tcp", messageBytesMax: 0 }), RangeError);
  assert.throws(() => new StreamTransport(socket, { kind: "tcp", messageBytesMax: 2 ** 31 }), /from 1 to 1073741824/);
  assert.throws(() => new StreamTransport(socket, { kind: "udp" as "tcp" }), TypeError);
});
