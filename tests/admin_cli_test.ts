/**
 * `cli.ts serve --admin`: a real serve process under the test's runtime
 * serves the admin API next to its plugins.
 *
 * @module
 */

import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { expandAdminFlag, parseListen } from "../src/cli/_admin.ts";
import { UsageError } from "../src/cli/_args.ts";
import { examples, processRunning, root, runtime, runtimes, test } from "./_harness.ts";

/** cli.ts under the runtime running the tests (Node runs the compiled copy). */
function cliCommand(): string[] {
  if (runtime === "deno") return [runtimes.deno, "run", "-A", join(root, "cli.ts")];
  if (runtime === "bun") return [runtimes.bun, join(root, "cli.ts")];
  return [runtimes.node, join(root, "dist", "cli.js")];
}

interface Served {
  child: ChildProcess;
  stderr(): string;
  exited: Promise<number | null>;
}

function startServe(args: string[], env: Record<string, string | undefined> = {}): Served {
  const argv = [...cliCommand(), "serve", examples, ...args];
  const child = spawn(argv[0], argv.slice(1), {
    cwd: root,
    env: { ...process.env, NO_COLOR: "1", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr!.on("data", (d) => (stderr += d));
  child.stdout!.resume();
  const exited = new Promise<number | null>((resolve) =>
    child.on("close", (code, signal) => {
      if (signal) stderr += `\n(ended by ${signal})`;
      resolve(code);
    })
  );
  return { child, stderr: () => stderr, exited };
}

/** Waits for the admin URL line (or the process' end) and returns the URL. */
async function adminUrl(served: Served): Promise<string> {
  let done = false;
  void served.exited.then(() => (done = true));
  for (let i = 0; i < 600 && !done; i++) {
    const match = /admin API and dashboard at (\S+) \(token (?:in (\S+)|from \S+)\)/.exec(served.stderr());
    if (match && /serving \d+ plugin/.test(served.stderr())) return match[1];
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no admin URL from the serve; its stderr:\n${served.stderr()}`);
}

/**
 * Stops a serve through its control socket (`cli.ts stop`), then returns its
 * exit code. Not by a signal: Deno's child_process reports the signal it sent
 * even when the child caught it and exited 0.
 */
async function stop(served: Served, socket: string): Promise<number | null> {
  if (served.child.exitCode === null) {
    const argv = [...cliCommand(), "stop", "--socket", socket];
    const stopper = spawn(argv[0], argv.slice(1), { cwd: root, stdio: "ignore" });
    await new Promise((resolve) => stopper.on("close", resolve));
  }
  const timer = setTimeout(() => served.child.kill("SIGKILL"), 30_000);
  try {
    return await served.exited;
  } finally {
    clearTimeout(timer);
  }
}

test("--admin takes an optional host:port and leaves directories and other flags alone", () => {
  assert.deepEqual(expandAdminFlag(["--admin"]), ["--admin="]);
  assert.deepEqual(expandAdminFlag(["--admin", "./plugins"]), ["--admin=", "./plugins"]);
  assert.deepEqual(expandAdminFlag(["--admin", "0.0.0.0:8443", "dir"]), ["--admin=0.0.0.0:8443", "dir"]);
  assert.deepEqual(expandAdminFlag(["--admin", "--watch"]), ["--admin=", "--watch"]);
  assert.deepEqual(expandAdminFlag(["--admin", "[::1]:80"]), ["--admin=[::1]:80"]);
  assert.deepEqual(parseListen("", "serve"), { hostname: "127.0.0.1", port: 0 });
  assert.deepEqual(parseListen("8787", "serve"), { hostname: "127.0.0.1", port: 8787 });
  assert.deepEqual(parseListen("[::1]:9000", "serve"), { hostname: "::1", port: 9000 });
  assert.throws(() => parseListen("host:99999", "serve"), UsageError);
  assert.throws(() => parseListen("not an address", "serve"), UsageError);
});

test(
  "serve --admin answers the API with the token from its 0600 file, 401 without, and stops cleanly",
  async () => {
    const dir = mkdtempSync(join(tmpdir(), "pshm-admin-cli-"));
    const tokenFile = join(dir, "state", "admin-token");
    const socket = join(dir, "control.sock");
    const served = startServe(
      ["--socket", socket, "--admin", "127.0.0.1:0", "--admin-token-file", tokenFile],
      { PLUGIN_SHM_ADMIN_TOKEN: undefined },
    );
    let pids: number[] = [];
    try {
      const url = await adminUrl(served);
      assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
      assert.ok(served.stderr().includes(`token in ${tokenFile}`), served.stderr());
      assert.equal(statSync(tokenFile).mode & 0o777, 0o600);
      const token = (await import("node:fs")).readFileSync(tokenFile, "utf8").trim();
      const headers = { authorization: `Bearer ${token}` };

      const res = await fetch(`${url}api/plugins`, { headers });
      assert.equal(res.status, 200);
      const body = (await res.json()) as { plugins: { name: string; state: string; pids: number[] }[] };
      assert.deepEqual(body.plugins.map((p) => `${p.name} ${p.state}`), [
        "echo running",
        "kv running",
        "transform running",
      ]);
      pids = body.plugins.flatMap((p) => p.pids);

      const refused = await fetch(`${url}api/plugins`);
      assert.equal(refused.status, 401);
      assert.equal(((await refused.json()) as { error: { code: string } }).error.code, "missing_token");
      const wrong = await fetch(`${url}api/plugins`, { headers: { authorization: "Bearer wrong-token-0123456789" } });
      assert.equal(wrong.status, 401);
      await wrong.body?.cancel();

      // The metrics observe the serve's host: a reload through the API is counted in /metrics.
      const reload = await fetch(`${url}api/plugins/kv/reload`, { method: "POST", headers });
      assert.equal(reload.status, 200, await reload.clone().text());
      await reload.body?.cancel();
      const metrics = await fetch(`${url}metrics`, { headers });
      assert.equal(metrics.status, 200);
      assert.match(await metrics.text(), /plugin_shm_plugin_reloads_total\{plugin="kv"\} 1/);
    } finally {
      assert.equal(await stop(served, socket), 0, served.stderr());
      rmSync(dir, { recursive: true, force: true });
    }
    for (const pid of pids) assert.ok(!processRunning(pid), `plugin process ${pid} left running`);
  },
  { timeoutMs: 90_000 },
);

test("serve --admin takes the token from PLUGIN_SHM_ADMIN_TOKEN and writes no file", async () => {
  const dir = mkdtempSync(join(tmpdir(), "pshm-admin-cli-"));
  const tokenFile = join(dir, "admin-token");
  const token = "env-token-for-the-admin-0123456789";
  const socket = join(dir, "control.sock");
  const served = startServe(["--socket", socket, "--admin", "--admin-token-file", tokenFile], {
    PLUGIN_SHM_ADMIN_TOKEN: token,
  });
  try {
    const url = await adminUrl(served);
    assert.match(served.stderr(), /token from PLUGIN_SHM_ADMIN_TOKEN/);
    assert.ok(!existsSync(tokenFile));
    const res = await fetch(`${url}api/plugins`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(res.status, 200);
    await res.body?.cancel();
  } finally {
    assert.equal(await stop(served, socket), 0, served.stderr());
    rmSync(dir, { recursive: true, force: true });
  }
}, { timeoutMs: 90_000 });

test("serve --admin on a non-loopback address without TLS refuses to start, saying what to pass", async () => {
  const dir = mkdtempSync(join(tmpdir(), "pshm-admin-cli-"));
  const socket = join(dir, "control.sock");
  const served = startServe(["--socket", socket, "--admin", "0.0.0.0:0"], {
    PLUGIN_SHM_ADMIN_TOKEN: "env-token-for-the-admin-0123456789",
  });
  try {
    assert.equal(await served.exited, 2);
    assert.match(
      served.stderr(),
      /token would cross the network in clear; pass --admin-cert <file> --admin-key <file>/,
    );
    assert.ok(!/serving \d+ plugin/.test(served.stderr()), "no plugin was served");
    const half = startServe(["--socket", join(dir, "c2.sock"), "--admin", "--admin-cert", "x.pem"]);
    assert.equal(await half.exited, 2);
    assert.match(half.stderr(), /--admin-cert and --admin-key go together/);
  } finally {
    await stop(served, socket);
    rmSync(dir, { recursive: true, force: true });
  }
}, { timeoutMs: 90_000 });

test("serve --admin shows the verifier's verdict in the trust column: locked, or warned in warn mode", async () => {
  const dir = mkdtempSync(join(tmpdir(), "pshm-admin-cli-"));
  const token = "trust-token-for-the-admin-0123456789";
  const socket = join(dir, "control.sock");
  const lock = join(dir, "plugin-shm.lock");
  const locker = spawnSync(cliCommand()[0], [...cliCommand().slice(1), "lock", `${examples}/echo`, "--out", lock], {
    cwd: root,
    encoding: "utf8",
  });
  assert.equal(locker.status, 0, locker.stderr);
  const served = startServe(["--socket", socket, "--admin", "--integrity", "warn", "--lock", lock], {
    PLUGIN_SHM_ADMIN_TOKEN: token,
  });
  try {
    const url = await adminUrl(served);
    const res = await fetch(`${url}api/plugins`, { headers: { authorization: `Bearer ${token}` } });
    const { plugins } = await res.json() as { plugins: { name: string; trust: string | null }[] };
    const trust = Object.fromEntries(plugins.map((p) => [p.name, p.trust]));
    assert.match(trust.echo ?? "", /^locked sha256:[0-9a-f]{12}…$/, served.stderr());
    assert.match(trust.kv ?? "", /^warned: .*not in/, "kv is not in the lock: it runs, with a warning");
  } finally {
    assert.equal(await stop(served, socket), 0, served.stderr());
    rmSync(dir, { recursive: true, force: true });
  }
}, { timeoutMs: 90_000 });
