/**
 * Where the slow round trips come from (issue 12, "tails"): the channel's
 * 64 B round trip (`tails.channel.rtt`: as bench/channel_bench.ts
 * `channel.rtt`) and the echo call through PluginHost (`tails.rpc.rtt`: as
 * bench/rpc_bench.ts `rpc.rtt`), with per-sample
 * evidence from both ends (bench/_tails.ts: descheduling from
 * /proc/thread-self/schedstat and getrusage, garbage collections, timers,
 * park/wake and spin yields from the channel's stats()). For the samples at
 * or above p99 and p99.9 it prints what share had each cause, against the
 * share among all samples.
 *
 * Taking the evidence costs a few microseconds per sample outside the timed
 * window, and could hide or cause the very effects it looks for, so every
 * part runs rounds with the probes off and on, alternating which goes first
 * (`--rounds=N` of each), and prints p50/p99/p99.9 of both.
 *
 *     deno run -A bench/tails_bench.ts [--json] [--only=rtt,rpc,nice,pin,rpc-pin] [--samples=N] [--rounds=N]
 *     bun bench/tails_bench.ts [...]
 *
 * `nice` (only when named; root): the channel round trip with probes off, this
 * session's autogroup (the bench and its peer) at nice 0 vs -10, alternating:
 * a test of the attribution (if other sessions' tasks preempting ours make the
 * tails, a larger CPU share cuts them) and the operator's knob for it.
 * `pin` (only when named): the same, unpinned vs host on CPU 0 and peer on
 * CPU 1 (taskset -a): whether a round trip pays two context switches when
 * both ends share a core; `rpc-pin` the same for the echo call.
 *
 * Output: a table (or with --json BenchRow lines, then one
 * `tails.attribution` line per cause, which bench/charts.ts draws as
 * tails_causes.svg; the attribution tables then go to stderr).
 *
 * --samples: round trips per round (default 5000 for rtt, 3000 for rpc);
 * --rounds: rounds per mode (default 10). Many short rounds rather than a few
 * long ones: the load of a shared machine shifts within a second, and short
 * alternating rounds let it hit both modes alike. The echo plugin is
 * bench/plugins/tails-echo (a Deno plugin, the echo of examples/plugins/echo
 * with a probe). Node: not supported (the bench reads no dist build).
 *
 * @module
 */

import {
  attribute,
  type AttributionTable,
  boostedNice,
  countTimers,
  deltas,
  printAttribution,
  Probe,
  probeFields,
  setAutogroupNice,
  TailsOp,
} from "./_tails.ts";
import process from "node:process";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import os from "node:os";
import { fileURLToPath } from "node:url";
import { PluginHost, ShmChannel } from "../mod.ts";
import { childArgs, childEnv, Env, message, Op, readyLine, replyJson } from "./_protocol.ts";
import { type BenchRow, latencyRow, printRows, runtime } from "./_stats.ts";

// Before the host or channel makes any timer, so theirs are counted too (the global ones; see _tails.ts).
countTimers();

const argv = process.argv.slice(2);
const json = argv.includes("--json");
const numberArg = (name: string) => Number(argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3));
const only = argv.find((a) => a.startsWith("--only="))?.slice(7).split(",");
const samplesArg = numberArg("samples") || undefined;
const rounds = numberArg("rounds") || 10;
for (const a of argv) {
  if (a !== "--json" && !/^--(only|samples|rounds)=/.test(a)) {
    console.error(
      `unknown argument ${a}; usage: tails_bench.ts [--json] [--only=rtt,rpc,nice,pin,rpc-pin] [--samples=N] [--rounds=N]`,
    );
    process.exit(2);
  }
}
/** Unmeasured round trips before the first round, so that both ends run optimised code. */
const warmupRoundTrips = 2_000;
const peerStartMs = 30_000;

const rows: BenchRow[] = [];
const tables: { title: string; bench: string; transport: string; table: AttributionTable }[] = [];

function log(text: string): void {
  if (!json) console.error(`[${runtime} ${new Date().toISOString().slice(11, 19)}] ${text}`);
}

/** One mode's samples pooled over its rounds, with both ends' evidence for the probed ones. */
interface Pool {
  samples: number[];
  self: Float64Array[];
  peer: Float64Array[];
}

/** Share of samples (percent) in which this side's thread was scheduled out at least once. */
function switchedOutPct(selfDeltas: Float64Array): number {
  const fields = probeFields.length;
  const slices = probeFields.indexOf("slices");
  let hit = 0;
  for (let o = slices; o < selfDeltas.length; o += fields) if (selfDeltas[o] > 0) hit++;
  return Math.round((hit / (selfDeltas.length / fields)) * 1000) / 10;
}

function concat(parts: Float64Array[]): Float64Array {
  const out = new Float64Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * The rounds of one part: `measure(second)` runs one round of the first or second mode and returns its samples
 * (ms) and, when probed, both ends' snapshots. The modes alternate, which goes first swapping each round, so
 * drifting load hits both. Samples with evidence (the second mode of the probes comparison) are blamed.
 */
async function runRounds(
  bench: string,
  transport: string,
  note: string,
  modes: [string, string],
  measure: (second: boolean) => Promise<{ samples: Float64Array; self?: Float64Array; peer?: number[][] }>,
): Promise<void> {
  const pools: Pool[] = [{ samples: [], self: [], peer: [] }, { samples: [], self: [], peer: [] }];
  for (let round = 0; round < rounds; round++) {
    for (const m of round % 2 === 0 ? [0, 1] : [1, 0]) {
      const { samples, self, peer } = await measure(m === 1);
      const list = Array.from(samples);
      const selfDeltas = self ? deltas(self, list.length) : undefined;
      // Per round, how often this side was switched out: the rounds whose p50 is several µs, not ~1, are the
      // ones where it was nearly every time (host and peer sharing a core: two context switches per round trip).
      const switched = selfDeltas ? `, switched out in ${switchedOutPct(selfDeltas)} %` : "";
      rows.push(
        latencyRow(bench, transport, list, `${note}; ${modes[m]}, round ${round + 1}, n=${list.length}${switched}`),
      );
      log(`${bench} ${transport} ${modes[m]} round ${round + 1}: p99 ${rows.at(-1)!.p99_us} µs`);
      const pool = pools[m];
      pool.samples.push(...list);
      if (selfDeltas) pool.self.push(selfDeltas);
      if (peer) pool.peer.push(deltas(peer, list.length));
    }
  }
  for (const m of [0, 1]) {
    const perRound = rows.filter((r) => r.bench === bench && r.note?.startsWith(`${note}; ${modes[m]}, round`));
    const spread = (key: "p50_us" | "p99_us") => {
      const values = perRound.map((r) => r[key]!);
      return `${Math.min(...values)}-${Math.max(...values)}`;
    };
    rows.push(
      latencyRow(
        bench,
        transport,
        pools[m].samples,
        `${note}; ${modes[m]}, all ${rounds} rounds (per round: p50 ${spread("p50_us")}, p99 ${spread("p99_us")} µs)`,
      ),
    );
  }
  const probed = pools[1];
  if (probed.self.length === 0) return;
  const peer = probed.peer.length === probed.self.length ? concat(probed.peer) : undefined;
  tables.push({
    title: `${bench} ${transport} (${runtime}): share of samples with each cause`,
    bench,
    transport,
    table: attribute(probed.samples, concat(probed.self), peer),
  });
}

// ---------------------------------------------------------------- channel

const peerFile = fileURLToPath(new URL("./_tails_peer.ts", import.meta.url));

/** Starts bench/_tails_peer.ts on `channel` and waits for its READY line. */
async function startPeer(channel: ShmChannel): Promise<ChildProcess> {
  const child = spawn(process.execPath, childArgs(peerFile), {
    env: childEnv({ [Env.name]: channel.name, [Env.token]: channel.token }),
    stdio: ["ignore", "pipe", "inherit"],
  });
  try {
    await readyLine(child, "tails peer", peerStartMs);
    await channel.waitForPeer(peerStartMs);
    return child;
  } catch (error) {
    child.kill("SIGKILL");
    throw error;
  }
}

/** `n` sequential runs of `op`, each timed (ms). */
async function timed(n: number, op: (i: number) => Promise<unknown>): Promise<Float64Array> {
  const samples = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await op(i);
    samples[i] = performance.now() - t0;
  }
  return samples;
}

/** Sets the CPU affinity of every thread of process `pid` (taskset from util-linux). */
function pin(pid: number, cpus: string): void {
  const result = spawnSync("taskset", ["-a", "-p", "-c", cpus, String(pid)], { stdio: ["ignore", "ignore", "pipe"] });
  if (result.status !== 0) throw new Error(`taskset -a -p -c ${cpus} ${pid} failed: ${result.stderr}`);
}

/**
 * The channel's 64 B round trip. `boost` (the `nice` part): instead of probes off vs on, probes off with this
 * session's autogroup (bench and peer) at nice 0 vs {@link boostedNice}: if the tails are other sessions' tasks
 * preempting ours, a larger CPU share cuts them.
 */
async function benchChannel(kind: "probes" | "nice" | "pin" = "probes"): Promise<void> {
  const boost = kind === "nice";
  const n = samplesArg ?? 5_000;
  log(
    `channel.rtt 64 B: ${rounds} rounds of ${n} round trips, ${
      boost ? `autogroup nice 0 and ${boostedNice}` : "probes off and on"
    }`,
  );
  const channel = ShmChannel.create();
  let child: ChildProcess | undefined;
  try {
    child = await startPeer(channel);
    const probe = new Probe(n + 1, () => channel.stats());
    const msg = message(Op.echo, 64);
    const echo = async (i: number) => {
      msg[1] = i & 0xff;
      await channel.send(msg);
      const r = await channel.receive();
      if (r.length !== 64 || r[1] !== (i & 0xff)) throw new Error(`bad echo: ${r.length} bytes, tag ${r[1]}`);
      channel.release(r);
    };
    for (let i = 0; i < warmupRoundTrips; i++) await echo(i);
    const control = async (op: number, count = 0) => {
      const m = message(op, 64);
      new DataView(m.buffer).setUint32(4, count, true);
      await channel.send(m);
      const reply = await channel.receive();
      if (reply[0] !== op) throw new Error(`tails peer: expected a reply to opcode ${op}, got ${reply[0]}`);
      return reply;
    };
    try {
      const note = `64 B ping-pong, ${runtime} peer`;
      if (kind === "pin") {
        const all = `0-${os.cpus().length - 1}`;
        const modes: [string, string] = ["unpinned", "host on CPU 0, peer on CPU 1"];
        try {
          await runRounds("tails.channel.rtt", "shm", note, modes, async (pinned) => {
            pin(process.pid, pinned ? "0" : all);
            pin(child!.pid!, pinned ? "1" : all);
            return { samples: await timed(n, echo) };
          });
        } finally {
          pin(process.pid, all);
          if (child.exitCode === null) pin(child.pid!, all);
        }
        return;
      }
      if (boost) {
        const modes: [string, string] = ["autogroup nice 0", `autogroup nice ${boostedNice}`];
        try {
          await runRounds("tails.channel.rtt", "shm", note, modes, async (boosted) => {
            setAutogroupNice(boosted ? boostedNice : 0);
            return { samples: await timed(n, echo) };
          });
        } finally {
          setAutogroupNice(0);
        }
        return;
      }
      await runRounds("tails.channel.rtt", "shm", note, ["probes off", "probes on"], async (probed) => {
        const samples = new Float64Array(n);
        if (probed) {
          await control(TailsOp.probe, n);
          probe.reset();
        }
        for (let i = 0; i < n; i++) {
          if (probed) probe.snap();
          const t0 = performance.now();
          await echo(i);
          samples[i] = performance.now() - t0;
        }
        if (!probed) return { samples };
        probe.snap();
        const peer = replyJson<number[][]>(await control(TailsOp.dump));
        if (peer.length !== n + 1) throw new Error(`tails peer sent ${peer.length} snapshots, want ${n + 1}`);
        return { samples, self: probe.data.slice(0, (n + 1) * probeFields.length), peer };
      });
    } finally {
      probe.close();
    }
  } finally {
    if (!channel.closed) await channel.send(message(Op.quit, 64)).catch(() => {});
    channel.close();
    if (child && child.exitCode === null) {
      const exited = new Promise((resolve) => child!.once("exit", resolve));
      const timer = setTimeout(() => child!.kill("SIGKILL"), 5_000);
      await exited;
      clearTimeout(timer);
    }
  }
}

// ---------------------------------------------------------------- echo call

/** The echo call. `pin`: instead of probes off vs on, probes off unpinned vs host on CPU 0 and plugin on CPU 1. */
async function benchRpc(kind: "probes" | "pin" = "probes"): Promise<void> {
  const n = samplesArg ?? 3_000;
  log(
    `rpc.rtt echo call: ${rounds} rounds of ${n} calls, ${
      kind === "pin" ? "unpinned and pinned" : "probes off and on"
    }`,
  );
  const plugins = fileURLToPath(new URL("./plugins", import.meta.url));
  const host = new PluginHost({ dirs: [plugins], transport: "shm", logger: () => {} });
  try {
    await host.load("tails-echo");
    const probe = new Probe(n + 1, () => host.transportStats()[0]);
    const call = () => host.call("tails-echo", "echo", ["hello"]);
    for (let i = 0; i < warmupRoundTrips; i++) await call();
    const note = "echo call, Deno plugin";
    try {
      if (kind === "pin") {
        const pluginPid = host.list()[0].pid!;
        const all = `0-${os.cpus().length - 1}`;
        try {
          await runRounds(
            "tails.rpc.rtt",
            "shm",
            note,
            ["unpinned", "host on CPU 0, plugin on CPU 1"],
            async (pinned) => {
              pin(process.pid, pinned ? "0" : all);
              pin(pluginPid, pinned ? "1" : all);
              return { samples: await timed(n, call) };
            },
          );
        } finally {
          pin(process.pid, all);
        }
        return;
      }
      await runRounds("tails.rpc.rtt", "shm", note, ["probes off", "probes on"], async (probed) => {
        const samples = new Float64Array(n);
        if (probed) {
          await host.call("tails-echo", "probe", [n]);
          probe.reset();
        }
        for (let i = 0; i < n; i++) {
          if (probed) probe.snap();
          const t0 = performance.now();
          await call();
          samples[i] = performance.now() - t0;
        }
        if (!probed) return { samples };
        probe.snap();
        const peer = await host.call("tails-echo", "dump", []) as number[][];
        if (peer.length !== n + 1) throw new Error(`tails-echo sent ${peer.length} snapshots, want ${n + 1}`);
        return { samples, self: probe.data.slice(0, (n + 1) * probeFields.length), peer };
      });
    } finally {
      probe.close();
    }
  } finally {
    await host.close();
  }
}

const parts: [string, () => Promise<void>][] = [
  ["rtt", () => benchChannel()],
  ["rpc", () => benchRpc()],
  ["nice", () => benchChannel("nice")],
  ["pin", () => benchChannel("pin")],
  ["rpc-pin", () => benchRpc("pin")],
];
// `nice` and `pin` are experiments on the machine's scheduling (nice: root): run them only when asked for.
for (const [name, run] of parts) if (only ? only.includes(name) : name === "rtt" || name === "rpc") await run();
printRows(rows, json);
for (const { title, bench, transport, table } of tables) {
  if (json) {
    for (const r of table.rows) {
      console.log(JSON.stringify({ bench: "tails.attribution", of: bench, runtime, transport, ...r }));
    }
    console.log(JSON.stringify({ bench: "tails.undisturbed", of: bench, runtime, transport, ...table.undisturbed }));
  }
  // With --json the tables go to stderr, so one run gives both the rows for charts.ts and the tables to read.
  printAttribution(title, table, json ? console.error : console.log);
}
process.exit(0);
