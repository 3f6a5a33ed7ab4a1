//! A waiter thread per channel, so that JavaScript never blocks in native code.
//!
//! JavaScript spins briefly, then "arms" the waiter with the doorbell value it
//! saw. The thread sleeps on the shared doorbell (a cross-process futex) and,
//! when it changes, calls the registered callback, which the runtime delivers
//! on the event loop (Deno.UnsafeCallback.threadSafe, bun:ffi JSCallback with
//! threadsafe). Armed or not, the thread wakes every liveness interval
//! (`liveness_check_ns` unless its owner set another, see `setLiveness`) to
//! see whether the peer died, so a SIGKILLed peer is noticed within that time
//! even on a channel nobody waits on.

const std = @import("std");
const builtin = @import("builtin");
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
    /// How often the thread checks on its own that the peer lives (see
    /// `setLiveness`); `liveness_check_ns` unless the owner knows better.
    liveness_ns: std.atomic.Value(u64) = .init(liveness_check_ns),
    thread: ?std.Thread = null,
    /// Linux: the peer's /proc/<pid>/stat, kept open, so that a liveness check
    /// is one pread instead of kill + open + read + close (each a syscall the
    /// sandbox's seccomp filter runs on: 64 idle plugins spent 0.7 % of a core
    /// in these checks). The open file names that process, not its pid: a
    /// pid reused by another process reads as an error, i.e. dead.
    peer_stat: ?std.posix.fd_t = null,
    peer_stat_pid: u32 = 0,

    /// Starts the thread. It calls `on_exit` as the last thing it does; that
    /// is where the owner may release the segment the waiter reads.
    pub fn start(self: *Waiter, comptime on_exit: fn (*Waiter) void) !void {
        std.debug.assert(self.thread == null);
        const Entry = struct {
            fn entry(waiter: *Waiter) void {
                blockSignals();
                waiter.run();
                waiter.closePeerStat();
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

    /// Sets how often the thread checks that the peer lives while nothing rings
    /// it. An owner that learns of the peer's death another way (a host sees
    /// its plugin's exit; a sandboxed plugin dies with its host) lengthens it:
    /// each check is a wake-up of an idle process. Takes effect from the
    /// thread's next wait.
    pub fn setLiveness(self: *Waiter, ns: u64) void {
        std.debug.assert(ns > 0);
        self.liveness_ns.store(ns, .seq_cst);
    }

    /// Takes back an arm that has not fired: true when it was armed. The thread
    /// may sleep on the doorbell; it is woken off it (one wake, not on any
    /// message's path), so that a thread blocking on the doorbell itself is
    /// the only one a ring wakes. A callback already under way still arrives.
    pub fn disarm(self: *Waiter) bool {
        std.debug.assert(self.thread != null);
        if (self.armed.swap(0, .seq_cst) == 0) return false;
        wait.wake(self.doorbell());
        return true;
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
        if (!self.peerAlive()) return .peer_dead;
        return null;
    }

    fn peerAlive(self: *Waiter) bool {
        const pid = self.segment.peerPid();
        if (builtin.os.tag != .linux or pid == 0) return segment_mod.processAlive(pid);
        if (self.peer_stat_pid != pid) {
            self.closePeerStat();
            // Only a process that is alive now is worth keeping open: a dead
            // or invisible one is decided by processAlive, as before.
            if (!segment_mod.processAlive(pid)) return false;
            var path_buffer: [64]u8 = undefined;
            const path = std.fmt.bufPrintZ(&path_buffer, "/proc/{d}/stat", .{pid}) catch return true;
            self.peer_stat = std.posix.openZ(path, .{ .CLOEXEC = true }, 0) catch null;
            self.peer_stat_pid = pid;
            return true;
        }
        const fd = self.peer_stat orelse return segment_mod.processAlive(pid);
        var stat: [512]u8 = undefined;
        const linux = std.os.linux;
        const rc = linux.pread(fd, &stat, stat.len, 0);
        switch (linux.E.init(rc)) {
            .SUCCESS => {},
            .SRCH => return false, // The process is gone (reaped).
            else => return segment_mod.processAlive(pid),
        }
        const text = stat[0..rc];
        const paren = std.mem.lastIndexOfScalar(u8, text, ')') orelse return true;
        if (paren + 2 >= text.len) return true;
        const state = text[paren + 2];
        return state != 'Z' and state != 'X';
    }

    fn closePeerStat(self: *Waiter) void {
        if (self.peer_stat) |fd| std.posix.close(fd);
        self.peer_stat = null;
        self.peer_stat_pid = 0;
    }

    fn fire(self: *Waiter, reason: Reason) void {
        std.debug.assert(reason != .exited); // Only the thread's entry reports its exit.
        self.armed.store(0, .seq_cst);
        if (reason != .doorbell) self.peer_gone_reported = true;
        self.callback(self.context, @intFromEnum(reason));
    }

    /// Leaves the process's asynchronous signals (a child's SIGCHLD, SIGTERM, ...) to the
    /// runtime's own threads: one delivered here would only interrupt the
    /// futex wait, and the runtime's handler would run on a thread it does not
    /// know. (libc's sigprocmask keeps its internal signals unblocked.)
    fn blockSignals() void {
        if (builtin.os.tag == .windows) return;
        const posix = std.posix;
        var set = posix.sigfillset();
        // A fault of this thread's own (a stack overflow, SIGBUS on a truncated segment) must still reach the
        // runtime's crash handler: blocked, the kernel would kill the process without it.
        const faults = [_]u8{ posix.SIG.SEGV, posix.SIG.BUS, posix.SIG.FPE, posix.SIG.ILL, posix.SIG.TRAP, posix.SIG.ABRT };
        for (faults) |sig| posix.sigdelset(&set, sig);
        posix.sigprocmask(posix.SIG.BLOCK, &set, null);
    }

    fn doNothing(_: *Waiter) void {}

    fn run(self: *Waiter) void {
        while (self.stop.load(.seq_cst) == 0) {
            if (self.armed.load(.seq_cst) == 0) {
                std.Thread.Futex.timedWait(&self.armed, 0, self.liveness_ns.load(.seq_cst)) catch {};
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
            _ = wait.wait(self.doorbell(), expected, self.liveness_ns.load(.seq_cst));
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

test "the liveness check follows the peer through its kept-open /proc file until it is reaped" {
    if (builtin.os.tag != .linux) return error.SkipZigTest;
    var created = try segment_mod.create(layout.ring_bytes_min);
    defer segment_mod.close(&created.segment);
    var child = std.process.Child.init(&.{ "sleep", "30" }, std.testing.allocator);
    try child.spawn();
    var reaped = false;
    defer if (!reaped) {
        _ = child.kill() catch {};
    };
    var waiter: Waiter = .{ .segment = &created.segment, .callback = undefined, .context = 0 };
    defer waiter.closePeerStat();
    @atomicStore(u32, &created.segment.header().peer_pid, @intCast(child.id), .release);
    try std.testing.expect(waiter.peerAlive()); // Opens the file.
    try std.testing.expect(waiter.peer_stat != null);
    try std.testing.expect(waiter.peerAlive()); // Reads it.
    _ = try child.kill(); // Kills and reaps.
    reaped = true;
    try std.testing.expect(!waiter.peerAlive());
}

test "an armed waiter notices a dead peer within its liveness interval, and not before" {
    if (builtin.os.tag != .linux) return error.SkipZigTest;
    const Probe = struct {
        var dead = [2]std.atomic.Value(u32){ .init(0), .init(0) };
        fn callback(context: u32, reason: u32) callconv(.c) void {
            if (reason == @intFromEnum(Reason.peer_dead)) _ = dead[context].fetchAdd(1, .seq_cst);
        }
    };
    var child = std.process.Child.init(&.{ "sleep", "30" }, std.testing.allocator);
    try child.spawn();
    var reaped = false;
    defer if (!reaped) {
        _ = child.kill() catch {};
    };
    var segments: [2]segment_mod.Created = undefined;
    var waiters: [2]Waiter = undefined;
    for (&segments, &waiters, 0..) |*created, *waiter, i| {
        created.* = try segment_mod.create(layout.ring_bytes_min);
        @atomicStore(u32, &created.segment.header().peer_pid, @intCast(child.id), .release);
        waiter.* = .{ .segment = &created.segment, .callback = Probe.callback, .context = @intCast(i) };
        try waiter.start(Waiter.doNothing);
    }
    defer for (&segments, &waiters) |*created, *waiter| {
        waiter.stopAndJoin();
        segment_mod.close(&created.segment);
    };
    waiters[0].setLiveness(3600 * std.time.ns_per_s); // Context 0: once an hour.
    waiters[1].setLiveness(10 * std.time.ns_per_ms); // Context 1: every 10 ms.
    // Both armed while the peer lives: each checks it once (alive), then sleeps for its interval.
    for (&waiters) |*waiter| waiter.arm(@atomicLoad(u32, waiter.doorbell(), .seq_cst));
    std.Thread.sleep(50 * std.time.ns_per_ms);
    _ = try child.kill();
    reaped = true;
    var rounds: u32 = 0;
    while (Probe.dead[1].load(.seq_cst) == 0) : (rounds += 1) {
        try std.testing.expect(rounds < 10_000);
        std.Thread.sleep(std.time.ns_per_ms);
    }
    // Well past the default 1 s interval, the hourly one has not looked again.
    std.Thread.sleep(1500 * std.time.ns_per_ms);
    try std.testing.expectEqual(@as(u32, 0), Probe.dead[0].load(.seq_cst));
}
