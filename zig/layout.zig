//! The shared-memory layout of a plugin-shm segment. Everything here is read by
//! two processes that may run different builds, so every offset is fixed,
//! asserted at compile time and reported through `pshm_layout` so that the
//! TypeScript side can check that it reads the same bytes.

const std = @import("std");

/// "PSHMSEG1" read as a little-endian u64.
pub const magic: u64 = 0x3147_4553_4D48_5350;
/// Bump when any offset or meaning below changes.
pub const layout_version: u32 = 1;

/// Two cache lines, so that the adjacent-line prefetcher does not couple
/// indices written by different processes.
pub const line_bytes: u32 = 128;
/// Rings start on their own page.
pub const header_bytes: u32 = 4096;

pub const ring_bytes_min: u32 = 4096;
pub const ring_bytes_max: u32 = 1 << 30;
pub const ring_bytes_default: u32 = 1 << 20;

/// Every frame starts with this header and is padded to `frame_align_bytes`.
pub const frame_header_bytes: u32 = 8;
pub const frame_align_bytes: u32 = 8;
/// The frame fills the rest of the ring; the reader skips to offset 0.
pub const frame_flag_pad: u32 = 1;
/// The message continues in the next frame.
pub const frame_flag_more: u32 = 2;
pub const frame_flags_known: u32 = frame_flag_pad | frame_flag_more;

/// Bits of a side's `parked` word: what the parked side waits for.
pub const parked_want_data: u32 = 1;
pub const parked_want_space: u32 = 2;

pub const token_bytes: u32 = 32;
pub const name_bytes_max: u32 = 64;
pub const name_prefix = "pshm-";

pub const Header = extern struct {
    magic: u64,
    layout_version: u32,
    header_bytes: u32,
    segment_bytes: u64,
    ring_bytes: u32,
    flags: u32,
    /// Side 0: the process that created the segment.
    owner_pid: u32,
    /// Side 1: 0 until a process attaches; set once, by compare-and-swap, which
    /// makes the token single-use.
    peer_pid: u32,
    created_unix_ms: u64,
    token_sha256: [32]u8,
};

/// One per side, on its own line. `parked` is set by the side itself and
/// cleared by whoever wakes it; `doorbell` is the futex word the side sleeps on.
/// `beat` is bumped by the side's own event loop on a timer, so its peer can
/// see it alive by reading memory, with no PING frame and no wake-up; a side
/// that never bumps it (0) is pinged instead. Added in place of zero padding,
/// so it needs no new layout version.
pub const SideControl = extern struct {
    parked: u32,
    doorbell: u32,
    closed: u32,
    beat: u32,
};

/// Byte offsets inside the segment. Side s controls at side_offset(s); ring r
/// carries bytes from side r to side 1 - r.
pub fn sideOffset(side: u32) u32 {
    std.debug.assert(side < 2);
    return line_bytes + side * line_bytes;
}
pub fn ringWriteIndexOffset(ring: u32) u32 {
    std.debug.assert(ring < 2);
    return 4 * line_bytes + ring * 2 * line_bytes;
}
pub fn ringReadIndexOffset(ring: u32) u32 {
    return ringWriteIndexOffset(ring) + line_bytes;
}
pub fn ringDataOffset(ring: u32, ring_bytes: u32) u64 {
    std.debug.assert(ring < 2);
    return @as(u64, header_bytes) + @as(u64, ring) * ring_bytes;
}
pub fn segmentBytes(ring_bytes: u32) u64 {
    return @as(u64, header_bytes) + 2 * @as(u64, ring_bytes);
}

pub fn ringBytesValid(ring_bytes: u32) bool {
    return ring_bytes >= ring_bytes_min and ring_bytes <= ring_bytes_max and
        std.math.isPowerOfTwo(ring_bytes);
}

/// The largest frame (header included) a writer may produce: a quarter of the
/// ring, so that a frame always fits into an empty ring whatever the wrap
/// position, and a reader can drain one frame while the writer fills the next.
pub const frame_bytes_max_ring_divisor: u32 = 4;
pub fn frameBytesMax(ring_bytes: u32) u32 {
    std.debug.assert(ringBytesValid(ring_bytes));
    return ring_bytes / frame_bytes_max_ring_divisor;
}
pub fn framePayloadBytesMax(ring_bytes: u32) u32 {
    return frameBytesMax(ring_bytes) - frame_header_bytes;
}
pub fn frameBytes(payload_bytes: u32) u32 {
    return std.mem.alignForward(u32, frame_header_bytes + payload_bytes, frame_align_bytes);
}

/// Identifiers accepted by `pshm_layout`, so that TypeScript can compare its
/// constants with this file instead of trusting a copy.
pub const Field = enum(u32) {
    magic_lo = 0,
    magic_hi = 1,
    layout_version = 2,
    header_bytes = 3,
    line_bytes = 4,
    off_magic = 10,
    off_layout_version = 11,
    off_header_bytes = 12,
    off_segment_bytes = 13,
    off_ring_bytes = 14,
    off_owner_pid = 15,
    off_peer_pid = 16,
    off_created_unix_ms = 17,
    off_token_sha256 = 18,
    off_side0 = 20,
    off_side1 = 21,
    off_side_parked = 22,
    off_side_doorbell = 23,
    off_side_closed = 24,
    off_side_beat = 25,
    off_ring0_write = 30,
    off_ring0_read = 31,
    off_ring1_write = 32,
    off_ring1_read = 33,
    frame_header_bytes = 40,
    frame_align_bytes = 41,
    frame_flag_pad = 42,
    frame_flag_more = 43,
    parked_want_data = 44,
    parked_want_space = 45,
    ring_bytes_min = 50,
    ring_bytes_max = 51,
    ring_bytes_default = 52,
    token_bytes = 53,
    name_bytes_max = 54,
};

pub fn fieldValue(field: Field) u32 {
    return switch (field) {
        .magic_lo => @truncate(magic),
        .magic_hi => @truncate(magic >> 32),
        .layout_version => layout_version,
        .header_bytes => header_bytes,
        .line_bytes => line_bytes,
        .off_magic => @offsetOf(Header, "magic"),
        .off_layout_version => @offsetOf(Header, "layout_version"),
        .off_header_bytes => @offsetOf(Header, "header_bytes"),
        .off_segment_bytes => @offsetOf(Header, "segment_bytes"),
        .off_ring_bytes => @offsetOf(Header, "ring_bytes"),
        .off_owner_pid => @offsetOf(Header, "owner_pid"),
        .off_peer_pid => @offsetOf(Header, "peer_pid"),
        .off_created_unix_ms => @offsetOf(Header, "created_unix_ms"),
        .off_token_sha256 => @offsetOf(Header, "token_sha256"),
        .off_side0 => sideOffset(0),
        .off_side1 => sideOffset(1),
        .off_side_parked => @offsetOf(SideControl, "parked"),
        .off_side_doorbell => @offsetOf(SideControl, "doorbell"),
        .off_side_closed => @offsetOf(SideControl, "closed"),
        .off_side_beat => @offsetOf(SideControl, "beat"),
        .off_ring0_write => ringWriteIndexOffset(0),
        .off_ring0_read => ringReadIndexOffset(0),
        .off_ring1_write => ringWriteIndexOffset(1),
        .off_ring1_read => ringReadIndexOffset(1),
        .frame_header_bytes => frame_header_bytes,
        .frame_align_bytes => frame_align_bytes,
        .frame_flag_pad => frame_flag_pad,
        .frame_flag_more => frame_flag_more,
        .parked_want_data => parked_want_data,
        .parked_want_space => parked_want_space,
        .ring_bytes_min => ring_bytes_min,
        .ring_bytes_max => ring_bytes_max,
        .ring_bytes_default => ring_bytes_default,
        .token_bytes => token_bytes,
        .name_bytes_max => name_bytes_max,
    };
}

comptime {
    std.debug.assert(@sizeOf(Header) == 80);
    std.debug.assert(@offsetOf(Header, "magic") == 0);
    std.debug.assert(@offsetOf(Header, "layout_version") == 8);
    std.debug.assert(@offsetOf(Header, "segment_bytes") == 16);
    std.debug.assert(@offsetOf(Header, "owner_pid") == 32);
    std.debug.assert(@offsetOf(Header, "peer_pid") == 36);
    std.debug.assert(@offsetOf(Header, "token_sha256") == 48);
    std.debug.assert(@sizeOf(Header) <= line_bytes);
    std.debug.assert(@sizeOf(SideControl) == 16);
    std.debug.assert(ringReadIndexOffset(1) + line_bytes <= header_bytes);
    std.debug.assert(header_bytes % frame_align_bytes == 0);
    std.debug.assert(ring_bytes_min % frame_align_bytes == 0);
}

test "segment size grows with the ring and keeps rings page aligned" {
    try std.testing.expectEqual(@as(u64, 4096 + 2 * 4096), segmentBytes(4096));
    try std.testing.expectEqual(@as(u64, 4096 + 4096), ringDataOffset(1, 4096));
    try std.testing.expect(!ringBytesValid(4095));
    try std.testing.expect(!ringBytesValid(3 * 4096));
    try std.testing.expect(ringBytesValid(1 << 20));
}

test "every field id answers" {
    inline for (std.meta.fields(Field)) |f| {
        _ = fieldValue(@enumFromInt(f.value));
    }
    try std.testing.expectEqual(@as(u32, 512), fieldValue(.off_ring0_write));
}
