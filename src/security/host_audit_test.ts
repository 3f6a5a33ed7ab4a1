/**
 * The security layer attached to a real host: the audit log records the
 * host's events from its bus, and the verifier's private copies go as soon as
 * nothing runs from them. Real plugin processes, real files.
 */
import assert from "node:assert/strict";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { pathToFileURL } from "node:url";
import { PluginHost } from "../../mod.ts";
import { root, test } from "../../tests/_harness.ts";
import { AuditLog, hostEventAudit, recordHostEvents, tailAudit, verifyAudit } from "./audit.ts";
import { IntegrityError, type Lock, lockEntryFor, runRootPrefix, sweepStaleRunRoots } from "./lock.ts";
import { createVerifier } from "./verifier.ts";

/**
 * A Bun plugin `name` in `dir` with echo and exit methods; `extra` goes before its definition (e.g. a throw),
 * `methods` adds method source text.
 */
function writePlugin(dir: string, name: string, extra = "", methods = ""): void {
  mkdirSync(dir, { recursive: true });
  const sdk = pathToFileURL(join(root, "plugin.ts")).href;
  writeFileSync(join(dir, "plugin.json"), JSON.stringify({ name, version: "1.0.0", runtime: "bun", entry: "main.ts" }));
  writeFileSync(
    join(dir, "main.ts"),
    `import { definePlugin } from ${JSON.stringify(sdk)};\n${extra}\n` +
      `export default definePlugin({ name: ${JSON.stringify(name)}, version: "1.0.0", methods: {\n` +
      `  echo: (s: string) => s,\n` +
      `  exit: (code: number) => void setTimeout(() => process.exit(code), 1),\n${methods}` +
      `} });\n`,
  );
}

async function until(what: string, ok: () => boolean, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test("every mapped host event type is one the host's bus has, and unknown states map to nothing", () => {
  const host = new PluginHost({ dirs: [], logger: () => {} });
  try {
    for (const type of Object.keys(hostEventAudit)) {
      // Subscribing by name works for each (a typo here would be a type error and a dead subscription).
      const off = host.on(type as "state", () => {});
      off();
    }
    const state = hostEventAudit.state!;
    assert.equal(state({ plugin: "p", instance: 0, state: "starting", at: 0, reason: "" }), undefined);
    assert.equal(state({ plugin: "p", instance: 1, state: "crashed", at: 0, reason: "exit 4" })?.action, "crash");
    assert.equal(
      hostEventAudit.limit!({
        plugin: "p",
        instance: 1,
        pid: 9,
        limit: "memoryMiB",
        action: "killed",
        rssBytes: 2,
        limitBytes: 1,
        at: 0,
      })?.action,
      "limit",
    );
  } finally {
    void host.close();
  }
});

test(
  "a host's refusal, load, crash, restart and unload land in the audit log from its bus, attributed to the actor given",
  async () => {
    const work = mkdtempSync(join(tmpdir(), "plugin-shm-host-audit-"));
    const plugins = join(work, "plugins");
    writePlugin(join(plugins, "steady"), "steady");
    writePlugin(join(plugins, "stranger"), "stranger");
    const file = join(work, "audit.jsonl");
    const log = AuditLog.open(file);
    // Only "steady" is locked; the verifier itself has no audit log: the refusal is recorded from the bus.
    const lock: Lock = {
      version: 1,
      plugins: { steady: lockEntryFor(join(plugins, "steady"), work, "steady", "1.0.0") },
    };
    const verifier = createVerifier({ integrity: "require", lock, runRoot: join(work, "run") });
    const host = new PluginHost({ dirs: [plugins], logger: () => {}, verifier, restartBackoffMs: 10 });
    const stop = recordHostEvents(host, log, { actor: "admin" });
    try {
      await assert.rejects(
        host.load("stranger"),
        (e: unknown) => e instanceof IntegrityError && e.code === "not_locked",
      );
      await host.load("steady");
      assert.equal(await host.call("steady", "echo", ["hi"]), "hi");
      host.call("steady", "exit", [4]).catch(() => {});
      await until(
        "the restart",
        () => host.list().find((p) => p.name === "steady")?.history.some((e) => e.state === "restarting") ?? false,
      );
      await until("serving again", () => host.list().find((p) => p.name === "steady")?.state === "running");
      assert.equal(await host.call("steady", "echo", ["again"]), "again");
      await host.unload("steady");
    } finally {
      stop();
      await host.close();
      verifier.close();
      await log.close();
    }
    try {
      const records = tailAudit(file, 1000);
      const actions = records.map((r) => `${r.plugin}:${r.action}`);
      const refused = records.find((r) => r.action === "refused");
      assert.equal(refused?.plugin, "stranger");
      assert.equal(refused?.details.code, "not_locked");
      assert.equal(refused?.details.error, "IntegrityError");
      for (const a of ["steady:load", "steady:crash", "steady:restart", "steady:unload"]) {
        assert.ok(actions.includes(a), `${a} missing from ${actions.join(" ")}`);
      }
      assert.ok(actions.indexOf("steady:crash") < actions.indexOf("steady:restart"), actions.join(" "));
      assert.ok(actions.lastIndexOf("steady:load") > actions.indexOf("steady:restart"), actions.join(" "));
      assert.ok(records.every((r) => r.actor === "admin"), records.map((r) => r.actor).join(" "));
      assert.equal(verifyAudit(file).records, records.length);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  },
  { timeoutMs: 60_000 },
);

test(
  "the verifier's private copies go when nothing runs from them: unload, a failed load, a reload's old copy, a rolled-back one",
  async () => {
    const work = mkdtempSync(join(tmpdir(), "plugin-shm-copies-"));
    const plugins = join(work, "plugins");
    writePlugin(join(plugins, "steady"), "steady");
    writePlugin(join(plugins, "broken"), "broken", `throw new Error("broken on purpose");`);
    const runRoot = join(work, "run");
    const onDisk = () => (existsSync(runRoot) ? readdirSync(runRoot).length : 0);
    // "warn" with an empty lock: every plugin is checked and copied, and runs.
    const verifier = createVerifier({
      integrity: "warn",
      lock: { version: 1, plugins: {} },
      runRoot,
      onWarning: () => {},
    });
    const host = new PluginHost({ dirs: [plugins], logger: () => {}, verifier });
    const unwatch = verifier.watch(host);
    try {
      await host.load("steady");
      assert.equal(verifier.copies().length, 1);
      const first = verifier.copies()[0];
      await host.unload("steady");
      assert.deepEqual(verifier.copies(), []);
      assert.equal(existsSync(first), false, "unloaded: its copy is gone");

      await assert.rejects(host.load("broken"));
      assert.deepEqual(verifier.copies(), [], "a load that failed leaves no copy");
      assert.equal(onDisk(), 0);

      await host.load("steady");
      const serving = verifier.copies()[0];
      writeFileSync(join(plugins, "steady", "main.ts"), "// v2\n", { flag: "a" });
      await host.reload("steady");
      await until("the old copy to go", () => !existsSync(serving));
      assert.equal(verifier.copies().length, 1);
      assert.notEqual(verifier.copies()[0], serving);
      assert.equal(await host.call("steady", "echo", ["after reload"]), "after reload");

      const current = verifier.copies()[0];
      writeFileSync(join(plugins, "steady", "main.ts"), `throw new Error("bad release");\n`, { flag: "a" });
      await assert.rejects(host.reload("steady"));
      assert.deepEqual(verifier.copies(), [current], "rolled back: the new copy went, the serving one stays");
      assert.equal(await host.call("steady", "echo", ["still"]), "still");
      assert.equal(onDisk(), 1);
    } finally {
      unwatch();
      await host.close();
      verifier.close();
      rmSync(work, { recursive: true, force: true });
    }
  },
  { timeoutMs: 90_000 },
);

test(
  "a plugin that crashes until it fails for good gives its private copy up; another plugin keeps serving from its own",
  async () => {
    const work = mkdtempSync(join(tmpdir(), "plugin-shm-copies-"));
    const plugins = join(work, "plugins");
    // Exits shortly after its handshake, every time: a crash loop.
    writePlugin(join(plugins, "crasher"), "crasher", "setTimeout(() => process.exit(3), 100);");
    writePlugin(join(plugins, "steady"), "steady");
    const verifier = createVerifier({
      integrity: "warn",
      lock: { version: 1, plugins: {} },
      runRoot: join(work, "run"),
      onWarning: () => {},
    });
    const host = new PluginHost({ dirs: [plugins], logger: () => {}, verifier, crashLimit: 2, restartBackoffMs: 10 });
    const unwatch = verifier.watch(host);
    try {
      await host.load("steady");
      await host.load("crasher");
      await until("the crash loop to give up", () => host.list().find((p) => p.name === "crasher")?.state === "failed");
      assert.equal(verifier.copies().length, 1, verifier.copies().join(" "));
      assert.match(
        readFileSync(join(verifier.copies()[0], "plugin.json"), "utf8"),
        /"steady"/,
        "the copy left is steady's",
      );
      assert.equal(await host.call("steady", "echo", ["still here"]), "still here");
    } finally {
      unwatch();
      await host.close();
      verifier.close();
      rmSync(work, { recursive: true, force: true });
    }
  },
  { timeoutMs: 60_000 },
);

test(
  "a plugin killed over its memory limit is recorded as a limit action (which limit, how far over) and a kill",
  async () => {
    const work = mkdtempSync(join(tmpdir(), "plugin-shm-host-audit-"));
    const dir = join(work, "hog");
    const grow =
      "grow: (mib: number) => { for (let i = 0; i < mib; i++) kept.push(new Uint8Array(1 << 20).fill(1)); },\n";
    writePlugin(dir, "hog", "const kept: Uint8Array[] = [];", grow);
    // The hard limit only (no soft limit, so it is not paused first); no restart needed.
    const manifest = JSON.parse(readFileSync(join(dir, "plugin.json"), "utf8"));
    writeFileSync(join(dir, "plugin.json"), JSON.stringify({ ...manifest, limits: { memoryMiB: 160 } }));
    const file = join(work, "audit.jsonl");
    const log = AuditLog.open(file);
    const host = new PluginHost({ dirs: [work], logger: () => {}, restart: false });
    const stop = recordHostEvents(host, log);
    try {
      await host.load("hog");
      await assert.rejects(host.call("hog", "grow", [400], { deadlineMs: 60_000 }));
      await until(
        "the kill",
        () => host.list().find((p) => p.name === "hog")?.history.some((e) => e.state === "killed") ?? false,
      );
    } finally {
      stop();
      await host.close();
      await log.close();
    }
    try {
      const records = tailAudit(file, 1000);
      const limit = records.find((r) => r.action === "limit");
      assert.equal(limit?.plugin, "hog", records.map((r) => r.action).join(" "));
      assert.equal(limit?.details.limit, "memoryMiB");
      assert.equal(limit?.details.action, "killed");
      assert.ok((limit?.details.rssBytes as number) > (limit?.details.limitBytes as number));
      assert.ok(
        records.some((r) => r.plugin === "hog" && r.action === "killed"),
        records.map((r) => r.action).join(" "),
      );
      verifyAudit(file);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  },
  { timeoutMs: 90_000 },
);

test("a private run root a killed process left behind is swept; a live process's and other names are kept", () => {
  const tmp = mkdtempSync(join(tmpdir(), "plugin-shm-sweep-"));
  try {
    // A pid that cannot exist (above the kernel's pid_max of 2^22) stands for a host killed with SIGKILL.
    const dead = join(tmp, `${runRootPrefix}99999999-abc123`);
    const live = join(tmp, `${runRootPrefix}${process.pid}-def456`);
    const other = join(tmp, "plugin-shm-verified-notapid");
    for (const d of [dead, live, other]) mkdirSync(join(d, "copy-x"), { recursive: true });
    writeFileSync(join(dead, "copy-x", "main.ts"), "x", { mode: 0o444 });
    chmodSync(join(dead, "copy-x"), 0o555); // Read-only, as a verified copy is.
    assert.deepEqual(sweepStaleRunRoots(tmp), [dead]);
    assert.equal(existsSync(dead), false);
    assert.ok(existsSync(live) && existsSync(other));
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});
