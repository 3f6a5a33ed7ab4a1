/** A test peer that creates a segment, prints its name and then hangs, so a
 * test can SIGKILL it and check that the sweep removes what it left. */
import { ShmChannel } from "../../mod.ts";

const channel = ShmChannel.create({ ringBytes: 4096 });
console.log(channel.name);
await new Promise((r) => setTimeout(r, 60_000));
channel.close();
