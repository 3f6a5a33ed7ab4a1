//! A waiter thread per channel, so that JavaScript never blocks in native code.
//!
//! JavaScript spins briefly, then "arms" the waiter with the doorbell value it
//! saw. The thread sleeps on the shared doorbell (a cross-process futex) and,
//! when it changes, calls the registered callback, which the runtime delivers
//! on the event loop (Deno.UnsafeCallback.threadSafe, bun:ffi JSCallback with
//! threadsafe). While disarmed, the thread wakes every `liveness_check_ns` to
//! see whether the peer died, so a SIGKILLed peer is noticed within that time
//! even on a channel nobody waits on.

const std = @import("std");
const layout = @import("layout.zig");
const wait = @import("wait.zig");
const segment_mod = @import("segment.zig");
const Segment = segment_mod.Segment;

pub const Callback = *const fn (context: u32, reason: u32) callconv(.c) void;

/// Why the waiter called back; crosses the ABI as the callback's `reason`.
pub const Reason = enum(u32) {
    doorbell = 1,
    peer_closed = 2,
    peer_dead = 3,
    /// The last callback: the thread is about to exit and will not call again.
    /// A runtime must not tear down before it has seen this, or the thread
    /// could call into a dead event loop.
    exited = 4,
};

const liveness_check_ns = wait.liveness_check_ns;
/// The waiter thread runs the runtime's callback code (Deno's and Bun's
/// thread-safe callback trampolines, Rust and C++ that expect a normal
/// thread's stack, including their panic and error paths). 64 KiB overflowed
/// now and then: a Deno test run died with SIGSEGV on a `call` with the stack
/// pointer far below this thread's stack. 2 MiB is Rust's own default; it is
/// address space, only the pages touched are ever committed.
pub const stack_bytes: usize = 2 * 1024 * 1024;

pub const Waiter = struct {
    segment: *Segment,
    callback: Callback,
    context: u32,
    armed: std.atomic.Value(u32) = .init(0),
    expected: std.atomic.Value(u32) = .init(0),
    stop: std.atomic.Value(u32) = .init(0),
    peer_gone_reported: bool = false,
    thread: ?std.Thread = null,

    /// Starts the thread. It calls `on_exit` as the last thing it does; that
    /// is where the owner may release the segment the waiter reads.
    pub fn start(self: *Waiter, comptime on_exit: fn (*Waiter) void) !void {
        std.debug.assert(self.thread == null);
        const Entry = struct {
            fn entry(waiter: *Waiter) void {
                waiter.run();
                waiter.callback(waiter.context, @intFromEnum(Reason.exited));
                on_exit(waiter);
            }
        };
        self.thread = try std.Thread.spawn(.{ .stack_size = stack_bytes }, Entry.entry, .{self});
    }

    /// Asks for one callback once this side's doorbell differs from `expected`
    /// (or the peer is gone). Disarms itself before calling back.
    pub fn arm(self: *Waiter, expected: u32) void {
        std.debug.assert(self.thread != null); // Armed only between start and stop.
        self.expected.store(expected, .seq_cst);
        self.armed.store(1, .seq_cst);
        std.Thread.Futex.wake(&self.armed, 1);
    }

    /// Asks the thread to stop without waiting for it. Joining is not an
    /// option: runtimes deliver thread-safe callbacks by blocking the calling
    /// thread until the event loop has run them (Deno also runs the microtasks
    /// they schedule first), so a close() issued from such a microtask would
    /// wait on a thread that waits on it. The thread exits through `on_exit`.
    pub fn requestStop(self: *Waiter) void {
        const thread = self.thread orelse return;
        self.thread = null;
        const doorbell_word = self.doorbell();
        thread.detach();
        self.stop.store(1, .seq_cst);
        // From here on the thread may exit and release `self` and the segment
        // at any moment, so only saved pointers are used: `armed` lives in the
        // static handle table, and a futex wake on memory already unmapped
        // fails with EFAULT instead of faulting.
        std.Thread.Futex.wake(&self.armed, 1);
        wait.wake(doorbell_word);
    }

    /// Stops and joins; only for callers that are not the callback's thread
    /// and cannot be re-entered from it (tests).
    pub fn stopAndJoin(self: *Waiter) void {
        const thread = self.thread orelse return;
        self.stop.store(1, .seq_cst);
        std.Thread.Futex.wake(&self.armed, 1);
        wait.wake(self.doorbell());
        thread.join();
        self.thread = null;
    }

    fn doorbell(self: *Waiter) *u32 {
        return self.segment.sideWord(self.segment.side, @offsetOf(layout.SideControl, "doorbell"));
    }

    fn peerState(self: *Waiter) ?Reason {
        const peer = 1 - self.segment.side;
        const closed = self.segment.sideWord(peer, @offsetOf(layout.SideControl, "closed"));
        if (@atomicLoad(u32, closed, .seq_cst) != 0) return .peer_closed;
        if (!segment_mod.processAlive(self.segment.peerPid())) return .peer_dead;
        return null;
    }

    fn fire(self: *Waiter, reason: Reason) void {
        std.debug.assert(reason != .exited); // Only the thread's entry reports its exit.
        self.armed.store(0, .seq_cst);
        if (reason != .doorbell) self.peer_gone_reported = true;
        self.callback(self.context, @intFromEnum(reason));
    }

    fn doNothing(_: *Waiter) void {}

    fn run(self: *Waiter) void {
        while (self.stop.load(.seq_cst) == 0) {
            if (self.armed.load(.seq_cst) == 0) {
                std.Thread.Futex.timedWait(&self.armed, 0, liveness_check_ns) catch {};
                if (self.stop.load(.seq_cst) != 0) break;
                if (self.armed.load(.seq_cst) == 0 and !self.peer_gone_reported) {
                    if (self.peerState()) |reason| self.fire(reason);
                }
                continue;
            }
            const expected = self.expected.load(.seq_cst);
            if (@atomicLoad(u32, self.doorbell(), .seq_cst) != expected) {
                self.fire(.doorbell);
                continue;
            }
            if (self.peerState()) |reason| {
                self.fire(reason);
                continue;
            }
            _ = wait.wait(self.doorbell(), expected, liveness_check_ns);
        }
    }
};

test "an armed waiter calls back when the peer rings" {
    const Probe = struct {
        var calls = std.atomic.Value(u32).init(0);
        var last_reason = std.atomic.Value(u32).init(0);
        fn callback(context: u32, reason: u32) callconv(.c) void {
            std.debug.assert(context == 42);
            last_reason.store(reason, .seq_cst);
            _ = calls.fetchAdd(1, .seq_cst);
        }
    };
    var created = try segment_mod.create(layout.ring_bytes_min);
    defer segment_mod.close(&created.segment);
    var peer = try segment_mod.attach(created.segment.name(), &created.token);
    defer segment_mod.close(&peer);
    var waiter: Waiter = .{ .segment = &created.segment, .callback = Probe.callback, .context = 42 };
    try waiter.start(Waiter.doNothing);
    defer waiter.stopAndJoin();
    const doorbell = waiter.doorbell();
    waiter.arm(@atomicLoad(u32, doorbell, .seq_cst));
    std.Thread.sleep(2 * std.time.ns_per_ms);
    try std.testing.expectEqual(@as(u32, 0), Probe.calls.load(.seq_cst));
    peer.ring(0);
    var rounds: u32 = 0;
    while (Probe.calls.load(.seq_cst) == 0) : (rounds += 1) {
        try std.testing.expect(rounds < 1000);
        std.Thread.sleep(std.time.ns_per_ms);
    }
    try std.testing.expectEqual(@as(u32, @intFromEnum(Reason.doorbell)), Probe.last_reason.load(.seq_cst));
}
