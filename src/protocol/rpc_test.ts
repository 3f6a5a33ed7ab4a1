import assert from "node:assert/strict";
import { RemoteError } from "./errors.ts";
import { RpcPeer } from "./rpc.ts";
import { ShmChannel } from "../transport/shm_channel.ts";
import { test } from "../../tests/_harness.ts";

function pair(onListenerError?: (error: unknown) => void): { host: RpcPeer; plugin: RpcPeer; close(): void } {
  const a = ShmChannel.create();
  const b = ShmChannel.attach(a.name, a.token);
  const plugin = new RpcPeer(b, {
    remoteName: "host",
    protocolVersion: 1,
    heartbeatIntervalMs: 0,
    handlers: { add: ([x, y]) => (x as number) + (y as number) },
    onEvent: () => {
      throw new Error("listener bug");
    },
    onListenerError,
  });
  const host = new RpcPeer(a, { remoteName: "plugin", protocolVersion: 1, heartbeatIntervalMs: 0 });
  plugin.run();
  host.run();
  return { host, plugin, close: () => (host.close(), plugin.close()) };
}

test("a side that said GOODBYE refuses new requests with 'draining', and the other side knows", async () => {
  const { host, plugin, close } = pair();
  try {
    assert.equal(await host.call("add", [1, 2]), 3);
    await plugin.goodbye();
    await assert.rejects(host.call("add", [1, 2]), (e) => e instanceof RemoteError && e.code === "draining");
    assert.equal(host.remoteDraining, true);
    assert.equal(plugin.localDraining, true);
    assert.equal(host.protocolVersion, 1);
  } finally {
    close();
  }
});

test("an event listener that throws is reported and the connection keeps serving", async () => {
  const reported: unknown[] = [];
  const { host, close } = pair((error) => reported.push(error));
  try {
    await host.emit("tick", 1);
    assert.equal(await host.call("add", [2, 3]), 5);
    assert.equal((reported[0] as Error).message, "listener bug");
  } finally {
    close();
  }
});
