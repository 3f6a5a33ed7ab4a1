/**
 * Host functions are default-deny: a plugin calls only those its manifest
 * grants under permissions.hostFunctions. A denied call gets a typed error
 * on the plugin's side, the host publishes a "permission-denied" event, and
 * everything keeps serving.
 */
import assert from "node:assert/strict";
import { cpSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import process from "node:process";
import { type PermissionDeniedEvent, PluginHost } from "../mod.ts";
import { fixtures, processRunning, segmentsLeft, segmentsOf, test } from "./_harness.ts";

test(
  "a plugin calls a granted host function, is refused an ungranted one with a typed error and an event, and keeps serving",
  async () => {
    const segmentsBefore = segmentsOf();
    const secretCalls: unknown[] = [];
    const denied: PermissionDeniedEvent[] = [];
    const host = new PluginHost({
      dirs: [fixtures],
      hostFunctions: {
        now: () => "host-time",
        secret: (...args: unknown[]) => {
          secretCalls.push(args);
          return "the host's secret";
        },
      },
    });
    const pids: (number | undefined)[] = [];
    host.on("permission-denied", (event) => denied.push(event));
    try {
      pids.push((await host.load("host-caller")).pid, (await host.load("host-caller-bare")).pid);

      // Granted: answered.
      assert.deepEqual(await host.call("host-caller", "ask", ["now"]), { ok: true, value: "host-time" });

      // Not granted: refused before the host function runs, with a message that says which grant to add.
      const refused = await host.call("host-caller", "ask", ["secret", "x"]) as Record<string, unknown>;
      assert.equal(refused.ok, false);
      assert.equal(refused.code, "permission_denied");
      assert.match(String(refused.message), /"secret" is not granted to plugin "host-caller"/);
      assert.match(String(refused.message), /permissions\.hostFunctions/);
      assert.deepEqual(secretCalls, [], "an ungranted host function never runs");
      assert.equal(denied.length, 1);
      assert.equal(denied[0].plugin, "host-caller");
      assert.equal(denied[0].permission, "hostFunctions:secret");

      // A manifest without permissions (v1) gets no host functions at all.
      const bare = await host.call("host-caller-bare", "ask", ["now"]) as Record<string, unknown>;
      assert.equal(bare.code, "permission_denied");
      assert.match(String(bare.message), /"now" is not granted to plugin "host-caller-bare"/);
      assert.deepEqual(denied.map((e) => e.plugin), ["host-caller", "host-caller-bare"]);

      // Everyone keeps serving, and the granted call still works.
      assert.deepEqual(await host.call("host-caller", "ask", ["now"]), { ok: true, value: "host-time" });
      assert.equal(host.list().every((p) => p.state === "running"), true);
    } finally {
      await host.close();
    }
    for (const pid of pids) assert.ok(!processRunning(pid), `plugin ${pid} is gone after close()`);
    assert.deepEqual(await segmentsLeft([process.pid, ...pids], segmentsBefore), []);
  },
  { timeoutMs: 60_000 },
);

test(
  "an ungranted host function succeeds once the manifest grants it; the host option narrow takes the grant away again",
  async () => {
    // A copy at the same depth as the fixture, so its relative import of the SDK still resolves.
    const dir = `${fixtures}/.granted-${process.pid}`;
    cpSync(`${fixtures}/host_caller`, dir, { recursive: true });
    const manifest = JSON.parse(readFileSync(`${dir}/plugin.json`, "utf8"));
    writeFileSync(
      `${dir}/plugin.json`,
      JSON.stringify({ ...manifest, permissions: { hostFunctions: ["now", "secret"] } }),
    );
    const ask = async (options: ConstructorParameters<typeof PluginHost>[0]) => {
      const denied: PermissionDeniedEvent[] = [];
      const host = new PluginHost({ ...options, hostFunctions: { now: () => "host-time", secret: () => "s3cret" } });
      host.on("permission-denied", (event) => denied.push(event));
      try {
        await host.load(dir);
        const secret = await host.call("host-caller", "ask", ["secret"]) as Record<string, unknown>;
        const now = await host.call("host-caller", "ask", ["now"]) as Record<string, unknown>;
        return {
          secret: secret.ok ? secret.value : secret.code,
          now: now.value,
          denied: denied.map((e) => e.permission),
        };
      } finally {
        await host.close();
      }
    };
    try {
      assert.deepEqual(await ask({}), { secret: "s3cret", now: "host-time", denied: [] });
      assert.deepEqual(await ask({ narrow: { "host-caller": { permissions: { hostFunctions: ["now"] } } } }), {
        secret: "permission_denied",
        now: "host-time",
        denied: ["hostFunctions:secret"],
      });
      // Narrowing cannot widen: listing a function the manifest does not grant adds nothing.
      writeFileSync(`${dir}/plugin.json`, JSON.stringify(manifest));
      assert.deepEqual(
        await ask({ narrow: { "host-caller": { permissions: { hostFunctions: ["now", "secret"] } } } }),
        { secret: "permission_denied", now: "host-time", denied: ["hostFunctions:secret"] },
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
  { timeoutMs: 60_000 },
);
