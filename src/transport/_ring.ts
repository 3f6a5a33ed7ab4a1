/**
 * The frame ring of zig/ring.zig, over the mapped segment, in place: no FFI
 * call per frame. Indices are free-running u32 byte counters; Atomics on the
 * index words give the release/acquire ordering (they are sequentially
 * consistent in both V8 and JavaScriptCore), and payload bytes are written
 * before the index store that publishes them.
 *
 * @module
 */

import { FrameCorruptError } from "./errors.ts";
import { framePayloadBytesMax, L, ringDataOffset, ringReadOffset, ringWriteOffset } from "../native/layout.ts";

const headerBytes = L.frame_header_bytes;
/**
 * Payloads up to this size are copied into the ring byte by byte: a frame
 * encoded in the middle of the encoder's buffer would otherwise need a
 * subarray (an allocation) for set(), on every call's request and response.
 */
const copyLoopBytesMax = 128;

function frameBytes(payloadBytes: number): number {
  return (headerBytes + payloadBytes + 7) & ~7;
}

/**
 * A frame of at least this many bytes goes to the ring's start when the ring
 * is empty (a PAD frame covers the rest, as at the wrap point), instead of
 * where the last one ended: a ping-pong of large messages then keeps reusing
 * the same cache-warm bytes, as a buffer pool does, instead of sweeping the
 * whole ring. 1 MiB views in 8 MiB rings: RTT p50 35-71 µs in 4 runs against
 * 88-97 µs in 6 runs without (bench/shmipc/views.ts, Deno 2.9.6, a loaded
 * machine, runs alternated); the copying receive() unchanged (211-219 vs
 * 215-230 µs). With a 16 KiB threshold 64 KiB round trips looked slower
 * (11.5-12 vs 3.8-13 µs), hence only frames this large.
 */
const rewindFrameBytesMin = 256 * 1024;

/** The producer end of one ring. */
export class RingWriter {
  readonly ringBytes: number;
  readonly payloadBytesMax: number;
  readonly #u8: Uint8Array;
  readonly #u32: Uint32Array;
  readonly #data: number;
  readonly #writeWord: number;
  readonly #readWord: number;
  #local: number;
  #readCached: number;

  constructor(buffer: ArrayBuffer, ring: number, ringBytes: number) {
    this.ringBytes = ringBytes;
    this.payloadBytesMax = framePayloadBytesMax(ringBytes);
    this.#u8 = new Uint8Array(buffer);
    this.#u32 = new Uint32Array(buffer);
    this.#data = ringDataOffset(ring, ringBytes);
    this.#writeWord = ringWriteOffset(ring) >> 2;
    this.#readWord = ringReadOffset(ring) >> 2;
    this.#local = Atomics.load(this.#u32, this.#writeWord);
    this.#readCached = Atomics.load(this.#u32, this.#readWord);
  }

  /** Bytes published and not yet released by the reader: the ring's fill level (two atomic loads). */
  usedBytes(): number {
    return (Atomics.load(this.#u32, this.#writeWord) - Atomics.load(this.#u32, this.#readWord)) >>> 0;
  }

  /** Writes one frame unpublished; false when there is no room. */
  tryWrite(payload: Uint8Array, start: number, length: number, flags: number): boolean {
    const need = frameBytes(length);
    const position = this.#local & (this.ringBytes - 1);
    const tail = this.ringBytes - position;
    // Pad over the tail when the frame does not fit there, or to rewind: a large frame into an empty ring whose
    // start it fits before the current position (else padding plus frame would not fit the ring).
    const pad = tail < need || (
      need >= rewindFrameBytesMin && need <= position && Atomics.load(this.#u32, this.#readWord) === this.#local
    );
    const total = pad ? tail + need : need;
    if (this.ringBytes - ((this.#local - this.#readCached) >>> 0) < total) {
      this.#readCached = Atomics.load(this.#u32, this.#readWord);
      if (this.ringBytes - ((this.#local - this.#readCached) >>> 0) < total) return false;
    }
    let at = position;
    if (pad) {
      this.#header(position, tail - headerBytes, L.frame_flag_pad);
      this.#local = (this.#local + tail) >>> 0;
      at = 0;
    }
    this.#header(at, length, flags);
    const offset = this.#data + at + headerBytes;
    if (length <= copyLoopBytesMax) {
      for (let i = 0; i < length; i++) this.#u8[offset + i] = payload[start + i];
    } else if (start === 0 && length === payload.length) {
      this.#u8.set(payload, offset); // A subarray() would cost an allocation.
    } else {
      this.#u8.set(payload.subarray(start, start + length), offset);
    }
    this.#local = (this.#local + need) >>> 0;
    return true;
  }

  #header(position: number, length: number, flags: number): void {
    const word = (this.#data + position) >> 2;
    this.#u32[word] = length;
    this.#u32[word + 1] = flags;
  }

  /** Makes every frame written so far visible to the reader, in one store. */
  publish(): void {
    Atomics.store(this.#u32, this.#writeWord, this.#local);
  }

  /** True when the reader has freed space since this side last looked. */
  spaceFreed(): boolean {
    return Atomics.load(this.#u32, this.#readWord) !== this.#readCached;
  }
}

/**
 * Frames a reader may hold at once (see {@link RingReader.hold}): each is a
 * received message whose bytes the caller reads in place. 1024 is far more
 * than a caller that releases what it has read ever holds, and keeps the
 * bookkeeping at 5 KiB per channel, allocated once.
 */
export const heldFramesMax = 1024;

/** The consumer end of one ring. After `next()` returns a length, the
 * payload is at `payloadOffset` with `flags`; then either `release()` it
 * (the bytes were copied out) or `hold()` it (they are read in place, until
 * `releaseHeld()`). The shared read index never passes a held frame, so the
 * writer cannot overwrite it; frames after it that were released already are
 * handed back together with it. */
export class RingReader {
  readonly ringBytes: number;
  readonly u8: Uint8Array;
  payloadOffset = 0;
  flags = 0;
  readonly #u32: Uint32Array;
  readonly #data: number;
  readonly #writeWord: number;
  readonly #readWord: number;
  readonly #payloadBytesMax: number;
  /** Where the next frame starts (free-running), whatever is held before it. */
  #local: number;
  #writeCached: number;
  #frameBytes = 0;
  // Held frames, oldest first, in a circular list of heldFramesMax slots: where each starts (a free-running
  // index) and whether it was released out of order (it goes back once those before it do).
  readonly #heldStart = new Uint32Array(heldFramesMax);
  readonly #heldDone = new Uint8Array(heldFramesMax);
  #heldFirst = 0;
  #heldCount = 0;

  constructor(buffer: ArrayBuffer, ring: number, ringBytes: number) {
    this.ringBytes = ringBytes;
    this.u8 = new Uint8Array(buffer);
    this.#u32 = new Uint32Array(buffer);
    this.#data = ringDataOffset(ring, ringBytes);
    this.#writeWord = ringWriteOffset(ring) >> 2;
    this.#readWord = ringReadOffset(ring) >> 2;
    this.#payloadBytesMax = framePayloadBytesMax(ringBytes);
    this.#local = Atomics.load(this.#u32, this.#readWord);
    this.#writeCached = Atomics.load(this.#u32, this.#writeWord);
  }

  /** Bytes published and not yet released by this reader: the ring's fill level (two atomic loads). */
  usedBytes(): number {
    return (Atomics.load(this.#u32, this.#writeWord) - Atomics.load(this.#u32, this.#readWord)) >>> 0;
  }

  /** True when the writer has published past what this side has read. */
  hasData(): boolean {
    return this.#local !== this.#writeCached || Atomics.load(this.#u32, this.#writeWord) !== this.#local;
  }

  /** Frames held now (see {@link hold}). */
  get heldCount(): number {
    return this.#heldCount;
  }

  /** The next frame's payload length, or -1 when the ring is empty. */
  next(): number {
    for (;;) {
      if (this.#local === this.#writeCached) {
        this.#writeCached = Atomics.load(this.#u32, this.#writeWord);
        if (this.#local === this.#writeCached) return -1;
      }
      const available = (this.#writeCached - this.#local) >>> 0;
      const position = this.#local & (this.ringBytes - 1);
      if (available > this.ringBytes || available < headerBytes) {
        throw new FrameCorruptError(
          `write index is ${available} bytes ahead of the read index in a ${this.ringBytes}-byte ring`,
        );
      }
      const word = (this.#data + position) >> 2;
      const length = this.#u32[word];
      const flags = this.#u32[word + 1];
      if ((flags & ~(L.frame_flag_pad | L.frame_flag_more)) !== 0) {
        throw new FrameCorruptError(`frame at ${position} has unknown flags 0x${flags.toString(16)}`);
      }
      if (flags & L.frame_flag_pad) {
        if (length !== this.ringBytes - position - headerBytes) {
          throw new FrameCorruptError(`padding frame at ${position} has length ${length}`);
        }
        this.#local = (this.#local + this.ringBytes - position) >>> 0;
        continue;
      }
      if (length > this.#payloadBytesMax) {
        throw new FrameCorruptError(
          `frame at ${position} claims ${length} payload bytes, beyond the ${this.#payloadBytesMax}-byte frame limit`,
        );
      }
      const bytes = frameBytes(length);
      if (bytes > available || position + bytes > this.ringBytes) {
        throw new FrameCorruptError(
          `frame at ${position} of ${bytes} bytes runs past the published data or the ring's end`,
        );
      }
      this.payloadOffset = this.#data + position + headerBytes;
      this.flags = flags;
      this.#frameBytes = bytes;
      return length;
    }
  }

  /** Hands the current frame's bytes back to the writer (at once, unless an earlier frame is held). */
  release(): void {
    this.#local = (this.#local + this.#frameBytes) >>> 0;
    this.#frameBytes = 0;
    if (this.#heldCount === 0) Atomics.store(this.#u32, this.#readWord, this.#local);
  }

  /**
   * Moves past the current frame but keeps its bytes from the writer until
   * {@link releaseHeld} with the returned slot. The caller checks
   * {@link heldCount} against heldFramesMax first.
   */
  hold(): number {
    if (this.#heldCount >= heldFramesMax) throw new RangeError(`a ring reader holds at most ${heldFramesMax} frames`);
    const slot = (this.#heldFirst + this.#heldCount) % heldFramesMax;
    // The frame's free-running start: #local is at it (next() skipped any padding before it).
    this.#heldStart[slot] = this.#local;
    this.#local = (this.#local + this.#frameBytes) >>> 0;
    this.#heldDone[slot] = 0;
    this.#heldCount++;
    this.#frameBytes = 0;
    return slot;
  }

  /**
   * Gives back a held frame. If it is the oldest, the read index moves past
   * it and past every later frame already given back (or copied out); true
   * when the writer got space.
   */
  releaseHeld(slot: number): boolean {
    this.#heldDone[slot] = 1;
    if (slot !== this.#heldFirst) return false;
    while (this.#heldCount > 0 && this.#heldDone[this.#heldFirst] === 1) {
      this.#heldDone[this.#heldFirst] = 0;
      this.#heldFirst = (this.#heldFirst + 1) % heldFramesMax;
      this.#heldCount--;
    }
    // With frames still held, the read index stops at the oldest; else everything read so far goes back.
    const to = this.#heldCount > 0 ? this.#heldStart[this.#heldFirst] : this.#local;
    Atomics.store(this.#u32, this.#readWord, to);
    return true;
  }

  /** The slot of the oldest held frame; the others follow it, modulo heldFramesMax. */
  get firstHeldSlot(): number {
    return this.#heldFirst;
  }
}
