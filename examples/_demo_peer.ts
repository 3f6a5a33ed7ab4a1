/** The demo's peer: echoes every message, uppercasing text ones. */
import { ShmChannel } from "../mod.ts";

const channel = ShmChannel.attach(process.env.PSHM_NAME!, process.env.PSHM_TOKEN!);
for await (const message of channel) {
  const upper = message.length < 64
    ? new TextEncoder().encode(new TextDecoder().decode(message).toUpperCase())
    : message;
  await channel.send(upper);
}
channel.close();
