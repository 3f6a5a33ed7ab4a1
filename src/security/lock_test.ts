import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  chmodSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fixtures, runtimes, test } from "../../tests/_harness.ts";
import type { Manifest } from "../host/manifest.ts";
import { loadManifest } from "../host/manifest.ts";
import { lockCommand } from "./commands.ts";
import {
  copyVerified,
  hashTree,
  IntegrityError,
  lockEntryFor,
  lockFileName,
  readLock,
  removeCopy,
  writeLock,
} from "./lock.ts";
import { createVerifier } from "./verifier.ts";

/** Private copy directories under the OS temp dir (only this module makes them). */
function verifiedDirs(): string[] {
  return readdirSync(tmpdir()).filter((n) => n.startsWith("plugin-shm-verified-")).sort();
}

function scratch(): string {
  return mkdtempSync(join(tmpdir(), "plugin-shm-lock-test-"));
}

/** A plugin directory with a nested file, an executable and an internal symlink. */
function makePlugin(root: string, name = "demo"): string {
  const dir = join(root, name);
  mkdirSync(join(dir, "lib"), { recursive: true });
  writeFileSync(
    join(dir, "plugin.json"),
    JSON.stringify({ name, version: "1.0.0", runtime: "deno", entry: "main.ts" }),
  );
  writeFileSync(join(dir, "main.ts"), `console.log("approved bytes ran");\n`);
  writeFileSync(join(dir, "lib", "util.ts"), "export const x = 1;\n");
  writeFileSync(join(dir, "run.sh"), "#!/bin/sh\n", { mode: 0o755 });
  symlinkSync("lib/util.ts", join(dir, "util-link.ts"));
  return dir;
}

function expectIntegrity(fn: () => unknown, code: string, file?: string): IntegrityError {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof IntegrityError, `expected IntegrityError, got ${error}`);
    assert.equal(error.code, code, error.message);
    if (file) {
      assert.equal(error.file, file);
      assert.ok(error.message.includes(file), error.message);
    }
    return error;
  }
  assert.fail(`expected IntegrityError ${code}`);
}

test("the tree digest is stable and changes with any file's content, mode, name or link target", () => {
  const root = scratch();
  try {
    const dir = makePlugin(root);
    const a = hashTree(dir);
    assert.equal(a.digest, hashTree(dir).digest);
    assert.deepEqual([...a.files.keys()], ["lib/util.ts", "main.ts", "plugin.json", "run.sh", "util-link.ts"]);
    assert.equal(a.files.get("run.sh")?.kind, "x");
    assert.equal(a.files.get("util-link.ts")?.kind, "l");
    const digests = new Set([a.digest]);
    writeFileSync(join(dir, "lib", "util.ts"), "export const x = 2;\n");
    digests.add(hashTree(dir).digest);
    chmodSync(join(dir, "main.ts"), 0o755);
    digests.add(hashTree(dir).digest);
    rmSync(join(dir, "util-link.ts"));
    symlinkSync("main.ts", join(dir, "util-link.ts"));
    digests.add(hashTree(dir).digest);
    // The bundle and a lock inside the directory are not part of the tree.
    const before = hashTree(dir).digest;
    writeFileSync(join(dir, "plugin.sigstore.json"), "{}");
    writeFileSync(join(dir, lockFileName), "{}");
    assert.equal(hashTree(dir).digest, before);
    assert.equal(digests.size, 4);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("a symlink leaving the plugin directory and a FIFO are refused, naming the file", () => {
  const root = scratch();
  try {
    const dir = makePlugin(root);
    symlinkSync("/etc/passwd", join(dir, "escape"));
    expectIntegrity(() => hashTree(dir), "unsupported_file", join(dir, "escape"));
    rmSync(join(dir, "escape"));
    symlinkSync("../../outside", join(dir, "lib", "up"));
    expectIntegrity(() => hashTree(dir), "unsupported_file", join(dir, "lib", "up"));
    rmSync(join(dir, "lib", "up"));
    assert.equal(spawnSync("mkfifo", [join(dir, "pipe")]).status, 0);
    expectIntegrity(() => hashTree(dir), "unsupported_file", join(dir, "pipe"));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("lock write/read round-trips and a changed, added or removed file is named", () => {
  const root = scratch();
  try {
    const dir = makePlugin(root);
    const { file, plugins } = lockCommand([root]);
    assert.equal(file, join(root, lockFileName));
    assert.deepEqual(plugins.map((p) => p.name), ["demo"]);
    const lock = readLock(file);
    assert.equal(lock.plugins.demo.dir, "demo");
    const entry = lock.plugins.demo;
    const before = verifiedDirs();
    const check = () => removeCopy(copyVerified(dir, entry).runDir);
    check();
    writeFileSync(join(dir, "lib", "util.ts"), "export const x = 666;\n");
    expectIntegrity(check, "file_changed", join(dir, "lib", "util.ts"));
    writeFileSync(join(dir, "lib", "util.ts"), "export const x = 1;\n");
    writeFileSync(join(dir, "lib", "extra.ts"), "");
    expectIntegrity(check, "file_added", join(dir, "lib", "extra.ts"));
    rmSync(join(dir, "lib", "extra.ts"));
    rmSync(join(dir, "run.sh"));
    expectIntegrity(check, "file_removed", join(dir, "run.sh"));
    assert.deepEqual(verifiedDirs(), before, "refused and removed copies leave nothing in the temp dir");
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("a malformed lock gives IntegrityError lock_malformed naming the file and what is wrong", () => {
  const root = scratch();
  try {
    const file = join(root, lockFileName);
    const cases: [string, RegExp][] = [
      ["{not json", /not valid JSON/],
      ["[]", /not a JSON object/],
      [`{"version": 9, "plugins": {}}`, /"version" is 9/],
      [`{"version": 1, "plugins": {"a": {"name": "b"}}}`, /plugins\.a\.name/],
      [
        `{"version": 1, "plugins": {"a": {"name": "a", "version": "1.0.0", "dir": "a", "digest": "sha256:00", "files": {}}}}`,
        /plugins\.a\.digest/,
      ],
    ];
    for (const [text, why] of cases) {
      writeFileSync(file, text);
      const error = expectIntegrity(() => readLock(file), "lock_malformed", file);
      assert.match(error.message, why);
    }
    // A digest that does not match its file list: the lock was edited by hand.
    const dir = makePlugin(root);
    const entry = lockEntryFor(dir, root, "demo", "1.0.0");
    writeLock(file, { version: 1, plugins: { demo: entry } });
    const json = JSON.parse(readFileSync(file, "utf8"));
    json.plugins.demo.files["main.ts"] = "f:" + "0".repeat(64);
    writeFileSync(file, JSON.stringify(json));
    assert.match(expectIntegrity(() => readLock(file), "lock_malformed", file).message, /does not match its file list/);
    const missing = join(root, "nope.lock");
    expectIntegrity(() => readLock(missing), "io", missing);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("the private copy is read-only, holds exactly the checked bytes, and is removed by close()", () => {
  const root = scratch();
  try {
    const dir = makePlugin(root);
    lockCommand([root]);
    const verifier = createVerifier({ integrity: "require", lockFile: join(root, lockFileName) });
    const result = verifier.verify(loadManifest(dir));
    assert.ok(result.runDir && result.runDir !== dir);
    assert.equal(result.digest, hashTree(dir).digest);
    assert.equal(hashTree(result.runDir).digest, result.digest);
    assert.equal(statSync(result.runDir).mode & 0o777, 0o555);
    assert.equal(statSync(join(result.runDir, "main.ts")).mode & 0o777, 0o444);
    assert.equal(statSync(join(result.runDir, "run.sh")).mode & 0o777, 0o555);
    verifier.close();
    assert.equal(existsSync(result.runDir), false);
    assert.equal(existsSync(join(result.runDir, "..")), false, "the private root goes too");
    verifier.close();
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("a file swapped after the check is never run: the plugin runs from the checked copy", () => {
  const root = scratch();
  try {
    const dir = makePlugin(root);
    lockCommand([root]);
    using verifier = createVerifier({ integrity: "require", lockFile: join(root, lockFileName) });
    const manifest = loadManifest(dir);
    const { runDir } = verifier.verify(manifest);
    assert.ok(runDir);
    // The window between check and spawn: an attacker replaces the entry file.
    writeFileSync(join(dir, "main.ts"), `console.log("SWAPPED bytes ran");\n`);
    const run = spawnSync(runtimes.deno, ["run", "--no-config", join(runDir, manifest.entry)], { encoding: "utf8" });
    assert.equal(run.status, 0, run.stderr);
    assert.equal(run.stdout.trim(), "approved bytes ran");
    // The next spawn checks again, and refuses the swapped file before any of it runs.
    expectIntegrity(() => verifier.verify(manifest), "file_changed", join(dir, "main.ts"));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("restarts of an unchanged plugin reuse its copy; a changed, relocked plugin gets a new one", () => {
  const root = scratch();
  try {
    const dir = makePlugin(root);
    lockCommand([root]);
    const lockFile = join(root, lockFileName);
    using verifier = createVerifier({ integrity: "require", lockFile });
    const first = verifier.verify(loadManifest(dir)).runDir;
    assert.equal(verifier.verify(loadManifest(dir)).runDir, first);
    writeFileSync(join(dir, "main.ts"), `console.log("v2");\n`);
    lockCommand([root]);
    using relocked = createVerifier({ integrity: "require", lockFile });
    const second = relocked.verify(loadManifest(dir)).runDir;
    assert.notEqual(second, first);
    assert.equal(readFileSync(join(second!, "main.ts"), "utf8"), `console.log("v2");\n`);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("placement beside keeps imports that leave the plugin directory working from the copy", () => {
  const root = scratch();
  try {
    const dir = makePlugin(root);
    writeFileSync(join(root, "shared.ts"), `export const greeting = "shared module reached";\n`);
    writeFileSync(join(dir, "main.ts"), `import { greeting } from "../shared.ts";\nconsole.log(greeting);\n`);
    lockCommand([root]);
    using verifier = createVerifier({ integrity: "require", lockFile: join(root, lockFileName), placement: "beside" });
    const { runDir } = verifier.verify(loadManifest(dir));
    assert.ok(runDir);
    assert.equal(join(runDir, ".."), root);
    const run = spawnSync(runtimes.deno, ["run", "--no-config", join(runDir, "main.ts")], { encoding: "utf8" });
    assert.equal(run.status, 0, run.stderr);
    assert.equal(run.stdout.trim(), "shared module reached");
    verifier.close();
    assert.equal(existsSync(runDir), false);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("a plugin that is not in the lock is refused in require mode and runs with a warning in warn mode", () => {
  const root = scratch();
  try {
    writeLock(join(root, lockFileName), { version: 1, plugins: {} });
    const dir = makePlugin(root, "stranger");
    const manifest: Manifest = loadManifest(dir);
    using strict = createVerifier({ integrity: "require", lockFile: join(root, lockFileName) });
    expectIntegrity(() => strict.verify(manifest), "not_locked", manifest.file);
    const warnings: string[] = [];
    using lax = createVerifier({
      integrity: "warn",
      lockFile: join(root, lockFileName),
      onWarning: (m) => warnings.push(m),
    });
    const result = lax.verify(manifest);
    assert.ok(result.runDir);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0], /not in/);
    // Locked but changed: warn mode names the file, as require mode would refuse.
    lockCommand([root]);
    writeFileSync(join(dir, "main.ts"), "changed\n");
    using lax2 = createVerifier({
      integrity: "warn",
      lockFile: join(root, lockFileName),
      onWarning: (m) => warnings.push(m),
    });
    assert.ok(lax2.verify(manifest).runDir);
    assert.ok(
      warnings[1].startsWith(`${join(dir, "main.ts")} changed since plugin "stranger" was locked`),
      warnings[1],
    );
    using off = createVerifier({});
    assert.deepEqual(off.verify(manifest), {});
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("the committed signature fixture plugin hashes to the digest its bundles sign", () => {
  const dir = join(fixtures, "sigstore", "plugin");
  const doc = readFileSync(join(fixtures, "sigstore", "digest.txt"), "utf8");
  assert.equal(doc, `plugin-shm-tree-v1 ${hashTree(dir).digest}\n`);
  const copy = scratch();
  try {
    cpSync(dir, join(copy, "p"), { recursive: true });
    assert.equal(hashTree(join(copy, "p")).digest, hashTree(dir).digest);
  } finally {
    rmSync(copy, { recursive: true, force: true });
  }
});
