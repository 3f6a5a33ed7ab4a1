/**
 * What the OS sandbox costs, sandboxed vs not in the same run (issue 8's targets):
 *
 * - sandbox.echo_rtt: sequential echo calls to the Deno `echo` example plugin over shm, one host with
 *   `sandbox: "off"` and one with the default (`"required"`), measured in alternating rounds so that load on
 *   the machine hits both alike. Target: p50 within 10 %.
 * - sandbox.cold_start: a fresh host process (bench/_cold_host.ts) from import to the first answer of the
 *   Bun `kv` plugin, alternating `--sandbox off` and the default. Target: ≤ +15 ms.
 * - sandbox.memory_detect: a plugin with `memorySoftMiB` allocates 1 MiB at a time and notes when each MiB
 *   was in place; the host pauses it (SIGSTOP) on a sample above the limit. Latency = the "paused" event's
 *   time minus the time the plugin's usage first exceeded the limit (its RSS before growing, from a
 *   "resource" sample, plus what it had allocated). Target: ≤ 250 ms.
 *
 * Run: deno run -A bench/sandbox_bench.ts [--json] [--calls=N] [--rounds=N] [--runs=N] [--crossings=N]
 * (or bun bench/sandbox_bench.ts). Tiny counts only prove it works; numbers need a quiet machine.
 *
 * @module
 */

import { spawnSync } from "node:child_process";
import { mkdtempSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { type LimitEvent, PluginHost, type ResourceEvent, type SandboxMode } from "../mod.ts";
import { type BenchRow, latencyRow, printRows, runtime } from "./_stats.ts";

const root = fileURLToPath(new URL(runtime === "node" ? "../.." : "..", import.meta.url));
const numberArg = (name: string, fallback: number) =>
  Number(process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3)) || fallback;
const json = process.argv.includes("--json");
const callsPerRound = numberArg("calls", 2_000);
const rounds = numberArg("rounds", 5);
const coldRuns = numberArg("runs", 10);
const crossings = numberArg("crossings", 5);
const rows: BenchRow[] = [];
const mib = 1024 * 1024;

function log(text: string): void {
  if (!json) console.error(`… ${text}`);
}

/** Echo round trips, alternating an unsandboxed and a sandboxed host round by round. */
async function echoRtt(): Promise<void> {
  const modes: SandboxMode[] = ["off", "required"];
  const hosts = modes.map((sandbox) =>
    new PluginHost({ dirs: [`${root}examples/plugins`], sandbox, logger: () => {} })
  );
  const samples: number[][] = modes.map(() => []);
  try {
    for (const host of hosts) await host.load("echo");
    for (let round = 0; round < rounds; round++) {
      for (const [i, host] of hosts.entries()) {
        for (let warm = 0; warm < 100; warm++) await host.call("echo", "echo", [warm]);
        for (let n = 0; n < callsPerRound; n++) {
          const start = performance.now();
          await host.call("echo", "echo", [n]);
          samples[i].push(performance.now() - start);
        }
      }
    }
  } finally {
    await Promise.all(hosts.map((host) => host.close()));
  }
  for (const [i, mode] of modes.entries()) {
    rows.push(latencyRow("sandbox.echo_rtt", "shm", samples[i], `sandbox ${mode}, ${rounds}×${callsPerRound} calls`));
  }
}

/** Cold starts in fresh host processes, alternating the two modes. */
function coldStart(): void {
  const host = fileURLToPath(new URL("./_cold_host.ts", import.meta.url));
  const command = runtime === "deno" ? [process.execPath, "run", "-A", host] : [process.execPath, host];
  const samples: Record<string, number[]> = { off: [], required: [] };
  for (let run = 0; run < coldRuns; run++) {
    for (const mode of ["off", "required"] as const) {
      const args = [...command.slice(1), ...(mode === "off" ? ["--sandbox", "off"] : [])];
      const out = spawnSync(command[0], args, { encoding: "utf8" });
      if (out.status !== 0) throw new Error(`cold host (${mode}) failed: ${out.stderr}`);
      samples[mode].push(JSON.parse(out.stdout.trim().split("\n").pop()!).firstCallMs);
    }
  }
  for (const [mode, ms] of Object.entries(samples)) {
    rows.push(latencyRow("sandbox.cold_start", "shm", ms, `sandbox ${mode}, ${coldRuns} runs, import → first answer`));
  }
}

/** A plugin that grows 1 MiB at a time and remembers when each MiB was in place. */
function growingPlugin(softMiB: number): string {
  const dir = realpathSync(mkdtempSync(`${tmpdir()}/pshm-bench-grow-`));
  writeFileSync(
    `${dir}/plugin.json`,
    JSON.stringify({
      name: "grow",
      version: "1.0.0",
      runtime: "deno",
      entry: "main.ts",
      limits: { memorySoftMiB: softMiB, memoryMiB: softMiB * 4 },
    }),
  );
  writeFileSync(
    `${dir}/main.ts`,
    `import { definePlugin } from "${root}plugin.ts";
const kept: Uint8Array[] = [];
export default definePlugin({
  name: "grow",
  version: "1.0.0",
  methods: {
    // Wall-clock ms (epoch) at which each MiB was allocated and touched.
    grow(mibs: number) {
      const at: number[] = [];
      for (let i = 0; i < mibs; i++) {
        kept.push(new Uint8Array(1024 * 1024).fill(1));
        at.push(performance.timeOrigin + performance.now());
      }
      return at;
    },
  },
});
`,
  );
  return dir;
}

/** Memory limit crossing → paused, per crossing a fresh host and plugin. */
async function memoryDetect(): Promise<void> {
  const softMiB = 256;
  const dir = growingPlugin(softMiB);
  const latencies: number[] = [];
  try {
    for (let i = 0; i < crossings; i++) {
      const host = new PluginHost({ logger: () => {} });
      const limits: LimitEvent[] = [];
      const samples: ResourceEvent[] = [];
      host.on("limit", (e) => limits.push(e));
      const unsubscribe = host.on("resource", (e) => samples.push(e));
      try {
        await host.load(dir);
        while (!samples.length) await new Promise((r) => setTimeout(r, 10));
        unsubscribe();
        const baseRss = samples.at(-1)!.rssBytes;
        const growing = host.call("grow", "grow", [softMiB + 64], { deadlineMs: 120_000 });
        while (!limits.some((e) => e.action === "paused")) await new Promise((r) => setTimeout(r, 5));
        const paused = limits.find((e) => e.action === "paused")!;
        host.resume("grow");
        const at = await growing as number[];
        // The first MiB after which the tree's usage was over the limit (a lower bound on the crossing time,
        // since the runtime's own RSS grows a little too).
        const over = at.findIndex((_, n) => baseRss + (n + 1) * mib > softMiB * mib);
        if (over >= 0) latencies.push(paused.at - at[over]);
      } finally {
        await host.close();
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  rows.push(
    latencyRow("sandbox.memory_detect", "-", latencies, `soft limit crossed → paused, ${latencies.length} runs`),
  );
}

log(`echo round trips, ${rounds} rounds of ${callsPerRound} calls per mode`);
await echoRtt();
log(`cold start, ${coldRuns} runs per mode`);
coldStart();
log(`memory limit detection, ${crossings} crossings`);
await memoryDetect();
printRows(rows, json);
