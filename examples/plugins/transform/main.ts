/** A streaming plugin: transforms megabytes chunk by chunk under flow control. */
import { definePlugin } from "../../../plugin.ts";

export default definePlugin({
  name: "transform",
  version: "1.0.0",
  methods: {},
  streams: {
    /** Uppercases ASCII letters of every chunk. */
    async *upper(input: AsyncIterable<unknown>) {
      for await (const chunk of input) {
        const bytes = chunk as Uint8Array;
        const out = new Uint8Array(bytes.length);
        for (let i = 0; i < bytes.length; i++) {
          const b = bytes[i];
          out[i] = b >= 97 && b <= 122 ? b - 32 : b;
        }
        yield out;
      }
    },
    /** Emits `count` chunks of `size` bytes: a producer the reader must throttle. */
    async *generate(_input: AsyncIterable<unknown>, count: number, size: number) {
      for (let i = 0; i < count; i++) yield new Uint8Array(size).fill(i & 255);
    },
  },
});
