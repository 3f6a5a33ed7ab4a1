//! Cross-process park and wake on a 32-bit word in shared memory.
//!
//! Zig's std.Thread.Futex is process-private (FUTEX_PRIVATE_FLAG on Linux), so
//! a wake from another process would never reach it. This file issues the
//! shared variants directly: futex(2) without the private flag on Linux and
//! __ulock_* with COMPARE_AND_WAIT_SHARED on macOS. Windows has no shared
//! address wait; there the wait degrades to a 1 ms sleep poll (documented in
//! the header) until named events are wired in.

const std = @import("std");
const builtin = @import("builtin");

pub const WaitResult = enum { changed_or_woken, timed_out };

/// How often a sleeping side wakes on its own to check that its peer is still
/// alive: the one bound on how late a SIGKILLed peer is noticed, for the JS
/// waiter thread and for C peers blocked in send/receive alike.
pub const liveness_check_ns: u64 = 1000 * std.time.ns_per_ms;
/// The longest interval an owner may set instead (waiter.zig `setLiveness`): one hour.
pub const liveness_check_ms_max: u32 = 3_600_000;

/// Waits while `word.* == expected`, for at most `timeout_ns`. Spurious returns
/// are allowed: callers re-check their condition.
pub fn wait(word: *const u32, expected: u32, timeout_ns: u64) WaitResult {
    std.debug.assert(timeout_ns > 0);
    return switch (builtin.os.tag) {
        .linux => waitLinux(word, expected, timeout_ns),
        .macos, .ios => waitDarwin(word, expected, timeout_ns),
        .windows => waitPoll(word, expected, timeout_ns),
        else => @compileError("plugin-shm: no cross-process wait for this OS"),
    };
}

/// Wakes every process parked on `word`.
pub fn wake(word: *const u32) void {
    switch (builtin.os.tag) {
        .linux => {
            const linux = std.os.linux;
            _ = linux.futex_3arg(word, .{ .cmd = .WAKE, .private = false }, std.math.maxInt(i32));
        },
        .macos, .ios => {
            const c = std.c;
            _ = c.__ulock_wake(.{ .op = .COMPARE_AND_WAIT_SHARED, .WAKE_ALL = true, .NO_ERRNO = true }, word, 0);
        },
        .windows => {},
        else => @compileError("plugin-shm: no cross-process wake for this OS"),
    }
}

fn waitLinux(word: *const u32, expected: u32, timeout_ns: u64) WaitResult {
    const linux = std.os.linux;
    const ts: linux.timespec = .{
        .sec = @intCast(timeout_ns / std.time.ns_per_s),
        .nsec = @intCast(timeout_ns % std.time.ns_per_s),
    };
    const rc = linux.futex_4arg(word, .{ .cmd = .WAIT, .private = false }, expected, &ts);
    return switch (linux.E.init(rc)) {
        .TIMEDOUT => .timed_out,
        // SUCCESS: woken; AGAIN: the value had already changed; INTR: a signal.
        else => .changed_or_woken,
    };
}

fn waitDarwin(word: *const u32, expected: u32, timeout_ns: u64) WaitResult {
    const c = std.c;
    const rc = c.__ulock_wait2(.{ .op = .COMPARE_AND_WAIT_SHARED, .NO_ERRNO = true }, word, expected, timeout_ns, 0);
    // With NO_ERRNO the error comes back negated in the return value.
    if (rc == -@as(c_int, @intFromEnum(std.c.E.TIMEDOUT))) return .timed_out;
    return .changed_or_woken;
}

fn waitPoll(word: *const u32, expected: u32, timeout_ns: u64) WaitResult {
    const poll_ns: u64 = std.time.ns_per_ms;
    var waited_ns: u64 = 0;
    while (waited_ns < timeout_ns) : (waited_ns += poll_ns) {
        if (@atomicLoad(u32, word, .acquire) != expected) return .changed_or_woken;
        std.Thread.sleep(poll_ns);
    }
    return .timed_out;
}

test "wait returns at once when the word already differs" {
    var word: u32 = 5;
    try std.testing.expectEqual(WaitResult.changed_or_woken, wait(&word, 4, std.time.ns_per_s));
}

test "wait times out when nobody wakes" {
    var word: u32 = 5;
    try std.testing.expectEqual(WaitResult.timed_out, wait(&word, 5, 2 * std.time.ns_per_ms));
}

test "wake reaches a waiter on another thread" {
    const Shared = struct {
        word: u32 = 0,
        fn waker(self: *@This()) void {
            std.Thread.sleep(5 * std.time.ns_per_ms);
            @atomicStore(u32, &self.word, 1, .seq_cst);
            wake(&self.word);
        }
    };
    var shared: Shared = .{};
    const thread = try std.Thread.spawn(.{}, Shared.waker, .{&shared});
    defer thread.join();
    var rounds: u32 = 0;
    while (@atomicLoad(u32, &shared.word, .seq_cst) == 0) : (rounds += 1) {
        try std.testing.expect(rounds < 100);
        _ = wait(&shared.word, 0, std.time.ns_per_s);
    }
}
