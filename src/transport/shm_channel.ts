/**
 * A duplex message channel between two processes over one shared segment.
 *
 * The creating side makes the segment and hands its `name` and `token` to the
 * peer out of band (an environment variable or an inherited pipe, never
 * stdout); the peer attaches with them. Messages are written into the ring in
 * place. A side that finds nothing to do spins for `spinMicros`, then parks:
 * it sets its `parked` bits and either arms its native waiter thread, which
 * sleeps on a cross-process futex and calls back on the event loop, or, given
 * a doorbell its peer rings (see _doorbell.ts), waits on that with the
 * runtime's own poller: one hop instead of two. The peer makes a wake-up
 * syscall only when it sees those bits, so a busy channel makes none.
 *
 * @module
 */

import { SegmentError } from "../native/errors.ts";
import { ChannelClosedError, type CloseReason, FrameCorruptError, MessageTooLargeError, ViewError } from "./errors.ts";
import {
  getNative,
  keepAlive,
  livenessCheckMs,
  livenessCheckMsMax,
  type Native,
  parkBlockingMicrosMax,
  wakeReasons,
} from "../native/native.ts";
import { L, sideOffset } from "../native/layout.ts";
import type { Doorbell } from "./_doorbell.ts";
import { heldFramesMax, RingReader, RingWriter } from "./_ring.ts";
import process from "node:process";
import {
  messageBytesMaxDefault,
  messageBytesMaxLimit,
  receiveAll,
  sentAtOnce,
  type Transport,
  type TransportStats,
} from "./transport.ts";

/** Options for {@link ShmChannel.create} and {@link ShmChannel.attach}. */
export interface ShmChannelOptions {
  /** Bytes per ring (one per direction); a power of two, 4 KiB to 1 GiB. Default 1 MiB. Creator only. */
  ringBytes?: number;
  /** Largest message accepted in either direction. Default 64 MiB; at most 1 GiB. */
  messageBytesMax?: number;
  /** How long a side spins before it parks, in microseconds. Default 50; 0 parks at once. */
  spinMicros?: number;
  /**
   * Blocking park (issue 12): after the spin, a side that waits for a message and sent one after the last
   * it received (a caller awaiting its answer, or a server that answered every request) first blocks its
   * thread in a futex wait on its doorbell for up to this many microseconds, so that its peer's wake-up
   * reaches it in one hop, with no waiter thread and no event-loop turn; only then it parks on the event
   * loop as usual. The price: this runtime's timers, I/O and other channels wait while it blocks, up to the
   * bound, once per park. Default 0 (off); at most {@link blockMicrosMax}. Not with a doorbell (the peer
   * rings that instead of the futex): a side parked on one never blocks.
   */
  blockMicros?: number;
  /**
   * Park on a file-descriptor doorbell instead of the native waiter thread
   * (see _doorbell.ts). Both sides must be given one here (they trust each
   * other to ring it); for a doorbell set up later, or a peer that may have
   * none, see {@link ShmChannel.useDoorbell}. The channel closes it.
   */
  doorbell?: Doorbell;
  /**
   * How often a side with nothing to do checks on its own that the peer
   * process is alive, in ms: the bound on how late a SIGKILLed peer is
   * noticed. Default 1000; 1 to 3 600 000. Each check wakes an idle process's
   * waiter thread, so an owner that learns of the peer's death another way (a
   * host sees its plugin's exit) sets it longer.
   */
  livenessCheckMs?: number;
}

/** Default {@link ShmChannelOptions.livenessCheckMs} (zig/wait.zig, through the generated constants). */
export const livenessCheckMsDefault: number = livenessCheckMs;
/** Largest {@link ShmChannelOptions.livenessCheckMs}: one hour (zig/wait.zig `liveness_check_ms_max`). */
export { livenessCheckMsMax };

// The message limits are every transport's, so they live in transport.ts;
// re-exported here because the channel's options document them.
export { messageBytesMaxDefault, messageBytesMaxLimit } from "./transport.ts";
/** How many views from {@link ShmChannel.receiveView} a side may hold at once; the next one throws ViewError "views_exhausted". */
export const viewsHeldMax: number = heldFramesMax;
export { type Doorbell, socketDoorbell } from "./_doorbell.ts";
/** Largest {@link ShmChannelOptions.blockMicros}: 100 ms, the longest the runtime's own timers and I/O may be held back. */
export const blockMicrosMax = parkBlockingMicrosMax;
/** Default {@link ShmChannelOptions.spinMicros}. */
export const spinMicrosDefault = 50;
/**
 * Set in the parked word next to the want bits by a side parked on a doorbell:
 * its peer rings the doorbell instead of the futex. Above the bits Zig defines.
 */
const parkedOnDoorbell = 1 << 8;
/**
 * Received messages of at least this many bytes get a buffer of their own that
 * {@link ShmChannel.release} can hand back for reuse. A fresh buffer costs more
 * than the copy into it: 1 MiB new + set 195 µs against 48 µs for a set into a
 * reused buffer (Deno 2.9.6; Bun 85 vs 51 µs), the difference being page faults.
 */
const poolMessageBytesMin = 64 * 1024;
/** Released buffers a channel keeps for reuse (the rest are left to the GC). */
const poolBuffersMax = 4;
/** A released buffer is reused only for a message at least this fraction of its size, so a small message does not pin a huge buffer. */
const poolFitDivisor = 4;
/** Microtask turns the spin waits before it starts, so that continuations a few promise hops deep run first. */
const spinDeferralsMax = 4;
/** The #onWake reason when the doorbell's other end went away: not one of the waiter's (wakeReasons). */
const doorbellEnded = 0;
/** Spin iterations between a clock check and a yield of the CPU. */
const spinCheckIterations = 64;

interface Pending<T> {
  resolve(value: T): void;
  reject(error: Error): void;
}

interface PendingReceive extends Pending<Uint8Array> {
  /** Wants a view of the ring (receiveView), not a copy. */
  view: boolean;
}

interface PendingSend extends Pending<void> {
  bytes: Uint8Array;
  /** How far the message, `bytes[…, end)`, is in the ring. */
  offset: number;
  end: number;
}

const resolved: Promise<void> = sentAtOnce;

/** Open channels with a blocking park (ShmChannelOptions.blockMicros > 0) in this process. */
const blockingChannels = new Set<ShmChannel>();
/**
 * Open channels in this process: at its exit each publishes the frames it wrote this turn (see #writeRange), so
 * `void ch.send(a); void ch.send(b); process.exit()` delivers both, as it did before sends were published per turn.
 */
const openChannels = new Set<ShmChannel>();

/**
 * Small received messages are carved out of shared 64 KiB slabs, as Node does
 * for Buffers: in Deno every new ArrayBuffer costs ~0.7 µs however small
 * (measured, Deno 2.9.6), more than the rest of a round trip, while a view on
 * an existing buffer costs ~0.1 µs. A retained small message keeps its slab
 * (64 KiB) alive; messages over `slabMessageBytesMax` get their own buffer.
 * Up to 8 KiB (was 1 KiB): 4 KiB one-way with receive() went from 342-373 k
 * to 435-511 k msgs/s (bench/shmipc/views.ts --modes=copy, Deno 2.9.6, loaded
 * machine, 3 runs each), where a fresh 4 KiB buffer per message was 40 % of
 * the receiver's time; a retained 8 KiB message pins at most 8× its size.
 */
const slabBytes = 64 * 1024;
const slabMessageBytesMax = 8 * 1024;
const slab = {
  buffer: new ArrayBuffer(slabBytes),
  offset: 0,
  copy(source: Uint8Array, start: number, length: number): Uint8Array {
    if (length > slabMessageBytesMax) {
      // Not source.slice(): on the mapped segment's buffer Deno's slice() is ~2.5x slower than a fresh
      // array plus set() (1 MiB: 478 vs 195 µs measured, Deno 2.9.6; equal in Bun).
      const own = new Uint8Array(length);
      own.set(source.subarray(start, start + length));
      return own;
    }
    if (this.offset + length > slabBytes) {
      this.buffer = new ArrayBuffer(slabBytes);
      this.offset = 0;
    }
    const view = new Uint8Array(this.buffer, this.offset, length);
    if (length <= 64) {
      for (let i = 0; i < length; i++) view[i] = source[start + i];
    } else {
      view.set(source.subarray(start, start + length));
    }
    this.offset = (this.offset + length + 7) & ~7;
    return view;
  },
};

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function unhex(text: string): Uint8Array {
  if (!/^([0-9a-f]{2})*$/i.test(text)) throw new TypeError("token must be a hex string");
  return Uint8Array.from(text.match(/../g) ?? [], (h) => parseInt(h, 16));
}

function validateOptions(options: ShmChannelOptions): Required<Omit<ShmChannelOptions, "doorbell">> {
  const ringBytes = options.ringBytes ?? L.ring_bytes_default;
  if (
    !Number.isInteger(ringBytes) || ringBytes < L.ring_bytes_min || ringBytes > L.ring_bytes_max ||
    (ringBytes & (ringBytes - 1)) !== 0
  ) {
    throw new RangeError(
      `ringBytes must be a power of two from ${L.ring_bytes_min} to ${L.ring_bytes_max}, got ${ringBytes}`,
    );
  }
  const messageBytesMax = options.messageBytesMax ?? messageBytesMaxDefault;
  if (!Number.isInteger(messageBytesMax) || messageBytesMax < 1 || messageBytesMax > messageBytesMaxLimit) {
    throw new RangeError(
      `messageBytesMax must be an integer from 1 to ${messageBytesMaxLimit}, got ${messageBytesMax}`,
    );
  }
  const spinMicros = options.spinMicros ?? spinMicrosDefault;
  if (!(spinMicros >= 0 && spinMicros <= 10_000)) {
    throw new RangeError(`spinMicros must be from 0 to 10000, got ${spinMicros}`);
  }
  const livenessCheckMs = options.livenessCheckMs ?? livenessCheckMsDefault;
  if (!Number.isInteger(livenessCheckMs) || livenessCheckMs < 1 || livenessCheckMs > livenessCheckMsMax) {
    throw new RangeError(`livenessCheckMs must be an integer from 1 to ${livenessCheckMsMax}, got ${livenessCheckMs}`);
  }
  const blockMicros = options.blockMicros ?? 0;
  if (!Number.isInteger(blockMicros) || blockMicros < 0 || blockMicros > blockMicrosMax) {
    throw new RangeError(
      `blockMicros must be an integer from 0 (off) to ${blockMicrosMax}, got ${blockMicros}; ` +
        "it bounds how long this runtime's timers and I/O may wait while a parked side blocks",
    );
  }
  return { ringBytes, messageBytesMax, spinMicros, livenessCheckMs, blockMicros };
}

/**
 * A duplex, ordered, reliable message channel over shared memory.
 *
 * @example
 * ```ts
 * import { ShmChannel } from "./shm_channel.ts";
 * const a = ShmChannel.create();
 * const b = ShmChannel.attach(a.name, a.token);
 * await a.send(new TextEncoder().encode("hi"));
 * console.log(new TextDecoder().decode(await b.receive()));
 * b.close();
 * a.close();
 * ```
 */
export class ShmChannel implements Transport, AsyncIterable<Uint8Array>, Disposable {
  /** Always "shm". */
  readonly kind = "shm" as const;
  /** The segment's name; give it to the peer. */
  readonly name: string;
  /** The one-time token, hex; give it to the peer. Empty on the attaching side. */
  readonly token: string;
  /** 0 for the creator, 1 for the attacher. */
  readonly side: number;
  /** Largest message this side sends or accepts. */
  readonly messageBytesMax: number;

  readonly #native: Native;
  readonly #handle: number;
  readonly #u32: Uint32Array;
  readonly #writer: RingWriter;
  readonly #reader: RingReader;
  readonly #spinMs: number;
  readonly #blockMicros: number;
  readonly #parkedWord: number;
  readonly #doorbellWord: number;
  readonly #peerParkedWord: number;
  readonly #peerClosedWord: number;
  readonly #beatWord: number;
  readonly #peerBeatWord: number;
  readonly #peerPidWord: number;
  readonly #receivers: PendingReceive[] = [];
  readonly #sends: PendingSend[] = [];
  readonly #peerWaiters: Pending<void>[] = [];
  /** The message being reassembled from fragments, written in place; its first #fragmentBytes are filled. */
  #assembly: Uint8Array | undefined;
  #fragmentBytes = 0;
  /** Buffers handed back by release(), ready for the next large message. */
  readonly #pool: ArrayBuffer[] = [];
  /** Buffers this channel made for large messages: release() takes back only these. */
  readonly #poolable = new WeakSet<ArrayBuffer>();
  /** The mapped segment: views from receiveView() are arrays over it. Detached at close. */
  readonly #segment: ArrayBuffer;
  /** The view handed out for each held ring frame, by the reader's slot; made on first use. */
  #views: (Uint8Array | undefined)[] | undefined;
  /** Views of messages that could not be read in place (fragmented): copies, held until releaseView(). */
  readonly #viewCopies: Uint8Array[] = [];
  /** Copies released by releaseView(), so that a second release is told from a foreign array. */
  readonly #viewCopiesReleased = new WeakSet<Uint8Array>();
  #armed = false;
  // Counters for stats(): plain increments on paths that run anyway.
  #messagesSent = 0;
  #bytesSent = 0;
  #messagesReceived = 0;
  #bytesReceived = 0;
  #wakeupsSent = 0;
  #wakeupsReceived = 0;
  #doorbellWakeupsSent = 0;
  #doorbellWakeupsReceived = 0;
  #spinYields = 0;
  #blockedParks = 0;
  #blockedWakeupsReceived = 0;
  /** #messagesSent when this side last received a message: more sent since means it may block (#mayBlock). */
  #sentAtReceive = 0;
  #doorbell: Doorbell | undefined;
  /** The peer rings #doorbell when it sees parkedOnDoorbell: only then may this side park on it. */
  #peerRings = false;
  /** Parked on the doorbell (not the waiter thread) right now. */
  #parkedOnBell = false;
  #closed: ChannelClosedError | undefined;
  #peerGone: CloseReason | undefined;

  private constructor(
    native: Native,
    handle: number,
    name: string,
    token: string,
    options: Required<Omit<ShmChannelOptions, "doorbell">>,
    doorbell: Doorbell | undefined,
  ) {
    this.#native = native;
    this.#handle = handle;
    this.name = name;
    this.token = token;
    this.messageBytesMax = options.messageBytesMax;
    this.#spinMs = options.spinMicros / 1000;
    this.#blockMicros = options.blockMicros;
    if (options.blockMicros > 0) blockingChannels.add(this);
    openChannels.add(this);
    if (!ShmChannel.#exitHooked) {
      ShmChannel.#exitHooked = true;
      process.on("exit", ShmChannel.#publishAtExit);
    }
    this.side = native.side(handle);
    const buffer = native.map(handle);
    this.#segment = buffer;
    this.#u32 = new Uint32Array(buffer);
    const ringBytes = this.#u32[L.off_ring_bytes >> 2];
    this.#writer = new RingWriter(buffer, this.side, ringBytes);
    this.#reader = new RingReader(buffer, 1 - this.side, ringBytes);
    const own = sideOffset(this.side);
    const peer = sideOffset(1 - this.side);
    this.#parkedWord = (own + L.off_side_parked) >> 2;
    this.#doorbellWord = (own + L.off_side_doorbell) >> 2;
    this.#peerParkedWord = (peer + L.off_side_parked) >> 2;
    this.#peerClosedWord = (peer + L.off_side_closed) >> 2;
    this.#beatWord = (own + L.off_side_beat) >> 2;
    this.#peerBeatWord = (peer + L.off_side_beat) >> 2;
    this.#peerPidWord = (this.side === 0 ? L.off_peer_pid : L.off_owner_pid) >> 2;
    // The waiter thread runs with a doorbell too: disarmed, it still checks
    // every liveness interval whether the peer died.
    native.startWaiter(handle, (reason) => this.#onWake(reason));
    if (options.livenessCheckMs !== livenessCheckMsDefault) native.setLiveness(handle, options.livenessCheckMs);
    if (doorbell) this.#listenTo(doorbell, true);
  }

  /**
   * Takes a doorbell set up after the channel (the plugin launch does this,
   * see factory.ts). `peerRings` says whether the peer is known to ring it:
   * true on the side that learns of it second (the peer already holds its
   * end), which then rings once to say so; false on the side that holds it
   * first, which keeps parking on the futex until that first ring arrives.
   * So neither side ever parks on a doorbell its peer does not ring, and a
   * peer without one (the C peer, anything written from docs/protocol.md)
   * keeps being woken through the futex. If the doorbell's other end goes
   * away, this side goes back to the futex. The channel closes the doorbell.
   */
  useDoorbell(doorbell: Doorbell, peerRings: boolean): void {
    if (this.#released || this.#doorbell) {
      doorbell.close();
      return;
    }
    this.#listenTo(doorbell, peerRings);
    if (peerRings) doorbell.ring();
  }

  /** How this side is woken when it parks now: "doorbell" once both sides hold one, else "futex". */
  get wakePath(): "futex" | "doorbell" {
    return this.#doorbell && this.#peerRings ? "doorbell" : "futex";
  }

  #listenTo(doorbell: Doorbell, peerRings: boolean): void {
    this.#doorbell = doorbell;
    this.#peerRings = peerRings;
    doorbell.listen(() => {
      if (this.#doorbell !== doorbell) return;
      this.#peerRings = true;
      this.#onWake(wakeReasons.doorbell);
    }, () => this.#onDoorbellEnd(doorbell));
  }

  /** The peer's end went away (it closed, or died): back to the futex; a parked side re-parks there. */
  #onDoorbellEnd(doorbell: Doorbell): void {
    if (this.#doorbell !== doorbell) return;
    this.#doorbell = undefined;
    this.#peerRings = false;
    doorbell.close();
    if (this.#parkedOnBell) this.#onWake(doorbellEnded);
  }

  /** Creates a segment; this side is side 0. */
  static create(options: ShmChannelOptions = {}): ShmChannel {
    const valid = validateOptions(options);
    const native = getNative();
    const created = native.create(valid.ringBytes);
    try {
      return new ShmChannel(native, created.handle, created.name, hex(created.token), valid, options.doorbell);
    } catch (error) {
      native.close(created.handle);
      throw error;
    }
  }

  /** Attaches to a segment made by {@link ShmChannel.create}; this side is side 1. */
  static attach(name: string, token: string | Uint8Array, options: ShmChannelOptions = {}): ShmChannel {
    const valid = validateOptions(options);
    const native = getNative();
    const handle = native.attach(name, typeof token === "string" ? unhex(token) : token);
    try {
      return new ShmChannel(native, handle, name, "", valid, options.doorbell);
    } catch (error) {
      native.close(handle);
      throw error;
    }
  }

  /** The peer's process id, or 0 while nobody has attached. */
  get peerPid(): number {
    return this.#closed ? 0 : Atomics.load(this.#u32, this.#peerPidWord);
  }

  /** True once this side is closed or knows the peer is gone. */
  get closed(): boolean {
    return this.#closed !== undefined;
  }

  /** Resolves when a peer has attached; rejects after `timeoutMs`. */
  waitForPeer(timeoutMs = 10_000): Promise<void> {
    if (this.#closed) return Promise.reject(this.#closed);
    if (this.peerPid !== 0) return resolved;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const index = this.#peerWaiters.indexOf(waiter);
        if (index >= 0) this.#peerWaiters.splice(index, 1);
        reject(
          new SegmentError(
            "timed_out",
            `No peer attached to segment "${this.name}" within ${timeoutMs} ms; check that the peer started and got the name and token`,
          ),
        );
      }, timeoutMs);
      const waiter: Pending<void> = {
        resolve: () => (clearTimeout(timer), resolve()),
        reject: (e) => (clearTimeout(timer), reject(e)),
      };
      this.#peerWaiters.push(waiter);
      this.#park();
    });
  }

  /**
   * Sends one message. Resolves once it is in the ring; waits for space when
   * the ring is full (never drops, never buffers beyond the caller's bytes).
   * Messages larger than a frame are split into fragments and reassembled.
   */
  send(bytes: Uint8Array): Promise<void> {
    return this.sendRange(bytes, 0, bytes.length);
  }

  /**
   * Sends `bytes[start, end)` as one message, as {@link send} does, without
   * the caller making a view of it. The range must stay unchanged until the
   * returned promise settles (it is read again only when the ring was full).
   */
  sendRange(bytes: Uint8Array, start: number, end: number): Promise<void> {
    if (this.#closed) return Promise.reject(this.#closed);
    if (this.#peerGone) return Promise.reject(this.#peerGoneError());
    if (!(start >= 0 && start <= end && end <= bytes.length)) {
      return Promise.reject(new RangeError(`sendRange(${start}, ${end}) is outside the ${bytes.length}-byte array`));
    }
    if (end - start > this.messageBytesMax) {
      return Promise.reject(new MessageTooLargeError(end - start, this.messageBytesMax));
    }
    this.#messagesSent++;
    this.#bytesSent += end - start;
    if (this.#armed && this.#blockMicros > 0 && !this.#reblockQueued) this.#queueReblock();
    if (this.#sends.length === 0) {
      const offset = this.#writeRange(bytes, start, end);
      if (offset === end) return resolved;
      return new Promise((resolve, reject) => {
        this.#sends.push({ bytes, offset, end, resolve, reject });
        this.#wait();
      });
    }
    return new Promise((resolve, reject) => {
      this.#sends.push({ bytes, offset: start, end, resolve, reject });
    });
  }

  /**
   * Counters for metrics: messages and bytes each way, wake-ups given and taken, and both rings'
   * fill levels (atomic loads of the shared indices; no syscalls). Zeros for the rings once closed.
   */
  stats(): TransportStats {
    const open = !this.#released;
    return {
      messagesSent: this.#messagesSent,
      messagesReceived: this.#messagesReceived,
      bytesSent: this.#bytesSent,
      bytesReceived: this.#bytesReceived,
      wakeupsSent: this.#wakeupsSent,
      wakeupsReceived: this.#wakeupsReceived,
      doorbellWakeupsSent: this.#doorbellWakeupsSent,
      doorbellWakeupsReceived: this.#doorbellWakeupsReceived,
      spinYields: this.#spinYields,
      blockedParks: this.#blockedParks,
      blockedWakeupsReceived: this.#blockedWakeupsReceived,
      sendRingUsedBytes: open ? this.#writer.usedBytes() : 0,
      receiveRingUsedBytes: open ? this.#reader.usedBytes() : 0,
      ringBytes: this.#writer.ringBytes,
    };
  }

  /** Bumps this side's heartbeat word (docs/protocol.md §7): one atomic add, nothing wakes. */
  beat(): void {
    if (!this.#released) Atomics.add(this.#u32, this.#beatWord, 1);
  }

  /** The peer's heartbeat word: 0 while it never beat. */
  peerBeat(): number {
    return this.#released ? 0 : Atomics.load(this.#u32, this.#peerBeatWord);
  }

  /** The next message, copied out of the ring. */
  receive(): Promise<Uint8Array> {
    return this.#receive(false);
  }

  /**
   * The next message if one is already there, without waiting. Throws
   * ChannelClosedError once the peer has closed and everything is read, so a
   * polling loop ends (a dead peer is noticed on the event loop, by receive()).
   */
  tryReceive(): Uint8Array | undefined {
    return this.#tryReceive(false);
  }

  /**
   * The next message without a copy: an array over the ring memory itself
   * (shmipc-go's ReadBytes + ReleaseReadAndReuse). The view stays valid, and
   * its bytes stay unchanged, until {@link releaseView}; only then does the
   * writer get that space back, so release each view as soon as you are done
   * with it. Views and copies mix freely, in any order.
   *
   * - A message of one frame (up to a quarter of `ringBytes`, minus 8) is read
   *   in place. A larger one comes in fragments and is copied into one buffer
   *   first, which releaseView() hands back for reuse by the next large one;
   *   for zero-copy messages of up to M bytes, use `ringBytes` of at least 4 × (M + 8).
   * - Receiving again before releasing is fine: up to {@link viewsHeldMax}
   *   views may be held, released in any order (the ring's space comes back in
   *   order, once the oldest held view is released). The views held must not
   *   fill the ring while the caller waits for more: the peer would wait for
   *   space this side never gives back.
   * - Misuse throws {@link ViewError} and the channel keeps serving: a view
   *   released twice ("view_released"), an array this channel did not hand
   *   out by receiveView() ("view_foreign"), more than viewsHeldMax held
   *   ("views_exhausted").
   * - When the peer closes or dies, receiving fails as usual once the ring
   *   is drained, but this side stays open while it holds views (they stay
   *   readable) and closes when the last one is released.
   * - close() ends every view: in Deno, Bun and Node 22+ a view then has
   *   length 0 (the mapping is detached, not left dangling). Under Node 20,
   *   which cannot detach it, a view must not be read after close().
   * - A view's `.buffer` is the whole shared segment: read only the view.
   *
   * @example
   * ```ts
   * import { ShmChannel } from "./shm_channel.ts";
   * const a = ShmChannel.create();
   * const b = ShmChannel.attach(a.name, a.token);
   * await a.send(new TextEncoder().encode("in place"));
   * const view = await b.receiveView();
   * console.log(new TextDecoder().decode(view));
   * b.releaseView(view);
   * b.close();
   * a.close();
   * ```
   */
  receiveView(): Promise<Uint8Array> {
    return this.#receive(true);
  }

  /** Like {@link receiveView}, without waiting: the next message as a view, or undefined when there is none yet. */
  tryReceiveView(): Uint8Array | undefined {
    return this.#tryReceive(true);
  }

  /**
   * Hands a view from {@link receiveView} back: its ring space goes back to
   * the writer (together with the space of every later message already read,
   * once no older view is held), and the view must not be used afterwards.
   * Throws {@link ViewError} for a view released already or an array that is
   * not a view of this channel; after close() it does nothing.
   */
  releaseView(view: Uint8Array): void {
    if (this.#released) return;
    const views = this.#views;
    const reader = this.#reader;
    if (views !== undefined) {
      for (let i = 0, slot = reader.firstHeldSlot; i < reader.heldCount; i++, slot = (slot + 1) % heldFramesMax) {
        if (views[slot] !== view) continue;
        views[slot] = undefined;
        if (reader.releaseHeld(slot)) this.#wakePeerIf(L.parked_want_space);
        if (this.#peerGone && reader.heldCount === 0 && !reader.hasData()) this.#closeForPeer();
        return;
      }
    }
    const copy = this.#viewCopies.indexOf(view);
    if (copy >= 0) {
      this.#viewCopies.splice(copy, 1);
      this.#viewCopiesReleased.add(view);
      this.release(view);
      return;
    }
    if (view.buffer === this.#segment || this.#viewCopiesReleased.has(view)) {
      throw new ViewError(
        "view_released",
        `This view of channel "${this.name}" is not held: it was released already, or it is a subarray of a view; ` +
          `release each array receiveView() returned exactly once`,
      );
    }
    throw new ViewError(
      "view_foreign",
      `This array is not a view of channel "${this.name}": pass releaseView() only what this channel's ` +
        `receiveView() or tryReceiveView() returned (messages from receive() go to release(), or nowhere)`,
    );
  }

  #receive(view: boolean): Promise<Uint8Array> {
    if (this.#closed) return Promise.reject(this.#closed);
    if (this.#receivers.length === 0) {
      try {
        const message = this.#poll(view);
        if (message) {
          this.#sentAtReceive = this.#messagesSent;
          return Promise.resolve(message);
        }
      } catch (error) {
        return Promise.reject(error);
      }
      if (this.#peerGone) return Promise.reject(this.#closeForPeer());
    }
    return new Promise((resolve, reject) => {
      this.#receivers.push({ resolve, reject, view });
      this.#wait();
    });
  }

  #tryReceive(view: boolean): Uint8Array | undefined {
    if (this.#closed) throw this.#closed;
    // A side that polls is waiting for its peer, maybe in a loop that never yields to publishTask: what it sent
    // must be visible first (a busy-poll echo of sends batched per turn never answered otherwise).
    this.#publish();
    if (this.#receivers.length > 0) return undefined;
    const message = this.#poll(view);
    if (message) this.#sentAtReceive = this.#messagesSent;
    else if (this.#peerGone) throw this.#closeForPeer();
    return message;
  }

  /** Throws when one more view would be over viewsHeldMax. */
  #checkViewRoom(): void {
    if (this.#reader.heldCount < heldFramesMax) return;
    throw new ViewError(
      "views_exhausted",
      `Channel "${this.name}" already holds ${heldFramesMax} views (viewsHeldMax); release some with releaseView() ` +
        `before receiving more views, or copy with receive()`,
    );
  }

  /** Messages until the peer closes; throws if it dies or writes garbage. */
  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    return receiveAll(this);
  }

  /** Closes this side: the peer sees "peer-closed" after draining. Idempotent. */
  close(): void {
    this.#shutdown(new ChannelClosedError("local", `Channel "${this.name}" was closed by this side`));
  }

  /** Same as {@link close}: for `using channel = ShmChannel.create()`. */
  [Symbol.dispose](): void {
    this.close();
  }

  #released = false;

  static #exitHooked = false;
  static readonly #publishAtExit = (): void => {
    for (const channel of openChannels) channel.#publish();
  };

  #shutdown(error: ChannelClosedError): void {
    if (this.#released) return;
    this.#publish(); // What send() accepted before close() is delivered.
    this.#released = true;
    this.#closed = error;
    blockingChannels.delete(this);
    openChannels.delete(this);
    if (this.#armed) {
      this.#armed = false;
      keepAlive.release();
    }
    // Stops the waiter thread first: no callback arrives after this line.
    this.#native.close(this.#handle);
    this.#detachSegment();
    this.#doorbell?.close();
    this.#rejectAll(error);
  }

  /**
   * Views from receiveView() are arrays over the mapping that close() just
   * unmapped: detaching the buffer turns them into empty arrays instead of
   * pointers into unmapped memory (a crash). Node 20 has no transfer(): there
   * a view must not be used after close (documented at receiveView).
   */
  #detachSegment(): void {
    const segment = this.#segment as ArrayBuffer & { transfer?: (bytes: number) => ArrayBuffer };
    if (typeof segment.transfer === "function") segment.transfer(0);
    this.#views = undefined;
    this.#viewCopies.length = 0;
  }

  #rejectAll(error: Error): void {
    for (const r of this.#receivers.splice(0)) r.reject(error);
    for (const s of this.#sends.splice(0)) s.reject(error);
    for (const w of this.#peerWaiters.splice(0)) w.reject(error);
  }

  #peerGoneError(): ChannelClosedError {
    return this.#peerGone === "peer-died"
      ? new ChannelClosedError(
        "peer-died",
        `The peer of channel "${this.name}" died; restart it and open a new channel`,
      )
      : new ChannelClosedError("peer-closed", `The peer closed channel "${this.name}"`);
  }

  /**
   * Called once the ring is drained and the peer is gone: closes this side too. While views from
   * receiveView() are held it only fails what waits (closing would end the views under their holder's
   * feet); releaseView() of the last one closes it.
   */
  #closeForPeer(): ChannelClosedError {
    const error = this.#peerGoneError();
    if (this.#reader.heldCount > 0) this.#rejectAll(error);
    else this.#shutdown(error);
    return error;
  }

  /**
   * Reads one whole message, or undefined: copied out, or with `view` an array over the ring that
   * stays held until releaseView(). Throws when the peer wrote garbage.
   */
  #poll(view = false): Uint8Array | undefined {
    const reader = this.#reader;
    if (view) this.#checkViewRoom();
    for (;;) {
      let length: number;
      try {
        length = reader.next();
      } catch (error) {
        if (!(error instanceof FrameCorruptError)) throw error;
        const closed = new ChannelClosedError(
          "corrupt",
          `Channel "${this.name}" closed: the peer wrote a corrupt frame (${error.message}); the peer is buggy or not plugin-shm`,
        );
        this.#shutdown(closed);
        throw closed;
      }
      if (length < 0) {
        this.#notePeerClosed();
        return undefined;
      }
      const start = reader.payloadOffset;
      const more = (reader.flags & L.frame_flag_more) !== 0;
      if (this.#fragmentBytes + length > this.messageBytesMax) {
        const closed = new ChannelClosedError(
          "corrupt",
          `Channel "${this.name}" closed: the peer sent a message over messageBytesMax (${this.messageBytesMax} bytes)`,
        );
        this.#shutdown(closed);
        throw closed;
      }
      if (!more && this.#fragmentBytes === 0) {
        this.#messagesReceived++;
        this.#bytesReceived += length;
        if (view) {
          // In place: nothing is copied and nothing goes back to the writer until releaseView().
          const held = new Uint8Array(this.#segment, start, length);
          (this.#views ??= new Array(heldFramesMax).fill(undefined))[reader.hold()] = held;
          return held;
        }
        let message: Uint8Array;
        if (length < poolMessageBytesMin) {
          message = slab.copy(reader.u8, start, length);
        } else {
          message = this.#buffer(length, length);
          message.set(reader.u8.subarray(start, start + length));
          if (message.length !== length) message = message.subarray(0, length);
        }
        reader.release();
        this.#wakePeerIf(L.parked_want_space);
        return message;
      }
      // A fragment goes straight from the ring into the one buffer of its message: no array per
      // fragment and no second copy to join them (1 MiB in 256 KiB frames: 334 -> ~200 µs in Deno).
      const filled = this.#fragmentBytes;
      const assembly = this.#assemblyFor(filled + length);
      assembly.set(reader.u8.subarray(start, start + length), filled);
      reader.release();
      this.#wakePeerIf(L.parked_want_space);
      if (more) {
        this.#fragmentBytes = filled + length;
        continue;
      }
      this.#messagesReceived++;
      this.#bytesReceived += filled + length;
      this.#assembly = undefined;
      this.#fragmentBytes = 0;
      const whole = assembly.subarray(0, filled + length);
      if (view) this.#viewCopies.push(whole);
      return whole;
    }
  }

  /**
   * The reassembly buffer, with room for `bytes`. The frames do not say how long the whole message is,
   * so the first guess is the ring's size (a message that needs fragments is over a quarter of it) and
   * it doubles, up to messageBytesMax. Pages past the message's end are never written, so the slack of
   * the returned view costs address space, not memory.
   */
  #assemblyFor(bytes: number): Uint8Array {
    const current = this.#assembly;
    if (current && current.length >= bytes) return current;
    let grown: Uint8Array | undefined;
    if (!current) {
      // The message's size is unknown: the largest released buffer is the best guess.
      let best = -1;
      for (let i = 0; i < this.#pool.length; i++) {
        if (this.#pool[i].byteLength >= bytes && (best < 0 || this.#pool[i].byteLength > this.#pool[best].byteLength)) {
          best = i;
        }
      }
      if (best >= 0) grown = new Uint8Array(this.#pool.splice(best, 1)[0]);
    }
    if (!grown) {
      let capacity = current ? current.length : this.#reader.ringBytes;
      while (capacity < bytes) capacity *= 2;
      const buffer = new ArrayBuffer(Math.min(capacity, this.messageBytesMax));
      this.#poolable.add(buffer);
      grown = new Uint8Array(buffer);
      if (current) grown.set(current.subarray(0, this.#fragmentBytes));
    }
    this.#assembly = grown;
    return grown;
  }

  /**
   * A buffer of at least `bytes` for a large message: a released one that fits (at most
   * poolFitDivisor times `capacity`), else a new one of `capacity` bytes.
   */
  #buffer(bytes: number, capacity: number): Uint8Array {
    const pool = this.#pool;
    for (let i = 0; i < pool.length; i++) {
      const buffer = pool[i];
      if (buffer.byteLength >= bytes && buffer.byteLength <= capacity * poolFitDivisor) {
        pool.splice(i, 1);
        return new Uint8Array(buffer);
      }
    }
    const made = new Uint8Array(capacity);
    this.#poolable.add(made.buffer);
    return made;
  }

  /**
   * Hands a message this channel received back for reuse by a later large
   * message (shmipc-go's ReleaseReadAndReuse): its bytes will be overwritten,
   * so neither it nor any view on it may be used afterwards. Optional; only
   * messages of 64 KiB or more are kept (a new buffer of that size costs more
   * than copying into an old one), anything else is ignored, and so is a
   * second release of the same message. A view from {@link receiveView} is
   * passed on to {@link releaseView}.
   */
  release(message: Uint8Array): void {
    const buffer = message.buffer as ArrayBuffer;
    if (buffer === this.#segment) return this.releaseView(message);
    if (!this.#poolable.has(buffer) || this.#pool.length >= poolBuffersMax || this.#pool.includes(buffer)) return;
    if (buffer === this.#assembly?.buffer) return; // Still being filled.
    this.#pool.push(buffer);
  }

  #notePeerClosed(): void {
    if (this.#peerGone || Atomics.load(this.#u32, this.#peerClosedWord) === 0) return;
    // The peer writes its last frames before it sets `closed`; look once more.
    if (!this.#reader.hasData()) this.#peerGone = "peer-closed";
  }

  /** Writes as much of `pending` as fits; true when all of it is in the ring. */
  #write(pending: PendingSend): boolean {
    pending.offset = this.#writeRange(pending.bytes, pending.offset, pending.end);
    return pending.offset === pending.end;
  }

  /** Writes as many frames of `bytes[offset, end)` as fit and publishes them; returns how far it got. */
  #writeRange(bytes: Uint8Array, offset: number, end: number): number {
    const writer = this.#writer;
    let wrote = false;
    for (;;) {
      const length = Math.min(end - offset, writer.payloadBytesMax);
      const last = offset + length === end;
      if (!writer.tryWrite(bytes, offset, length, last ? 0 : L.frame_flag_more)) break;
      wrote = true;
      offset += length;
      if (last) break;
    }
    if (!wrote) return offset;
    if (offset === end) {
      // The first message of a turn is published at once (a lone call waits on nothing); the ones written after
      // it, until the microtask queue reaches publishTask, are published together: a pipelined burst (responses
      // to a batch of requests, calls issued by a batch of continuations) costs two index stores and two looks
      // at the peer's parked word, not one per message.
      if (this.#publishQueued) {
        this.#unpublished = true;
      } else {
        this.#unpublished = true;
        this.#publish();
        this.#publishQueued = true;
        queueMicrotask(this.#publishTask);
      }
    } else {
      // The ring is full: the reader must see what is there to free space.
      this.#unpublished = true;
      this.#publish();
    }
    return offset;
  }

  /** Frames are in the ring that the reader cannot see yet, and publishTask is queued to publish them. */
  #unpublished = false;
  #publishQueued = false;

  readonly #publishTask = (): void => {
    this.#publishQueued = false;
    this.#publish();
  };

  /**
   * Makes the frames written so far visible and wakes the peer if it parked waiting for them. Called by
   * publishTask, and before anything that waits for the peer (spin, park) or ends the channel, which must
   * not leave its own frames unseen.
   */
  #publish(): void {
    if (!this.#unpublished || this.#released) return;
    this.#unpublished = false;
    this.#writer.publish();
    this.#wakePeerIf(L.parked_want_data);
  }

  #wakePeerIf(want: number): void {
    const u32 = this.#u32;
    if ((Atomics.load(u32, this.#peerParkedWord) & want) === 0) return;
    const parked = Atomics.and(u32, this.#peerParkedWord, ~want);
    if ((parked & want) === 0) return;
    this.#wakeupsSent++;
    // Without our end (the socket broke) the futex wake reaches no armed waiter, but the peer's end broke too:
    // its end-of-doorbell handler wakes it and it re-parks on the futex.
    if ((parked & parkedOnDoorbell) !== 0 && this.#doorbell) {
      this.#doorbellWakeupsSent++;
      this.#doorbell.ring();
    } else this.#native.wake(this.#handle, 1 - this.side);
  }

  #flushSends(): void {
    while (this.#sends.length > 0) {
      const head = this.#sends[0];
      if (!this.#write(head)) return;
      this.#sends.shift();
      head.resolve();
    }
  }

  #deliver(): void {
    while (this.#receivers.length > 0) {
      let message: Uint8Array | undefined;
      try {
        message = this.#poll(this.#receivers[0].view);
      } catch (error) {
        if (!(error instanceof ViewError)) throw error;
        this.#receivers.shift()!.reject(error); // Too many views held: this receiver fails, the channel serves on.
        continue;
      }
      if (!message) break;
      this.#sentAtReceive = this.#messagesSent;
      this.#receivers.shift()!.resolve(message);
    }
  }

  /**
   * Waits for progress: first by spinning, then by parking. The spin runs in a
   * microtask, not inline, so that continuations already queued (typically the
   * caller's code that sends the very request whose answer this side awaits)
   * run before it; an inline spin would hold them back and always park.
   */
  #wait(): void {
    // Nothing to wait for yet: the spin is queued by the receive()/send() that
    // needs it, so it runs after the continuations queued before that call
    // (typically the caller sending the request whose answer it awaits).
    if (this.#armed || this.#spinQueued || this.#closed || this.#wants() === 0) return;
    this.#spinQueued = true;
    queueMicrotask(this.#spinTask);
  }

  #spinQueued = false;
  #spinDeferrals = 0;

  readonly #spinTask = (): void => {
    // A caller one or two promise hops away (a `.then` wrapper such as the host's call instrumentation,
    // an `async` function returning the call) has not sent its request yet: let it, or the spin finds
    // nothing, parks, and every call pays a wake-up (measured: echo p50 6 µs → 145 µs).
    if (this.#spinDeferrals < spinDeferralsMax) {
      this.#spinDeferrals++;
      queueMicrotask(this.#spinTask);
      return;
    }
    this.#spinDeferrals = 0;
    this.#spinQueued = false;
    this.#publish(); // The peer's answer may wait on frames this side wrote in this turn.
    if (this.#closed || this.#wants() === 0) return;
    if (this.#spinUntilProgress()) {
      this.#service();
    } else {
      this.#park();
    }
  };

  /**
   * Spins until progress is possible or the spin budget is spent. Every few
   * iterations it yields the CPU: with more busy threads than cores (2 vCPUs,
   * a host and plugins) a spin that never yields delays the peer it waits
   * for, and the round trip degrades to milliseconds (measured).
   */
  #spinUntilProgress(): boolean {
    if (this.#spinMs === 0) return false;
    const want = this.#wants();
    const deadline = performance.now() + this.#spinMs;
    for (let i = 1;; i++) {
      if (this.#progressPossible(want)) return true;
      if (i % spinCheckIterations === 0) {
        if (performance.now() > deadline) return false;
        this.#spinYields++;
        this.#native.yield();
      }
    }
  }

  #wants(): number {
    let want = 0;
    if (this.#receivers.length > 0 || this.#peerWaiters.length > 0) want |= L.parked_want_data;
    if (this.#sends.length > 0) want |= L.parked_want_space;
    return want;
  }

  #progressPossible(want: number): boolean {
    if ((want & L.parked_want_data) && (this.#reader.hasData() || this.#peerWaiters.length > 0 && this.peerPid !== 0)) {
      return true;
    }
    if ((want & L.parked_want_space) && this.#writer.spaceFreed()) return true;
    return Atomics.load(this.#u32, this.#peerClosedWord) !== 0;
  }

  #park(): void {
    this.#publish();
    if (this.#armed || this.#closed) return;
    const want = this.#wants();
    if (want === 0) return;
    const u32 = this.#u32;
    const seen = Atomics.load(u32, this.#doorbellWord);
    const onBell = this.#doorbell !== undefined && this.#peerRings;
    const bits = onBell ? want | parkedOnDoorbell : want;
    Atomics.or(u32, this.#parkedWord, bits);
    if (this.#progressPossible(want)) {
      Atomics.and(u32, this.#parkedWord, ~bits);
      queueMicrotask(() => this.#service());
      return;
    }
    if (!onBell && this.#blockMicros > 0 && this.#mayBlock(want) && this.#blockedPark(seen)) return;
    this.#armed = true;
    this.#armedSeen = seen;
    this.#parkedOnBell = onBell;
    keepAlive.acquire();
    if (!onBell) this.#native.arm(this.#handle, seen);
  }

  /** The doorbell value this side armed its waiter with: a blocking park after the fact waits on the same. */
  #armedSeen = 0;
  #reblockQueued = false;

  /**
   * A side already parked on the event loop that sends now (a host's first request after an idle spell, a
   * plugin's answer sent after its reader parked) blocks after all, once the continuations queued so far ran:
   * otherwise the answer it now expects, or the next request, would come through the waiter thread.
   */
  #queueReblock(): void {
    this.#reblockQueued = true;
    queueMicrotask(() => {
      this.#reblockQueued = false;
      if (!this.#armed || this.#parkedOnBell || this.#closed || !this.#mayBlock(this.#wants())) return;
      this.#publish(); // Blocking on the answer to a request the peer cannot see yet would wait out the bound.
      this.#blockedParks++;
      if (!this.#native.parkBlocking(this.#handle, this.#armedSeen, this.#blockMicros)) return;
      // Woken here. The native call disarmed the waiter thread for the block (on a timeout it armed it again);
      // a callback it had already started still arrives, finds nothing to do and parks again, as any
      // spurious wake-up does.
      this.#blockedWakeupsReceived++;
      this.#onWake(wakeReasons.doorbell);
    });
  }

  /**
   * Blocks only a side that waits for a message (not for ring space, not for its peer to attach) and that
   * sent a message after the last one it received: a caller awaiting its answer, or a server that answered
   * everything it was asked. Not a server with a request still in hand (its handler may await I/O this
   * runtime must serve), and not a side that went idle after receiving (nothing it sent is being answered).
   */
  #mayBlock(want: number): boolean {
    return want === L.parked_want_data && this.#peerWaiters.length === 0 &&
      this.#messagesSent !== this.#sentAtReceive && this.#onlyOneWaiting();
  }

  /**
   * No other channel of this process that may block waits on its peer: a host calling many plugins at once
   * must not hold its event loop for one answer while others arrive (measured, 16 busy plugins: p99.9 0.3-0.5 s
   * and half the calls/s when every send blocked for its own answer). Atomic-free reads of plain fields.
   */
  #onlyOneWaiting(): boolean {
    for (const other of blockingChannels) {
      if (other !== this && other.#messagesSent !== other.#sentAtReceive) return false;
    }
    return true;
  }

  /**
   * The blocking park (ShmChannelOptions.blockMicros), with the parked bits already up: true when the
   * doorbell moved (the peer woke this side, or a spurious return) and the channel was serviced; false on
   * the timeout, when the caller arms the waiter with the same `seen`, so a ring that lands between the
   * timeout and the arm still fires at once.
   */
  #blockedPark(seen: number): boolean {
    this.#blockedParks++;
    if (!this.#native.parkBlocking(this.#handle, seen, this.#blockMicros)) return false;
    this.#blockedWakeupsReceived++;
    this.#wakeupsReceived++;
    this.#onWake(wakeReasons.doorbell);
    return true;
  }

  #onWake(reason: number): void {
    if (this.#released) return;
    if (this.#armed) {
      this.#armed = false;
      if (this.#parkedOnBell && reason === wakeReasons.doorbell) this.#doorbellWakeupsReceived++;
      this.#parkedOnBell = false;
      keepAlive.release();
      this.#wakeupsReceived++;
    }
    Atomics.and(this.#u32, this.#parkedWord, ~(L.parked_want_data | L.parked_want_space | parkedOnDoorbell));
    if (reason === wakeReasons.peerDead) this.#peerGone ??= "peer-died";
    if (reason === wakeReasons.peerClosed) this.#notePeerClosed();
    this.#service();
  }

  #service(): void {
    if (this.#closed) return;
    try {
      if (this.#peerWaiters.length > 0 && this.peerPid !== 0) {
        for (const w of this.#peerWaiters.splice(0)) w.resolve();
      }
      this.#flushSends();
      this.#deliver();
    } catch (error) {
      if (error instanceof ChannelClosedError) return; // #shutdown rejected everyone.
      throw error;
    }
    if (!this.#peerGone && this.#sends.length > 0 && Atomics.load(this.#u32, this.#peerClosedWord) !== 0) {
      // The peer closed and reads nothing more: a send waiting for space would wait forever, and (its
      // closed word making progress look possible) spin the event loop in microtasks while it waits.
      const error = new ChannelClosedError("peer-closed", `The peer closed channel "${this.name}"`);
      for (const s of this.#sends.splice(0)) s.reject(error);
    }
    if (this.#peerGone) {
      const error = this.#peerGoneError();
      for (const s of this.#sends.splice(0)) s.reject(error);
      // Whatever the peer wrote before it went stays receivable; once the
      // ring is empty this side closes too, which frees the segment.
      if (!this.#reader.hasData()) this.#closeForPeer();
      return;
    }
    this.#wait();
  }
}
