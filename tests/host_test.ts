import assert from "node:assert/strict";
import {
  CancelledError,
  DeadlineExceededError,
  HandshakeError,
  ManifestError,
  MessageTooLargeError,
  PluginCrashedError,
  PluginHost,
  type PluginHostOptions,
  RemoteError,
  type TransportKind,
} from "../mod.ts";
import type { LogEntry } from "../src/host/process.ts";
import {
  examples,
  fixtures,
  openSockets,
  processRunning as alive,
  segmentsLeft,
  segmentsOf,
  socketsLeft,
  test,
} from "./_harness.ts";

/** Runs `body` with a host, then closes it and checks nothing it started is left, whatever the transport. */
async function withHost(options: PluginHostOptions, body: (host: PluginHost, logs: LogEntry[]) => Promise<void>) {
  const logs: LogEntry[] = [];
  const segmentsBefore = segmentsOf();
  const socketsBefore = openSockets();
  const host = new PluginHost({ dirs: [examples], logger: (e) => logs.push(e), ...options });
  // Every instance ever started, not only those still listed at the end.
  const pids: number[] = [];
  host.onState((e) => e.state === "started" && pids.push(Number(/pid (\d+)/.exec(e.reason)?.[1])));
  try {
    await body(host, logs);
  } finally {
    await host.close();
    for (const pid of pids) assert.ok(!alive(pid), `plugin process ${pid} is gone after close()`);
    assert.deepEqual(
      await segmentsLeft([process.pid, ...pids], segmentsBefore),
      [],
      "no segment of ours left in /dev/shm",
    );
    assert.deepEqual(await socketsLeft(socketsBefore), [], "no socket of ours left open");
  }
}

for (const transport of ["shm", "unix", "tcp"] as TransportKind[]) {
  test(`[${transport}] calls, errors with remote stacks, unknown methods and host functions`, async () => {
    await withHost({ transport, hostFunctions: { now: () => "host-time" } }, async (host) => {
      const info = await host.load("echo");
      assert.equal(info.state, "running");
      assert.equal(info.transport, transport);
      assert.ok(info.methods.includes("add"));
      assert.equal(await host.call("echo", "add", [2, 3]), 5);
      assert.deepEqual(await host.call("echo", "echo", [{ a: [1, "x", null] }]), { a: [1, "x", null] });
      assert.equal(await host.call("echo", "askHost"), "host-time");
      await assert.rejects(host.call("echo", "fail", ["on purpose"]), (e: unknown) => {
        assert.ok(e instanceof RemoteError);
        assert.equal(e.code, "requested_failure");
        assert.match(e.message, /echo: on purpose/);
        assert.match(e.remoteStack, /main\.ts/);
        return true;
      });
      await assert.rejects(host.call("echo", "nope"), (e: unknown) => {
        assert.ok(e instanceof RemoteError);
        assert.equal(e.code, "method_not_found");
        assert.match(e.message, /available: .*add/);
        return true;
      });
      assert.equal(await host.call("echo", "mul", [6, 7]), 42, "still serving after errors");
    });
  }, { timeoutMs: 60_000 });

  test(`[${transport}] deadlines and cancellation reach the handler, and the plugin keeps serving`, async () => {
    await withHost({ transport }, async (host) => {
      await host.load("echo");
      await assert.rejects(host.call("echo", "sleep", [10_000], { deadlineMs: 50 }), DeadlineExceededError);
      const controller = new AbortController();
      const pending = host.call("echo", "sleep", [10_000], { signal: controller.signal });
      setTimeout(() => controller.abort(), 30);
      await assert.rejects(pending, CancelledError);
      assert.equal(await host.call("echo", "sleep", [1]), "slept 1 ms");
    });
  }, { timeoutMs: 60_000 });

  test(`[${transport}] events flow both ways, a Bun plugin keeps state, stdout cannot break the protocol`, async () => {
    await withHost({ transport }, async (host, logs) => {
      await Promise.all([host.load("echo"), host.load("kv")]);
      const events: unknown[] = [];
      host.onEvent((e) => events.push(e));
      const kv = host.client<{ set(k: string, v: unknown): boolean; get(k: string): unknown }>("kv");
      assert.equal(await kv.set("k", { deep: [1, 2] }), true);
      assert.deepEqual(await kv.get("k"), { deep: [1, 2] });
      assert.deepEqual(events, [{ plugin: "kv", name: "changed", data: { key: "k" } }]);
      await host.emit("echo", "hello", { n: 1 });
      assert.deepEqual(await host.call("echo", "lastEvent"), { name: "hello", data: { n: 1 } });
      assert.ok(logs.some((l) => l.plugin === "kv" && l.stream === "stdout" && l.line === "kv ready"));
    });
  }, { timeoutMs: 60_000 });

  test(`[${transport}] a stream transforms megabytes with flow control, and an early break cancels it`, async () => {
    await withHost({ transport }, async (host) => {
      await host.load("transform");
      const chunkBytes = 64 * 1024;
      const chunks = 64;
      const input = (async function* () {
        for (let i = 0; i < chunks; i++) yield new Uint8Array(chunkBytes).fill(97 + (i % 26));
      })();
      let received = 0;
      let index = 0;
      for await (const out of host.stream("transform", "upper", [], input)) {
        const bytes = out as Uint8Array;
        assert.equal(bytes.length, chunkBytes);
        assert.equal(bytes[0], 65 + (index++ % 26));
        received += bytes.length;
      }
      assert.equal(received, chunkBytes * chunks);
      let taken = 0;
      for await (const _ of host.stream("transform", "generate", [1_000_000, 1024])) if (++taken === 10) break;
      assert.equal(taken, 10);
      assert.equal((await Promise.resolve(host.list()[0])).state, "running");
    });
  }, { timeoutMs: 60_000 });
}

test("a plugin that crashes mid-call rejects every pending call at once with its exit code and stderr", async () => {
  await withHost({ restart: false }, async (host) => {
    await Promise.all([host.load("echo"), host.load("kv")]);
    const pending = [host.call("echo", "sleep", [30_000]), host.call("echo", "sleep", [30_000])];
    host.call("echo", "exit", [3]).catch(() => {});
    for (const p of pending) {
      await assert.rejects(p, (e: unknown) => {
        assert.ok(e instanceof PluginCrashedError, String(e));
        assert.equal(e.plugin, "echo");
        assert.equal(e.exitCode, 3);
        assert.match(e.message, /exiting with 3 as asked/);
        return true;
      });
    }
    assert.equal(host.list().find((p) => p.name === "echo")?.state, "failed");
    assert.equal(await host.call("kv", "size"), 0, "the other plugin keeps serving");
  });
}, { timeoutMs: 60_000 });

test("an argument over the message limit fails that call only", async () => {
  await withHost({ transport: "unix" }, async (host) => {
    await host.load("echo");
    await assert.rejects(host.call("echo", "echo", ["x".repeat(65 * 1024 * 1024)]), MessageTooLargeError);
    assert.equal(await host.call("echo", "add", [1, 1]), 2);
  });
}, { timeoutMs: 60_000 });

test("handshake failures: wrong token, version mismatch, exit during and silence through the handshake", async () => {
  await withHost({ dirs: [fixtures, examples], handshakeTimeoutMs: 1500 }, async (host) => {
    await assert.rejects(host.load(`${fixtures}/bad_token`), (e: unknown) => {
      assert.ok(e instanceof HandshakeError, String(e));
      assert.equal(e.code, "bad_token");
      assert.match(e.message, /not launched by this host/);
      return true;
    });
    await assert.rejects(host.load(`${fixtures}/exit_early`), (e: unknown) => {
      assert.ok(e instanceof HandshakeError, String(e));
      assert.equal(e.code, "exited");
      assert.match(e.message, /exited with code 7 .*database is unreachable/s);
      return true;
    });
    await assert.rejects(host.load(`${fixtures}/silent`), (e: unknown) => {
      assert.ok(e instanceof HandshakeError, String(e));
      assert.equal(e.code, "timeout");
      assert.match(e.message, /did not complete the handshake within 1500 ms/);
      return true;
    });
    assert.equal((await host.load("echo")).state, "running", "the host keeps serving");
  });
  await withHost({ protocol: [2, 3] }, async (host) => {
    await assert.rejects(host.load("echo"), (e: unknown) => {
      assert.ok(e instanceof HandshakeError, String(e));
      assert.equal(e.code, "version_mismatch");
      assert.match(e.message, /speaks protocol 1–1, the host 2–3; upgrade plugin "echo"/);
      return true;
    });
  });
}, { timeoutMs: 60_000 });

test("a plugin that sends garbage frames is failed with a protocol error; others keep serving", async () => {
  await withHost({ dirs: [fixtures, examples], restart: false }, async (host) => {
    await host.load("kv");
    const states: string[] = [];
    host.onState((e) => e.plugin === "garbage" && states.push(`${e.state}: ${e.reason}`));
    await host.load(`${fixtures}/garbage`);
    for (let i = 0; i < 100 && !states.some((s) => s.startsWith("crashed")); i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(states.some((s) => /^crashed: protocol violation: frame of 3 bytes/.test(s)), states.join("\n"));
    assert.equal(await host.call("kv", "size"), 0);
  });
}, { timeoutMs: 60_000 });

test("malformed manifests are reported with the file and the field", async () => {
  const host = new PluginHost({ dirs: [fixtures] });
  const problems = host.discover().filter((d) => d.error).map((d) => d.error!);
  const runtime = problems.find((e) => e.file.endsWith("bad_manifest/plugin.json"));
  assert.ok(runtime instanceof ManifestError);
  assert.equal(runtime.field, "runtime");
  const json = problems.find((e) => e.file.endsWith("not_json/plugin.json"));
  assert.match(json!.message, /is not valid JSON/);
  await assert.rejects(host.load(`${fixtures}/bad_manifest`), ManifestError);
  await host.close();
});
