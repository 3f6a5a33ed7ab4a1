/**
 * Frames: an 8-byte little-endian header and a MessagePack payload.
 *
 * ```
 * offset 0  u8   kind   (FrameKind)
 * offset 1  u8   flags  (bit 0: the sender opened the stream this frame belongs to)
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

import { Packr, RESERVE_START_SPACE, Unpackr } from "msgpackr";
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

/** Header size in bytes. */
export const frameHeaderBytes = 8;

const kindMax = FrameKind.goodbye;

// Plain MessagePack: no records extension, so any msgpack library can read it.
const packr = new Packr({ useRecords: false, moreTypes: false, int64AsType: "number" });
const unpackr = new Unpackr({ useRecords: false, moreTypes: false, int64AsType: "number" });

/** Encodes one frame. */
export function encodeFrame(kind: FrameKindValue, id: number, payload: unknown, flags = 0): Uint8Array {
  // Reserving the header's space in msgpackr's own output buffer avoids a
  // second allocation and copy per frame.
  const bytes = packr.pack(payload, RESERVE_START_SPACE | frameHeaderBytes) as Uint8Array;
  bytes[0] = kind;
  bytes[1] = flags;
  bytes[2] = 0;
  bytes[3] = 0;
  bytes[4] = id & 255;
  bytes[5] = (id >>> 8) & 255;
  bytes[6] = (id >>> 16) & 255;
  bytes[7] = (id >>> 24) & 255;
  return bytes;
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

/** Decodes a frame's payload. Throws ProtocolError for malformed MessagePack. */
export function decodePayload(bytes: Uint8Array): unknown {
  if (bytes.length === frameHeaderBytes) return undefined;
  try {
    return unpackr.unpack(bytes, { start: frameHeaderBytes } as unknown as number);
  } catch (error) {
    throw new ProtocolError(`malformed MessagePack payload: ${(error as Error).message}`);
  }
}
