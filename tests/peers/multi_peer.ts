/** A test peer that attaches to every channel in PSHM_CHANNELS (JSON list of
 * [name, token]) and echoes on all of them until each one closes. */
import { ShmChannel } from "../../mod.ts";

const env = (globalThis as unknown as { process: { env: Record<string, string | undefined> } }).process.env;
const pairs = JSON.parse(env.PSHM_CHANNELS!) as [string, string][];
await Promise.all(pairs.map(async ([name, token]) => {
  const channel = ShmChannel.attach(name, token, { spinMicros: 0 });
  for await (const message of channel) await channel.send(message);
  channel.close();
}));
