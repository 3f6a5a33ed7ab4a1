/**
 * A host process for the mixed-runtime tests: loads a Deno, a Bun and a Node
 * plugin, calls each, prints what it saw as one JSON line, then either closes
 * the host and simply returns (PSHM_END=close: the process must then exit by
 * itself) or calls process.exit() with every channel still open
 * (PSHM_END=exit).
 */
import process from "node:process";
import { PluginHost } from "../../mod.ts";
import { examples, fixtures } from "../_harness.ts";

const host = new PluginHost({
  dirs: [examples, fixtures],
  hostFunctions: { now: () => "host-time" },
  logger: () => {},
});
const infos = await Promise.all(["echo", "kv", "node-echo"].map((n) => host.load(n)));
const result = {
  host: "Bun" in globalThis ? "bun" : "Deno" in globalThis ? "deno" : "node",
  runtimes: infos.map((i) => i.runtime),
  pids: infos.map((i) => i.pid),
  echo: await host.call("echo", "add", [2, 3]),
  kv: await host.call("kv", "set", ["k", 1]),
  node: await host.call("node-echo", "whoami"),
  nodeAsksHost: await host.call("node-echo", "askHost"),
};
console.log(JSON.stringify(result));
if (process.env.PSHM_END === "exit") process.exit(0);
await host.close();
