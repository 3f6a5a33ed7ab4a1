/** A Bun plugin: an in-memory key-value store that announces changes as events. */
import { definePlugin } from "../../../plugin.ts";

const store = new Map<string, unknown>();

export default definePlugin({
  name: "kv",
  version: "1.0.0",
  methods: {
    get: (key: string) => store.get(key) ?? null,
    set(key: string, value: unknown): boolean {
      store.set(key, value);
      this.emit("changed", { key });
      return true;
    },
    delete: (key: string) => store.delete(key),
    keys: () => [...store.keys()],
    size: () => store.size,
  },
  onStart() {
    console.log("kv ready"); // stdout is the plugin's own: it cannot break the protocol.
  },
});
