/**
 * A file-descriptor doorbell (issue 12): while a channel side is parked, its
 * peer rings this instead of the futex, and the runtime's own poller wakes
 * the event loop in one hop, with no waiter thread and no cross-thread
 * callback in between. Both sides of a channel must use one (a futex-only
 * peer, such as the C peer, would never ring it).
 *
 * @module
 */

import type net from "node:net";

/** One side's end of a bidirectional doorbell (e.g. one end of a connected unix socket). */
export interface Doorbell {
  /** Rings the peer's end. Called only while the peer is parked, so a busy channel makes no syscall. */
  ring(): void;
  /** Calls `onRing` on the event loop whenever the peer rang this end. Called once, by the channel. */
  listen(onRing: () => void): void;
  /** Releases the descriptor. The channel that was given the doorbell calls it on close. */
  close(): void;
}

/** A single byte per ring: its content carries nothing, its arrival is the message. */
const ding = new Uint8Array(1);

/**
 * A doorbell over one end of a connected stream socket (node:net, under every
 * runtime). The socket is unref'd: a parked channel keeps the event loop
 * alive by its own count, an idle one must not.
 */
export function socketDoorbell(socket: net.Socket): Doorbell {
  socket.setNoDelay(true);
  socket.unref();
  // A peer that died resets the socket; the channel learns of the death
  // through its liveness check, so the error itself needs no handling here.
  socket.on("error", () => {});
  return {
    ring: () => void socket.write(ding),
    listen: (onRing) => void socket.on("data", () => onRing()),
    close: () => socket.destroy(),
  };
}
