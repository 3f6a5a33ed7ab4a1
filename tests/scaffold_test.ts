/**
 * `cli.ts new` writes a plugin for each runtime that passes its own test at
 * once through `cli.ts test`; bad input (a bad name, a non-empty directory, a
 * directory without tests) is a clear error.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { loadManifest } from "../mod.ts";
import { root, runtime, runtimes, test } from "./_harness.ts";

function cliCommand(): string[] {
  if (runtime === "deno") return [runtimes.deno, "run", "-A", join(root, "cli.ts")];
  if (runtime === "bun") return [runtimes.bun, join(root, "cli.ts")];
  return [runtimes.node, join(root, "dist", "cli.js")];
}

function cli(args: string[], cwd: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const argv = [...cliCommand(), ...args];
  const child = spawn(argv[0], argv.slice(1), {
    cwd,
    env: { ...process.env, NO_COLOR: "1" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (d) => (stdout += d));
  child.stderr!.on("data", (d) => (stderr += d));
  return new Promise((resolve) => child.on("close", (code) => resolve({ code, stdout, stderr })));
}

for (const pluginRuntime of ["deno", "bun", "node"] as const) {
  test(`"new --runtime ${pluginRuntime}" writes a plugin whose own test passes under "cli.ts test"`, async () => {
    const work = mkdtempSync(join(tmpdir(), "pshm-new-"));
    try {
      const made = await cli(["new", "greeter-x", "--runtime", pluginRuntime], work);
      assert.equal(made.code, 0, made.stderr);
      const dir = join(work, "greeter-x");
      assert.equal(made.stdout.trim(), dir);
      const manifest = loadManifest(dir);
      assert.equal(manifest.runtime, pluginRuntime);
      assert.deepEqual(manifest.permissions, {}, "an empty permissions block: it asks for nothing yet");
      assert.equal((manifest.config?.properties as Record<string, unknown>).greeting !== undefined, true);
      const ext = pluginRuntime === "node" ? "mjs" : "ts";
      assert.match(readFileSync(join(dir, `main.${ext}`), "utf8"), /from "plugin-shm\/plugin"/);
      assert.match(readFileSync(join(dir, `main_test.${ext}`), "utf8"), /from "plugin-shm\/testing"/);
      assert.ok(existsSync(join(dir, "README.md")));

      const tested = await cli(["test", dir], work);
      assert.equal(tested.code, 0, `${tested.stdout}\n${tested.stderr}`);
      assert.match(tested.stdout + tested.stderr, /2 pass|pass 2|2 passed/);

      // Break the plugin: its own test must catch it.
      const main = join(dir, `main.${ext}`);
      writeFileSync(main, readFileSync(main, "utf8").replace("}, ${who}!", "}; ${who}!"));
      const failing = await cli(["test", dir], work);
      assert.notEqual(failing.code, 0, "a broken plugin fails its scaffolded test");
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  }, { timeoutMs: 120_000 });
}

test('"new" refuses a bad name, an unknown runtime and a non-empty directory; "test" one without tests', async () => {
  const work = mkdtempSync(join(tmpdir(), "pshm-new-"));
  try {
    const badName = await cli(["new", "Bad_Name"], work);
    assert.equal(badName.code, 1);
    assert.match(badName.stderr, /ScaffoldError: Plugin name "Bad_Name" is not allowed: use lowercase letters/);

    const badRuntime = await cli(["new", "ok", "--runtime", "python"], work);
    assert.equal(badRuntime.code, 2, "a flag value outside its choices is a usage error");

    mkdirSync(join(work, "taken"));
    writeFileSync(join(work, "taken", "notes.txt"), "mine");
    const taken = await cli(["new", "ok", "--dir", "taken"], work);
    assert.equal(taken.code, 1);
    assert.match(taken.stderr, /taken is not empty \(notes\.txt\); pick another --dir/);
    assert.equal(readFileSync(join(work, "taken", "notes.txt"), "utf8"), "mine", "nothing overwritten");

    mkdirSync(join(work, "untested"));
    writeFileSync(
      join(work, "untested", "plugin.json"),
      JSON.stringify({ name: "untested", version: "1.0.0", runtime: "bun", entry: "main.ts" }),
    );
    writeFileSync(join(work, "untested", "main.ts"), "export {};\n");
    const none = await cli(["test", "untested"], work);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /has no tests/);

    const notPlugin = await cli(["test", "."], work);
    assert.equal(notPlugin.code, 1);
    assert.match(notPlugin.stderr, /plugin\.json/);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}, { timeoutMs: 60_000 });
