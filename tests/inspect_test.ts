/**
 * Debugging plugins: `load(name, {inspect})` starts a plugin (sandboxed, as
 * always) under its runtime's inspector and the "inspect" event says where;
 * a real inspector session pauses it (Chrome DevTools Protocol for Deno and
 * Node, WebKit's for Bun) for longer than the stall timeout and it is not
 * killed; resumed, it serves. And blame for a stall: with `blameStalls`, a
 * plugin stuck in `spinForever` is profiled before it is killed, the stall
 * event names the function and the `.cpuprofile` file parses.
 *
 * The inspector client is the host's own (src/host/_cdp.ts): Node 20, one
 * of the hosts these tests run under, has no WebSocket without a flag.
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import {
  InspectError,
  type InspectEvent,
  PluginHost,
  type PluginHostOptions,
  PluginStalledError,
  type StallEvent,
  type StateEvent,
} from "../mod.ts";
import { CdpSession } from "../src/host/_cdp.ts";
import { createAdminApp } from "../src/admin/app.ts";
import { fixtures, processRunning, segmentsLeft, segmentsOf, test } from "./_harness.ts";

/** Short supervision times so a stall is decided quickly; the pause below outlasts them many times. */
const supervision = { heartbeatIntervalMs: 100, stallTimeoutMs: 500, stallGraceMs: 300 } as const;
const stallKillMs = supervision.stallTimeoutMs + supervision.stallGraceMs;

const plugins = { deno: "spinner", bun: "spinner-bun", node: "spinner-node" } as const;

async function until(what: string, check: () => boolean, limitMs = 20_000): Promise<void> {
  const started = Date.now();
  while (!check()) {
    if (Date.now() - started > limitMs) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

interface Seen {
  states: StateEvent[];
  inspects: InspectEvent[];
  stalls: StallEvent[];
  logs: string[];
}

async function withHost(options: PluginHostOptions, body: (host: PluginHost, seen: Seen) => Promise<void>) {
  const seen: Seen = { states: [], inspects: [], stalls: [], logs: [] };
  const host = new PluginHost({
    dirs: [fixtures],
    logger: (entry) => seen.logs.push(`[${entry.plugin}] ${entry.line}`),
    restartBackoffMs: 20,
    ...options,
  });
  const segmentsBefore = segmentsOf();
  host.on("state", (e) => seen.states.push(e));
  host.on("inspect", (e) => seen.inspects.push(e));
  host.on("stall", (e) => seen.stalls.push(e));
  const pids = new Set<number>();
  host.onState(() => host.list().forEach((p) => p.pids.forEach((pid) => pids.add(pid))));
  try {
    await body(host, seen);
  } catch (error) {
    console.error(seen.logs.slice(-20).join("\n"));
    throw error;
  } finally {
    await host.close();
    for (const pid of pids) assert.ok(!processRunning(pid), `plugin process ${pid} is gone after close()`);
    assert.deepEqual(await segmentsLeft([process.pid, ...pids], segmentsBefore), [], "no segment of ours left");
  }
}

for (const [runtime, name] of Object.entries(plugins)) {
  test(
    `inspect (${runtime} plugin): paused by a debugger longer than the stall timeout, it is not killed; resumed, it serves`,
    async () => {
      await withHost(supervision, async (host, seen) => {
        const info = await host.load(name, { inspect: true });
        assert.equal(seen.inspects.length, 1);
        const inspect = seen.inspects[0];
        assert.equal(inspect.plugin, name);
        assert.equal(inspect.runtime, runtime);
        assert.equal(inspect.pid, info.pid);
        assert.match(inspect.webSocketUrl, new RegExp(`^ws://127\\.0\\.0\\.1:${inspect.port}/.+`));
        assert.match(
          inspect.devtoolsUrl,
          runtime === "bun" ? /^https:\/\/debug\.bun\.sh\/#127\.0\.0\.1:/ : /^devtools:/,
        );

        const session = await CdpSession.open(inspect.webSocketUrl);
        try {
          await session.send("Debugger.enable");
          // Bun (WebKit's protocol) pauses only once breakpoints are active; V8 has them active already.
          if (runtime === "bun") await session.send("Debugger.setBreakpointsActive", { active: true });
          const paused = session.next("Debugger.paused");
          await session.send("Debugger.pause");
          // It pauses at the next JavaScript it runs: the heartbeat timer, within one interval.
          await paused;
          const pausedAt = seen.states.length;
          await until(
            "the unresponsive report",
            () => seen.states.slice(pausedAt).some((e) => e.state === "unresponsive"),
          );
          const unresponsiveAt = Date.now();
          // Stay paused for several stall kills' worth of silence (polled: a timer may fire a tick early).
          await until("three stall kills' worth of silence", () => Date.now() - unresponsiveAt >= 3 * stallKillMs);
          const after = seen.states.slice(pausedAt);
          assert.deepEqual(
            after.filter((e) => e.state !== "unresponsive"),
            [],
            "nothing but unresponsive while paused",
          );
          assert.match(after[0].reason, /under the inspector/);
          assert.ok(processRunning(info.pid), "still alive while paused");
          assert.deepEqual(seen.stalls, []);

          // A call made while it is paused waits for the resume instead of failing.
          const call = host.call(name, "add", [2, 3]);
          await session.send("Debugger.resume");
          assert.equal(await call, 5);
          await until("answering again", () => seen.states.slice(pausedAt).some((e) => e.state === "ready"));
          assert.equal(host.list()[0].pid, info.pid, "the same instance serves: it was never restarted");
        } finally {
          await session.close();
        }
      });
    },
    { timeoutMs: 60_000 },
  );
}

for (const runtime of ["deno", "node"] as const) {
  test(
    `blame (${runtime} plugin): a plugin stuck in spinForever is profiled, named in the stall event and killed`,
    async () => {
      const profileDir = mkdtempSync(`${tmpdir()}/pshm-profiles-`);
      try {
        await withHost({ ...supervision, blameStalls: true, profileDir }, async (host, seen) => {
          const name = plugins[runtime];
          const info = await host.load(name);
          const cmdline = readFileSync(`/proc/${info.pid}/cmdline`, "utf8").split("\0");
          const flag = cmdline.find((arg) => arg.startsWith("--inspect")) ?? "";
          if (runtime === "node") {
            // On demand: Node gets its port but opens nothing until the host sends SIGUSR1, at a stall.
            assert.match(flag, /^--inspect-port=127\.0\.0\.1:\d+$/);
            const port = Number(flag.slice(flag.lastIndexOf(":") + 1));
            await assert.rejects(fetch(`http://127.0.0.1:${port}/json/list`), "no Node inspector before the stall");
          } else {
            assert.match(flag, /^--inspect=127\.0\.0\.1:\d+$/);
          }
          await assert.rejects(host.call(name, "spin"), (error: unknown) => {
            assert.ok(error instanceof PluginStalledError, String(error));
            assert.match(error.message, /busy in spinForever \(main\.m?[jt]s:\d+\)/);
            return true;
          });
          assert.equal(seen.stalls.length, 1);
          const { blame, blameError } = seen.stalls[0];
          assert.equal(blameError, undefined);
          assert.ok(blame);
          assert.equal(blame.stack[0].functionName, "spinForever", JSON.stringify(blame.stack));
          assert.match(blame.stack[0].url, /spinner(_node)?\/main\.m?[jt]s$/);
          assert.ok(blame.top.length > 0, "the profile has samples");
          assert.ok(blame.profilePath.startsWith(profileDir) && blame.profilePath.endsWith(".cpuprofile"));
          const profile = JSON.parse(readFileSync(blame.profilePath, "utf8"));
          assert.ok(Array.isArray(profile.nodes) && profile.nodes.length > 0 && Array.isArray(profile.samples));
          const killed = seen.states.find((e) => e.state === "killed");
          assert.match(killed?.reason ?? "", /stalled: no frame for \d+ ms; stuck in spinForever/);
          // The dashboard renders each plugin's history from the admin API: the blame is in it.
          const token = "inspect-test-token-0123456789";
          const admin = createAdminApp(host, { token });
          const detail = await admin.request(`/api/plugins/${name}`, { headers: { authorization: `Bearer ${token}` } });
          const { history } = await detail.json() as { history: StateEvent[] };
          assert.ok(history.some((e) => e.state === "killed" && /stuck in spinForever/.test(e.reason)));
          assert.equal(await host.call(name, "add", [1, 1]), 2, "restarted and serving");
        });
      } finally {
        rmSync(profileDir, { recursive: true, force: true });
      }
    },
    { timeoutMs: 60_000 },
  );
}

test(
  "blame (bun plugin): the stall event says why a Bun plugin cannot be profiled, and it is still killed",
  async () => {
    const profileDir = mkdtempSync(`${tmpdir()}/pshm-profiles-`);
    try {
      await withHost({ ...supervision, blameStalls: true, profileDir }, async (host, seen) => {
        await host.load("spinner-bun");
        await assert.rejects(host.call("spinner-bun", "spin"), PluginStalledError);
        assert.equal(seen.stalls.length, 1);
        assert.equal(seen.stalls[0].blame, undefined);
        assert.match(seen.stalls[0].blameError ?? "", /Bun's inspector .* cannot be profiled/);
        assert.equal(await host.call("spinner-bun", "add", [1, 1]), 2, "restarted and serving");
      });
    } finally {
      rmSync(profileDir, { recursive: true, force: true });
    }
  },
  { timeoutMs: 60_000 },
);

test(
  "inspect: a port that is taken, a port that cannot be and a plugin already running are typed errors; the host keeps serving",
  async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve));
    const port = (taken.address() as { port: number }).port;
    try {
      await withHost(supervision, async (host, seen) => {
        await assert.rejects(host.load("spinner", { inspect: { port } }), (error: unknown) => {
          assert.ok(error instanceof InspectError);
          assert.equal(error.code, "port_in_use");
          assert.match(
            error.message,
            new RegExp(`127\\.0\\.0\\.1:${port}: another process listens there; pick another`),
          );
          return true;
        });
        for (const bad of [80, 70_000, 1.5, "9229"]) {
          await assert.rejects(
            host.load("spinner", { inspect: { port: bad as number } }),
            (error: unknown) => error instanceof InspectError && error.code === "bad_port",
          );
        }
        await host.load("spinner");
        await assert.rejects(
          host.load("spinner", { inspect: true }),
          (error: unknown) => error instanceof InspectError && error.code === "already_running",
        );
        assert.equal(await host.call("spinner", "add", [1, 2]), 3, "still serving");
        assert.deepEqual(seen.inspects, []);
      });
    } finally {
      taken.close();
    }
  },
  { timeoutMs: 60_000 },
);

test(
  "inspect: a reload moves off the port the old instance holds, a restart comes back under the inspector",
  async () => {
    const spare = createServer();
    await new Promise<void>((resolve) => spare.listen(0, "127.0.0.1", resolve));
    const port = (spare.address() as { port: number }).port;
    await new Promise<void>((resolve) => spare.close(() => resolve()));
    await withHost(supervision, async (host, seen) => {
      await host.load("spinner", { inspect: { port } });
      assert.equal(seen.inspects[0].port, port);
      await host.reload("spinner");
      assert.equal(seen.inspects.length, 2);
      assert.notEqual(seen.inspects[1].port, port, "the old instance held the port while the new one started");
      assert.equal(await host.call("spinner", "add", [1, 1]), 2);
      await host.restart("spinner");
      assert.equal(seen.inspects.length, 3);
      assert.equal(seen.inspects[2].port, port, "restart() starts it on the given port again");
      const targets = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json() as {
        webSocketDebuggerUrl: string;
      }[];
      assert.equal(targets[0].webSocketDebuggerUrl, seen.inspects[2].webSocketUrl);
    });
  },
  { timeoutMs: 60_000 },
);

test(
  "blame (node plugin): an on-demand inspector port someone took since the start is not trusted; the stall is still killed",
  async () => {
    await withHost(
      { ...supervision, blameStalls: true, profileDir: `${tmpdir()}/pshm-never-written` },
      async (host, seen) => {
        const info = await host.load("spinner-node");
        const flag = readFileSync(`/proc/${info.pid}/cmdline`, "utf8").split("\0").find((a) =>
          a.startsWith("--inspect-port=")
        );
        const port = Number(flag!.slice(flag!.lastIndexOf(":") + 1));
        const squatter = createServer((socket) => socket.destroy());
        await new Promise<void>((resolve) => squatter.listen(port, "127.0.0.1", resolve));
        try {
          await assert.rejects(host.call("spinner-node", "spin"), PluginStalledError);
          assert.equal(seen.stalls[0].blame, undefined);
          assert.match(seen.stalls[0].blameError ?? "", new RegExp(`another process took its inspector port ${port}`));
          assert.ok(!existsSync(`${tmpdir()}/pshm-never-written`));
        } finally {
          squatter.close();
        }
      },
    );
  },
  { timeoutMs: 60_000 },
);

test(
  "unload escalates to SIGKILL after SIGTERM even under a Deno host, whose ChildProcess ignores a second kill()",
  async () => {
    // Default stall detection (seconds): the unload's own escalation must be what ends it, not a stall kill.
    await withHost({ stopTimeoutMs: 200 }, async (host, seen) => {
      const info = await host.load("stubborn");
      host.call("stubborn", "spin").catch(() => {}); // Stuck: it can neither drain nor stop politely.
      await host.unload("stubborn");
      assert.ok(!processRunning(info.pid), "SIGTERM is ignored, so only the SIGKILL that followed can have ended it");
      assert.equal(host.list()[0].state, "stopped");
      const ends = seen.states.filter((e) => e.plugin === "stubborn" && e.state !== "started");
      // Deno's ChildProcess would also name the first signal it sent (SIGTERM) as the one the process died of.
      assert.ok(ends.some((e) => /"signal":"SIGKILL"/.test(e.reason)), JSON.stringify(ends));
      assert.ok(!ends.some((e) => /stall/.test(e.reason)), JSON.stringify(ends));
    });
  },
  { timeoutMs: 60_000 },
);

test("inspect: without inspect or blameStalls no plugin gets an inspector (no --inspect flag, no port)", async () => {
  await withHost(supervision, async (host) => {
    const info = await host.load("spinner");
    const cmdline = readFileSync(`/proc/${info.pid}/cmdline`, "utf8").split("\0");
    assert.ok(
      !cmdline.some((arg) => arg.startsWith("--inspect") || arg.startsWith("--inet") || arg.startsWith("--bind")),
    );
    assert.ok(existsSync(`/proc/${info.pid}`));
  });
}, { timeoutMs: 60_000 });
