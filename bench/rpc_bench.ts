/**
 * The plugin boundary, measured through the public host API:
 *
 * - rpc.rtt / rpc.throughput: an echo call to the Deno `echo` example plugin,
 *   sequential (latency) and pipelined (calls/s), over shm, unix and tcp, next
 *   to what a user would otherwise pick for the same job in the same run:
 *   child_process IPC (process.send) and a worker's postMessage.
 * - plugin.cold_start: spawn → handshake done, Deno and Bun plugins.
 * - host.mem_per_plugin: host heap + external memory per idle plugin.
 * - restart.time: crash → serving again.  reload.stall: the longest call and
 *   the failures during a hot reload under steady load.
 *
 * Run: deno run -A bench/rpc_bench.ts [--json] [--quick] [--calls=N] [--only=rpc,cold,…] [--transports=shm,unix,tcp,child_ipc,worker] [--wake-rounds=N]
 * (--transports picks the rows of `rpc`; or: bun bench/rpc_bench.ts;
 * Node: make dist && node dist/bench/rpc_bench.js). Node has no web Worker,
 * so the worker row is skipped there.
 *
 * @module
 */

import { fork, spawn } from "node:child_process";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { PluginHost, type TransportKind } from "../mod.ts";
import { type BenchRow, latencyRow, printRows, rateRow, runtime } from "./_stats.ts";

const quick = process.argv.includes("--quick");
const json = process.argv.includes("--json");
// Under Node this runs compiled, from dist/bench/.
const root = fileURLToPath(new URL(runtime === "node" ? "../.." : "..", import.meta.url));
const plugins = `${root}examples/plugins`;
// --calls=N overrides the counts (a smoke run that only proves the bench works).
const callsArg = Number(process.argv.find((a) => a.startsWith("--calls="))?.slice(8)) || undefined;
const rttCalls = callsArg ?? (quick ? 2_000 : 20_000);
const pipelinedCalls = callsArg ? callsArg * 10 : quick ? 20_000 : 200_000;
const pipelineDepth = 256;
/** Rounds of the shm rows: wake "futex" (`shm`) and "doorbell" (`shm_doorbell`), order alternating per round. */
const wakeRounds = Number(process.argv.find((a) => a.startsWith("--wake-rounds="))?.slice(14)) || 1;
const rows: BenchRow[] = [];

function log(text: string): void {
  if (!json) console.error(`… ${text}`);
}

function newHost(transport: TransportKind, extra = {}): PluginHost {
  return new PluginHost({ dirs: [plugins], transport, logger: () => {}, ...extra });
}

async function sequential(call: () => Promise<unknown>, n: number): Promise<number[]> {
  for (let i = 0; i < Math.min(n, 2_000); i++) await call(); // warm-up
  const samples: number[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const started = performance.now();
    await call();
    samples[i] = performance.now() - started;
  }
  return samples;
}

async function pipelined(call: () => Promise<unknown>, n: number): Promise<number> {
  const started = performance.now();
  let issued = 0;
  const lane = async () => {
    while (issued < n) {
      issued++;
      await call();
    }
  };
  await Promise.all(Array.from({ length: pipelineDepth }, lane));
  return performance.now() - started;
}

/** Echo calls with a pause before each, long enough that host and plugin have both parked. */
async function parkedCalls(call: () => Promise<unknown>, n: number): Promise<number[]> {
  for (let i = 0; i < Math.min(n, 20); i++) await call(); // warm-up
  const samples: number[] = new Array(n);
  for (let i = 0; i < n; i++) {
    await new Promise((resolve) => setTimeout(resolve, parkedGapMs));
    const started = performance.now();
    await call();
    samples[i] = performance.now() - started;
  }
  return samples;
}
const parkedGapMs = 2;
const parkedCallsCount = callsArg ?? (quick ? 100 : 500);

/**
 * `wake` (shm only): "futex" (the host's default; row `shm`), "doorbell" (row `shm_doorbell`) or "block"
 * (row `shm_block`), so the
 * wake-up designs of issue 12 are measured side by side: busy calls (must not differ: a busy channel rings
 * nothing) and calls that find the plugin parked (`rpc.parked`).
 */
async function benchTransport(transport: TransportKind, wake?: "doorbell" | "futex" | "block"): Promise<void> {
  const label = wake === "doorbell" || wake === "block" ? `${transport}_${wake}` : transport;
  log(`rpc over ${label}`);
  const host = newHost(transport, wake ? { wake } : {});
  try {
    await host.load("echo");
    const call = () => host.call("echo", "echo", ["hello"]);
    rows.push(latencyRow("rpc.rtt", label, await sequential(call, rttCalls), "echo call, Deno plugin"));
    rows.push(
      rateRow(
        "rpc.throughput",
        label,
        pipelinedCalls,
        await pipelined(call, pipelinedCalls),
        `${pipelineDepth} in flight`,
      ),
    );
    rows.push(
      latencyRow(
        "rpc.parked",
        label,
        await parkedCalls(call, parkedCallsCount),
        `echo call ${parkedGapMs} ms after the last: both sides parked${wake ? `; wake: ${wake}` : ""}`,
      ),
    );
  } finally {
    await host.close();
  }
}

/** A request/response echo over some message-passing API, matched in order. */
function echoClient(send: (m: unknown) => void): { call(m: unknown): Promise<unknown>; onReply(m: unknown): void } {
  const waiting: ((m: unknown) => void)[] = [];
  return {
    call: (m) => new Promise((resolve) => (waiting.push(resolve), send(m))),
    onReply: (m) => waiting.shift()?.(m),
  };
}

async function benchChildIpc(): Promise<void> {
  log("child_process IPC");
  const file = fileURLToPath(new URL(`./_rpc_ipc_peer.${runtime === "node" ? "js" : "ts"}`, import.meta.url));
  const child = runtime === "deno"
    ? spawn(process.execPath, ["run", "-A", file], { stdio: ["ignore", "inherit", "inherit", "ipc"] })
    : fork(file, [], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
  const client = echoClient((m) => child.send!(m as string));
  child.on("message", (m) => client.onReply(m));
  const call = () => client.call(["echo", ["hello"]]);
  rows.push(latencyRow("rpc.rtt", "child_ipc", await sequential(call, rttCalls), "process.send echo"));
  rows.push(
    rateRow(
      "rpc.throughput",
      "child_ipc",
      pipelinedCalls,
      await pipelined(call, pipelinedCalls),
      `${pipelineDepth} in flight`,
    ),
  );
  // "exit", not "close": under Node a forked child with inherited stdio
  // never emitted "close" after disconnect() here.
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.disconnect();
  await exited;
}

/** The web Worker of Deno and Bun (Node 20 has none), typed here so tsc for Node compiles this file. */
interface WebWorker {
  postMessage(data: unknown): void;
  onmessage: ((e: { data: unknown }) => void) | null;
  terminate(): void;
}

async function benchWorker(): Promise<void> {
  const Worker = (globalThis as unknown as { Worker?: new (url: string, o: { type: string }) => WebWorker }).Worker;
  if (!Worker) return log("worker postMessage: skipped, this runtime has no web Worker");
  log("worker postMessage");
  const worker = new Worker(new URL("./_rpc_worker.ts", import.meta.url).href, { type: "module" });
  const client = echoClient((m) => worker.postMessage(m));
  worker.onmessage = (e) => client.onReply(e.data);
  const call = () => client.call(["echo", ["hello"]]);
  rows.push(
    latencyRow("rpc.rtt", "worker", await sequential(call, rttCalls), "postMessage echo (a thread, not a process)"),
  );
  rows.push(
    rateRow(
      "rpc.throughput",
      "worker",
      pipelinedCalls,
      await pipelined(call, pipelinedCalls),
      `${pipelineDepth} in flight`,
    ),
  );
  worker.terminate();
}

async function benchColdStart(): Promise<void> {
  for (const name of ["echo", "kv"]) {
    log(`cold start of ${name}`);
    const samples: number[] = [];
    for (let i = 0; i < (quick ? 3 : 10); i++) {
      const host = newHost("shm");
      const started = performance.now();
      await host.load(name);
      samples.push(performance.now() - started);
      await host.close();
    }
    const pluginRuntime = name === "echo" ? "deno" : "bun";
    rows.push(latencyRow("plugin.cold_start", "shm", samples, `${pluginRuntime} plugin, spawn → handshake done`));
  }
}

async function benchMemory(): Promise<void> {
  log("host memory per idle plugin");
  const count = 8;
  const host = newHost("unix", { instances: { kv: count } });
  const usage = () => {
    const m = process.memoryUsage();
    return { js: m.heapUsed + m.external, rss: m.rss };
  };
  (globalThis as { gc?: () => void }).gc?.();
  const before = usage();
  await host.load("kv");
  await new Promise((r) => setTimeout(r, 300));
  const after = usage();
  await host.close();
  const perPluginJs = (after.js - before.js) / count;
  const perPluginRss = (after.rss - before.rss) / count;
  rows.push({
    bench: "host.mem_per_plugin",
    runtime,
    transport: "unix",
    size: Math.round(perPluginJs),
    p50_us: null,
    p99_us: null,
    p999_us: null,
    msgs_per_s: null,
    bytes_per_s: null,
    note: `JS heap+external per idle plugin: ${(perPluginJs / 1024).toFixed(0)} KiB; RSS ${
      (perPluginRss / 1024).toFixed(0)
    } KiB`,
  });
}

async function benchRestart(): Promise<void> {
  for (const [name, method, args] of [["echo", "add", [1, 1]], ["kv", "size", []]] as const) {
    log(`restart time of ${name}`);
    const host = newHost("shm");
    await host.load(name);
    const samples: number[] = [];
    for (let i = 0; i < (quick ? 2 : 4); i++) {
      const pid = host.list()[0].pid!;
      const ready = new Promise<void>((resolve) => {
        const off = host.onState((e) => e.state === "ready" && (off(), resolve()));
      });
      const started = performance.now();
      process.kill(pid, "SIGKILL");
      await ready;
      await host.call(name, method, [...args]);
      samples.push(performance.now() - started);
      await new Promise((r) => setTimeout(r, 5_200)); // Let the backoff reset.
    }
    await host.close();
    rows.push(
      latencyRow("restart.time", "shm", samples, `${name === "echo" ? "deno" : "bun"} plugin, SIGKILL → call answered`),
    );
  }
}

async function benchReload(): Promise<void> {
  log("reload under load");
  const host = newHost("shm");
  await host.load("kv");
  for (let i = 0; i < 100; i++) await host.call("kv", "set", [`k${i}`, i]);
  const samples: number[] = [];
  let failures = 0;
  let stop = false;
  const worker = async () => {
    for (let i = 0; !stop; i++) {
      const started = performance.now();
      try {
        await host.call("kv", "get", [`k${i % 100}`]);
      } catch {
        failures++;
      }
      samples.push(performance.now() - started);
    }
  };
  const workers = Array.from({ length: 4 }, worker);
  await new Promise((r) => setTimeout(r, 300));
  await host.reload("kv");
  await new Promise((r) => setTimeout(r, 300));
  stop = true;
  await Promise.all(workers);
  await host.close();
  rows.push(latencyRow("reload.stall", "shm", samples, `${failures} failed of ${samples.length} calls; 4 callers`));
}

const only = process.argv.find((a) => a.startsWith("--only="))?.slice(7);
const parts: [string, () => Promise<void>][] = [
  ["rpc", async () => {
    const picked = process.argv.find((a) => a.startsWith("--transports="))?.slice(13).split(",");
    const want = (t: string) => !picked || picked.includes(t);
    if (want("shm")) {
      // Both wake-up designs, alternating which goes first per round so that load drifting over the run hits both.
      for (let round = 0; round < wakeRounds; round++) {
        // And wake "block" (row `shm_block`: the blocking park, issue 12), in rotating order.
        const designs = ["doorbell", "futex", "block"] as const;
        const order = designs.map((_, i) => designs[(i + round) % designs.length]);
        for (const wake of order) await benchTransport("shm", wake);
      }
    }
    for (const t of ["unix", "tcp"] as TransportKind[]) if (want(t)) await benchTransport(t);
    if (want("child_ipc")) await benchChildIpc();
    if (want("worker")) await benchWorker();
  }],
  ["cold", benchColdStart],
  ["mem", benchMemory],
  ["restart", benchRestart],
  ["reload", benchReload],
];
for (const [name, run] of parts) if (!only || only.split(",").includes(name)) await run();
printRows(rows, json);
process.exit(0);
