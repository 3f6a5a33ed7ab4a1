/**
 * A host process that sees a plugin crash and restart, then closes. After
 * close() nothing may keep it alive: an unref'd canary fires only if the
 * process is still up 4 s later (the restart's recovery timer ran 5 s).
 */
import process from "node:process";
import { setTimeout as later } from "node:timers";
import { PluginHost } from "../../mod.ts";
import { root } from "../_harness.ts";

const host = new PluginHost({ dirs: [`${root}examples/plugins`], logger: () => {}, restartBackoffMs: 10 });
let ready = 0;
const restarted = new Promise<void>((resolve) => {
  host.onState((e) => {
    if (e.state === "ready" && ++ready === 2) resolve();
  });
});
const { pid } = await host.load("echo");
process.kill(pid!, "SIGKILL");
await restarted;
await host.close();
console.log("closed");
later(() => console.log("lingered"), 4_000).unref();
