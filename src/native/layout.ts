/**
 * Offsets and constants of the shared segment layout, generated from
 * zig/layout.zig by `zig build gen` (src/native/_generated.ts). The Zig gen
 * tests fail when the generated file is stale, and layout_test.ts asks the
 * loaded library for each value, so a library from another build is caught.
 *
 * @module
 */

import { frameBytesMaxRingDivisor, layoutFields } from "./_generated.ts";

/** Field ids understood by `pshm_layout`, each with its value, generated from zig/layout.zig. */
export { layoutFields };

type Values = { readonly [K in keyof typeof layoutFields]: (typeof layoutFields)[K][1] };

/** The layout values, by name. */
export const L: Values = Object.fromEntries(
  Object.entries(layoutFields).map(([k, v]) => [k, v[1]]),
) as unknown as Values;

/** Byte offset of a side's control line. */
export function sideOffset(side: number): number {
  return side === 0 ? L.off_side0 : L.off_side1;
}

/** Byte offset of ring `ring`'s write index (ring r carries side r → 1 - r). */
export function ringWriteOffset(ring: number): number {
  return ring === 0 ? L.off_ring0_write : L.off_ring1_write;
}

/** Byte offset of ring `ring`'s read index. */
export function ringReadOffset(ring: number): number {
  return ring === 0 ? L.off_ring0_read : L.off_ring1_read;
}

/** Byte offset of ring `ring`'s data. */
export function ringDataOffset(ring: number, ringBytes: number): number {
  return L.header_bytes + ring * ringBytes;
}

/** The largest frame payload a ring of `ringBytes` carries in one frame. */
export function framePayloadBytesMax(ringBytes: number): number {
  return ringBytes / frameBytesMaxRingDivisor - L.frame_header_bytes;
}
