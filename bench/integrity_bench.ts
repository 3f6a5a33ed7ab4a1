/**
 * The security layer's costs, against the targets:
 *
 * - integrity.hash: hashTree over a 20 MiB, 2 000-file plugin directory (≤ 100 ms), next to
 *   integrity.copy: copyVerified, the check the host runs (hash while copying into a private copy), and
 *   the alternative a user would otherwise pick, `sha256sum` over the same files (one process).
 * - signature.keyed / signature.keyless: one bundle verified offline (≤ 20 ms / ≤ 50 ms).
 * - integrity.load: host.load() + unload() of a plugin carrying that tree, without a verifier, then with
 *   `integrity: "require"` (the verify cost each load pays: hash while copying, compare with the lock), then
 *   with a keyed signature checked as well.
 * - audit.append: records per second through AuditLog, append to on-disk (≥ 20 k/s).
 * - audit.call_rtt: echo call latency to the Deno `echo` plugin with no audit log, then while an
 *   audit log takes 20 000 records/s in the same process (p50 change ≤ 5 %).
 *
 * Back of the envelope: SHA-256 with SHA-NI runs at ~1.5 GB/s, so 20 MiB costs ~14 ms; 2 000 files at
 * ~15 µs of open/read/close each add ~30 ms; the copy doubles the syscalls and writes 20 MiB to tmpfs or
 * page cache. The hash alone should land near 50 ms, the copy near 100 ms.
 *
 * Run: deno run -A bench/integrity_bench.ts [--json] [--quick]   (or: bun bench/integrity_bench.ts)
 *
 * @module
 */

import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath, pathToFileURL } from "node:url";
import {
  AuditLog,
  compileTrust,
  copyVerified,
  createVerifier,
  hashTree,
  type IntegrityVerifier,
  lockEntryFor,
  removeCopy,
  signTree,
  verifyAudit,
  verifyBundle,
} from "../security.ts";
import { PluginHost } from "../mod.ts";
import { type BenchRow, latencyRow, printRows, rateRow } from "./_stats.ts";

const quick = process.argv.includes("--quick");
const json = process.argv.includes("--json");
const root = fileURLToPath(new URL("..", import.meta.url));
const sig = `${root}tests/fixtures/sigstore`;
const treeFiles = quick ? 200 : 2_000;
const treeBytes = quick ? 2 * 1024 * 1024 : 20 * 1024 * 1024;
const treeRounds = quick ? 3 : 20;
const verifyRounds = quick ? 20 : 500;
const auditRecords = quick ? 2_000 : 200_000;
const callSamples = quick ? 500 : 20_000;
const auditRatePerS = 20_000;
const loadRounds = quick ? 2 : 10;
const rows: BenchRow[] = [];

function log(text: string): void {
  if (!json) console.error(`… ${text}`);
}

function makeTree(dir: string): void {
  writeFileSync(
    join(dir, "plugin.json"),
    JSON.stringify({ name: "big", version: "1.0.0", runtime: "deno", entry: "f0.js" }),
  );
  const each = Math.floor(treeBytes / treeFiles);
  for (let i = 0; i < treeFiles; i++) {
    const sub = join(dir, `d${i % 20}`);
    mkdirSync(sub, { recursive: true });
    writeFileSync(join(sub, `f${i}.js`), randomBytes(each));
  }
}

/** A Bun plugin with the bench tree under it, so loading it means verifying 20 MiB in 2 000 files. */
function makePlugin(dir: string): void {
  mkdirSync(join(dir, "assets"), { recursive: true });
  makeTree(join(dir, "assets"));
  const sdk = pathToFileURL(join(root, "plugin.ts")).href;
  writeFileSync(
    join(dir, "plugin.json"),
    JSON.stringify({ name: "big", version: "1.0.0", runtime: "bun", entry: "main.ts" }),
  );
  writeFileSync(
    join(dir, "main.ts"),
    `import { definePlugin } from ${JSON.stringify(sdk)};\n` +
      `export default definePlugin({ name: "big", version: "1.0.0", methods: { ping: () => "pong" } });\n`,
  );
}

/** Load + first call + unload of plugin "big" under `plugins`, `loadRounds` times, with the verifier given. */
async function loads(plugins: string, verifier?: IntegrityVerifier): Promise<number[]> {
  const host = new PluginHost({ dirs: [plugins], logger: () => {}, verifier });
  const unwatch = verifier?.watch(host);
  try {
    const samples: number[] = [];
    for (let i = 0; i < loadRounds; i++) {
      const t0 = performance.now();
      await host.load("big");
      await host.call("big", "ping");
      samples.push(performance.now() - t0);
      await host.unload("big");
    }
    return samples;
  } finally {
    unwatch?.();
    await host.close();
    verifier?.close();
  }
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

/** Echo call latency alone, then with the audit log taking `auditRatePerS` records in the same process. */
async function callsUnderAudit(file: string): Promise<void> {
  const host = new PluginHost({ dirs: [`${root}examples/plugins`], logger: () => {} });
  try {
    await host.load("echo");
    const call = () => host.call("echo", "echo", ["hello"]);
    rows.push(latencyRow("audit.call_rtt", "no audit", await sequential(call, callSamples), "echo call, shm"));
    const audit = AuditLog.open(file);
    let written = 0;
    const started = performance.now();
    // Appends what is due by the clock on every tick, so the rate holds whatever the timer granularity.
    const timer = setInterval(() => {
      const due = Math.floor((performance.now() - started) * auditRatePerS / 1000);
      for (; written < due; written++) {
        audit.append({ actor: "host", plugin: "echo", action: "load", details: { n: written } });
      }
    }, 1);
    const samples = await sequential(call, callSamples);
    clearInterval(timer);
    const elapsedS = (performance.now() - started) / 1000;
    await audit.close();
    rows.push(
      latencyRow(
        "audit.call_rtt",
        `audit ${auditRatePerS / 1000}k/s`,
        samples,
        `${Math.round(written / elapsedS)} records/s written`,
      ),
    );
  } finally {
    await host.close();
  }
}

function time(fn: () => void): number {
  const t0 = performance.now();
  fn();
  return performance.now() - t0;
}

const scratch = mkdtempSync(join(tmpdir(), "plugin-shm-integrity-bench-"));
try {
  const tree = join(scratch, "tree");
  mkdirSync(tree);
  makeTree(tree);
  const label = `${treeFiles} files, ${treeBytes >> 20} MiB`;
  log(`integrity: ${label}`);
  hashTree(tree); // warm the page cache, as a restart would find it
  rows.push(latencyRow("integrity.hash", label, Array.from({ length: treeRounds }, () => time(() => hashTree(tree)))));
  const runRoot = join(scratch, "copies");
  rows.push(latencyRow(
    "integrity.copy",
    label,
    Array.from({ length: treeRounds }, () => {
      let dir = "";
      const ms = time(() => (dir = copyVerified(tree, undefined, { into: runRoot }).runDir));
      removeCopy(dir);
      return ms;
    }),
  ));
  const sums = spawnSync("sh", [
    "-c",
    `cd '${tree}' && find . -type f -print0 | sort -z | xargs -0 sha256sum >/dev/null`,
  ]);
  if (sums.status === 0) {
    rows.push(latencyRow(
      "integrity.sha256sum",
      label,
      Array.from(
        { length: Math.min(treeRounds, 5) },
        () =>
          time(() =>
            spawnSync("sh", ["-c", `cd '${tree}' && find . -type f -print0 | sort -z | xargs -0 sha256sum >/dev/null`])
          ),
      ),
      "find | sort | sha256sum",
    ));
  }

  log("verify at load");
  const plugins = join(scratch, "plugins");
  const big = join(plugins, "big");
  makePlugin(big);
  const lock = { version: 1 as const, plugins: { big: lockEntryFor(big, plugins, "big", "1.0.0") } };
  rows.push(latencyRow("integrity.load", "no verifier", await loads(plugins), "load + call + unload"));
  rows.push(latencyRow(
    "integrity.load",
    "integrity require",
    await loads(plugins, createVerifier({ integrity: "require", lock, runRoot: join(scratch, "run") })),
    "hash + copy + compare, then the same",
  ));
  signTree(big, { keyPem: readFileSync(join(sig, "cosign.key"), "utf8"), password: "test" });
  rows.push(latencyRow(
    "integrity.load",
    "require + signature",
    await loads(
      plugins,
      createVerifier({
        integrity: "require",
        signatures: "require",
        lock,
        trust: { keys: [readFileSync(join(sig, "cosign.pub"), "utf8")] },
        runRoot: join(scratch, "run"),
      }),
    ),
    "keyed bundle checked too",
  ));

  log("signatures");
  const plugin = join(scratch, "signed");
  mkdirSync(plugin);
  writeFileSync(join(plugin, "plugin.json"), readFileSync(join(sig, "plugin", "plugin.json")));
  writeFileSync(join(plugin, "main.ts"), readFileSync(join(sig, "plugin", "main.ts")));
  const keyed = signTree(plugin, { keyPem: readFileSync(join(sig, "cosign.key"), "utf8"), password: "test" });
  const keyedText = readFileSync(keyed.bundleFile, "utf8");
  const keyedTrust = compileTrust({ keys: [readFileSync(join(sig, "cosign.pub"), "utf8")] });
  rows.push(latencyRow(
    "signature.keyed",
    "offline",
    Array.from({ length: verifyRounds }, () => time(() => verifyBundle(keyedText, "b", keyed.digest, keyedTrust))),
  ));
  const identity = JSON.parse(readFileSync(join(sig, "keyless_identity.json"), "utf8"));
  const keylessTrust = compileTrust({ identities: [identity], trustedRoot: join(sig, "keyless_trusted_root.json") });
  const keylessText = readFileSync(join(sig, "keyless_bundle.json"), "utf8");
  const fixtureDigest = hashTree(join(sig, "plugin")).digest;
  rows.push(latencyRow(
    "signature.keyless",
    "offline",
    Array.from({ length: verifyRounds }, () => time(() => verifyBundle(keylessText, "b", fixtureDigest, keylessTrust))),
  ));

  log("audit");
  const auditFile = join(scratch, "audit.jsonl");
  const audit = AuditLog.open(auditFile);
  const t0 = performance.now();
  for (let i = 0; i < auditRecords; i++) {
    audit.append({ actor: "host", plugin: "echo", action: "load", details: { instance: i } });
    if (i % 10_000 === 9_999) await audit.flush();
  }
  await audit.close();
  rows.push(rateRow("audit.append", "jsonl", auditRecords, performance.now() - t0, "queued, batched, written"));
  if (verifyAudit(auditFile).records !== auditRecords) throw new Error("audit bench lost records");
  log("calls under audit");
  await callsUnderAudit(join(scratch, "audit-calls.jsonl"));
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
printRows(rows, json);
