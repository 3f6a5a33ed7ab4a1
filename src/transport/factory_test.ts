import assert from "node:assert/strict";
import { existsSync, statSync } from "node:fs";
import { createConnection } from "node:net";
import { dirname } from "node:path";
import { matchesPattern, pattern, shmSegments, test } from "../../tests/_harness.ts";
import { ChannelClosedError } from "./errors.ts";
import { connectTransport, listenTransport, pluginBlockMicros } from "./factory.ts";
import type { TransportKind, TransportListener } from "./transport.ts";

const kinds: TransportKind[] = ["shm", "unix", "tcp"];

/** True when the listener left nothing behind: no segment, no socket directory. */
function leftNothing(listener: TransportListener): boolean {
  if (listener.kind === "shm") return !shmSegments().includes(listener.address);
  if (listener.kind === "unix") return !existsSync(dirname(listener.address));
  return true;
}

/** Resolves with the error code when a plain socket cannot connect to `address`. */
function rawConnectError(kind: "unix" | "tcp", address: string): Promise<string> {
  const where = kind === "unix" ? { path: address } : { host: "127.0.0.1", port: Number(address.split(":")[1]) };
  return new Promise((resolve) => {
    const socket = createConnection(where);
    socket.once("connect", () => (socket.destroy(), resolve("connected")));
    socket.once("error", (e: Error & { code?: string }) => (socket.destroy(), resolve(e.code ?? e.message)));
  });
}

for (const kind of kinds) {
  test(`${kind}: listenTransport and connectTransport give a working pair`, async () => {
    const listener = await listenTransport(kind);
    assert.equal(listener.kind, kind);
    assert.equal(listener.secret === "", kind !== "shm", "only shm has a secret");
    const plugin = await connectTransport(kind, listener.address, listener.secret);
    const host = await listener.accept(10_000);
    assert.equal(host.kind, kind);
    assert.equal(plugin.kind, kind);
    assert.ok(leftNothing(listener));
    await plugin.send(pattern(1, 64));
    assert.ok(matchesPattern(1, await host.receive()));
    await host.send(pattern(2, 100_000));
    assert.ok(matchesPattern(2, await plugin.receive()));
    plugin.close();
    host.close();
    listener.close();
    assert.ok(leftNothing(listener));
  });

  test(`${kind}: a connection made before accept() is handed over by accept()`, async () => {
    const listener = await listenTransport(kind);
    const plugin = await connectTransport(kind, listener.address, listener.secret);
    await plugin.send(pattern(3, 10));
    await new Promise((resolve) => setTimeout(resolve, 10));
    const host = await listener.accept(10_000);
    assert.ok(matchesPattern(3, await host.receive()));
    plugin.close();
    host.close();
    assert.ok(leftNothing(listener));
  });

  test(`${kind}: accept() times out with a clear error and cleans up`, async () => {
    const listener = await listenTransport(kind);
    const expected = kind === "shm" ? /No peer attached .* within 50 ms/ : /No plugin connected .* within 50 ms/;
    await assert.rejects(listener.accept(50), expected);
    assert.ok(leftNothing(listener));
    await assert.rejects(listener.accept(50), /closed listener/);
    listener.close();
    if (kind !== "shm") assert.notEqual(await rawConnectError(kind, listener.address), "connected");
  });

  test(`${kind}: close() before accept() is idempotent and frees what the listener holds`, async () => {
    const listener = await listenTransport(kind);
    listener.close();
    listener.close();
    assert.ok(leftNothing(listener));
    await assert.rejects(listener.accept(1000), /closed listener/);
    const refused = kind === "shm" ? /does not exist/ : /Cannot connect to the .* listener/;
    await assert.rejects(connectTransport(kind, listener.address, listener.secret), refused);
  });

  test(`${kind}: close() while accept() waits makes accept() fail`, async () => {
    const listener = await listenTransport(kind);
    const accepting = listener.accept(10_000);
    listener.close();
    await assert.rejects(accepting, (e: unknown) => e instanceof ChannelClosedError && e.code === "local");
    assert.ok(leftNothing(listener));
  });

  test(`${kind}: accept() can be called only once`, async () => {
    const listener = await listenTransport(kind);
    const plugin = await connectTransport(kind, listener.address, listener.secret);
    const host = await listener.accept(10_000);
    await assert.rejects(listener.accept(1000), /already called|closed listener/);
    listener.close(); // After accept() the transport belongs to the caller.
    await plugin.send(pattern(4, 8));
    assert.ok(matchesPattern(4, await host.receive()));
    plugin.close();
    host.close();
  });
}

for (const kind of ["unix", "tcp"] as const) {
  test(`${kind}: the listener accepts one connection and then stops listening`, async () => {
    const listener = await listenTransport(kind);
    const plugin = await connectTransport(kind, listener.address, "");
    const host = await listener.accept(10_000);
    assert.notEqual(await rawConnectError(kind, listener.address), "connected");
    await plugin.send(pattern(5, 8));
    assert.ok(matchesPattern(5, await host.receive()));
    plugin.close();
    host.close();
    listener.close();
  });
}

test("unix: the socket lives in a directory only this user can enter", async () => {
  const listener = await listenTransport("unix");
  assert.equal(statSync(dirname(listener.address)).mode & 0o777, 0o700);
  listener.close();
  assert.ok(leftNothing(listener));
});

test("tcp: the listener binds the loopback address only", async () => {
  const listener = await listenTransport("tcp");
  assert.match(listener.address, /^127\.0\.0\.1:\d+$/);
  listener.close();
});

test("shm: options reach the channel", async () => {
  const listener = await listenTransport("shm", { ringBytes: 4096, messageBytesMax: 100 });
  const plugin = await connectTransport("shm", listener.address, listener.secret, { messageBytesMax: 100 });
  const host = await listener.accept(10_000);
  assert.equal(host.messageBytesMax, 100);
  await assert.rejects(plugin.send(new Uint8Array(101)), /exceeds messageBytesMax \(100 bytes\)/);
  plugin.close();
  host.close();
});

test("connectTransport() fails clearly when nobody listens", async () => {
  await assert.rejects(
    connectTransport("unix", "/nonexistent/plugin-shm/plugin.sock", ""),
    /Cannot connect to the unix listener \/nonexistent\/plugin-shm\/plugin\.sock: ENOENT; check that the host is listening/,
  );
  const listener = await listenTransport("tcp");
  listener.close();
  await assert.rejects(connectTransport("tcp", listener.address, ""), /Cannot connect to the tcp listener/);
  await assert.rejects(connectTransport("tcp", "localhost", ""), /must look like "127\.0\.0\.1:8080"/);
});

test("listenTransport() and connectTransport() validate their arguments before opening anything", async () => {
  await assert.rejects(listenTransport("udp" as TransportKind), TypeError);
  await assert.rejects(listenTransport("unix", { messageBytesMax: 0 }), RangeError);
  await assert.rejects(listenTransport("tcp", { messageBytesMax: 1.5 }), RangeError);
  await assert.rejects(listenTransport("shm", { ringBytes: 5000 }), RangeError);
  await assert.rejects(connectTransport("tcp", "127.0.0.1:1", "", { messageBytesMax: -1 }), RangeError);
  const listener = await listenTransport("tcp");
  await assert.rejects(listener.accept(-1), RangeError);
  await assert.rejects(listener.accept(Infinity), /timeoutMs must be from 0 to 2147483647 ms/);
  listener.close();
});

test('shm: wake "block" hands the plugin its block bound, and the pair still talks', async () => {
  const listener = await listenTransport("shm", { wake: "block" });
  assert.equal(listener.blockMicros, pluginBlockMicros);
  const plugin = await connectTransport("shm", listener.address, listener.secret, {
    blockMicros: listener.blockMicros,
  });
  const host = await listener.accept(5000);
  try {
    await host.send(pattern(1, 64));
    assert.ok(matchesPattern(1, await plugin.receive()));
    await plugin.send(pattern(2, 64));
    assert.ok(matchesPattern(2, await host.receive()));
  } finally {
    plugin.close();
    host.close();
    listener.close();
  }
  assert.ok(leftNothing(listener));
  const futex = await listenTransport("shm", { wake: "futex" });
  assert.equal(futex.blockMicros, undefined);
  futex.close();
});

test("shm: a bad blockMicros on connect is refused with a RangeError before anything attaches", async () => {
  const listener = await listenTransport("shm");
  try {
    await assert.rejects(
      connectTransport("shm", listener.address, listener.secret, { blockMicros: -5 }),
      (error: Error) => error instanceof RangeError && /blockMicros must be an integer from 0/.test(error.message),
    );
    // Nothing attached: the segment still waits for its plugin, which can still connect.
    const plugin = await connectTransport("shm", listener.address, listener.secret);
    const host = await listener.accept(5000);
    plugin.close();
    host.close();
  } finally {
    listener.close();
  }
  assert.ok(leftNothing(listener));
});
