//! The handle table behind the C ABI: a fixed table of open segments (with
//! their waiter threads and blocking endpoints) allocated at load time, and
//! every operation on a handle as plain Zig returning `Error!T`. abi.zig only
//! maps these to C statuses.

const std = @import("std");
const builtin = @import("builtin");
const layout = @import("layout.zig");
const status = @import("status.zig");
const segment_mod = @import("segment.zig");
const ring = @import("ring.zig");
const waiter_mod = @import("waiter.zig");
const wait = @import("wait.zig");

const Error = status.Error;

/// Most segments one process may hold open at once.
pub const handles_max: u32 = 1024;

/// Low bits of a handle that name its slot; the bits above count how often
/// the slot was reused, so a stale handle (closed twice, or used after close
/// by a second thread) is refused instead of reaching the slot's next segment.
const index_bits = std.math.log2_int(u32, handles_max);
/// Generations wrap inside the positive half of an i32 (handles are never negative: negative means a status).
const generation_max: u32 = (1 << (31 - index_bits)) - 1;

comptime {
    std.debug.assert(std.math.isPowerOfTwo(handles_max));
}

const Slot = struct {
    /// Bumped on every release and kept across it (see `handleOf`).
    generation: u32 = 0,
    used: bool = false,
    segment: segment_mod.Segment = undefined,
    waiter: waiter_mod.Waiter = undefined,
    waiter_started: bool = false,
    closing: bool = false,
    endpoint: ?ring.Endpoint = null,
};

var slots: [handles_max]Slot = [_]Slot{.{}} ** handles_max;
var slots_mutex: std.Thread.Mutex = .{};

fn claim(segment: segment_mod.Segment) Error!i32 {
    slots_mutex.lock();
    defer slots_mutex.unlock();
    for (&slots, 0..) |*slot, index| {
        if (slot.used) continue;
        slot.* = .{ .generation = slot.generation, .used = true, .segment = segment };
        return handleOf(@intCast(index), slot.generation);
    }
    return error.TooManyHandles;
}

fn handleOf(index: u32, generation: u32) i32 {
    return @intCast(generation << index_bits | index);
}

/// The open slot of `handle`; `error.Closed` once close() began.
pub fn lookup(handle: i32) Error!*Slot {
    if (handle < 0) return error.InvalidArgument;
    const bits: u32 = @intCast(handle);
    const slot = &slots[bits & (handles_max - 1)];
    if (!slot.used or slot.generation != bits >> index_bits) return error.InvalidArgument;
    if (slot.closing) return error.Closed;
    std.debug.assert(slot.segment.side < 2);
    return slot;
}

/// Creates a segment as side 0; writes its name (NUL-padded) and token.
pub fn create(ring_bytes: u32, name_out: []u8, token_out: []u8) Error!i32 {
    if (name_out.len < layout.name_bytes_max) return error.InvalidArgument;
    std.debug.assert(token_out.len == layout.token_bytes);
    var created = try segment_mod.create(ring_bytes);
    errdefer segment_mod.close(&created.segment);
    const handle = try claim(created.segment);
    const name = created.segment.name();
    @memset(name_out, 0);
    @memcpy(name_out[0..name.len], name);
    @memcpy(token_out, &created.token);
    return handle;
}

/// Attaches as side 1 with the creator's one-time token.
pub fn attach(name: []const u8, token: []const u8) Error!i32 {
    var segment = try segment_mod.attach(name, token);
    errdefer segment_mod.close(&segment);
    return claim(segment);
}

/// Marks this side closed and wakes the peer at once; the segment is unmapped
/// and the handle freed when the waiter thread (if any) has exited. A close
/// while that thread is still exiting is not an error.
pub fn close(handle: i32) Error!void {
    const slot = lookup(handle) catch |err| return switch (err) {
        error.Closed => {},
        else => err,
    };
    slot.closing = true;
    segment_mod.markClosed(&slot.segment);
    // The name goes now, so a caller that checks /dev/shm right after close()
    // finds it gone; the mapping itself may outlive this call by a moment.
    segment_mod.unlink(&slot.segment);
    if (slot.waiter_started) {
        slot.waiter.requestStop();
    } else {
        releaseSlot(slot);
    }
}

fn releaseSlot(slot: *Slot) void {
    std.debug.assert(slot.used);
    segment_mod.release(&slot.segment);
    slots_mutex.lock();
    defer slots_mutex.unlock();
    slot.* = .{ .generation = if (slot.generation == generation_max) 0 else slot.generation + 1 };
}

fn releaseAfterWaiter(waiter: *waiter_mod.Waiter) void {
    releaseSlot(@fieldParentPtr("waiter", waiter));
}

const DlInfo = extern struct {
    fname: ?[*:0]const u8,
    fbase: ?*anyopaque,
    sname: ?[*:0]const u8,
    saddr: ?*anyopaque,
};
extern "c" fn dladdr(address: *const anyopaque, info: *DlInfo) c_int;

var pinned = std.atomic.Value(bool).init(false);

/// Makes this library impossible to unload. Deno dlclose()s FFI libraries
/// when its runtime shuts down; a waiter thread still running then would
/// execute unmapped code. Opening ourselves once more with RTLD_NODELETE
/// keeps the code mapped until the process ends.
fn pinLibrary() void {
    if (builtin.os.tag != .linux and !builtin.os.tag.isDarwin()) return;
    if (pinned.swap(true, .seq_cst)) return;
    var info: DlInfo = undefined;
    if (dladdr(@ptrCast(&pinLibrary), &info) == 0) return;
    const path = info.fname orelse return;
    _ = std.c.dlopen(path, .{ .NOW = true, .NODELETE = true });
}

/// Starts the handle's waiter thread, which calls `callback(context, reason)`.
pub fn waiterStart(handle: i32, callback: ?waiter_mod.Callback, context: u32) Error!void {
    const slot = try lookup(handle);
    pinLibrary();
    const function = callback orelse return error.InvalidArgument;
    if (slot.waiter_started) return error.InvalidArgument;
    slot.waiter = .{ .segment = &slot.segment, .callback = function, .context = context };
    slot.waiter.start(releaseAfterWaiter) catch return error.System;
    slot.waiter_started = true;
}

/// Asks the waiter for one callback once the doorbell differs from `expected`.
pub fn waiterArm(handle: i32, expected: u32) Error!void {
    const slot = try lookup(handle);
    if (!slot.waiter_started) return error.InvalidArgument;
    slot.waiter.arm(expected);
}

/// Sets how often the handle's waiter checks that the peer lives, in ms (1 to
/// `wait.liveness_check_ms_max`).
pub fn waiterLiveness(handle: i32, ms: u32) Error!void {
    const slot = try lookup(handle);
    if (!slot.waiter_started or ms == 0 or ms > wait.liveness_check_ms_max) return error.InvalidArgument;
    slot.waiter.setLiveness(@as(u64, ms) * std.time.ns_per_ms);
}

/// Longest a JavaScript thread may block in `parkBlocking`: it holds back the
/// runtime's timers and I/O for that long (ShmChannelOptions.blockMicros).
pub const block_us_max: u32 = 100_000;

/// Blocks the calling thread until this side's doorbell differs from
/// `expected` or `timeout_us` passed; true when it changed (or a spurious
/// return: the caller re-checks), false on the timeout. A waiter that was
/// armed stays disarmed when this returns true (the caller handles the wake
/// itself) and is armed again with `expected` when it returns false. For a
/// JavaScript side that has nothing else to do: the wake-up then needs no
/// thread hop and no event-loop turn.
pub fn parkBlocking(handle: i32, expected: u32, timeout_us: u32) Error!bool {
    if (timeout_us == 0 or timeout_us > block_us_max) return error.InvalidArgument;
    const slot = try lookup(handle);
    const doorbell = slot.segment.sideWord(slot.segment.side, @offsetOf(layout.SideControl, "doorbell"));
    // An armed waiter thread sleeping on the same doorbell would be woken by the ring too, and on a machine
    // with few cores that second thread competes with this one (measured: a parked echo call 77 -> 130 µs).
    // So it is disarmed for the block, and armed again with the same value if the block times out.
    const was_armed = slot.waiter_started and slot.waiter.disarm();
    if (@atomicLoad(u32, doorbell, .seq_cst) != expected) return true;
    const result = wait.wait(doorbell, expected, @as(u64, timeout_us) * std.time.ns_per_us);
    if (result == .changed_or_woken) return true;
    if (was_armed) slot.waiter.arm(expected);
    return false;
}

fn endpointOf(slot: *Slot) *ring.Endpoint {
    if (slot.endpoint == null) slot.endpoint = ring.Endpoint.init(&slot.segment);
    return &slot.endpoint.?;
}

/// Blocking send for C and Zig peers (JavaScript writes the ring in place).
pub fn send(handle: i32, message: []const u8, timeout_ms: u32) Error!void {
    const slot = try lookup(handle);
    try endpointOf(slot).send(message, @as(u64, timeout_ms) * std.time.ns_per_ms);
}

/// Blocking receive for C and Zig peers: the message length.
pub fn receive(handle: i32, buffer: []u8, timeout_ms: u32) Error!usize {
    const slot = try lookup(handle);
    return endpointOf(slot).receive(buffer, @as(u64, timeout_ms) * std.time.ns_per_ms);
}

test "handles are refused out of range, before use and after close" {
    try std.testing.expectError(error.InvalidArgument, lookup(-1));
    try std.testing.expectError(error.InvalidArgument, lookup(std.math.maxInt(i32)));
    var name: [layout.name_bytes_max]u8 = undefined;
    var token: [layout.token_bytes]u8 = undefined;
    const handle = try create(layout.ring_bytes_min, &name, &token);
    _ = try lookup(handle);
    try close(handle);
    // Without a waiter thread the slot is free at once: the handle is unknown now.
    try std.testing.expectError(error.InvalidArgument, lookup(handle));
    try std.testing.expectError(error.InvalidArgument, close(handle));
}

test "a closed handle stays refused after its slot is reused" {
    var name: [layout.name_bytes_max]u8 = undefined;
    var token: [layout.token_bytes]u8 = undefined;
    const first = try create(layout.ring_bytes_min, &name, &token);
    try close(first);
    const second = try create(layout.ring_bytes_min, &name, &token);
    defer close(second) catch {};
    // Same slot (the lowest free one), a different handle: the stale one
    // neither reaches nor closes the new segment.
    try std.testing.expectEqual(@as(i32, first) & (handles_max - 1), second & (handles_max - 1));
    try std.testing.expect(first != second);
    try std.testing.expectError(error.InvalidArgument, lookup(first));
    try std.testing.expectError(error.InvalidArgument, close(first));
    _ = try lookup(second);
}

test "a waiter's liveness interval is refused before the waiter starts, at 0, above the maximum and once closed" {
    const Probe = struct {
        fn callback(_: u32, _: u32) callconv(.c) void {}
    };
    var name: [layout.name_bytes_max]u8 = undefined;
    var token: [layout.token_bytes]u8 = undefined;
    const handle = try create(layout.ring_bytes_min, &name, &token);
    try std.testing.expectError(error.InvalidArgument, waiterLiveness(handle, 1000));
    try waiterStart(handle, Probe.callback, 0);
    try std.testing.expectError(error.InvalidArgument, waiterLiveness(handle, 0));
    try std.testing.expectError(error.InvalidArgument, waiterLiveness(handle, wait.liveness_check_ms_max + 1));
    try waiterLiveness(handle, 1);
    try waiterLiveness(handle, wait.liveness_check_ms_max);
    try close(handle);
    // Closing until its waiter thread has exited, then unknown: refused either way.
    if (waiterLiveness(handle, 1000)) |_| return error.TestUnexpectedResult else |err| {
        try std.testing.expect(err == error.Closed or err == error.InvalidArgument);
    }
}

test "parkBlocking returns at once when rung, times out otherwise, and refuses bad bounds" {
    var name: [layout.name_bytes_max]u8 = undefined;
    var token: [layout.token_bytes]u8 = undefined;
    const handle = try create(layout.ring_bytes_min, &name, &token);
    defer close(handle) catch {};
    const slot = try lookup(handle);
    const doorbell = slot.segment.sideWord(0, @offsetOf(layout.SideControl, "doorbell"));
    const seen = @atomicLoad(u32, doorbell, .seq_cst);
    try std.testing.expect(!try parkBlocking(handle, seen, 1000));
    slot.segment.ring(0);
    try std.testing.expect(try parkBlocking(handle, seen, block_us_max));
    try std.testing.expectError(error.InvalidArgument, parkBlocking(handle, seen, 0));
    try std.testing.expectError(error.InvalidArgument, parkBlocking(handle, seen, block_us_max + 1));
    try std.testing.expectError(error.InvalidArgument, parkBlocking(-1, seen, 1000));
}
