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

function frameBytes(payloadBytes: number): number {
  return (headerBytes + payloadBytes + 7) & ~7;
}

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
    const total = tail < need ? tail + need : need;
    if (this.ringBytes - ((this.#local - this.#readCached) >>> 0) < total) {
      this.#readCached = Atomics.load(this.#u32, this.#readWord);
      if (this.ringBytes - ((this.#local - this.#readCached) >>> 0) < total) return false;
    }
    let at = position;
    if (tail < need) {
      this.#header(position, tail - headerBytes, L.frame_flag_pad);
      this.#local = (this.#local + tail) >>> 0;
      at = 0;
    }
    this.#header(at, length, flags);
    const offset = this.#data + at + headerBytes;
    if (length <= 16) {
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

/** The consumer end of one ring. After `next()` returns a length, the
 * payload is at `payloadOffset` with `flags`; call `release()` when done. */
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
  #local: number;
  #writeCached: number;
  #frameBytes = 0;

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

  /** Hands the current frame's bytes back to the writer. */
  release(): void {
    this.#local = (this.#local + this.#frameBytes) >>> 0;
    this.#frameBytes = 0;
    Atomics.store(this.#u32, this.#readWord, this.#local);
  }
}
