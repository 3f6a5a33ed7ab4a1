/**
 * Sets up a doorbell as the plugin launch does (both ends in this process),
 * exchanges messages through parked channels, then leaves everything open and
 * idle: an idle doorbell must not keep the event loop alive, so this process
 * exits by itself (tests/doorbell_launch_test.ts). Prints the wake paths.
 */
import process from "node:process";
import { ShmChannel } from "../../mod.ts";
import { connectDoorbell, listenDoorbell } from "../../src/transport/_doorbell.ts";

// Only to have a pid that is certainly gone afterwards (the sweep test).
if (process.env.PSHM_EXIT_AT_ONCE) process.exit(0);

const listener = await listenDoorbell();
const host = ShmChannel.create({ spinMicros: 0 });
listener.onAccepted((doorbell) => host.useDoorbell(doorbell, false));
const plugin = ShmChannel.attach(host.name, host.token, { spinMicros: 0 });
plugin.useDoorbell(await connectDoorbell(listener.address), true);
listener.close();
const echo = (async () => {
  for (let i = 0; i < 20; i++) await plugin.send(await plugin.receive());
})();
for (let i = 0; i < 20; i++) {
  const reply = host.receive();
  await new Promise((resolve) => setTimeout(resolve, 1));
  await host.send(new Uint8Array([i]));
  if ((await reply)[0] !== i) throw new Error(`reply ${i} wrong`);
}
await echo;
console.log(`wake paths: host ${host.wakePath}, plugin ${plugin.wakePath}`);
// Nothing is closed: the open channels and doorbell sockets alone must let the process end.
