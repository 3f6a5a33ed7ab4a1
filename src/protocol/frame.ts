/**
 * Frames: an 8-byte little-endian header and a MessagePack payload.
 *
 * ```
 * offset 0  u8   kind   (FrameKind)
 * offset 1  u8   flags  (bit 0: the sender opened the stream this frame belongs to;
 *                        bit 1: the payload is raw DEFLATE of the MessagePack value, see compressFrame)
 * offset 2  u16  reserved, zero
 * offset 4  u32  id     (request or stream id, chosen by whoever opened it)
 * offset 8  ...  payload: one MessagePack value (absent for CANCEL)
 * ```
 *
 * The transport delimits frames, so there is no length field. See
 * docs/protocol.md for what each kind carries.
 *
 * @module
 */

import { deflateRawSync, inflateRawSync } from "node:zlib";
import { Packr, RESERVE_START_SPACE, REUSE_BUFFER_MODE, Unpackr } from "msgpackr";
import { ProtocolError } from "./errors.ts";

/** Frame kinds. Values are part of the wire format. */
export const FrameKind = {
  hello: 1,
  welcome: 2,
  ping: 3,
  pong: 4,
  request: 5,
  response: 6,
  error: 7,
  cancel: 8,
  event: 9,
  streamOpen: 10,
  streamData: 11,
  streamEnd: 12,
  streamCredit: 13,
  goodbye: 14,
} as const;

/** A frame kind's numeric value. */
export type FrameKindValue = (typeof FrameKind)[keyof typeof FrameKind];

/** Flag: the sender opened the stream or request this frame belongs to. */
export const flagOpener = 1;

/**
 * Flag: the payload is compressed (raw DEFLATE, RFC 1951, of the MessagePack
 * bytes). Sent only after the handshake agreed on compression.
 */
export const flagCompressed = 2;

/** The compression algorithms this side speaks, as named in HELLO and WELCOME. */
export const compressionAlgorithms: readonly string[] = ["deflate"];

/**
 * zlib level for compressed frames: 1 (fastest). On a local link the CPU spent
 * is the cost that matters; higher levels shrink typical JSON-like payloads by a
 * few percent more at several times the time.
 */
const compressionLevel = 1;

/** Bytes of a large payload compressed first, to see whether compressing all of it is worth it. */
const compressionProbeBytes = 4096;
/** The probe must shrink at least to this fraction of its size, or the payload goes uncompressed. */
const compressionProbeRatioMax = 0.9;

/** Header size in bytes. */
export const frameHeaderBytes = 8;

const kindMax = FrameKind.goodbye;

// Plain MessagePack: no records extension, so any msgpack library can read it.
const packr = new Packr({ useRecords: false, moreTypes: false, int64AsType: "number" });
const unpackr = new Unpackr({ useRecords: false, moreTypes: false, int64AsType: "number" });

/** Encodes one frame. */
export function encodeFrame(kind: FrameKindValue, id: number, payload: unknown, flags = 0): Uint8Array {
  const frame = encodeFrameInPlace(kind, id, payload, flags);
  return frame.bytes.subarray(frame.start, frame.end);
}

/**
 * A frame where {@link encodeFrameInPlace} wrote it: `bytes[start, end)`. The
 * object is reused by the next call; the bytes are not (the encoder moves on
 * to fresh space, and to a fresh buffer when that is full), so a sender may
 * keep the range until its send completes.
 */
export interface EncodedFrame {
  bytes: Uint8Array;
  start: number;
  end: number;
}

const encoded: EncodedFrame = { bytes: new Uint8Array(0), start: 0, end: 0 };

/**
 * Encodes one frame into the encoder's own buffer, without a view on it: a
 * subarray per frame cost an allocation (in Deno a Node Buffer, a JavaScript
 * class) on every request and response. Use the result before the next call.
 */
export function encodeFrameInPlace(kind: FrameKindValue, id: number, payload: unknown, flags = 0): EncodedFrame {
  // Reserving the header's space in msgpackr's own output buffer avoids a
  // second allocation and copy per frame. REUSE_BUFFER_MODE returns that
  // buffer whole, with the frame's range in its start and end properties.
  const bytes = packr.pack(payload, REUSE_BUFFER_MODE | RESERVE_START_SPACE | frameHeaderBytes) as unknown as
    & Uint8Array
    & { start: number; end: number };
  const at = bytes.start;
  bytes[at] = kind;
  bytes[at + 1] = flags;
  bytes[at + 2] = 0;
  bytes[at + 3] = 0;
  bytes[at + 4] = id & 255;
  bytes[at + 5] = (id >>> 8) & 255;
  bytes[at + 6] = (id >>> 16) & 255;
  bytes[at + 7] = (id >>> 24) & 255;
  encoded.bytes = bytes;
  encoded.start = at;
  encoded.end = bytes.end;
  return encoded;
}

/**
 * The frame with its payload compressed and {@link flagCompressed} set, or
 * undefined when compression would not make it smaller.
 */
export function compressFrame(frame: Uint8Array): Uint8Array | undefined {
  const payload = frame.subarray(frameHeaderBytes);
  if (payload.length > compressionProbeBytes * 4) {
    // Random or already-compressed bytes do not shrink, and finding that out on all of them costs as much as
    // compressing (1 MiB: ~10 ms in Deno): a sample from the start decides.
    const probe = deflateRawSync(payload.subarray(0, compressionProbeBytes), { level: compressionLevel });
    if (probe.length > compressionProbeBytes * compressionProbeRatioMax) return undefined;
  }
  const packed = deflateRawSync(payload, { level: compressionLevel });
  if (packed.length + frameHeaderBytes >= frame.length) return undefined;
  const out = new Uint8Array(frameHeaderBytes + packed.length);
  out.set(frame.subarray(0, frameHeaderBytes));
  out[1] |= flagCompressed;
  out.set(packed, frameHeaderBytes);
  return out;
}

/** A decoded frame header; the payload is decoded on demand. */
export interface FrameHeader {
  kind: FrameKindValue;
  flags: number;
  id: number;
}

/** Reads and checks a frame's header. Throws ProtocolError for garbage. */
export function decodeHeader(bytes: Uint8Array): FrameHeader {
  if (bytes.length < frameHeaderBytes) {
    throw new ProtocolError(`frame of ${bytes.length} bytes is shorter than the ${frameHeaderBytes}-byte header`);
  }
  const kind = bytes[0];
  if (kind < 1 || kind > kindMax) throw new ProtocolError(`unknown frame kind ${kind}`);
  const id = (bytes[4] | (bytes[5] << 8) | (bytes[6] << 16) | (bytes[7] << 24)) >>> 0;
  return { kind: kind as FrameKindValue, flags: bytes[1], id };
}

/**
 * Decodes a frame's payload. Throws ProtocolError for malformed MessagePack,
 * and for a compressed payload when `inflatedBytesMax` is 0 (compression was
 * not agreed), does not inflate, or inflates past `inflatedBytesMax`.
 */
export function decodePayload(bytes: Uint8Array, inflatedBytesMax = 0): unknown {
  if ((bytes[1] & flagCompressed) !== 0) bytes = inflate(bytes, inflatedBytesMax);
  if (bytes.length === frameHeaderBytes) return undefined;
  try {
    return unpackr.unpack(bytes, { start: frameHeaderBytes } as unknown as number);
  } catch (error) {
    throw new ProtocolError(`malformed MessagePack payload: ${(error as Error).message}`);
  }
}

function inflate(bytes: Uint8Array, inflatedBytesMax: number): Uint8Array {
  if (inflatedBytesMax === 0) {
    throw new ProtocolError(`frame kind ${bytes[0]} is compressed, but the handshake agreed on no compression`);
  }
  let payload: Uint8Array;
  try {
    payload = inflateRawSync(bytes.subarray(frameHeaderBytes), { maxOutputLength: inflatedBytesMax });
  } catch (error) {
    throw new ProtocolError(
      `compressed payload does not inflate to at most ${inflatedBytesMax} bytes: ${(error as Error).message}`,
    );
  }
  const out = new Uint8Array(frameHeaderBytes + payload.length);
  out.set(bytes.subarray(0, frameHeaderBytes));
  out.set(payload, frameHeaderBytes);
  return out;
}
