/**
 * A test peer that parks blocking (ShmChannelOptions.blockMicros from PSHM_BLOCK_MICROS): attaches to PSHM_NAME
 * with PSHM_TOKEN and echoes every message until the other side closes; a message whose first byte is
 * {@link statsRequest} is answered with this side's stats() as JSON instead.
 */
import { ShmChannel } from "../../mod.ts";

/** First byte of a message that asks for the peer's stats (tests/blocking_park_test.ts sends it). */
const statsRequest = 0xff;

const env = (globalThis as unknown as { process: { env: Record<string, string | undefined> } }).process.env;
const channel = ShmChannel.attach(env.PSHM_NAME!, env.PSHM_TOKEN!, {
  blockMicros: Number(env.PSHM_BLOCK_MICROS ?? "0"),
  spinMicros: Number(env.PSHM_SPIN_MICROS ?? "50"),
});
for await (const message of channel) {
  if (message.length > 0 && message[0] === statsRequest) {
    await channel.send(new TextEncoder().encode(JSON.stringify(channel.stats())));
  } else {
    await channel.send(message);
  }
}
channel.close();
