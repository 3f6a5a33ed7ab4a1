/** A Deno plugin: echo, arithmetic, a cancellable sleep, and a call back into the host. */
import { definePlugin } from "../../../plugin.ts";

let lastEvent: unknown = null;

export default definePlugin({
  name: "echo",
  version: "1.0.0",
  methods: {
    echo: (value: unknown) => value,
    add: (a: number, b: number) => a + b,
    mul: (a: number, b: number) => a * b,
    /** Resolves after `ms`, or rejects as soon as the caller cancels. */
    sleep(ms: number): Promise<string> {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => resolve(`slept ${ms} ms`), ms);
        this.signal.addEventListener("abort", () => {
          clearTimeout(timer);
          reject(this.signal.reason);
        });
      });
    },
    fail(message: string): never {
      throw Object.assign(new Error(message), { code: "requested_failure" });
    },
    /** Asks the host for the time, to show host functions. */
    async askHost(): Promise<unknown> {
      return await this.callHost("now");
    },
    lastEvent: () => lastEvent,
    /** Blocks the event loop for `ms`: what a plugin stuck in a loop looks like. */
    spin(ms: number): number {
      const until = Date.now() + ms;
      let n = 0;
      while (Date.now() < until) n++;
      return n;
    },
    pid: () => Deno.pid,
    exit(code: number): void {
      console.error(`exiting with ${code} as asked`);
      setTimeout(() => Deno.exit(code), 1);
    },
  },
  onEvent(name, data) {
    lastEvent = { name, data };
  },
});
