//! The one status enum that crosses the C ABI. `ok` is zero; every other value
//! is negated when a call returns it in a signed result (see pluginshm.h).

const std = @import("std");

pub const Status = enum(i32) {
    ok = 0,
    invalid_argument = 1,
    not_found = 2,
    permission_denied = 3,
    bad_magic = 4,
    bad_layout_version = 5,
    truncated = 6,
    token_mismatch = 7,
    already_attached = 8,
    too_many_handles = 9,
    out_of_memory = 10,
    system = 11,
    closed = 12,
    timed_out = 13,
    frame_corrupt = 14,
    message_too_large = 15,
    would_block = 16,
    unsupported = 17,
};

/// What each status means, for the C header's comments (generated) and messages.
pub fn describe(s: Status) []const u8 {
    return switch (s) {
        .ok => "success",
        .invalid_argument => "bad handle, name, size or option",
        .not_found => "no segment by that name (never made, or already attached)",
        .permission_denied => "segment belongs to another user",
        .bad_magic => "not a plugin-shm segment",
        .bad_layout_version => "made by an incompatible release",
        .truncated => "size fields disagree with the real size",
        .token_mismatch => "wrong one-time token",
        .already_attached => "the token was used already",
        .too_many_handles => "too many open segments in this process",
        .out_of_memory => "out of memory",
        .system => "an unexpected OS error",
        .closed => "the peer closed or died",
        .timed_out => "the wait timed out",
        .frame_corrupt => "the peer wrote an invalid frame",
        .message_too_large => "the message does not fit the buffer",
        .would_block => "nothing to read or no room to write now",
        .unsupported => "not supported on this platform",
    };
}

pub const Error = error{
    InvalidArgument,
    NotFound,
    PermissionDenied,
    BadMagic,
    BadLayoutVersion,
    Truncated,
    TokenMismatch,
    AlreadyAttached,
    TooManyHandles,
    OutOfMemory,
    System,
    Closed,
    TimedOut,
    FrameCorrupt,
    MessageTooLarge,
    WouldBlock,
    Unsupported,
};

/// Exhaustive on purpose: a new error must be given a status before it builds.
pub fn fromError(err: Error) Status {
    return switch (err) {
        error.InvalidArgument => .invalid_argument,
        error.NotFound => .not_found,
        error.PermissionDenied => .permission_denied,
        error.BadMagic => .bad_magic,
        error.BadLayoutVersion => .bad_layout_version,
        error.Truncated => .truncated,
        error.TokenMismatch => .token_mismatch,
        error.AlreadyAttached => .already_attached,
        error.TooManyHandles => .too_many_handles,
        error.OutOfMemory => .out_of_memory,
        error.System => .system,
        error.Closed => .closed,
        error.TimedOut => .timed_out,
        error.FrameCorrupt => .frame_corrupt,
        error.MessageTooLarge => .message_too_large,
        error.WouldBlock => .would_block,
        error.Unsupported => .unsupported,
    };
}

pub fn negated(err: Error) i32 {
    return -@intFromEnum(fromError(err));
}

test "every error maps to a distinct non-zero status" {
    var seen = std.StaticBitSet(32).initEmpty();
    inline for (@typeInfo(Error).error_set.?) |e| {
        const s = fromError(@field(Error, e.name));
        try std.testing.expect(s != .ok);
        try std.testing.expect(!seen.isSet(@intCast(@intFromEnum(s))));
        seen.set(@intCast(@intFromEnum(s)));
    }
}
