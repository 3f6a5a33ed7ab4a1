//! A seeded random test of the ring reader against a hostile writer: the
//! writer's frames are real, then indices and frame headers are corrupted at
//! random. Whatever the bytes, `tryRead` must return a frame that lies inside
//! the ring and inside what the writer published, report FrameCorrupt, or say
//! the ring is empty; it must never read outside the ring (a Debug build traps
//! every out-of-bounds slice) or loop without end. Uncorrupted frames arrive
//! intact and in order. `zig build test` runs it; PSHM_FUZZ_SEED replays a seed
//! it printed, PSHM_FUZZ_ROUNDS runs longer.

const std = @import("std");
const layout = @import("layout.zig");
const segment_mod = @import("segment.zig");
const Ring = @import("ring.zig").Ring;

const testing = std.testing;

/// Rounds in `zig build test`: a few seconds in Debug on a loaded 2-core VM.
const rounds_default: u32 = 20_000;
const seed_default: u64 = 0x13_2026;

const Corruption = enum { none, header_bytes, write_index, read_index, both_indices, random_bytes };

fn envNumber(name: []const u8, default: u64) u64 {
    const value = std.process.getEnvVarOwned(testing.allocator, name) catch return default;
    defer testing.allocator.free(value);
    return std.fmt.parseInt(u64, value, 0) catch default;
}

fn writeIndex(ring: *const Ring) *u32 {
    return ring.write_index;
}

/// Payload byte `i` of frame number `seq`: lets the reader check what arrived.
fn patternByte(seq: u32, i: usize) u8 {
    return @truncate(seq *% 31 +% @as(u32, @truncate(i)));
}

fn oneRound(random: std.Random, segment: *segment_mod.Segment) !void {
    const ring_bytes = segment.header().ring_bytes;
    // Free-running indices start anywhere, so wrap-around of the u32 counters is covered too.
    const start = random.int(u32) & ~@as(u32, layout.frame_align_bytes - 1);
    @atomicStore(u32, segment.word(layout.ringWriteIndexOffset(0)), start, .seq_cst);
    @atomicStore(u32, segment.word(layout.ringReadIndexOffset(0)), start, .seq_cst);
    var tx = Ring.init(segment, 0, true);

    // Real frames first, some of them across the end of the ring (PAD frames).
    var payload: [1500]u8 = undefined;
    const frames = random.uintAtMost(u32, 12);
    var written: u32 = 0;
    while (written < frames) : (written += 1) {
        const len = random.uintAtMost(usize, @min(payload.len, layout.framePayloadBytesMax(ring_bytes)));
        for (payload[0..len], 0..) |*b, i| b.* = patternByte(written, i);
        if (!tx.tryWrite(payload[0..len], if (random.boolean()) layout.frame_flag_more else 0)) break;
    }
    tx.publish();

    const corruption = random.enumValue(Corruption);
    const data = tx.data[0..ring_bytes];
    switch (corruption) {
        .none => {},
        .header_bytes => {
            // A header where the reader will look: the first frame's, at an 8-byte boundary.
            const at = (start & (ring_bytes - 1)) + 8 * random.uintLessThan(u32, 4);
            const position = at & (ring_bytes - 1) & ~@as(u32, 7);
            std.mem.writeInt(u32, data[position..][0..4], random.int(u32), .little);
            if (random.boolean()) std.mem.writeInt(u32, data[position + 4 ..][0..4], random.int(u32) & 7, .little);
        },
        .write_index => writeIndex(&tx).* = randomIndex(random, start),
        .read_index => segment.word(layout.ringReadIndexOffset(0)).* = randomIndex(random, start),
        .both_indices => {
            writeIndex(&tx).* = randomIndex(random, start);
            segment.word(layout.ringReadIndexOffset(0)).* = randomIndex(random, start);
        },
        .random_bytes => for (0..random.uintAtMost(u32, 16)) |_| {
            data[random.uintLessThan(u32, ring_bytes)] = random.int(u8);
        },
    }

    var rx = Ring.init(segment, 0, false);
    const read_start = rx.local;
    const published = rx.write_index.*;
    var seq: u32 = 0;
    // Every returned frame moves the reader by at least one header: more reads than this is a loop.
    const reads_max = ring_bytes / layout.frame_header_bytes + 2;
    var reads: u32 = 0;
    while (true) : (reads += 1) {
        try testing.expect(reads <= reads_max);
        const frame = rx.tryRead() catch |err| {
            try testing.expectEqual(error.FrameCorrupt, err);
            try testing.expect(corruption != .none);
            return;
        } orelse break;
        // Inside the ring, and inside what was published.
        const begin = @intFromPtr(frame.payload.ptr) - @intFromPtr(data.ptr);
        try testing.expect(begin + frame.payload.len <= ring_bytes);
        try testing.expect(frame.bytes <= layout.frameBytesMax(ring_bytes));
        try testing.expect(frame.payload.len + layout.frame_header_bytes <= frame.bytes);
        try testing.expect(frame.flags & ~layout.frame_flags_known == 0);
        try testing.expect((rx.local -% read_start) +% frame.bytes <= published -% read_start);
        if (corruption == .none) {
            for (frame.payload, 0..) |b, i| try testing.expectEqual(patternByte(seq, i), b);
        }
        rx.release(frame);
        seq += 1;
    }
    if (corruption == .none) try testing.expectEqual(written, seq);
}

/// Near the true index most of the time (off by a few bytes or a ring), anywhere now and then.
fn randomIndex(random: std.Random, near: u32) u32 {
    return switch (random.uintLessThan(u8, 4)) {
        0 => random.int(u32),
        1 => near +% random.uintAtMost(u32, 64),
        2 => near -% random.uintAtMost(u32, 64),
        else => near +% (random.uintAtMost(u32, 3) << 12) +% 8 * random.uintAtMost(u32, 8),
    };
}

test "the ring reader never trusts corrupted indices or frame headers (seeded random)" {
    const seed = envNumber("PSHM_FUZZ_SEED", seed_default);
    const rounds = envNumber("PSHM_FUZZ_ROUNDS", rounds_default);
    var prng = std.Random.DefaultPrng.init(seed);
    const random = prng.random();
    inline for (.{ layout.ring_bytes_min, layout.ring_bytes_min * 4 }) |ring_bytes| {
        var created = try segment_mod.create(ring_bytes);
        defer segment_mod.close(&created.segment);
        var round: u64 = 0;
        while (round < rounds / 2) : (round += 1) {
            oneRound(random, &created.segment) catch |err| {
                std.debug.print("ring fuzz failed: seed 0x{x}, ring {d} bytes, round {d} (replay: PSHM_FUZZ_SEED=0x{x})\n", .{
                    seed, ring_bytes, round, seed,
                });
                return err;
            };
        }
    }
}
