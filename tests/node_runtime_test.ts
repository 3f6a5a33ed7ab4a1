/**
 * Node as a runtime for hosts and plugins, mixed with Deno and Bun in every
 * direction: this file runs under deno test, bun test and node --test, so the
 * in-process host is each of the three in turn, and the host processes it
 * starts are Node.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import process from "node:process";
import { PluginHost } from "../mod.ts";
import { findLibrary } from "../src/native/library.ts";
import {
  dist,
  examples,
  fixtures,
  peerPath,
  processRunning as alive,
  runtime,
  runtimes,
  segmentsLeft,
  segmentsOf,
  startPeer,
  test,
} from "./_harness.ts";

test(`a ${runtime} host serves a Deno, a Bun and a Node plugin side by side`, async () => {
  const segmentsBefore = segmentsOf();
  const events: { plugin: string; name: string; data: unknown }[] = [];
  const host = new PluginHost({
    dirs: [examples, fixtures],
    hostFunctions: { now: () => "host-time" },
    logger: () => {},
  });
  host.onEvent((e) => events.push(e));
  let pids: (number | undefined)[] = [];
  try {
    const infos = await Promise.all(["echo", "kv", "node-echo"].map((n) => host.load(n)));
    pids = infos.map((i) => i.pid);
    assert.deepEqual(infos.map((i) => i.runtime), ["deno", "bun", "node"]);
    assert.equal(await host.call("echo", "add", [2, 3]), 5);
    assert.equal(await host.call("kv", "set", ["k", "v"]), true);
    const who = await host.call("node-echo", "whoami") as { runtime: string; node: string };
    assert.equal(who.runtime, "node", "the node plugin really runs on Node");
    assert.equal(await host.call("node-echo", "add", [20, 22]), 42);
    assert.deepEqual(await host.call("node-echo", "echo", [{ a: [1, "x", null] }]), { a: [1, "x", null] });
    assert.equal(await host.call("node-echo", "askHost"), "host-time");
    assert.ok(
      processTreeNsPids(pids[2]!).includes(await host.call("node-echo", "pid") as number),
      "the pid the Node plugin sees is one of its instance's processes (inside the sandbox's PID namespace)",
    );
    assert.equal(await host.call("node-echo", "shout", ["hi"]), true);
    assert.deepEqual(events.find((e) => e.plugin === "node-echo"), {
      plugin: "node-echo",
      name: "shouted",
      data: { text: "hi" },
    });
    await host.emit("node-echo", "ping", { n: 1 });
    assert.deepEqual(await host.call("node-echo", "lastEvent"), { name: "ping", data: { n: 1 } });
  } finally {
    await host.close();
  }
  for (const pid of pids) assert.ok(!alive(pid), `plugin process ${pid} is gone after close()`);
  assert.deepEqual(await segmentsLeft([process.pid, ...pids], segmentsBefore), []);
}, { timeoutMs: 60_000 });

/** Runs tests/peers/mixed_host.ts under `which`; returns what it printed and how it ended. */
async function mixedHost(which: "deno" | "bun" | "node", end: "close" | "exit") {
  const host = startPeer(which, peerPath("mixed_host.ts"), { PSHM_END: end });
  const status = await host.exited;
  const line = host.stdout().trim().split("\n").at(-1) ?? "";
  assert.ok(line.startsWith("{"), `the ${which} host printed its result; stderr:\n${host.stderr()}`);
  return { status, result: JSON.parse(line), host, stderr: host.stderr() };
}

test("an idle Node host with Deno, Bun and Node plugins exits by itself once closed, leaving nothing", async () => {
  // No timer and no kill here: the host process returns from its module
  // after close(). If a waiter thread or koffi's relay kept Node's event loop
  // alive, this would hang until the test's timeout.
  const { status, result, host, stderr } = await mixedHost("node", "close");
  assert.deepEqual(status, { code: 0, signal: null }, stderr);
  assert.equal(result.host, "node");
  assert.deepEqual(result.runtimes, ["deno", "bun", "node"]);
  assert.equal(result.echo, 5);
  assert.equal(result.kv, true);
  assert.equal(result.node.runtime, "node");
  assert.equal(result.nodeAsksHost, "host-time");
  for (const pid of result.pids) assert.ok(!alive(pid), `plugin ${pid} was stopped by close()`);
  assert.deepEqual(await segmentsLeft([host.child.pid, ...result.pids], []), []);
}, { timeoutMs: 60_000 });

test("a Node host that calls process.exit() with channels open exits cleanly, and its plugins follow", async () => {
  // process.exit() tears Node down while waiter threads are parked and may be
  // calling back through koffi's relay: the exit must neither hang nor abort.
  const { status, result, host, stderr } = await mixedHost("node", "exit");
  assert.deepEqual(status, { code: 0, signal: null }, stderr);
  assert.deepEqual(result.runtimes, ["deno", "bun", "node"]);
  for (let i = 0; i < 200 && result.pids.some(alive); i++) await new Promise((r) => setTimeout(r, 50));
  for (const pid of result.pids) assert.ok(!alive(pid), `plugin ${pid} noticed its host is gone and exited`);
  assert.deepEqual(await segmentsLeft([host.child.pid, ...result.pids], []), []);
}, { timeoutMs: 60_000 });

if (runtime !== "node") {
  test(
    `a Node plugin reports runtime "node" to a ${runtime} host, and a ${runtime} host process exits by itself`,
    async () => {
      const { status, result, stderr } = await mixedHost(runtime, "close");
      assert.deepEqual(status, { code: 0, signal: null }, stderr);
      assert.equal(result.host, runtime);
      assert.deepEqual(result.runtimes, ["deno", "bun", "node"]);
    },
    { timeoutMs: 60_000 },
  );
}

test("under Node without koffi installed, opening the library says which npm package to install", () => {
  // The compiled native layer alone, outside any node_modules tree.
  const dir = mkdtempSync(`${tmpdir()}/pshm-no-koffi-`);
  try {
    cpSync(`${dist}src/native`, `${dir}/src/native`, { recursive: true });
    // The native layer's errors (src/native/errors.js) extend the one base class.
    cpSync(`${dist}src/plugin_shm_error.js`, `${dir}/src/plugin_shm_error.js`);
    const script = `import("${dir}/src/native/native.js").then((m) => m.getNative()).catch((e) => {
      console.error(e.name + ": " + e.message); process.exit(3); })`;
    // A library that exists (this copy has no native/ or zig-out/ of its own), so the adapter is what fails.
    const env = { ...process.env, PLUGIN_SHM_LIB: findLibrary() };
    const result = spawnSync(runtimes.node, ["--input-type=module", "-e", script], { encoding: "utf8", env });
    assert.equal(result.status, 3, result.stderr);
    assert.match(result.stderr, /NativeLibraryError: plugin-shm on Node needs the npm package koffi 3\.3\.4/);
    assert.match(result.stderr, /npm install koffi@3\.3\.4/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/**
 * The pids `root` and its descendants have in their own (innermost) PID namespace, from NSpid in
 * /proc/PID/status: the sandbox launcher starts plugins in a PID namespace of their own.
 */
function processTreeNsPids(root: number): number[] {
  const found: number[] = [];
  const walk = (pid: number) => {
    const nsPid = /^NSpid:\s*(.*)$/m.exec(readText(`/proc/${pid}/status`))?.[1].trim().split(/\s+/).pop();
    if (nsPid) found.push(Number(nsPid));
    let tasks: string[] = [];
    try {
      tasks = readdirSync(`/proc/${pid}/task`);
    } catch {
      return;
    }
    for (const task of tasks) {
      for (const child of readText(`/proc/${pid}/task/${task}/children`).split(" ").filter(Boolean)) {
        walk(Number(child));
      }
    }
  };
  walk(root);
  return found;
}

function readText(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return ""; // gone meanwhile
  }
}
