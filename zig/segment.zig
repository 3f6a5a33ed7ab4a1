//! Named shared-memory segments: create, attach, close, unlink, sweep.
//!
//! The creator (side 0) makes a segment with an unguessable name, exclusively
//! and with mode 0600, writes the header and the SHA-256 of a one-time token.
//! The attacher (side 1) must present the token; it claims the segment by a
//! compare-and-swap on `peer_pid`, so the token works once, and then unlinks
//! the name, so nothing stays in /dev/shm while the channel is in use.

const std = @import("std");
const builtin = @import("builtin");
const layout = @import("layout.zig");
const wait = @import("wait.zig");
const Error = @import("status.zig").Error;

const posix = std.posix;
const page_align = std.heap.page_size_min;
const is_windows = builtin.os.tag == .windows;

pub const Segment = struct {
    memory: []align(page_align) u8,
    side: u32,
    name_buffer: [layout.name_bytes_max]u8,
    name_len: u32,
    unlinked: bool,
    mapping: if (is_windows) std.os.windows.HANDLE else void,

    pub fn name(self: *const Segment) []const u8 {
        return self.name_buffer[0..self.name_len];
    }

    pub fn header(self: *const Segment) *layout.Header {
        return @ptrCast(self.memory.ptr);
    }

    pub fn word(self: *const Segment, offset: u32) *u32 {
        std.debug.assert(offset % 4 == 0);
        std.debug.assert(offset + 4 <= layout.header_bytes);
        return @ptrCast(@alignCast(self.memory.ptr + offset));
    }

    pub fn sideWord(self: *const Segment, side: u32, field_offset: u32) *u32 {
        std.debug.assert(side < 2);
        std.debug.assert(field_offset < @sizeOf(layout.SideControl));
        return self.word(layout.sideOffset(side) + field_offset);
    }

    pub fn peerPid(self: *const Segment) u32 {
        const h = self.header();
        return if (self.side == 0) @atomicLoad(u32, &h.peer_pid, .acquire) else h.owner_pid;
    }

    /// Rings the doorbell of `side` and wakes it if it sleeps.
    pub fn ring(self: *const Segment, side: u32) void {
        std.debug.assert(side < 2);
        const doorbell = self.sideWord(side, @offsetOf(layout.SideControl, "doorbell"));
        _ = @atomicRmw(u32, doorbell, .Add, 1, .seq_cst);
        wait.wake(doorbell);
    }
};

pub const Created = struct {
    segment: Segment,
    token: [layout.token_bytes]u8,
};

pub fn create(ring_bytes: u32) Error!Created {
    if (!layout.ringBytesValid(ring_bytes)) return error.InvalidArgument;
    var created: Created = undefined;
    try randomBytes(&created.token);
    var attempt: u32 = 0;
    const attempts_max = 8;
    while (attempt < attempts_max) : (attempt += 1) {
        var name_buffer: [layout.name_bytes_max]u8 = undefined;
        const name = try randomName(&name_buffer);
        created.segment = createNamed(name, ring_bytes) catch |err| switch (err) {
            error.AlreadyAttached => continue, // Name collision: draw another.
            else => return err,
        };
        initHeader(&created.segment, ring_bytes, &created.token);
        std.debug.assert(created.segment.side == 0);
        std.debug.assert(created.segment.memory.len == layout.segmentBytes(ring_bytes));
        return created;
    }
    return error.System;
}

/// The kernel's generator, called directly: std.crypto.random keeps its state
/// in thread-local storage, which crashes inside a dlopen()ed library.
fn randomBytes(buffer: []u8) Error!void {
    std.posix.getrandom(buffer) catch return error.System;
}

fn randomName(buffer: *[layout.name_bytes_max]u8) Error![]const u8 {
    var random: [12]u8 = undefined;
    try randomBytes(&random);
    const hex = std.fmt.bytesToHex(random, .lower);
    const prefix = layout.name_prefix;
    @memcpy(buffer[0..prefix.len], prefix);
    @memcpy(buffer[prefix.len..][0..hex.len], &hex);
    return buffer[0 .. prefix.len + hex.len];
}

fn initHeader(segment: *Segment, ring_bytes: u32, token: *const [layout.token_bytes]u8) void {
    std.debug.assert(layout.ringBytesValid(ring_bytes));
    std.debug.assert(segment.memory.len == layout.segmentBytes(ring_bytes));
    const h = segment.header();
    h.* = .{
        .magic = layout.magic,
        .layout_version = layout.layout_version,
        .header_bytes = layout.header_bytes,
        .segment_bytes = layout.segmentBytes(ring_bytes),
        .ring_bytes = ring_bytes,
        .flags = 0,
        .owner_pid = currentPid(),
        .peer_pid = 0,
        .created_unix_ms = @intCast(@max(0, std.time.milliTimestamp())),
        .token_sha256 = undefined,
    };
    std.crypto.hash.sha2.Sha256.hash(token, &h.token_sha256, .{});
}

/// Attaches as side 1. Validates everything an attacker or a stale build could
/// get wrong before touching more than the header.
pub fn attach(name: []const u8, token: []const u8) Error!Segment {
    if (!nameValid(name)) return error.InvalidArgument;
    if (token.len != layout.token_bytes) return error.TokenMismatch;
    var segment = try openNamed(name);
    errdefer unmap(&segment);
    const h = segment.header();
    if (h.magic != layout.magic) return error.BadMagic;
    if (h.layout_version != layout.layout_version) return error.BadLayoutVersion;
    if (!layout.ringBytesValid(h.ring_bytes)) return error.Truncated;
    if (h.segment_bytes != layout.segmentBytes(h.ring_bytes)) return error.Truncated;
    if (h.segment_bytes != segment.memory.len) return error.Truncated;
    var digest: [32]u8 = undefined;
    std.crypto.hash.sha2.Sha256.hash(token, &digest, .{});
    if (!std.crypto.timing_safe.eql([32]u8, digest, h.token_sha256)) return error.TokenMismatch;
    if (@cmpxchgStrong(u32, &h.peer_pid, 0, currentPid(), .seq_cst, .seq_cst) != null) {
        return error.AlreadyAttached;
    }
    unlink(&segment);
    segment.ring(0);
    std.debug.assert(segment.side == 1);
    std.debug.assert(segment.unlinked);
    return segment;
}

pub fn nameValid(name: []const u8) bool {
    if (name.len <= layout.name_prefix.len or name.len >= layout.name_bytes_max) return false;
    if (!std.mem.startsWith(u8, name, layout.name_prefix)) return false;
    for (name) |c| {
        if (!(std.ascii.isAlphanumeric(c) or c == '-' or c == '_')) return false;
    }
    return true;
}

/// Marks this side closed, wakes the peer so it notices, unmaps, and unlinks
/// the name if nobody attached.
pub fn close(segment: *Segment) void {
    markClosed(segment);
    release(segment);
}

/// The half of `close` the peer sees: the closed flag and a wake-up.
pub fn markClosed(segment: *Segment) void {
    std.debug.assert(segment.side < 2);
    const closed = segment.sideWord(segment.side, @offsetOf(layout.SideControl, "closed"));
    @atomicStore(u32, closed, 1, .seq_cst);
    segment.ring(1 - segment.side);
}

/// The half of `close` that frees this process's resources.
pub fn release(segment: *Segment) void {
    unlink(segment);
    unmap(segment);
}

pub fn unlink(segment: *Segment) void {
    if (segment.unlinked) return;
    segment.unlinked = true;
    if (is_windows) return; // A mapping's name dies with its last handle.
    var path: [layout.name_bytes_max + 1:0]u8 = undefined;
    _ = std.c.shm_unlink(shmPath(&path, segment.name()));
}

fn unmap(segment: *Segment) void {
    if (is_windows) {
        windows.unmap(segment);
    } else {
        posix.munmap(segment.memory);
    }
    segment.memory = &.{};
}

/// This process's pid as the outermost PID namespace that /proc shows sees it
/// (the first field of `NSpid`). A sandboxed plugin runs in a PID namespace of
/// its own (pshm-launch), where getpid() is a small number that means another
/// process, or none, to the host reading the segment header.
pub fn currentPid() u32 {
    if (is_windows) return windows.GetCurrentProcessId();
    const own: u32 = @intCast(std.c.getpid());
    if (builtin.os.tag != .linux) return own;
    return outerPid() orelse own;
}

fn outerPid() ?u32 {
    const file = std.fs.openFileAbsolute("/proc/self/status", .{}) catch return null;
    defer file.close();
    var status: [4096]u8 = undefined;
    const n = file.read(&status) catch return null;
    const key = "\nNSpid:";
    const at = std.mem.indexOf(u8, status[0..n], key) orelse return null;
    var fields = std.mem.tokenizeAny(u8, status[at + key.len .. n], " \t\n");
    return std.fmt.parseInt(u32, fields.next() orelse return null, 10) catch null;
}

/// True unless the process is known to be gone. A zombie counts as gone: it
/// will never touch the ring again even if its parent has not reaped it.
pub fn processAlive(pid: u32) bool {
    if (pid == 0) return true;
    if (is_windows) return windows.processAlive(pid);
    if (std.c.kill(@intCast(pid), 0) != 0) {
        if (std.posix.errno(@as(c_int, -1)) != .SRCH) return true;
        // No such pid in our PID namespace. Inside a sandbox's namespace the peer (the host) lives
        // outside it, under the pid /proc (the outer namespace's) shows: trust /proc then.
        if (builtin.os.tag != .linux) return false;
        return !linuxZombie(pid);
    }
    if (builtin.os.tag == .linux) return !linuxZombie(pid);
    return true;
}

fn linuxZombie(pid: u32) bool {
    var path_buffer: [64]u8 = undefined;
    const path = std.fmt.bufPrint(&path_buffer, "/proc/{d}/stat", .{pid}) catch return false;
    const file = std.fs.openFileAbsolute(path, .{}) catch return true;
    defer file.close();
    var stat: [512]u8 = undefined;
    const n = file.read(&stat) catch return false;
    const paren = std.mem.lastIndexOfScalar(u8, stat[0..n], ')') orelse return false;
    if (paren + 2 >= n) return false;
    const state = stat[paren + 2];
    return state == 'Z' or state == 'X';
}

/// Removes segments of ours whose creator and attacher are both gone. Returns
/// how many it removed. Only Linux can list segments; elsewhere it returns 0.
pub fn sweep() u32 {
    if (builtin.os.tag != .linux) return 0;
    var dir = std.fs.openDirAbsolute("/dev/shm", .{ .iterate = true }) catch return 0;
    defer dir.close();
    var removed: u32 = 0;
    var entries_seen: u32 = 0;
    const entries_max = 1 << 16;
    var it = dir.iterate();
    while (it.next() catch null) |entry| : (entries_seen += 1) {
        if (entries_seen >= entries_max) break;
        if (entry.kind != .file or !nameValid(entry.name)) continue;
        if (!orphaned(dir, entry.name)) continue;
        dir.deleteFile(entry.name) catch continue;
        removed += 1;
    }
    return removed;
}

fn orphaned(dir: std.fs.Dir, name: []const u8) bool {
    const file = dir.openFile(name, .{}) catch return false;
    defer file.close();
    var h: layout.Header = undefined;
    const n = file.preadAll(std.mem.asBytes(&h), 0) catch return false;
    // A segment whose header was never completed has no owner to ask; it is
    // left alone rather than guessed about.
    if (n != @sizeOf(layout.Header) or h.magic != layout.magic) return false;
    return !processAlive(h.owner_pid) and (h.peer_pid == 0 or !processAlive(h.peer_pid));
}

fn shmPath(buffer: *[layout.name_bytes_max + 1:0]u8, name: []const u8) [*:0]const u8 {
    std.debug.assert(name.len + 1 < buffer.len);
    buffer[0] = '/';
    @memcpy(buffer[1..][0..name.len], name);
    buffer[name.len + 1] = 0;
    return buffer;
}

fn segmentFromName(name: []const u8, memory: []align(page_align) u8, side: u32) Segment {
    var segment: Segment = .{
        .memory = memory,
        .side = side,
        .name_buffer = undefined,
        .name_len = @intCast(name.len),
        .unlinked = false,
        .mapping = undefined,
    };
    @memcpy(segment.name_buffer[0..name.len], name);
    return segment;
}

fn createNamed(name: []const u8, ring_bytes: u32) Error!Segment {
    const bytes = layout.segmentBytes(ring_bytes);
    if (is_windows) return windows.createNamed(name, bytes);
    var path: [layout.name_bytes_max + 1:0]u8 = undefined;
    const flags: std.c.O = .{ .ACCMODE = .RDWR, .CREAT = true, .EXCL = true, .NOFOLLOW = true, .CLOEXEC = true };
    const fd = std.c.shm_open(shmPath(&path, name), @bitCast(flags), 0o600);
    if (fd < 0) return switch (std.posix.errno(fd)) {
        .EXIST => error.AlreadyAttached,
        .ACCES => error.PermissionDenied,
        .NOMEM, .NOSPC => error.OutOfMemory,
        else => error.System,
    };
    defer posix.close(fd);
    errdefer _ = std.c.shm_unlink(&path);
    posix.ftruncate(fd, bytes) catch return error.OutOfMemory;
    const memory = mapFd(fd, bytes) catch |err| return err;
    return segmentFromName(name, memory, 0);
}

fn openNamed(name: []const u8) Error!Segment {
    if (is_windows) return windows.openNamed(name);
    var path: [layout.name_bytes_max + 1:0]u8 = undefined;
    const flags: std.c.O = .{ .ACCMODE = .RDWR, .NOFOLLOW = true, .CLOEXEC = true };
    const fd = std.c.shm_open(shmPath(&path, name), @bitCast(flags), 0);
    if (fd < 0) return switch (std.posix.errno(fd)) {
        .NOENT => error.NotFound,
        .ACCES, .PERM => error.PermissionDenied,
        else => error.System,
    };
    defer posix.close(fd);
    const stat = posix.fstat(fd) catch return error.System;
    if (stat.size < layout.header_bytes) return error.Truncated;
    const memory = try mapFd(fd, @intCast(stat.size));
    return segmentFromName(name, memory, 1);
}

fn mapFd(fd: posix.fd_t, bytes: u64) Error![]align(page_align) u8 {
    return posix.mmap(null, @intCast(bytes), posix.PROT.READ | posix.PROT.WRITE, .{ .TYPE = .SHARED }, fd, 0) catch |err| switch (err) {
        error.OutOfMemory => error.OutOfMemory,
        error.AccessDenied, error.PermissionDenied => error.PermissionDenied,
        else => error.System,
    };
}

/// Windows: a named file mapping backed by the page file. It compiles and
/// follows the same protocol; it is not exercised by this repository's CI.
const windows = struct {
    const w = std.os.windows;
    const PAGE_READWRITE: w.DWORD = 0x04;
    const FILE_MAP_ALL_ACCESS: w.DWORD = 0xF001F;
    const PROCESS_QUERY_LIMITED_INFORMATION: w.DWORD = 0x1000;
    const STILL_ACTIVE: w.DWORD = 259;

    extern "kernel32" fn CreateFileMappingA(file: w.HANDLE, attributes: ?*anyopaque, protect: w.DWORD, size_high: w.DWORD, size_low: w.DWORD, name: [*:0]const u8) callconv(.winapi) ?w.HANDLE;
    extern "kernel32" fn OpenFileMappingA(access: w.DWORD, inherit: w.BOOL, name: [*:0]const u8) callconv(.winapi) ?w.HANDLE;
    extern "kernel32" fn MapViewOfFile(mapping: w.HANDLE, access: w.DWORD, offset_high: w.DWORD, offset_low: w.DWORD, bytes: usize) callconv(.winapi) ?[*]align(page_align) u8;
    extern "kernel32" fn UnmapViewOfFile(base: *const anyopaque) callconv(.winapi) w.BOOL;
    extern "kernel32" fn VirtualQuery(address: ?*const anyopaque, info: *w.MEMORY_BASIC_INFORMATION, length: usize) callconv(.winapi) usize;
    extern "kernel32" fn OpenProcess(access: w.DWORD, inherit: w.BOOL, pid: w.DWORD) callconv(.winapi) ?w.HANDLE;
    extern "kernel32" fn GetExitCodeProcess(process: w.HANDLE, code: *w.DWORD) callconv(.winapi) w.BOOL;
    extern "kernel32" fn CloseHandle(handle: w.HANDLE) callconv(.winapi) w.BOOL;
    extern "kernel32" fn GetCurrentProcessId() callconv(.winapi) w.DWORD;

    fn mappingName(buffer: *[layout.name_bytes_max + 8:0]u8, name: []const u8) [*:0]const u8 {
        const prefix = "Local\\";
        @memcpy(buffer[0..prefix.len], prefix);
        @memcpy(buffer[prefix.len..][0..name.len], name);
        buffer[prefix.len + name.len] = 0;
        return buffer;
    }

    fn createNamed(name: []const u8, bytes: u64) Error!Segment {
        var buffer: [layout.name_bytes_max + 8:0]u8 = undefined;
        const invalid: w.HANDLE = @ptrFromInt(std.math.maxInt(usize));
        const mapping = CreateFileMappingA(invalid, null, PAGE_READWRITE, @truncate(bytes >> 32), @truncate(bytes), mappingName(&buffer, name)) orelse return error.System;
        if (w.GetLastError() == .ALREADY_EXISTS) {
            _ = CloseHandle(mapping);
            return error.AlreadyAttached;
        }
        const base = MapViewOfFile(mapping, FILE_MAP_ALL_ACCESS, 0, 0, @intCast(bytes)) orelse {
            _ = CloseHandle(mapping);
            return error.OutOfMemory;
        };
        var segment = segmentFromName(name, base[0..@intCast(bytes)], 0);
        segment.mapping = mapping;
        return segment;
    }

    fn openNamed(name: []const u8) Error!Segment {
        var buffer: [layout.name_bytes_max + 8:0]u8 = undefined;
        const mapping = OpenFileMappingA(FILE_MAP_ALL_ACCESS, 0, mappingName(&buffer, name)) orelse return error.NotFound;
        const base = MapViewOfFile(mapping, FILE_MAP_ALL_ACCESS, 0, 0, 0) orelse {
            _ = CloseHandle(mapping);
            return error.System;
        };
        var info: w.MEMORY_BASIC_INFORMATION = undefined;
        if (VirtualQuery(base, &info, @sizeOf(w.MEMORY_BASIC_INFORMATION)) == 0) {
            _ = UnmapViewOfFile(base);
            _ = CloseHandle(mapping);
            return error.System;
        }
        var segment = segmentFromName(name, base[0..info.RegionSize], 1);
        segment.mapping = mapping;
        return segment;
    }

    fn unmap(segment: *Segment) void {
        _ = UnmapViewOfFile(segment.memory.ptr);
        _ = CloseHandle(segment.mapping);
    }

    fn processAlive(pid: u32) bool {
        const process = OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, pid) orelse return false;
        defer _ = CloseHandle(process);
        var code: w.DWORD = 0;
        if (GetExitCodeProcess(process, &code) == 0) return true;
        return code == STILL_ACTIVE;
    }
};

test "create, attach with the token, and the name is gone after attach" {
    var created = try create(layout.ring_bytes_min);
    defer close(&created.segment);
    var peer = try attach(created.segment.name(), &created.token);
    defer close(&peer);
    try std.testing.expectEqual(currentPid(), created.segment.header().peer_pid);
    try std.testing.expectError(error.NotFound, attach(created.segment.name(), &created.token));
}

test "a wrong token is refused and the right one still works once" {
    var created = try create(layout.ring_bytes_min);
    defer close(&created.segment);
    var wrong = created.token;
    wrong[0] ^= 0xff;
    try std.testing.expectError(error.TokenMismatch, attach(created.segment.name(), &wrong));
    var peer = try attach(created.segment.name(), &created.token);
    close(&peer);
}

test "bad magic and bad layout version are told apart" {
    var created = try create(layout.ring_bytes_min);
    defer close(&created.segment);
    const h = created.segment.header();
    h.layout_version += 1;
    try std.testing.expectError(error.BadLayoutVersion, attach(created.segment.name(), &created.token));
    h.layout_version -= 1;
    h.magic ^= 1;
    try std.testing.expectError(error.BadMagic, attach(created.segment.name(), &created.token));
}

test "names are validated before any system call" {
    try std.testing.expect(!nameValid("../etc/passwd"));
    try std.testing.expect(!nameValid("pshm-"));
    try std.testing.expect(nameValid("pshm-0123abcd"));
    try std.testing.expectError(error.InvalidArgument, attach("x/../y", "t"));
}

test "the current process is alive and pid 0x7ffffff0 is not" {
    try std.testing.expect(processAlive(currentPid()));
    try std.testing.expect(!processAlive(0x7ffffff0));
}
