/** A host process for tests: loads the given example plugins, prints their pids, waits. */
import process from "node:process";
import { PluginHost, type TransportKind } from "../../mod.ts";
import { root } from "../_harness.ts";

const host = new PluginHost({
  dirs: [`${root}examples/plugins`],
  transport: (process.env.PSHM_TRANSPORT ?? "shm") as TransportKind,
  logger: () => {},
});
const names = (process.env.PSHM_PLUGINS ?? "echo,kv").split(",");
const infos = await Promise.all(names.map((n) => host.load(n)));
console.log(JSON.stringify(infos.map((i) => i.pid)));
await new Promise((resolve) => setTimeout(resolve, 120_000));
