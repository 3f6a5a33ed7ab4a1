//! The single-producer/single-consumer frame ring, in Zig. The TypeScript side
//! implements the same algorithm over the mapped bytes (src/native/ring.ts);
//! this one serves C and Zig peers through the C ABI and is the reference the
//! unit tests pin down.
//!
//! Indices are free-running u32 byte counters; position = index & (bytes - 1).
//! A frame is an 8-byte header (payload length, flags) and the payload, padded
//! to 8 bytes. A frame never straddles the end: the writer fills the tail with
//! a PAD frame and starts again at 0. The writer publishes with one release
//! store of the write index, so several frames can become visible at once.

const std = @import("std");
const layout = @import("layout.zig");
const wait = @import("wait.zig");
const segment_mod = @import("segment.zig");
const Segment = segment_mod.Segment;
const Error = @import("status.zig").Error;

pub const Ring = struct {
    data: [*]u8,
    bytes: u32,
    write_index: *u32,
    read_index: *u32,
    /// The producer's private copy of its own index, and its last view of the
    /// consumer's, so that the fast path reads no line the other side writes.
    local: u32,
    other_cached: u32,

    pub fn init(segment: *const Segment, ring_id: u32, as_producer: bool) Ring {
        std.debug.assert(ring_id < 2);
        const ring_bytes = segment.header().ring_bytes;
        // attach() refused any other size, create() made only valid ones.
        std.debug.assert(layout.ringBytesValid(ring_bytes));
        std.debug.assert(segment.memory.len == layout.segmentBytes(ring_bytes));
        const data_offset = layout.ringDataOffset(ring_id, ring_bytes);
        const write_index = segment.word(layout.ringWriteIndexOffset(ring_id));
        const read_index = segment.word(layout.ringReadIndexOffset(ring_id));
        const write = @atomicLoad(u32, write_index, .acquire);
        const read = @atomicLoad(u32, read_index, .acquire);
        return .{
            .data = segment.memory.ptr + data_offset,
            .bytes = ring_bytes,
            .write_index = write_index,
            .read_index = read_index,
            .local = if (as_producer) write else read,
            .other_cached = if (as_producer) read else write,
        };
    }

    /// Producer: reserves and writes one frame. Returns false when the ring
    /// has no room; nothing is published until `publish`.
    pub fn tryWrite(self: *Ring, payload: []const u8, flags: u32) bool {
        std.debug.assert(payload.len <= layout.framePayloadBytesMax(self.bytes));
        std.debug.assert(flags & layout.frame_flag_pad == 0);
        const need = layout.frameBytes(@intCast(payload.len));
        const position = self.local & (self.bytes - 1);
        const tail = self.bytes - position;
        const total = if (tail < need) tail + need else need;
        if (!self.hasRoom(total)) return false;
        if (tail < need) {
            self.putHeader(position, tail - layout.frame_header_bytes, layout.frame_flag_pad);
            self.local +%= tail;
        }
        const start = self.local & (self.bytes - 1);
        std.debug.assert(start + need <= self.bytes); // Never straddles the end.
        self.putHeader(start, @intCast(payload.len), flags);
        @memcpy(self.data[start + layout.frame_header_bytes ..][0..payload.len], payload);
        self.local +%= need;
        std.debug.assert(self.local % layout.frame_align_bytes == 0);
        return true;
    }

    fn hasRoom(self: *Ring, total: u32) bool {
        if (self.bytes - (self.local -% self.other_cached) >= total) return true;
        self.other_cached = @atomicLoad(u32, self.read_index, .acquire);
        return self.bytes - (self.local -% self.other_cached) >= total;
    }

    fn putHeader(self: *Ring, position: u32, len: u32, flags: u32) void {
        std.debug.assert(position % layout.frame_align_bytes == 0);
        std.debug.assert(position + layout.frame_header_bytes + len <= self.bytes);
        std.debug.assert(flags & ~layout.frame_flags_known == 0);
        std.mem.writeInt(u32, self.data[position..][0..4], len, .little);
        std.mem.writeInt(u32, self.data[position + 4 ..][0..4], flags, .little);
    }

    pub fn publish(self: *Ring) void {
        @atomicStore(u32, self.write_index, self.local, .seq_cst);
    }

    pub const Frame = struct { payload: []const u8, flags: u32, bytes: u32 };

    /// Consumer: the next frame in place, or null when the ring is empty.
    /// Validates the frame before trusting its length.
    pub fn tryRead(self: *Ring) Error!?Frame {
        while (true) {
            if (self.local == self.other_cached) {
                self.other_cached = @atomicLoad(u32, self.write_index, .acquire);
                if (self.local == self.other_cached) return null;
            }
            const available = self.other_cached -% self.local;
            const position = self.local & (self.bytes - 1);
            if (available > self.bytes or available < layout.frame_header_bytes) return error.FrameCorrupt;
            const len = std.mem.readInt(u32, self.data[position..][0..4], .little);
            const flags = std.mem.readInt(u32, self.data[position + 4 ..][0..4], .little);
            if (flags & ~layout.frame_flags_known != 0) return error.FrameCorrupt;
            if (flags & layout.frame_flag_pad != 0) {
                if (len != self.bytes - position - layout.frame_header_bytes) return error.FrameCorrupt;
                self.local +%= self.bytes - position;
                continue;
            }
            if (len > layout.framePayloadBytesMax(self.bytes)) return error.FrameCorrupt;
            const frame_bytes = layout.frameBytes(len);
            if (frame_bytes > available or position + frame_bytes > self.bytes) return error.FrameCorrupt;
            const start = position + layout.frame_header_bytes;
            return .{ .payload = self.data[start..][0..len], .flags = flags, .bytes = frame_bytes };
        }
    }

    /// Consumer: gives the frame's bytes back to the producer.
    pub fn release(self: *Ring, frame: Frame) void {
        std.debug.assert(frame.bytes >= layout.frame_header_bytes);
        std.debug.assert(frame.bytes % layout.frame_align_bytes == 0);
        std.debug.assert(frame.bytes <= layout.frameBytesMax(self.bytes));
        self.local +%= frame.bytes;
        @atomicStore(u32, self.read_index, self.local, .seq_cst);
    }
};

/// One side of a channel with blocking send and receive, for C and Zig peers.
pub const Endpoint = struct {
    segment: *Segment,
    tx: Ring,
    rx: Ring,

    pub const spin_iterations_max: u32 = 20_000;

    pub fn init(segment: *Segment) Endpoint {
        const side = segment.side;
        std.debug.assert(side < 2);
        return .{ .segment = segment, .tx = Ring.init(segment, side, true), .rx = Ring.init(segment, 1 - side, false) };
    }

    pub fn send(self: *Endpoint, message: []const u8, timeout_ns: u64) Error!void {
        const chunk_max = layout.framePayloadBytesMax(self.tx.bytes);
        std.debug.assert(chunk_max > 0);
        var offset: usize = 0;
        while (true) {
            const chunk = @min(message.len - offset, chunk_max);
            const last = offset + chunk == message.len;
            const flags: u32 = if (last) 0 else layout.frame_flag_more;
            while (!self.tx.tryWrite(message[offset..][0..chunk], flags)) {
                self.tx.publish();
                self.wakePeerIf(layout.parked_want_data);
                try self.park(layout.parked_want_space, timeout_ns);
            }
            offset += chunk;
            std.debug.assert(offset <= message.len);
            if (last) break;
        }
        self.tx.publish();
        self.wakePeerIf(layout.parked_want_data);
    }

    /// Receives one message into `buffer`; returns its length.
    pub fn receive(self: *Endpoint, buffer: []u8, timeout_ns: u64) Error!usize {
        var length: usize = 0;
        while (true) {
            const frame = (try self.rx.tryRead()) orelse {
                try self.park(layout.parked_want_data, timeout_ns);
                continue;
            };
            if (length + frame.payload.len > buffer.len) return error.MessageTooLarge;
            @memcpy(buffer[length..][0..frame.payload.len], frame.payload);
            length += frame.payload.len;
            std.debug.assert(length <= buffer.len);
            const more = frame.flags & layout.frame_flag_more != 0;
            self.rx.release(frame);
            self.wakePeerIf(layout.parked_want_space);
            if (!more) return length;
        }
    }

    fn wakePeerIf(self: *Endpoint, want: u32) void {
        std.debug.assert(want == layout.parked_want_data or want == layout.parked_want_space);
        const peer = 1 - self.segment.side;
        const parked = self.segment.sideWord(peer, @offsetOf(layout.SideControl, "parked"));
        if (@atomicLoad(u32, parked, .seq_cst) & want == 0) return;
        if (@atomicRmw(u32, parked, .And, ~want, .seq_cst) & want != 0) self.segment.ring(peer);
    }

    fn ready(self: *Endpoint, want: u32) bool {
        if (want == layout.parked_want_data) {
            return @atomicLoad(u32, self.rx.write_index, .seq_cst) != self.rx.local;
        }
        const read = @atomicLoad(u32, self.tx.read_index, .seq_cst);
        return read != self.tx.other_cached;
    }

    fn peerGone(self: *Endpoint) bool {
        const peer = 1 - self.segment.side;
        if (@atomicLoad(u32, self.segment.sideWord(peer, @offsetOf(layout.SideControl, "closed")), .seq_cst) != 0) return true;
        return !segment_mod.processAlive(self.segment.peerPid());
    }

    /// Spins, then sleeps on this side's doorbell until `want` may hold.
    fn park(self: *Endpoint, want: u32, timeout_ns: u64) Error!void {
        std.debug.assert(want == layout.parked_want_data or want == layout.parked_want_space);
        var spins: u32 = 0;
        while (spins < spin_iterations_max) : (spins += 1) {
            if (self.ready(want)) return;
            std.atomic.spinLoopHint();
        }
        const side = self.segment.side;
        const doorbell = self.segment.sideWord(side, @offsetOf(layout.SideControl, "doorbell"));
        const parked = self.segment.sideWord(side, @offsetOf(layout.SideControl, "parked"));
        var waited_ns: u64 = 0;
        while (true) {
            const seen = @atomicLoad(u32, doorbell, .seq_cst);
            _ = @atomicRmw(u32, parked, .Or, want, .seq_cst);
            if (self.ready(want)) break;
            if (self.peerGone()) {
                // Data the peer wrote before it went away is still delivered.
                if (want == layout.parked_want_data and self.ready(want)) break;
                _ = @atomicRmw(u32, parked, .And, ~want, .seq_cst);
                return error.Closed;
            }
            if (waited_ns >= timeout_ns) {
                _ = @atomicRmw(u32, parked, .And, ~want, .seq_cst);
                return error.TimedOut;
            }
            const slice_ns = @min(wait.liveness_check_ns, timeout_ns - waited_ns);
            _ = wait.wait(doorbell, seen, slice_ns);
            waited_ns += slice_ns;
        }
        _ = @atomicRmw(u32, parked, .And, ~want, .seq_cst);
    }
};

const testing = std.testing;

test "frames wrap around the end of the ring and arrive in order" {
    var created = try segment_mod.create(layout.ring_bytes_min);
    defer segment_mod.close(&created.segment);
    var tx = Ring.init(&created.segment, 0, true);
    var rx = Ring.init(&created.segment, 0, false);
    var payload: [700]u8 = undefined;
    var sent: u32 = 0;
    var received: u32 = 0;
    const rounds = 200;
    while (received < rounds) {
        while (sent < rounds) {
            const len = 1 + (sent * 37) % payload.len;
            @memset(payload[0..len], @truncate(sent));
            if (!tx.tryWrite(payload[0..len], 0)) break;
            sent += 1;
        }
        tx.publish();
        while (try rx.tryRead()) |frame| {
            try testing.expectEqual(1 + (received * 37) % payload.len, frame.payload.len);
            for (frame.payload) |b| try testing.expectEqual(@as(u8, @truncate(received)), b);
            rx.release(frame);
            received += 1;
        }
    }
    try testing.expect(rx.local > layout.ring_bytes_min); // It wrapped at least once.
}

test "a corrupt length is reported, not trusted" {
    var created = try segment_mod.create(layout.ring_bytes_min);
    defer segment_mod.close(&created.segment);
    var tx = Ring.init(&created.segment, 0, true);
    var rx = Ring.init(&created.segment, 0, false);
    try testing.expect(tx.tryWrite("hello", 0));
    tx.publish();
    std.mem.writeInt(u32, tx.data[0..4], layout.ring_bytes_min, .little);
    try testing.expectError(error.FrameCorrupt, rx.tryRead());
}

test "a full ring refuses the frame until the reader releases" {
    var created = try segment_mod.create(layout.ring_bytes_min);
    defer segment_mod.close(&created.segment);
    var tx = Ring.init(&created.segment, 0, true);
    var rx = Ring.init(&created.segment, 0, false);
    const chunk = [_]u8{7} ** 1000;
    var written: u32 = 0;
    while (tx.tryWrite(&chunk, 0)) written += 1;
    try testing.expectEqual(@as(u32, 4), written);
    tx.publish();
    const frame = (try rx.tryRead()).?;
    rx.release(frame);
    try testing.expect(tx.tryWrite(&chunk, 0));
}

test "endpoints carry a message larger than the ring across threads" {
    var created = try segment_mod.create(layout.ring_bytes_min);
    defer segment_mod.close(&created.segment);
    var peer = try segment_mod.attach(created.segment.name(), &created.token);
    defer segment_mod.close(&peer);
    const message_bytes = 50_000;
    const Sender = struct {
        fn run(segment: *Segment) void {
            var endpoint = Endpoint.init(segment);
            var message: [message_bytes]u8 = undefined;
            for (&message, 0..) |*b, i| b.* = @truncate(i * 7);
            endpoint.send(&message, std.time.ns_per_s * 10) catch unreachable;
        }
    };
    const thread = try std.Thread.spawn(.{}, Sender.run, .{&created.segment});
    defer thread.join();
    var endpoint = Endpoint.init(&peer);
    var buffer: [message_bytes]u8 = undefined;
    const n = try endpoint.receive(&buffer, std.time.ns_per_s * 10);
    try testing.expectEqual(@as(usize, message_bytes), n);
    for (buffer, 0..) |b, i| try testing.expectEqual(@as(u8, @truncate(i * 7)), b);
}
