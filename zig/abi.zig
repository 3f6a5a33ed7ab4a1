//! The C ABI of libpluginshm: one thin `export fn` per call, all prefixed
//! `pshm_`, documented in include/pluginshm.h. The logic lives in plain Zig
//! modules (handles.zig, segment.zig, layout.zig); here Zig errors become
//! negated `Status` values through status.zig's one exhaustive mapping.

const std = @import("std");
const layout = @import("layout.zig");
const status = @import("status.zig");
const handles = @import("handles.zig");
const segment_mod = @import("segment.zig");
const waiter_mod = @import("waiter.zig");

const Error = status.Error;

pub const abi_version: u32 = 1;

fn code(value: Error!void) i32 {
    value catch |err| return status.negated(err);
    return 0;
}

export fn pshm_abi_version() u32 {
    return abi_version;
}

export fn pshm_layout(field: u32) i64 {
    const tag = std.meta.intToEnum(layout.Field, field) catch return status.negated(error.InvalidArgument);
    return layout.fieldValue(tag);
}

export fn pshm_create(ring_bytes: u32, name_out: [*]u8, name_capacity: u32, token_out: [*]u8) i32 {
    return handles.create(ring_bytes, name_out[0..name_capacity], token_out[0..layout.token_bytes]) catch |err|
        status.negated(err);
}

export fn pshm_attach(name: [*]const u8, name_len: u32, token: [*]const u8, token_len: u32) i32 {
    return handles.attach(name[0..name_len], token[0..token_len]) catch |err| status.negated(err);
}

export fn pshm_base(handle: i32) ?*anyopaque {
    const slot = handles.lookup(handle) catch return null;
    return slot.segment.memory.ptr;
}

export fn pshm_size(handle: i32) u64 {
    const slot = handles.lookup(handle) catch return 0;
    return slot.segment.memory.len;
}

export fn pshm_side(handle: i32) i32 {
    const slot = handles.lookup(handle) catch |err| return status.negated(err);
    return @intCast(slot.segment.side);
}

export fn pshm_close(handle: i32) i32 {
    return code(handles.close(handle));
}

export fn pshm_unlink(handle: i32) i32 {
    const slot = handles.lookup(handle) catch |err| return status.negated(err);
    segment_mod.unlink(&slot.segment);
    return 0;
}

export fn pshm_wake(handle: i32, side: u32) i32 {
    const slot = handles.lookup(handle) catch |err| return status.negated(err);
    if (side > 1) return status.negated(error.InvalidArgument);
    slot.segment.ring(side);
    return 0;
}

export fn pshm_peer_alive(handle: i32) i32 {
    const slot = handles.lookup(handle) catch |err| return status.negated(err);
    return @intFromBool(segment_mod.processAlive(slot.segment.peerPid()));
}

export fn pshm_process_alive(pid: u32) i32 {
    return @intFromBool(segment_mod.processAlive(pid));
}

export fn pshm_waiter_start(handle: i32, callback: ?waiter_mod.Callback, context: u32) i32 {
    return code(handles.waiterStart(handle, callback, context));
}

export fn pshm_waiter_arm(handle: i32, expected: u32) i32 {
    return code(handles.waiterArm(handle, expected));
}

export fn pshm_waiter_liveness(handle: i32, ms: u32) i32 {
    return code(handles.waiterLiveness(handle, ms));
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

/// Blocks this thread until the handle's doorbell differs from `expected`,
/// for at most `timeout_us` (1 to 100000): 1 when it changed, 0 on the
/// timeout, a negated status on bad arguments.
export fn pshm_park_blocking(handle: i32, expected: u32, timeout_us: u32) i32 {
    const changed = handles.parkBlocking(handle, expected, timeout_us) catch |err| return status.negated(err);
    return @intFromBool(changed);
}

export fn pshm_send(handle: i32, message: [*]const u8, message_len: u64, timeout_ms: u32) i32 {
    return code(handles.send(handle, message[0..@intCast(message_len)], timeout_ms));
}

export fn pshm_receive(handle: i32, buffer: [*]u8, buffer_capacity: u64, timeout_ms: u32) i64 {
    const length = handles.receive(handle, buffer[0..@intCast(buffer_capacity)], timeout_ms) catch |err|
        return status.negated(err);
    return @intCast(length);
}

test {
    _ = layout;
    _ = status;
    _ = @import("wait.zig");
    _ = segment_mod;
    _ = @import("ring.zig");
    _ = waiter_mod;
    _ = handles;
}
