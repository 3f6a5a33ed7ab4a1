//! The C ABI of libpluginshm: thin wrappers over the Zig modules, all prefixed
//! `pshm_`, documented in include/pluginshm.h. Handles are indices into a fixed
//! table allocated at load time; statuses are negated `Status` values.

const std = @import("std");
const builtin = @import("builtin");
const layout = @import("layout.zig");
const status = @import("status.zig");
const segment_mod = @import("segment.zig");
const ring = @import("ring.zig");
const waiter_mod = @import("waiter.zig");

const Status = status.Status;
const Error = status.Error;

pub const abi_version: u32 = 1;
pub const handles_max: u32 = 1024;

const Slot = struct {
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
        slot.* = .{ .used = true, .segment = segment };
        return @intCast(index);
    }
    return error.TooManyHandles;
}

fn lookup(handle: i32) Error!*Slot {
    if (handle < 0 or handle >= handles_max) return error.InvalidArgument;
    const slot = &slots[@intCast(handle)];
    if (!slot.used) return error.InvalidArgument;
    if (slot.closing) return error.Closed;
    return slot;
}

fn result(value: Error!i32) i32 {
    return value catch |err| status.negated(err);
}

export fn pshm_abi_version() u32 {
    return abi_version;
}

export fn pshm_layout(field: u32) i64 {
    const tag = std.meta.intToEnum(layout.Field, field) catch return -@as(i64, @intFromEnum(Status.invalid_argument));
    return layout.fieldValue(tag);
}

export fn pshm_create(ring_bytes: u32, name_out: [*]u8, name_capacity: u32, token_out: [*]u8) i32 {
    return result(create(ring_bytes, name_out[0..name_capacity], token_out[0..layout.token_bytes]));
}

fn create(ring_bytes: u32, name_out: []u8, token_out: []u8) Error!i32 {
    if (name_out.len < layout.name_bytes_max) return error.InvalidArgument;
    var created = try segment_mod.create(ring_bytes);
    errdefer segment_mod.close(&created.segment);
    const handle = try claim(created.segment);
    const name = created.segment.name();
    @memset(name_out, 0);
    @memcpy(name_out[0..name.len], name);
    @memcpy(token_out, &created.token);
    return handle;
}

export fn pshm_attach(name: [*]const u8, name_len: u32, token: [*]const u8, token_len: u32) i32 {
    return result(attach(name[0..name_len], token[0..token_len]));
}

fn attach(name: []const u8, token: []const u8) Error!i32 {
    var segment = try segment_mod.attach(name, token);
    errdefer segment_mod.close(&segment);
    return claim(segment);
}

export fn pshm_base(handle: i32) ?*anyopaque {
    const slot = lookup(handle) catch return null;
    return slot.segment.memory.ptr;
}

export fn pshm_size(handle: i32) u64 {
    const slot = lookup(handle) catch return 0;
    return slot.segment.memory.len;
}

export fn pshm_side(handle: i32) i32 {
    const slot = lookup(handle) catch |err| return status.negated(err);
    return @intCast(slot.segment.side);
}

/// Marks this side closed and wakes the peer at once; the segment is unmapped
/// and the handle freed when the waiter thread (if any) has exited.
export fn pshm_close(handle: i32) i32 {
    const slot = lookup(handle) catch |err| return switch (err) {
        error.Closed => 0,
        else => status.negated(err),
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
    return 0;
}

fn releaseSlot(slot: *Slot) void {
    segment_mod.release(&slot.segment);
    slots_mutex.lock();
    defer slots_mutex.unlock();
    slot.* = .{};
}

fn releaseAfterWaiter(waiter: *waiter_mod.Waiter) void {
    releaseSlot(@fieldParentPtr("waiter", waiter));
}

export fn pshm_unlink(handle: i32) i32 {
    const slot = lookup(handle) catch |err| return status.negated(err);
    segment_mod.unlink(&slot.segment);
    return 0;
}

/// Rings `side`'s doorbell and wakes it if it sleeps.
export fn pshm_wake(handle: i32, side: u32) i32 {
    const slot = lookup(handle) catch |err| return status.negated(err);
    if (side > 1) return -@intFromEnum(Status.invalid_argument);
    slot.segment.ring(side);
    return 0;
}

export fn pshm_peer_alive(handle: i32) i32 {
    const slot = lookup(handle) catch |err| return status.negated(err);
    return @intFromBool(segment_mod.processAlive(slot.segment.peerPid()));
}

export fn pshm_process_alive(pid: u32) i32 {
    return @intFromBool(segment_mod.processAlive(pid));
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
    if (dladdr(@ptrCast(&pshm_abi_version), &info) == 0) return;
    const path = info.fname orelse return;
    _ = std.c.dlopen(path, .{ .NOW = true, .NODELETE = true });
}

export fn pshm_waiter_start(handle: i32, callback: ?waiter_mod.Callback, context: u32) i32 {
    const slot = lookup(handle) catch |err| return status.negated(err);
    pinLibrary();
    const function = callback orelse return -@intFromEnum(Status.invalid_argument);
    if (slot.waiter_started) return -@intFromEnum(Status.invalid_argument);
    slot.waiter = .{ .segment = &slot.segment, .callback = function, .context = context };
    slot.waiter.start(releaseAfterWaiter) catch return -@intFromEnum(Status.system);
    slot.waiter_started = true;
    return 0;
}

export fn pshm_waiter_arm(handle: i32, expected: u32) i32 {
    const slot = lookup(handle) catch |err| return status.negated(err);
    if (!slot.waiter_started) return -@intFromEnum(Status.invalid_argument);
    slot.waiter.arm(expected);
    return 0;
}

export fn pshm_sweep() u32 {
    return segment_mod.sweep();
}

/// Gives the CPU to another runnable thread. A spinning JavaScript side calls
/// it now and then, so that on a machine with fewer cores than busy threads
/// its spin does not starve the very peer it waits for.
export fn pshm_yield() void {
    std.Thread.yield() catch {};
}

export fn pshm_pid() u32 {
    return segment_mod.currentPid();
}

fn endpointOf(slot: *Slot) *ring.Endpoint {
    if (slot.endpoint == null) slot.endpoint = ring.Endpoint.init(&slot.segment);
    return &slot.endpoint.?;
}

/// Blocking send for C and Zig peers (JavaScript writes the ring in place).
export fn pshm_send(handle: i32, message: [*]const u8, message_len: u64, timeout_ms: u32) i32 {
    const slot = lookup(handle) catch |err| return status.negated(err);
    endpointOf(slot).send(message[0..@intCast(message_len)], @as(u64, timeout_ms) * std.time.ns_per_ms) catch |err| return status.negated(err);
    return 0;
}

/// Blocking receive for C and Zig peers: the message length, or a negated status.
export fn pshm_receive(handle: i32, buffer: [*]u8, buffer_capacity: u64, timeout_ms: u32) i64 {
    const slot = lookup(handle) catch |err| return status.negated(err);
    const n = endpointOf(slot).receive(buffer[0..@intCast(buffer_capacity)], @as(u64, timeout_ms) * std.time.ns_per_ms) catch |err| return status.negated(err);
    return @intCast(n);
}

test {
    _ = layout;
    _ = status;
    _ = @import("wait.zig");
    _ = segment_mod;
    _ = ring;
    _ = waiter_mod;
}
