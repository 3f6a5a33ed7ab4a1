/**
 * Typed config: a manifest's `config` JSON Schema, values from the host's
 * options or a config file, validated at load with errors that name the field
 * and the file, read in onStart and `this.config`, changed at run time through
 * onConfig without a restart, or by a reload for a plugin without onConfig.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError, ManifestError, PluginHost } from "../mod.ts";
import { startPlugin } from "../testing.ts";
import { fixtures, processRunning, test } from "./_harness.ts";

interface Configured {
  greet(who: string): string;
  atStart(): unknown;
  seen(): unknown[];
  pid(): number;
}

test("config values reach onStart and this.config with the schema's defaults filled in", async () => {
  const plugin = await startPlugin<Configured>(`${fixtures}/configured`, { config: { port: 8080 } });
  try {
    assert.deepEqual(await plugin.client.atStart(), { greeting: "hello", port: 8080 });
    assert.equal(await plugin.client.greet("ada"), "hello ada on 8080");
  } finally {
    await plugin.close();
  }
});

test("configure() hands new values to onConfig without a restart; this.config reads them after", async () => {
  const plugin = await startPlugin<Configured>(`${fixtures}/configured`, { config: { port: 1 } });
  try {
    const pid = plugin.info.pid;
    assert.equal(await plugin.configure({ port: 2, greeting: "hi" }), "applied");
    assert.equal(plugin.info.pid, pid, "same process: no restart");
    assert.equal(await plugin.client.greet("bob"), "hi bob on 2");
    assert.deepEqual(await plugin.client.seen(), [{
      previous: { greeting: "hello", port: 1 },
      next: { greeting: "hi", port: 2 },
    }]);
    // A bad change is refused before it reaches the plugin, which keeps its values.
    const bad = await plugin.configure({ port: "two" }).catch((e) => e);
    assert.ok(bad instanceof ConfigError, String(bad));
    assert.equal(bad.field, "port");
    assert.equal(await plugin.client.greet("bob"), "hi bob on 2");
  } finally {
    await plugin.close();
  }
});

test("a plugin without onConfig is reloaded: a new process serves with the new values", async () => {
  const plugin = await startPlugin<{ level(): string; pid(): number }>(`${fixtures}/configured_static`);
  const pids: number[] = [];
  try {
    assert.equal(await plugin.client.level(), "info");
    // The host's pids: inside a sandbox's PID namespace the plugin's own pid says little.
    pids.push(plugin.info.pid!);
    assert.equal(await plugin.configure({ level: "debug" }), "reloaded");
    assert.equal(await plugin.client.level(), "debug");
    pids.push(plugin.info.pid!);
    assert.notEqual(pids[0], pids[1], "a new process took the new values");
  } finally {
    await plugin.close();
  }
  for (const pid of pids) assert.equal(processRunning(pid), false);
});

test("config values from a config file; a wrong value names the field and the file, and nothing starts", async () => {
  const dir = mkdtempSync(join(tmpdir(), "pshm-config-"));
  const file = join(dir, "plugins.json");
  const host = new PluginHost({ dirs: [fixtures], configFile: file, logger: () => {} });
  try {
    writeFileSync(file, JSON.stringify({ configured: { port: 70000 } }));
    const error = await host.load("configured").catch((e) => e);
    assert.ok(error instanceof ConfigError, String(error));
    assert.equal(error.field, "port");
    assert.equal(error.source, file);
    assert.match(error.message, /plugins\.json: field "port"/);
    assert.equal(host.list().find((p) => p.name === "configured")?.pids.length ?? 0, 0);

    writeFileSync(file, JSON.stringify({ configured: { greeting: "hey" } }));
    const missing = await host.load("configured").catch((e) => e);
    assert.ok(missing instanceof ConfigError);
    assert.equal(missing.field, "port");
    assert.match(missing.message, /is required/);

    writeFileSync(file, "{not json");
    const unreadable = await host.load("configured").catch((e) => e);
    assert.ok(unreadable instanceof ConfigError);
    assert.match(unreadable.message, /cannot be read as JSON/);

    writeFileSync(file, JSON.stringify({ configured: { port: 9 } }));
    await host.load("configured");
    assert.equal(await host.call("configured", "greet", ["cy"]), "hello cy on 9");
    // The host keeps serving after the bad loads.
    assert.equal(host.list().find((p) => p.name === "configured")?.state, "running");
  } finally {
    await host.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a manifest config that is not a JSON Schema the host can enforce is a ManifestError naming the field", async () => {
  const host = new PluginHost({ dirs: [fixtures], logger: () => {} });
  try {
    const error = await host.load(`${fixtures}/bad_config_schema`).catch((e) => e);
    assert.ok(error instanceof ManifestError, String(error));
    assert.equal(error.field, "config");
    assert.match(error.message, /Unsupported type: integr/);
    // Values for a plugin that declares no schema are refused too.
    const other = new PluginHost({ dirs: [fixtures], config: { crashy: { a: 1 } } });
    const extra = await other.load("crashy").catch((e) => e);
    await other.close();
    assert.ok(extra instanceof ConfigError, String(extra));
    assert.match(extra.message, /declares no "config" schema/);
  } finally {
    await host.close();
  }
});
