import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { PluginHost, ShmChannel, type TransportKind } from "../mod.ts";
import { RpcPeer } from "../src/protocol/rpc.ts";
import { examples, test } from "./_harness.ts";

test("a channel side's heartbeat word counts its beats and its peer reads them; 0 until the first", () => {
  const a = ShmChannel.create();
  const b = ShmChannel.attach(a.name, a.token);
  try {
    assert.equal(a.peerBeat(), 0);
    b.beat();
    b.beat();
    assert.equal(a.peerBeat(), 2);
    assert.equal(b.peerBeat(), 0, "each side has its own word");
  } finally {
    b.close();
    a.close();
  }
});

test("an endpoint without its own heartbeat timer pings only when its owner checks it (one timer for many)", async () => {
  const a = ShmChannel.create();
  const b = ShmChannel.attach(a.name, a.token);
  const rtts: number[] = [];
  const plugin = new RpcPeer(b, { remoteName: "host", heartbeatIntervalMs: 0 });
  const host = new RpcPeer(a, {
    remoteName: "plugin",
    heartbeatIntervalMs: 10,
    heartbeatTimer: false,
    onHeartbeat: (rtt) => rtts.push(rtt),
  });
  const running = [plugin.run(), host.run()];
  try {
    await sleep(100); // Ten intervals: a timer of its own would have sent ten PINGs by now.
    assert.deepEqual(rtts, [], "no PING without a check");
    assert.equal(a.stats().messagesSent, 0);
    host.checkLiveness(); // No heartbeat word from this peer: every check is a PING.
    while (rtts.length === 0) await sleep(5);
    assert.equal(rtts.length, 1);
    assert.equal(a.stats().messagesSent, 1);
    host.close();
    host.checkLiveness(); // Closed: nothing to check, nothing thrown.
  } finally {
    host.close();
    plugin.close();
    await Promise.all(running);
  }
});

/** Host-to-plugin messages while the echo plugin sits idle for `checks` liveness checks. */
async function idleMessages(transport: TransportKind, checks: number) {
  const intervalMs = 40;
  const host = new PluginHost({
    dirs: [examples],
    logger: () => {},
    transport,
    heartbeatIntervalMs: intervalMs,
    // Generous: a loaded machine may delay a timer, and this test is about messages, not timing.
    stallTimeoutMs: 2_000,
  });
  const unresponsive: string[] = [];
  host.onState((e) => void (e.state === "unresponsive" && unresponsive.push(e.reason)));
  try {
    await host.load("echo");
    const [before] = host.transportStats();
    await sleep(intervalMs * checks);
    const [after] = host.transportStats();
    assert.equal(await host.call("echo", "echo", ["still here"]), "still here");
    assert.deepEqual(unresponsive, [], "never judged silent");
    return after.messagesSent - before.messagesSent;
  } finally {
    await host.close();
  }
}

test(
  "an idle shm plugin shows it is alive through its heartbeat word: the host pings it once per 10 checks, not each",
  async () => {
    const checks = 40;
    const shm = await idleMessages("shm", checks);
    const unix = await idleMessages("unix", checks);
    // Over a socket every check is a PING; over shm only the round-trip samples are (about checks / 10).
    assert.ok(unix >= checks / 2, `unix: ${unix} pings in ${checks} checks`);
    assert.ok(shm >= 1 && shm <= checks / 10 + 2, `shm: ${shm} pings in ${checks} checks`);
  },
  { timeoutMs: 60_000 },
);
