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

test("a handler's signal aborts on cancel and on deadline, whether it was read before or after", async () => {
  const a = ShmChannel.create();
  const b = ShmChannel.attach(a.name, a.token);
  const seen: string[] = [];
  let release: () => void = () => {};
  const gate = new Promise<void>((resolve) => (release = resolve));
  const plugin = new RpcPeer(b, {
    remoteName: "host",
    heartbeatIntervalMs: 0,
    handlers: {
      // Reads the signal first, then waits for it to abort.
      early: (_args, { signal }) =>
        new Promise((resolve) =>
          signal.addEventListener("abort", () => resolve(seen.push(`early ${signal.reason.name}`)))
        ),
      // Reads the signal only after the cancel has arrived.
      late: async (_args, context) => {
        await gate;
        seen.push(`late ${context.signal.aborted} ${context.signal.reason?.name}`);
      },
      plain: ([x]) => x,
    },
  });
  const host = new RpcPeer(a, { remoteName: "plugin", heartbeatIntervalMs: 0 });
  plugin.run();
  host.run();
  try {
    await assert.rejects(host.call("early", [], { deadlineMs: 20 }), { name: "DeadlineExceededError" });
    const controller = new AbortController();
    const late = host.call("late", [], { signal: controller.signal });
    while (plugin.servingCalls === 0) await new Promise((r) => setTimeout(r, 1));
    controller.abort();
    await assert.rejects(late, { name: "CancelledError" });
    while (plugin.servingCalls > 0) await new Promise((r) => setTimeout(r, 1));
    release();
    await new Promise((r) => setTimeout(r, 5));
    assert.equal(await host.call("plain", ["still serving"]), "still serving");
    // Both sides time the deadline: the plugin's own timer or the host's CANCEL, whichever comes first, aborts it.
    assert.match(seen[0], /^early (DeadlineExceededError|CancelledError)$/);
    assert.deepEqual(seen.slice(1), ["late true CancelledError"]);
  } finally {
    host.close();
    plugin.close();
  }
});
