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
    pid: () => process.pid,
  },
  // Hot reload hands the store to the new instance, so no key is lost.
  exportState: () => Object.fromEntries(store),
  importState(state) {
    for (const [key, value] of Object.entries(state as Record<string, unknown>)) store.set(key, value);
  },
  onStart() {
    console.log("kv ready"); // stdout is the plugin's own: it cannot break the protocol.
  },
});
