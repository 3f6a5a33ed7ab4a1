/**
 * The one interface every transport implements: ordered, reliable messages.
 * The protocol layer above it neither knows nor cares which one it runs on.
 *
 * @module
 */

import { ChannelClosedError } from "./errors.ts";

/** Default largest message of every transport: 64 MiB. */
export const messageBytesMaxDefault = 64 * 1024 * 1024;
/** Hard limit on any transport's `messageBytesMax`: 1 GiB. */
export const messageBytesMaxLimit = 1024 * 1024 * 1024;

/**
 * What a transport's `send()` may return when the message went out at once:
 * a caller that compares by identity can skip attaching handlers to it (a
 * `.catch` per frame cost a pipelined call 10–15 % in Deno).
 */
export const sentAtOnce: Promise<void> = Promise.resolve();

/** An ordered, reliable, message-oriented duplex connection. */
export interface Transport {
  /** Which kind of transport this is. */
  readonly kind: TransportKind;
  /** Largest message either side may send. */
  readonly messageBytesMax: number;
  /** Sends one message; resolves when it is handed to the transport. */
  send(bytes: Uint8Array): Promise<void>;
  /**
   * Sends `bytes[start, end)` as one message, as send() does, without the
   * caller making a view of it (a frame encoded in place). Optional.
   */
  sendRange?(bytes: Uint8Array, start: number, end: number): Promise<void>;
  /** The next message. Rejects with ChannelClosedError once the peer is gone and nothing is left. */
  receive(): Promise<Uint8Array>;
  /**
   * The next message if one is already there, else undefined, without a
   * promise: a reader drains a burst synchronously and awaits receive() only
   * when it runs dry. Throws what receive() would reject with. Optional.
   */
  tryReceive?(): Uint8Array | undefined;
  /** Closes this side. Idempotent. */
  close(): void;
  /** True once closed by either side. */
  readonly closed: boolean;
  /** Counters for metrics; cheap (no syscalls), a fresh object per call. */
  stats?(): TransportStats;
  /**
   * Shows the peer this side's event loop is alive, without a message: shm
   * bumps a word in shared memory that the peer reads (no wake-up, no syscall).
   * Absent on transports without shared memory.
   */
  beat?(): void;
  /** The peer's count of {@link beat}s: 0 while it never beat (a peer that does not, such as the C peer). */
  peerBeat?(): number;
}

/**
 * Counters a transport keeps for operators (metrics): plain integers it bumps on its own paths,
 * read without syscalls. Ring fill levels are 0 for transports without rings.
 */
export interface TransportStats {
  /** Messages this side sent (handed to the transport). */
  messagesSent: number;
  /** Messages this side received (delivered to `receive()`). */
  messagesReceived: number;
  /** Bytes of messages this side sent. */
  bytesSent: number;
  /** Bytes of messages this side received. */
  bytesReceived: number;
  /** Times this side woke its parked peer (a wake syscall or doorbell ring). */
  wakeupsSent: number;
  /** Times this side was woken after parking. */
  wakeupsReceived: number;
  /** shm: how many of `wakeupsSent` were doorbell rings (the rest were futex wakes). */
  doorbellWakeupsSent?: number;
  /** shm: how many of `wakeupsReceived` came through the doorbell (the rest through the waiter thread). */
  doorbellWakeupsReceived?: number;
  /** shm: times this side's spin gave the CPU away (sched_yield) while it waited for the peer (bench/tails_bench.ts). */
  spinYields?: number;
  /** shm: times this side blocked its thread waiting for a message (ShmChannelOptions.blockMicros). */
  blockedParks?: number;
  /** shm: how many of `blockedParks` ended in a wake-up by the peer (the rest timed out and parked as usual). */
  blockedWakeupsReceived?: number;
  /** Bytes waiting in the ring this side writes (not yet read by the peer). */
  sendRingUsedBytes: number;
  /** Bytes waiting in the ring this side reads. */
  receiveRingUsedBytes: number;
  /** Capacity of each ring in bytes (0 without rings). */
  ringBytes: number;
}

/** The transports plugin-shm ships. */
export type TransportKind = "shm" | "unix" | "tcp";

/** The host side's listener for one plugin connection. */
export interface TransportListener {
  /** Which transport this listener serves. */
  readonly kind: TransportKind;
  /** What the plugin needs to connect: a segment name, a socket path, or host:port. */
  readonly address: string;
  /** A secret the connecting side must present (the shm attach token), or "". */
  readonly secret: string;
  /** shm with `wake: "doorbell"`: where the plugin connects its doorbell and the key it presents. */
  readonly doorbell?: { readonly path: string; readonly key: string };
  /** shm with `wake: "block"`: the plugin's ShmChannelOptions.blockMicros, to pass in its launch variables. */
  readonly blockMicros?: number;
  /** Resolves with the connected transport once the plugin has connected. */
  accept(timeoutMs: number): Promise<Transport>;
  /** Stops listening and frees what the listener holds. Idempotent. */
  close(): void;
}

/**
 * Messages from `transport` until the peer closes (or this side does);
 * throws if the peer dies or sends garbage. Every transport's async iterator.
 *
 * @example
 * ```ts
 * import { receiveAll } from "./transport.ts";
 * import { ShmChannel } from "./shm_channel.ts";
 * const a = ShmChannel.create();
 * const b = ShmChannel.attach(a.name, a.token);
 * await a.send(new Uint8Array([1]));
 * a.close();
 * for await (const message of receiveAll(b)) console.log(message);
 * b.close();
 * ```
 */
export async function* receiveAll(transport: Pick<Transport, "receive">): AsyncGenerator<Uint8Array, void, undefined> {
  for (;;) {
    try {
      yield await transport.receive();
    } catch (error) {
      if (error instanceof ChannelClosedError && (error.code === "peer-closed" || error.code === "local")) return;
      throw error;
    }
  }
}
