/**
 * Offsets and constants of the shared segment layout (zig/layout.zig). The
 * test layout_test.ts asks the library for each value, so a drift between the
 * two fails the build rather than corrupting memory.
 *
 * @module
 */

/** Field ids understood by `pshm_layout`, with the value this file expects. */
export const layoutFields = {
  magic_lo: [0, 0x4d48_5350],
  magic_hi: [1, 0x3147_4553],
  layout_version: [2, 1],
  header_bytes: [3, 4096],
  line_bytes: [4, 128],
  off_ring_bytes: [14, 24],
  off_owner_pid: [15, 32],
  off_peer_pid: [16, 36],
  off_side0: [20, 128],
  off_side1: [21, 256],
  off_side_parked: [22, 0],
  off_side_doorbell: [23, 4],
  off_side_closed: [24, 8],
  off_ring0_write: [30, 512],
  off_ring0_read: [31, 640],
  off_ring1_write: [32, 768],
  off_ring1_read: [33, 896],
  frame_header_bytes: [40, 8],
  frame_align_bytes: [41, 8],
  frame_flag_pad: [42, 1],
  frame_flag_more: [43, 2],
  parked_want_data: [44, 1],
  parked_want_space: [45, 2],
  ring_bytes_min: [50, 4096],
  ring_bytes_max: [51, 1 << 30],
  ring_bytes_default: [52, 1 << 20],
  token_bytes: [53, 32],
  name_bytes_max: [54, 64],
} as const;

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
  return ringBytes / 4 - L.frame_header_bytes;
}
