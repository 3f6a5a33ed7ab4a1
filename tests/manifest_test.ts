/** Manifest validation: every problem at once, with field paths, suggestions and npm's semver rules. */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ManifestError } from "../src/errors.ts";
import { isVersion, isVersionRange, loadManifest, manifestProblems, versionSatisfies } from "../src/host/manifest.ts";
import { closest } from "../src/host/suggest.ts";
import { test } from "./_harness.ts";

function pluginDir(manifest: unknown, files: Record<string, string> = { "main.ts": "" }): string {
  const dir = mkdtempSync(join(tmpdir(), "pshm-manifest-"));
  writeFileSync(join(dir, "plugin.json"), typeof manifest === "string" ? manifest : JSON.stringify(manifest));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}

const valid = { name: "demo", version: "1.0.0", runtime: "deno", entry: "main.ts" };

test("a valid manifest loads with absolute paths and the default protocol range", () => {
  const dir = pluginDir(valid);
  try {
    const m = loadManifest(dir);
    assert.equal(m.name, "demo");
    assert.equal(m.entryPath, join(dir, "main.ts"));
    assert.equal(m.file, join(dir, "plugin.json"));
    assert.equal(m.protocol.length, 2);
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test("every problem is listed with its field path, not only the first", () => {
  const problems = manifestProblems({ name: "Bad Name", version: "1.0", runtime: "python", protocol: [2, "x"] });
  const fields = problems.map((p) => p.field).sort();
  assert.deepEqual(fields, ["entry", "name", "protocol[1]", "runtime", "version"]);
  assert.match(problems.find((p) => p.field === "entry")!.message, /is required/);
  assert.match(problems.find((p) => p.field === "runtime")!.message, /"deno", "bun", "node"/);
});

test("the error thrown for a broken plugin.json carries every problem in its message", () => {
  const dir = pluginDir({ name: "x", version: "one", runtime: "deno", entrypoint: "main.ts" });
  try {
    assert.throws(() => loadManifest(dir), (e: unknown) => {
      assert.ok(e instanceof ManifestError);
      const m = e;
      assert.equal(m.code, "manifest");
      assert.equal(m.file, join(dir, "plugin.json"));
      assert.deepEqual(m.problems.map((p) => p.field).sort(), ["entry", "entrypoint", "version"]);
      assert.match(m.message, /3 problems/);
      assert.match(m.message, /field "entrypoint" is not a known field; did you mean "entry"\?/);
      assert.match(m.message, /field "version" must be a semantic version/);
      return true;
    });
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test("unknown keys get a did-you-mean suggestion when one is close, and none when nothing is", () => {
  const problems = manifestProblems({ ...valid, runtme: "deno", descripton: "x", zzzzzz: 1 });
  const byField = Object.fromEntries(problems.map((p) => [p.field, p.message]));
  assert.match(byField.runtme, /did you mean "runtime"\?/);
  assert.match(byField.descripton, /did you mean "description"\?/);
  assert.equal(byField.zzzzzz, "is not a known field");
  assert.equal(closest("entrypoint", ["name", "entry", "version"]), "entry");
  assert.equal(closest("--transprot".slice(2), ["transport", "dir"]), "transport");
});

test("versions follow npm semver: pre-release and build metadata pass, sloppy forms fail", () => {
  for (const v of ["1.0.0", "1.0.0-rc.1+build.5", "0.0.1-alpha", "10.20.30+meta"]) assert.ok(isVersion(v), v);
  for (const v of ["1.0", "v1.0.0", " 1.0.0", "1.0.0.0", "01.0.0", ""]) assert.ok(!isVersion(v), v);
  assert.deepEqual(manifestProblems({ ...valid, version: "1.0.0-rc.1+build.5" }), []);
});

test("version ranges use npm's rules", () => {
  for (const r of ["^1.2.0", ">=1.0.0 <3", "1.x", "*", "~0.3"]) assert.ok(isVersionRange(r), r);
  for (const r of ["not a range", "", ">>1"]) assert.ok(!isVersionRange(r), r);
  assert.ok(versionSatisfies("1.4.0", "^1.2.0"));
  assert.ok(!versionSatisfies("2.0.0", "^1.2.0"));
  assert.ok(!versionSatisfies("1.3.0-rc.1", "^1.2.0"), "pre-releases only match ranges that name one");
});

test("runtime accepts deno, bun and node", () => {
  for (const runtime of ["deno", "bun", "node"]) assert.deepEqual(manifestProblems({ ...valid, runtime }), []);
});

test("a missing entry file is a problem on the entry field", () => {
  const dir = pluginDir(valid, {});
  try {
    assert.throws(
      () => loadManifest(dir),
      (e: ManifestError) => e.field === "entry" && /does not exist/.test(e.message),
    );
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test("an entry outside the plugin's directory is refused", () => {
  for (const entry of ["../x.ts", "/etc/passwd"]) {
    const problems = manifestProblems({ ...valid, entry });
    assert.equal(problems[0].field, "entry");
    assert.match(problems[0].message, /relative path inside/);
  }
});

test("not an object, not JSON and no file are each one clear problem", () => {
  assert.match(manifestProblems([1, 2])[0].message, /must be a JSON object/);
  const dir = pluginDir("{ nope");
  try {
    assert.throws(() => loadManifest(dir), /is not valid JSON/);
    rmSync(join(dir, "plugin.json"));
    assert.throws(() => loadManifest(dir), /cannot be read/);
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test("a relative plugin directory resolves against the current directory, also with spaces and non-ASCII", () => {
  const parent = mkdtempSync(join(tmpdir(), "pshm-manifest-"));
  const dir = join(parent, "my plugins ü", "demo");
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "plugin.json"), JSON.stringify(valid));
  writeFileSync(join(dir, "main.ts"), "");
  const cwd = process.cwd();
  try {
    process.chdir(parent);
    const m = loadManifest(join("my plugins ü", "demo"));
    assert.equal(m.dir, dir);
    assert.equal(m.entryPath, join(dir, "main.ts"));
  } finally {
    process.chdir(cwd);
    rmSync(parent, { recursive: true });
  }
});

test("extra fields (the sandbox's permissions) plug into validation", async () => {
  const { z } = await import("zod");
  const extraFields = { permissions: z.strictObject({ read: z.array(z.string()) }) };
  assert.deepEqual(manifestProblems({ ...valid, permissions: { read: ["/tmp"] } }, undefined, { extraFields }), []);
  const problems = manifestProblems({ ...valid, permissions: { reed: [] } }, undefined, { extraFields });
  assert.deepEqual(problems.map((p) => p.field).sort(), ["permissions.read", "permissions.reed"]);
  assert.match(problems.find((p) => p.field === "permissions.reed")!.message, /did you mean/);
});
