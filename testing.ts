/**
 * The test harness entry of plugin-shm (`plugin-shm/testing`): start the
 * plugin under test in a real process over shared memory, call it through a
 * typed client, fake the host functions it calls, and check that nothing is
 * left behind.
 *
 * @example
 * ```ts ignore
 * import { startPlugin } from "plugin-shm/testing";
 * const plugin = await startPlugin<{ add(a: number, b: number): number }>(new URL(".", import.meta.url));
 * try {
 *   console.assert(await plugin.client.add(2, 3) === 5);
 * } finally {
 *   await plugin.close();
 * }
 * ```
 *
 * @module
 */

export {
  cleanupWaitMsDefault,
  type HostCall,
  startPlugin,
  type StartPluginOptions,
  type TestPlugin,
  waitTimeoutMsDefault,
} from "./src/dev/testing.ts";
export { HarnessError } from "./src/dev/errors.ts";
