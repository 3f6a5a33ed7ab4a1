/**
 * The sandbox through the real host: plugins loaded by a PluginHost whose
 * launch planner is sandboxPlanner, each a hostile plugin whose methods go to
 * libc through FFI (tests/hostile/_libc.ts), so only the OS boundary stands in
 * the way. Runs under Deno and Bun, each loading plugins of its own runtime
 * (Node has no FFI for the attacker; tests/sandbox_test.ts covers Node as a
 * sandboxed shm peer).
 */
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { type LaunchPlan, type LaunchPlanner, loadManifest, PluginHost, SandboxError } from "../mod.ts";
import { type Permissions, sandboxPlanner, type SandboxPlannerOptions } from "../security.ts";
import { processRunning, root, runtime, segmentsLeft, segmentsOf, test } from "./_harness.ts";

const EACCES = 13;
const pluginRuntime: "deno" | "bun" = runtime === "bun" ? "bun" : "deno";

/** A hostile plugin in a fresh directory: `act` runs one _libc.ts action, `echo` proves the fast path. */
function hostilePlugin(name: string, permissions?: Permissions): string {
  const dir = realpathSync(mkdtempSync(`${tmpdir()}/pshm-hostile-`));
  writeFileSync(
    `${dir}/plugin.json`,
    JSON.stringify({
      name,
      version: "1.0.0",
      runtime: pluginRuntime,
      entry: "main.ts",
      ...(permissions ? { permissions } : {}),
    }),
  );
  writeFileSync(
    `${dir}/main.ts`,
    `import { definePlugin } from "${root}plugin.ts";
import { act, openLibc } from "${root}tests/hostile/_libc.ts";
const libc = await openLibc();
export default definePlugin({
  name: ${JSON.stringify(name)},
  version: "1.0.0",
  methods: {
    act: (action: string, arg: string) => act(libc, action, arg),
    echo: (value: unknown) => value,
  },
});
`,
  );
  return dir;
}

function scratch(): string {
  return realpathSync(mkdtempSync(`${tmpdir()}/pshm-sandbox-host-`));
}

/** Every descendant of `pid` (host namespace), from /proc/PID/task/TID/children. */
function descendants(pid: number): number[] {
  const found: number[] = [];
  const walk = (p: number) => {
    let tasks: string[] = [];
    try {
      tasks = readdirSync(`/proc/${p}/task`);
    } catch {
      return;
    }
    for (const task of tasks) {
      let children = "";
      try {
        children = readFileSync(`/proc/${p}/task/${task}/children`, "utf8");
      } catch { /* gone meanwhile */ }
      for (const child of children.trim().split(/\s+/).filter(Boolean).map(Number)) {
        found.push(child);
        walk(child);
      }
    }
  };
  walk(pid);
  return found;
}

/** Polls `condition` until it holds or `limitMs` passes (a bound against hanging, not a timing claim). */
async function eventually(condition: () => boolean, limitMs = 10_000): Promise<boolean> {
  const deadline = Date.now() + limitMs;
  while (Date.now() < deadline) {
    if (condition()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return condition();
}

/** Runs `body` with a sandboxing host; afterwards checks every plugin process and segment is gone. */
async function withHost(
  options: SandboxPlannerOptions,
  body: (host: PluginHost, pids: () => number[]) => Promise<void>,
): Promise<void> {
  const segmentsBefore = segmentsOf();
  const host = new PluginHost({ launchPlanner: sandboxPlanner({ sandbox: "required", ...options }) });
  const seen = new Set<number>();
  const pids = () => {
    for (const info of host.list()) {
      for (const pid of info.pids) [pid, ...descendants(pid)].forEach((p) => seen.add(p));
    }
    return [...seen];
  };
  try {
    await body(host, pids);
    pids();
  } finally {
    await host.close();
  }
  const all = [...seen];
  assert.ok(await eventually(() => all.every((p) => !processRunning(p))), `plugin processes left: ${all}`);
  // Only this host's segments: another test's host in this process may still be unlinking its own.
  assert.deepEqual(await segmentsLeft([process.pid, ...all], segmentsBefore), []);
}

test("sandboxed host: a plugin's FFI read outside its grants is denied, the host keeps serving", async () => {
  const secretDir = scratch();
  writeFileSync(`${secretDir}/secret`, "s3cret");
  const denied = hostilePlugin("hostile-denied");
  const other = hostilePlugin("bystander");
  try {
    await withHost({}, async (host, pids) => {
      await host.load(denied);
      await host.load(other);
      const info = host.list().find((p) => p.name === "hostile-denied")!;
      assert.ok(descendants(info.pid!).length > 0, "the plugin runs under the launcher, a child of the host's pid");
      pids();
      const result = await host.call("hostile-denied", "act", ["read", `${secretDir}/secret`]) as {
        ok: boolean;
        errno: number;
      };
      assert.deepEqual([result.ok, result.errno], [false, EACCES]);
      assert.equal(await host.call("hostile-denied", "echo", ["still here"]), "still here");
      assert.deepEqual(await host.call("bystander", "echo", [{ a: [1, 2] }]), { a: [1, 2] });
    });
  } finally {
    for (const dir of [secretDir, denied, other]) rmSync(dir, { recursive: true, force: true });
  }
}, { timeoutMs: 90_000 });

test("sandboxed host: the same read succeeds with a read grant, relative to the plugin directory", async () => {
  const plugin = hostilePlugin("hostile-granted", { read: ["./data"] });
  writeFileSync(`${plugin}/data`, "granted");
  const outside = scratch();
  writeFileSync(`${outside}/secret`, "s3cret");
  try {
    await withHost({}, async (host, pids) => {
      await host.load(plugin);
      pids();
      const result = await host.call("hostile-granted", "act", ["read", `${plugin}/data`]) as {
        ok: boolean;
        text: string;
      };
      assert.deepEqual([result.ok, result.text], [true, "granted"]);
      const still = await host.call("hostile-granted", "act", ["read", `${outside}/secret`]) as { ok: boolean };
      assert.equal(still.ok, false, "a read grant opens only what it names");
    });
  } finally {
    rmSync(plugin, { recursive: true, force: true });
    rmSync(outside, { recursive: true, force: true });
  }
}, { timeoutMs: 90_000 });

test("sandboxed host: a grant the host narrows away is denied although the manifest asks for it", async () => {
  const outside = scratch();
  writeFileSync(`${outside}/secret`, "s3cret");
  const plugin = hostilePlugin("hostile-narrowed", { read: [`${outside}/secret`] });
  try {
    await withHost({ narrow: { "hostile-narrowed": { permissions: { read: [] } } } }, async (host, pids) => {
      await host.load(plugin);
      pids();
      const result = await host.call("hostile-narrowed", "act", ["read", `${outside}/secret`]) as {
        ok: boolean;
        errno: number;
      };
      assert.deepEqual([result.ok, result.errno], [false, EACCES]);
    });
  } finally {
    rmSync(plugin, { recursive: true, force: true });
    rmSync(outside, { recursive: true, force: true });
  }
}, { timeoutMs: 90_000 });

/** The pids (host namespace) of sleepers whose argument is `marker`. */
function sleepers(marker: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, "utf8") === `/usr/bin/sleep\0${marker}\0`) found.push(Number(entry));
    } catch { /* gone meanwhile */ }
  }
  return found;
}

test("sandboxed host: a setsid grandchild of a plugin is gone after host.close()", async () => {
  const plugin = hostilePlugin("hostile-spawner", { run: ["/usr/bin/setsid", "/usr/bin/sleep"] });
  const marker = `298.${process.pid}${Math.floor(Math.random() * 1e6)}`;
  try {
    await withHost({}, async (host, pids) => {
      await host.load(plugin);
      pids();
      const result = await host.call("hostile-spawner", "act", ["spawn-detached", marker]) as { ok: boolean };
      assert.equal(result.ok, true);
      assert.ok(
        await eventually(() => sleepers(marker).length === 1),
        "the grandchild should run while the plugin does",
      );
    });
    assert.ok(await eventually(() => sleepers(marker).length === 0), `grandchild ${sleepers(marker)} outlived close()`);
  } finally {
    rmSync(plugin, { recursive: true, force: true });
  }
}, { timeoutMs: 90_000 });

test("sandboxed host: a manifest with an unknown permission is refused with the field named", async () => {
  const dir = hostilePlugin("hostile-typo");
  const manifest = JSON.parse(readFileSync(`${dir}/plugin.json`, "utf8"));
  writeFileSync(`${dir}/plugin.json`, JSON.stringify({ ...manifest, permissions: { reed: ["/etc"] } }));
  try {
    await withHost({}, async (host) => {
      await assert.rejects(host.load(dir), (e: unknown) => {
        assert.equal((e as { code?: string }).code, "manifest");
        assert.match((e as Error).message, /permissions\.reed.*did you mean "read"/);
        return true;
      });
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("sandboxed host: a missing launcher refuses the plugin with a typed error, the host keeps serving", async () => {
  const plugin = hostilePlugin("hostile-unlaunched");
  const other = hostilePlugin("bystander-unlaunched");
  try {
    const missing = sandboxPlanner({ launcher: `${root}zig-out/bin/no-such-launcher` });
    await withHost({}, async (host, pids) => {
      await host.load(other);
      pids();
      // The planner is per host: the refusal comes from a second host beside the serving one.
      const refusing = new PluginHost({ launchPlanner: missing });
      try {
        await assert.rejects(refusing.load(plugin), (e: unknown) => {
          assert.equal((e as { code?: string }).code, "launcher_missing");
          assert.match((e as Error).message, /make build/);
          return true;
        });
      } finally {
        await refusing.close();
      }
      assert.equal(await host.call("bystander-unlaunched", "echo", [7]), 7);
    });
  } finally {
    rmSync(plugin, { recursive: true, force: true });
    rmSync(other, { recursive: true, force: true });
  }
}, { timeoutMs: 90_000 });

test(
  "sandboxed host: Node and Deno example plugins answer over shm inside the sandbox",
  async () => {
    await withHost({}, async (host, pids) => {
      await host.load(`${root}tests/fixtures/node_echo`);
      await host.load(`${root}examples/plugins/echo`);
      pids();
      assert.deepEqual(await host.call("node-echo", "echo", [{ via: "node" }]), { via: "node" });
      assert.equal(await host.call("echo", "add", [2, 3]), 5);
      assert.equal(host.list().find((p) => p.name === "echo")!.transport, "shm");
    });
  },
  { timeoutMs: 90_000 },
);

test("manifest v2: relative grant paths resolve against the plugin directory; a soft limit above the hard one is refused", () => {
  const dir = hostilePlugin("hostile-manifest", { read: ["./data", "/etc/hosts"], write: ["state"] });
  try {
    const manifest = loadManifest(dir);
    assert.deepEqual(manifest.permissions, { read: [`${dir}/data`, "/etc/hosts"], write: [`${dir}/state`] });
    const v1 = loadManifest(`${root}examples/plugins/kv`);
    assert.equal(v1.permissions, undefined, "a v1 manifest grants nothing");
    const json = JSON.parse(readFileSync(`${dir}/plugin.json`, "utf8"));
    writeFileSync(`${dir}/plugin.json`, JSON.stringify({ ...json, limits: { memoryMiB: 128, memorySoftMiB: 256 } }));
    assert.throws(() => loadManifest(dir), /memorySoftMiB must not exceed limits\.memoryMiB/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test(
  'default host: with no sandbox option every plugin runs under the launcher; sandbox: "off" runs it unconfined',
  async () => {
    const secretDir = scratch();
    writeFileSync(`${secretDir}/secret`, "s3cret");
    const plugin = hostilePlugin("hostile-default");
    const run = async (options: ConstructorParameters<typeof PluginHost>[0]) => {
      const host = new PluginHost(options);
      try {
        await host.load(plugin);
        const pid = host.list()[0].pid!;
        const launched = descendants(pid).length > 0;
        const result = await host.call("hostile-default", "act", ["read", `${secretDir}/secret`]) as { ok: boolean };
        return { launched, ok: result.ok, echo: await host.call("hostile-default", "echo", [1]) };
      } finally {
        await host.close();
      }
    };
    try {
      assert.deepEqual(await run({}), { launched: true, ok: false, echo: 1 });
      // Unconfined, the same FFI read succeeds: the denial above is the sandbox's.
      assert.deepEqual(await run({ sandbox: "off" }), { launched: false, ok: true, echo: 1 });
    } finally {
      rmSync(secretDir, { recursive: true, force: true });
      rmSync(plugin, { recursive: true, force: true });
    }
  },
  { timeoutMs: 90_000 },
);

test("default host: option narrow drops a read grant the manifest asks for; without it the read succeeds", async () => {
  const secretDir = scratch();
  writeFileSync(`${secretDir}/secret`, "s3cret");
  const plugin = hostilePlugin("hostile-narrowed", { read: [secretDir] });
  const read = async (options: ConstructorParameters<typeof PluginHost>[0]) => {
    const host = new PluginHost(options);
    try {
      await host.load(plugin);
      return (await host.call("hostile-narrowed", "act", ["read", `${secretDir}/secret`]) as { ok: boolean }).ok;
    } finally {
      await host.close();
    }
  };
  try {
    assert.equal(await read({}), true);
    assert.equal(await read({ narrow: { "hostile-narrowed": { permissions: { read: [] } } } }), false);
    // Narrowing never widens: a grant the manifest does not ask for stays out.
    assert.equal(await read({ narrow: { "hostile-narrowed": { permissions: { read: [secretDir, "/etc"] } } } }), true);
    assert.throws(() => new PluginHost({ sandbox: "strict" as "off" }), /sandbox must be one of "required"/);
  } finally {
    rmSync(secretDir, { recursive: true, force: true });
    rmSync(plugin, { recursive: true, force: true });
  }
}, { timeoutMs: 90_000 });

/**
 * A launch planner that starts the sandboxed plan inside a second launcher: the outer one's seccomp filter
 * refuses new namespaces, which is what a kernel without PID namespaces looks like to the inner launcher
 * (a real refusal from the kernel, not a simulated report).
 */
function nestedPlanner(mode: "required" | "best-effort"): LaunchPlanner {
  const inner = sandboxPlanner({ sandbox: mode });
  return {
    sandboxes: true,
    plan(manifest, base) {
      const plan = inner.plan(manifest, base);
      const options = plan.args.slice(0, plan.args.indexOf("--")).filter((arg) => !arg.startsWith("--mode="));
      return {
        ...plan,
        args: ["--mode=best-effort", ...options, `--exec=${plan.command}`, "--", plan.command, ...plan.args],
      };
    },
  };
}

test(
  "a kernel that refuses a PID namespace fails a required sandbox with kernel_unsupported; best-effort runs",
  async () => {
    const plugin = hostilePlugin("hostile-nested");
    const other = hostilePlugin("bystander-nested");
    try {
      await withHost({}, async (host, pids) => {
        await host.load(other);
        pids();
        const refusing = new PluginHost({ launchPlanner: nestedPlanner("required") });
        try {
          await assert.rejects(refusing.load(plugin), (e: unknown) => {
            assert.ok(e instanceof SandboxError, String(e));
            assert.equal(e.code, "kernel_unsupported");
            assert.match(e.message, /lacks pidns \(errno 1\).*sandbox: "best-effort"/s);
            return true;
          });
        } finally {
          await refusing.close();
        }
        const lenient = new PluginHost({ launchPlanner: nestedPlanner("best-effort") });
        try {
          await lenient.load(plugin);
          assert.equal(await lenient.call("hostile-nested", "echo", ["ran"]), "ran");
        } finally {
          await lenient.close();
        }
        assert.equal(await host.call("bystander-nested", "echo", [7]), 7);
      });
    } finally {
      rmSync(plugin, { recursive: true, force: true });
      rmSync(other, { recursive: true, force: true });
    }
  },
  { timeoutMs: 90_000 },
);

test(
  "a plugin under the sandbox launcher checks on its host every 30 s, not every second: the launcher takes it down with the host",
  async () => {
    const inner = sandboxPlanner({ sandbox: "required" });
    const plans: LaunchPlan[] = [];
    const host = new PluginHost({
      logger: () => {},
      launchPlanner: {
        sandboxes: true,
        plan(manifest, base) {
          assert.equal(base.env.PLUGIN_SHM_LIVENESS_MS, undefined, "an unconfined plan keeps the 1 s default");
          const plan = inner.plan(manifest, base);
          plans.push(plan);
          return plan;
        },
      },
    });
    try {
      await host.load(`${root}examples/plugins/echo`);
      assert.equal(await host.call("echo", "add", [2, 3]), 5, "the plugin took the variable and serves");
      assert.equal(plans.length, 1);
      assert.match(plans[0].command, /pshm-launch$/);
      assert.equal(plans[0].env.PLUGIN_SHM_LIVENESS_MS, "30000");
    } finally {
      await host.close();
    }
  },
  { timeoutMs: 60_000 },
);
