/**
 * `cli.ts demo` (`make demo`): the product's story on this machine in under a
 * minute — plugins in their own processes, call latency beside a raw
 * unix-socket echo measured in the same run, a crash and its restart, a stall
 * killed and replaced, a hot reload under load without a failed call, a 4 MiB
 * stream — then it keeps serving until Ctrl-C. The story goes to stdout;
 * numbers are this machine's, as busy as it is now, and labelled so.
 *
 * @module
 */

import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { createConnection } from "node:net";
import process from "node:process";
import { PluginStalledError } from "../errors.ts";
import type { StateEvent } from "../host/host.ts";
import { PluginHost } from "../host/host.ts";
import type { ServeAdmin } from "./_admin.ts";
import { ControlError } from "./_control.ts";
import type { Output } from "./_output.ts";
import { examplePlugins, unixEchoScript } from "./_paths.ts";
import { Serve, ServeLog } from "./_serve.ts";

const examples = examplePlugins;
const unixEcho = unixEchoScript;

/** Round trips measured per side for the latency comparison, after warm-up. */
export const demoRoundTrips = 2_000;
const warmUpRoundTrips = 200;
/** Concurrent callers during the hot reload. */
const reloadCallers = 4;
/** Longest any one step may take before the demo reports it failed and moves on. */
const stepTimeoutMs = 30_000;
const streamChunkBytes = 64 * 1024;
const streamChunks = 64; // 4 MiB

function percentile(sortedMicros: number[], p: number): number {
  return sortedMicros[Math.min(sortedMicros.length - 1, Math.floor((sortedMicros.length * p) / 100))];
}

function micros(value: number): string {
  return value >= 100 ? `${value.toFixed(0)} µs` : `${value.toFixed(1)} µs`;
}

function runtimeName(): string {
  const g = globalThis as { Deno?: { version: { deno: string } }; Bun?: { version: string } };
  if (g.Deno) return `Deno ${g.Deno.version.deno}`;
  if (g.Bun) return `Bun ${g.Bun.version}`;
  return `Node ${process.version}`;
}

/** The command that runs a script under the runtime running the demo. */
function scriptCommand(file: string, args: string[]): [string, string[]] {
  const g = globalThis as { Deno?: unknown };
  return g.Deno ? [process.execPath, ["run", "-A", file, ...args]] : [process.execPath, [file, ...args]];
}

function withTimeout<T>(promise: Promise<T>, what: string, ms = stepTimeoutMs): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Resolves with the first lifecycle event of `plugin` matching `state` from now on. */
function nextState(host: PluginHost, plugin: string, state: StateEvent["state"]): Promise<StateEvent> {
  return withTimeout(
    new Promise<StateEvent>((resolve) => {
      const off = host.onState((e) => {
        if (e.plugin === plugin && e.state === state) {
          off();
          resolve(e);
        }
      });
    }),
    `${plugin} becoming ${state}`,
  );
}

/** Round trips over a raw unix socket to an echo server in another process, in µs, sorted. */
async function unixSocketRoundTrips(): Promise<number[]> {
  const dir = mkdtempSync(join(tmpdir(), "pshm-demo-"));
  const path = join(dir, "echo.sock");
  const [command, args] = scriptCommand(unixEcho, [path]);
  const child: ChildProcess = spawn(command, args, { stdio: ["ignore", "pipe", "inherit"] });
  try {
    await withTimeout(
      new Promise<void>((resolve, reject) => {
        child.stdout!.on("data", (d) => String(d).includes("listening") && resolve());
        child.once("exit", (code) => reject(new Error(`the unix-socket echo exited with ${code}`)));
      }),
      "the unix-socket echo starting",
    );
    const socket = createConnection(path);
    await new Promise<void>((resolve, reject) => socket.once("connect", resolve).once("error", reject));
    socket.setNoDelay?.(true);
    let waiting: (() => void) | undefined;
    socket.on("data", () => waiting?.());
    const message = new Uint8Array(16).fill(7);
    const samples: number[] = [];
    for (let i = 0; i < warmUpRoundTrips + demoRoundTrips; i++) {
      const started = performance.now();
      await new Promise<void>((resolve) => {
        waiting = resolve;
        socket.write(message);
      });
      if (i >= warmUpRoundTrips) samples.push((performance.now() - started) * 1000);
    }
    socket.destroy();
    return samples.sort((a, b) => a - b);
  } finally {
    child.kill("SIGTERM");
    await new Promise((resolve) => child.exitCode !== null ? resolve(null) : child.once("exit", resolve));
    rmSync(dir, { recursive: true, force: true });
  }
}

async function pluginRoundTrips(host: PluginHost): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < warmUpRoundTrips + demoRoundTrips; i++) {
    const started = performance.now();
    await host.call("echo", "echo", [i]);
    if (i >= warmUpRoundTrips) samples.push((performance.now() - started) * 1000);
  }
  return samples.sort((a, b) => a - b);
}

interface Story {
  out: Output;
  host: PluginHost;
  failures: number;
}

async function step(story: Story, title: string, body: () => Promise<void>): Promise<void> {
  story.out.result(`\n${story.out.bold(title)}`);
  try {
    await body();
  } catch (error) {
    story.failures++;
    story.out.result(`  ${story.out.red("FAILED:")} ${(error as Error).name}: ${(error as Error).message}`);
  }
}

async function tell(story: Story): Promise<void> {
  const { out, host } = story;
  const line = (text: string) => out.result(`  ${text}`);

  await step(story, "1. Plugins, each its own OS process", async () => {
    const started = performance.now();
    const loaded = await withTimeout(Promise.all(["echo", "kv", "transform"].map((n) => host.load(n))), "loading");
    for (const p of loaded) line(`${p.name.padEnd(10)} ${p.runtime.padEnd(5)} pid ${p.pid}  over ${p.transport}`);
    line(`all three started and handshaken in ${(performance.now() - started).toFixed(0)} ms`);
  });

  await step(story, `2. Call latency, measured now (${demoRoundTrips} round trips each, after warm-up)`, async () => {
    const shm = await withTimeout(pluginRoundTrips(host), "the plugin round trips");
    const socket = await withTimeout(unixSocketRoundTrips(), "the unix-socket round trips");
    line(
      `plugin call echo.echo(i) over shared memory   p50 ${micros(percentile(shm, 50)).padStart(9)}   p99 ${
        micros(percentile(shm, 99)).padStart(9)
      }`,
    );
    line(
      `raw unix-socket echo, 16 bytes, no RPC layer  p50 ${micros(percentile(socket, 50)).padStart(9)}   p99 ${
        micros(percentile(socket, 99)).padStart(9)
      }`,
    );
  });

  await step(story, "3. A plugin crashes and is restarted", async () => {
    const oldPid = host.list().find((p) => p.name === "echo")?.pid;
    const crashed = nextState(host, "echo", "crashed");
    const ready = nextState(host, "echo", "ready");
    // The plugin answers, then exits a millisecond later; on a loaded machine the exit can win the race
    // and fail this call with PluginCrashedError, which is what a crash does to a call.
    await host.call("echo", "exit", [3]).catch(() => undefined);
    const c = await crashed;
    line(`echo (pid ${oldPid}) exited with code 3 on purpose: ${c.reason.split(";")[0]}`);
    const r = await ready;
    const pid = host.list().find((p) => p.name === "echo")?.pid;
    line(`restarted as pid ${pid} in ${r.at - c.at} ms; echo.add(2, 3) = ${await host.call("echo", "add", [2, 3])}`);
  });

  await step(story, "4. A plugin stalls (a synchronous endless loop) and is killed and replaced", async () => {
    const oldPid = host.list().find((p) => p.name === "echo")?.pid;
    const unresponsive = nextState(host, "echo", "unresponsive");
    const crashed = nextState(host, "echo", "crashed");
    const ready = nextState(host, "echo", "ready");
    const stuck = host.call("echo", "spin", [600_000]).then(() => undefined, (e: Error) => e);
    const u = await unresponsive;
    line(`echo (pid ${oldPid}) stopped sending heartbeats: marked unresponsive (${u.reason})`);
    const c = await crashed;
    const error = await withTimeout(stuck, "the stuck call failing");
    line(
      `killed ${c.at - u.at} ms later; the stuck call failed with ${error?.name}${
        error instanceof PluginStalledError ? "" : " (expected PluginStalledError)"
      }`,
    );
    await ready;
    const pid = host.list().find((p) => p.name === "echo")?.pid;
    line(`replaced by pid ${pid}; echo.echo("back") = ${JSON.stringify(await host.call("echo", "echo", ["back"]))}`);
  });

  await step(story, `5. Hot reload under load (${reloadCallers} callers hammering kv meanwhile)`, async () => {
    for (let i = 0; i < 100; i++) await host.call("kv", "set", [`key-${i}`, i]);
    const pidBefore = host.list().find((p) => p.name === "kv")?.pid;
    let running = true;
    let ok = 0;
    let failed = 0;
    let lastError = "";
    const caller = async (n: number) => {
      for (let i = 0; running; i++) {
        try {
          await host.call("kv", i % 2 ? "get" : "set", i % 2 ? [`key-${i % 100}`] : [`caller-${n}`, i]);
          ok++;
        } catch (error) {
          failed++;
          lastError = (error as Error).message;
        }
      }
    };
    const callers = Array.from({ length: reloadCallers }, (_, n) => caller(n));
    const held: string[] = [];
    const off = host.onState((e) => {
      if (e.plugin === "kv" && e.state === "reloaded") held.push(e.reason.match(/held ([\d.]+ ms)/)?.[1] ?? "?");
    });
    try {
      await new Promise((r) => setTimeout(r, 200));
      await withTimeout(host.reload("kv"), "the first reload");
      await new Promise((r) => setTimeout(r, 200));
      await withTimeout(host.reload("kv"), "the second reload");
      await new Promise((r) => setTimeout(r, 200));
    } finally {
      running = false;
      await Promise.all(callers);
      off();
    }
    const pidAfter = host.list().find((p) => p.name === "kv")?.pid;
    const keys = (await host.call("kv", "keys")) as string[];
    line(`kv reloaded twice (pid ${pidBefore} → ${pidAfter}); calls held ${held.join(" and ")} during the swaps`);
    line(`${ok + failed} calls during the reloads, ${failed} failed${failed ? ` (last: ${lastError})` : ""}`);
    line(`state handed over: kv still holds ${keys.filter((k) => k.startsWith("key-")).length} of its 100 keys`);
    if (failed) throw new Error(`${failed} call(s) failed during the reload`);
  });

  await step(story, "6. Streaming 4 MiB through a plugin", async () => {
    const input = (async function* () {
      for (let i = 0; i < streamChunks; i++) yield new Uint8Array(streamChunkBytes).fill(97); // "a"
    })();
    const started = performance.now();
    let bytes = 0;
    let upper = true;
    for await (const chunk of host.stream("transform", "upper", [], input)) {
      const data = chunk as Uint8Array;
      bytes += data.length;
      upper &&= data[0] === 65 && data[data.length - 1] === 65;
    }
    const seconds = (performance.now() - started) / 1000;
    const mib = bytes / 1024 / 1024;
    line(
      `${mib} MiB through transform.upper and back in ${(seconds * 1000).toFixed(0)} ms: ${
        (mib / seconds).toFixed(0)
      } MiB/s${upper ? ", every byte uppercased" : " — OUTPUT WRONG"}`,
    );
    if (bytes !== streamChunks * streamChunkBytes || !upper) throw new Error("the stream came back wrong");
  });
}

/** Runs the demo; with `exit` it returns after the story, otherwise it serves until Ctrl-C. */
export async function runDemo(
  out: Output,
  options: { exit: boolean; socket: string; admin?: ServeAdmin | null },
): Promise<number> {
  const log = new ServeLog(out);
  log.echo = false; // The story speaks for itself; `cli.ts logs` still has every line.
  const admin = options.admin;
  const host = new PluginHost({
    dirs: [examples],
    hostFunctions: { now: () => new Date().toISOString() },
    logger: log.logger,
    ...admin?.hostOptions(log.logger),
    // Short heartbeats so the stall part takes seconds, not the default 6 s of silence plus 1 s of grace.
    heartbeatIntervalMs: 250,
    stallTimeoutMs: 2_000,
    stallGraceMs: 500,
    restartBackoffMs: 50,
  });
  host.onState(log.onState);
  host.onEvent(log.onEvent);
  const server = new Serve(host, log, out);
  try {
    await admin?.start(host);
  } catch (error) {
    await server.close();
    throw error;
  }
  const startedAt = performance.now();
  out.result(out.bold("plugin-shm demo"));
  out.result(
    `A DEMO on this machine (${availableParallelism()} cores, load average ${
      loadavg()[0].toFixed(2)
    }, ${runtimeName()}), ` +
      "as busy as it is right now: not a benchmark.",
  );
  out.result("For real numbers run `make bench` on a quiet machine (see bench/RESULTS.md).");
  const story: Story = { out, host, failures: 0 };
  try {
    await tell(story);
  } catch (error) {
    story.failures++;
    out.error((error as Error).message);
  }
  out.result(
    `\nStory told in ${((performance.now() - startedAt) / 1000).toFixed(1)} s${
      story.failures ? `, ${story.failures} part(s) FAILED` : ""
    }.`,
  );
  if (options.exit) {
    await server.close();
    await admin?.close();
    return story.failures ? 1 : 0;
  }
  try {
    await server.openControl(options.socket);
  } catch (error) {
    if (!(error instanceof ControlError)) throw error;
    out.info(`no control socket: ${error.message}`);
  }
  log.echo = true;
  out.result("Still serving echo, kv and transform; Ctrl-C stops. Meanwhile, in another terminal:");
  out.result("  deno run -A cli.ts status      deno run -A cli.ts logs -f      deno run -A cli.ts reload kv");
  if (admin) out.result("The admin dashboard above shows them live (token file printed with its URL).");
  await server.run().finally(() => admin?.close());
  return story.failures ? 1 : 0;
}
