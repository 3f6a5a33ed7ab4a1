import assert from "node:assert/strict";
import process from "node:process";
import { exitCodeNotLaunched } from "../plugin.ts";
import { launchEntryFor } from "../mod.ts";
import { peerPath, processRunning as running, root, runtime, segmentsOf, startPeer, test } from "./_harness.ts";

for (const transport of ["shm", "unix"]) {
  test(`[${transport}] plugins exit on their own when their host is killed with SIGKILL`, async () => {
    const host = startPeer(runtime, peerPath("host_proc.ts"), { PSHM_TRANSPORT: transport, PSHM_PLUGINS: "echo,kv" });
    const pids = await new Promise<number[]>((resolve, reject) => {
      host.child.stdout!.on("data", (d) => resolve(JSON.parse(String(d))));
      host.exited.then(() => reject(new Error(`host exited early: ${host.stderr()}`)));
    });
    try {
      assert.equal(pids.length, 2);
      assert.ok(pids.every(running));
    } finally {
      host.child.kill("SIGKILL");
    }
    await host.exited;
    const killedAt = performance.now();
    while (pids.some(running) && performance.now() - killedAt < 15_000) {
      await new Promise((r) => setTimeout(r, 25));
    }
    assert.deepEqual(pids.filter(running), [], "no plugin outlives its host");
    console.log(`plugins gone ${(performance.now() - killedAt).toFixed(0)} ms after the host was killed`);
    const ours = [host.child.pid, ...pids];
    for (let i = 0; i < 40 && segmentsOf(ours).length > 0; i++) await new Promise((r) => setTimeout(r, 25));
    assert.deepEqual(segmentsOf(ours), []);
  }, { timeoutMs: 60_000 });
}

// Node 20 runs no TypeScript: its plugin is the JavaScript fixture, started through the compiled entry.
const echoFor = (which: string) =>
  which === "node" ? `${root}tests/fixtures/node_echo/main.mjs` : `${root}examples/plugins/echo/main.ts`;
for (const which of ["deno", "bun", "node"] as const) {
  test(`a ${which} plugin started by hand through the launch entry says it needs a host and exits`, async () => {
    const plugin = startPeer(which, launchEntryFor(which), {
      PLUGIN_SHM_ADDRESS: "",
      PLUGIN_SHM_TOKEN: "",
      PLUGIN_SHM_TRANSPORT: "",
    }, [echoFor(which)]);
    const { code } = await plugin.exited;
    assert.equal(code, exitCodeNotLaunched);
    assert.match(plugin.stderr(), /is a plugin-shm plugin: a plugin host starts it/);
  }, { timeoutMs: 30_000 });
}

for (const which of ["deno", "bun"] as const) {
  test(
    `a ${which} process that imports a plugin module gets its definition, calls its methods and serves nothing`,
    async () => {
      // The cwd it inherits, read in the same tick as the spawn: another test in this process may chdir meanwhile.
      const cwd = process.cwd();
      const importer = startPeer(which, peerPath("import_plugin.ts"), {});
      const { code } = await importer.exited;
      assert.equal(code, 0, importer.stderr());
      assert.deepEqual(JSON.parse(importer.stdout()), { name: "introspect", cwd, session: null });
      assert.deepEqual(segmentsOf([importer.child.pid]), [], "no segment was created");
    },
    { timeoutMs: 30_000 },
  );
}
