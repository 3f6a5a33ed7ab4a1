/** Embedding the host: load the bundled plugins, call them, stream through one. */
import { PluginHost } from "../mod.ts";
import type kv from "./plugins/kv/main.ts";

const host = new PluginHost({
  dirs: [new URL("./plugins", import.meta.url).pathname],
  hostFunctions: { now: () => new Date().toISOString() },
});
host.onState((e) => console.log(`${e.plugin}: ${e.state} (${e.reason})`));
await Promise.all([host.load("echo"), host.load("kv"), host.load("transform")]);

console.log(await host.call("echo", "add", [2, 3])); // 5
const store = host.client<typeof kv.methods>("kv");
await store.set("greeting", "hello");
console.log(await store.get("greeting")); // "hello"

const chunks = (async function* () {
  for (let i = 0; i < 4; i++) yield new TextEncoder().encode("stream me ");
})();
for await (const out of host.stream("transform", "upper", [], chunks)) {
  console.log(new TextDecoder().decode(out as Uint8Array)); // STREAM ME
}
await host.close();
