/**
 * The host's contract with its users where the first release broke it:
 * listeners that throw, load/unload/close races, `await host.client()`,
 * option ranges, timers that outlive close(), the start-up sweep, name
 * resolution, the scrubbed plugin environment, and the collaborator options.
 */
import assert from "node:assert/strict";
import { cpSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import process from "node:process";
import {
  HostClosedError,
  type LaunchPlan,
  LoadInterruptedError,
  PluginHost,
  type PluginHostOptions,
  PluginShmError,
  RemoteError,
  type StateEvent,
} from "../mod.ts";
import {
  examples,
  fixtures,
  peerPath,
  processRunning as alive,
  runtime,
  segmentsLeft,
  segmentsOf,
  shmSegments,
  startPeer,
  test,
} from "./_harness.ts";

async function until(what: string, check: () => boolean, limitMs = 20_000): Promise<void> {
  const started = Date.now();
  while (!check()) {
    if (Date.now() - started > limitMs) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Runs `body` with a host; afterwards every process it ever started is gone, and its segments too. */
async function withHost(
  options: PluginHostOptions,
  body: (host: PluginHost, events: StateEvent[]) => Promise<void>,
): Promise<void> {
  const host = new PluginHost({ dirs: [examples, fixtures], logger: () => {}, restartBackoffMs: 20, ...options });
  const events: StateEvent[] = [];
  const segmentsBefore = segmentsOf();
  host.onState((e) => events.push(e));
  try {
    await body(host, events);
  } finally {
    await host.close();
    for (const pid of spawnedPids(events)) assert.ok(!alive(pid), `plugin process ${pid} is gone after close()`);
    assert.deepEqual(await segmentsLeft([process.pid, ...spawnedPids(events)], segmentsBefore), []);
  }
}

function spawnedPids(events: StateEvent[]): number[] {
  return events.flatMap((e) => (e.state === "started" ? [Number(/pid (\d+)/.exec(e.reason)?.[1])] : []));
}

test("a state listener that throws on a crash neither kills the host nor stops the restart", async () => {
  const listenerErrors: unknown[] = [];
  await withHost({}, async (host, events) => {
    host.on("listener-error", (e) => listenerErrors.push(e.error));
    host.onState((e) => {
      if (e.state === "crashed") throw new Error("listener bug");
    });
    const { pid } = await host.load("echo");
    process.kill(pid!, "SIGKILL");
    await until("the restart", () => events.some((e) => e.state === "ready" && events.indexOf(e) > 2));
    assert.equal(await host.call("echo", "add", [2, 2]), 4);
    assert.ok(listenerErrors.some((e) => (e as Error).message === "listener bug"), "the error was reported");
  });
}, { timeoutMs: 60_000 });

test("an event listener that throws keeps the plugin's connection up", async () => {
  const listenerErrors: unknown[] = [];
  await withHost({}, async (host, events) => {
    host.on("listener-error", (e) => listenerErrors.push(e));
    const seen: unknown[] = [];
    host.onEvent(() => {
      throw new Error("event listener bug");
    });
    host.onEvent((e) => seen.push(e.data));
    await host.load("introspect");
    await host.call("introspect", "emitEvent", ["tick", 1]);
    await until("the event", () => seen.length === 1);
    assert.equal(await host.call("introspect", "emitEvent", ["tick", 2]), true, "the connection still serves");
    assert.ok(!events.some((e) => e.state === "crashed"), events.map((e) => e.state).join(","));
    assert.ok(listenerErrors.length >= 1);
  });
}, { timeoutMs: 60_000 });

test("unload() during load() stops what was starting: nothing runs once unload returns", async () => {
  await withHost({}, async (host, events) => {
    const loading = host.load("echo");
    loading.catch(() => {});
    await until("the spawn", () => spawnedPids(events).length === 1);
    await host.unload("echo");
    const [pid] = spawnedPids(events);
    assert.ok(!alive(pid), "the instance that was starting is gone");
    await assert.rejects(loading, LoadInterruptedError);
    assert.equal(host.list()[0].pids.length, 0);
    // It can be loaded again afterwards.
    assert.equal((await host.load("echo")).state, "running");
  });
}, { timeoutMs: 60_000 });

test("close() during load() stops what was starting and load() rejects with HostClosedError", async () => {
  const host = new PluginHost({ dirs: [examples], logger: () => {} });
  const events: StateEvent[] = [];
  host.onState((e) => events.push(e));
  const loading = host.load("kv");
  loading.catch(() => {});
  await until("the spawn", () => spawnedPids(events).length === 1);
  await host.close();
  assert.ok(!alive(spawnedPids(events)[0]));
  await assert.rejects(loading, HostClosedError);
  await assert.rejects(host.load("kv"), HostClosedError);
}, { timeoutMs: 60_000 });

test("two concurrent load()s of one plugin share one start and both return it running", async () => {
  await withHost({}, async (host, events) => {
    const [a, b] = await Promise.all([host.load("echo"), host.load("echo")]);
    assert.equal(a.state, "running");
    assert.equal(b.state, "running");
    assert.equal(a.pid, b.pid);
    assert.equal(spawnedPids(events).length, 1, "one process");
    assert.equal(await host.call("echo", "add", [1, 1]), 2);
  });
}, { timeoutMs: 60_000 });

test("await host.client() gives the typed proxy back instead of hanging", async () => {
  await withHost({}, async (host) => {
    await host.load("echo");
    const client = await host.client<{ add(a: number, b: number): number }>("echo");
    assert.equal(await client.add(20, 22), 42);
  });
}, { timeoutMs: 60_000 });

test("every host option is range-checked with an error that names it", () => {
  const bad: [PluginHostOptions, RegExp, ErrorConstructor][] = [
    [{ heartbeatIntervalMs: 0 }, /heartbeatIntervalMs must be an integer from 10/, RangeError],
    [{ heartbeatIntervalMs: 1000, stallTimeoutMs: 500 }, /stallTimeoutMs must be an integer from 1001/, RangeError],
    [{ stallGraceMs: -1 }, /stallGraceMs/, RangeError],
    [{ handshakeTimeoutMs: 0 }, /handshakeTimeoutMs/, RangeError],
    [{ stopTimeoutMs: Number.NaN }, /stopTimeoutMs/, RangeError],
    [{ restartBackoffMs: 100, restartBackoffMsMax: 50 }, /restartBackoffMsMax must be an integer from 100/, RangeError],
    [{ crashLimit: 0 }, /crashLimit/, RangeError],
    [{ crashWindowMs: 0 }, /crashWindowMs/, RangeError],
    [{ callWaitMs: -5 }, /callWaitMs/, RangeError],
    [{ instances: { echo: 0 } }, /instances\.echo/, RangeError],
    [{ ringBytes: 5000 }, /ringBytes must be a power of two/, RangeError],
    [{ protocol: [3, 1] as unknown as [number, number] }, /protocol must be \[oldest, newest\]/, RangeError],
    [{ transport: "udp" as "tcp" }, /transport must be "shm", "unix" or "tcp"/, TypeError],
    [{ callPolicy: "maybe" as "wait" }, /callPolicy/, TypeError],
    [{ env: { A: 1 as unknown as string } }, /env\.A must be a string/, TypeError],
  ];
  for (const [options, message, kind] of bad) {
    assert.throws(() => new PluginHost(options), (e: Error) => e instanceof kind && message.test(e.message));
  }
});

test("a closed host does not linger on a restart's recovery timer", async () => {
  const peer = startPeer(runtime, peerPath("host_restart_close.ts"), {});
  const { code } = await peer.exited;
  assert.equal(code, 0, peer.stderr());
  assert.match(peer.stdout(), /closed/);
  assert.doesNotMatch(peer.stdout(), /lingered/, "something kept the closed host's process alive");
}, { timeoutMs: 60_000 });

test("a new host sweeps segments whose creator died before anyone attached", async () => {
  const child = startPeer(runtime, peerPath("creator_peer.ts"), {});
  const name = await new Promise<string>((resolve, reject) => {
    child.child.stdout!.on("data", (d) => resolve(String(d).trim()));
    child.exited.then(() => reject(new Error(`creator exited early: ${child.stderr()}`)));
  });
  child.child.kill("SIGKILL");
  await child.exited;
  assert.ok(shmSegments().includes(name), "the dead creator left its segment");
  const host = new PluginHost({ dirs: [examples] });
  await host.close();
  assert.ok(!shmSegments().includes(name), "the host swept it at start");
}, { timeoutMs: 30_000 });

test('load("kv") means the discovered plugin even with a kv/ folder in the current directory', async () => {
  const cwd = process.cwd();
  const dir = mkdtempSync(`${tmpdir()}/pshm-cwd-`);
  cpSync(`${examples}/kv`, `${dir}/kv`, { recursive: true });
  writeFileSync(
    `${dir}/kv/plugin.json`,
    JSON.stringify({ name: "impostor", version: "6.6.6", runtime: "deno", entry: "main.ts" }),
  );
  process.chdir(dir);
  try {
    await withHost({ dirs: [examples] }, async (host) => {
      const info = await host.load("kv");
      assert.equal(info.name, "kv");
      assert.equal(info.dir, `${examples}/kv`);
      // A path that is not a known name is still a directory, resolved absolute.
      await assert.rejects(host.load("./kv"), /Plugin "impostor"/);
    });
  } finally {
    process.chdir(cwd);
    rmSync(dir, { recursive: true, force: true });
  }
}, { timeoutMs: 60_000 });

test("plugins get a scrubbed environment: launch variables, minimal PATH, and only what is granted", async () => {
  process.env.PSHM_TEST_SECRET = "do-not-leak";
  try {
    await withHost({ env: { GRANTED_BY_HOST: "yes" } }, async (host) => {
      await host.load("introspect");
      const env = await host.call("introspect", "env") as Record<string, string>;
      assert.equal(env.PSHM_TEST_SECRET, undefined, "a host secret reached the plugin");
      assert.equal(env.GRANTED_BY_HOST, "yes");
      assert.equal(env.PATH, "/usr/local/bin:/usr/bin:/bin");
      assert.ok(env.HOME && env.TMPDIR);
      assert.equal(env.PLUGIN_SHM_NAME, "introspect");
      assert.match(env.PLUGIN_SHM_TOKEN, /^[0-9a-f]{64}$/);
    });
  } finally {
    delete process.env.PSHM_TEST_SECRET;
  }
}, { timeoutMs: 60_000 });

test("the plugin runs with WELCOME's heartbeat and both sides keep the negotiated version", async () => {
  await withHost({ heartbeatIntervalMs: 700 }, async (host) => {
    const info = await host.load("introspect");
    assert.equal(info.protocolVersion, 1);
    assert.deepEqual(await host.call("introspect", "session"), { protocolVersion: 1, heartbeatIntervalMs: 700 });
  });
}, { timeoutMs: 60_000 });

test("a verifier's refusal fails load() with its error before anything is spawned", async () => {
  class Refused extends PluginShmError {
    readonly code = "refused_for_test";
  }
  const refusals: unknown[] = [];
  await withHost({
    verifier: {
      verify(manifest) {
        throw new Refused(`${manifest.name} is not in the lock`);
      },
    },
  }, async (host, events) => {
    host.on("refused", (e) => refusals.push(e.plugin));
    await assert.rejects(host.load("echo"), Refused);
    assert.equal(spawnedPids(events).length, 0, "nothing was spawned");
    assert.deepEqual(refusals, ["echo"]);
    assert.ok(events.some((e) => e.state === "refused"));
  });
}, { timeoutMs: 60_000 });

test("a verifier's runDir and a launch planner shape how the plugin runs", async () => {
  // A copy at the same depth as the fixture, so its relative import of the SDK still resolves.
  const runDir = `${fixtures}/.verified-${process.pid}`;
  cpSync(`${fixtures}/introspect`, runDir, { recursive: true });
  const planned: LaunchPlan[] = [];
  try {
    await withHost({
      verifier: { verify: () => ({ runDir }) },
      launchPlanner: {
        plan(_manifest, base) {
          planned.push(base);
          return { ...base, env: { ...base.env, PLANNED: "by the planner" } };
        },
      },
    }, async (host) => {
      await host.load("introspect");
      assert.equal(await host.call("introspect", "cwd"), runDir);
      assert.equal((await host.call("introspect", "env") as Record<string, string>).PLANNED, "by the planner");
      assert.equal(planned.length, 1);
      assert.ok(planned[0].args.includes(`${runDir}/main.ts`), planned[0].args.join(" "));
    });
  } finally {
    rmSync(runDir, { recursive: true, force: true });
  }
}, { timeoutMs: 60_000 });

test("instrumentation sees every routed call begin and end, with the error of a failed one", async () => {
  const seen: string[] = [];
  await withHost({
    instrumentation: {
      begin: (plugin, method) => `${plugin}.${method}`,
      end: (_plugin, _method, state, error) => seen.push(`${state}${error ? ` failed: ${(error as Error).name}` : ""}`),
    },
  }, async (host) => {
    await host.load("echo");
    await host.call("echo", "add", [1, 2]);
    await assert.rejects(host.call("echo", "fail", ["no"]), RemoteError);
    assert.deepEqual(seen, ["echo.add", "echo.fail failed: RemoteError"]);
  });
}, { timeoutMs: 60_000 });
