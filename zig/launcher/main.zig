//! pshm-launch: starts one plugin runtime inside an OS sandbox (Linux).
//!
//! Contract (argv; every option is `--name=value`, repeatable where noted, then `--`, then the
//! absolute path of the program and its arguments):
//!   --mode=required|best-effort  missing kernel features refuse (exit 125) or are only reported
//!   --ro=PATH      (repeatable)  read-only file or directory tree
//!   --rw=PATH      (repeatable)  read-write file or directory tree (no execute)
//!   --exec=PATH    (repeatable)  readable and executable (the runtime binary, `run` grants, ld.so)
//!   --list=PATH    (repeatable)  directory listing only, no file contents (where node_modules is looked up)
//!   --connect=PORT (repeatable)  TCP connect allowed to this port (needs --inet)
//!   --bind=PORT    (repeatable)  TCP bind allowed on this port (needs --inet)
//!   --inet                       AF_INET/AF_INET6 sockets allowed (AF_UNIX always is)
//!   --inet=tcp                   AF_INET/AF_INET6 stream (TCP) sockets only: no UDP, no raw (an inspector port)
//!   --data-mib=N --as-mib=N --nproc=N --nofile=N   resource limits (0 or absent: unchanged)
//!   --no-pidns                   skip the PID namespace (descendants are then killed via a subreaper)
//! Whatever the kernel lacks is reported on stderr, one line each:
//!   pshm-sandbox {"missing":"landlock","errno":38,"fatal":true}
//! Exit status: the program's, 128+N when it died of signal N, 125 when the sandbox could not be set up.

const std = @import("std");
const linux = std.os.linux;
const policy = @import("policy.zig");

const exit_setup_failed: u8 = 125;

var forward_to: linux.pid_t = 0;

pub fn main() u8 {
    var plan: policy.Plan = .{};
    const argv = std.os.argv;
    const program_index = policy.parse(&plan, argv[1..]) catch |err| {
        std.debug.print("pshm-launch: bad arguments ({s}); usage: pshm-launch [--ro=PATH]... -- /abs/program args...\n", .{@errorName(err)});
        return exit_setup_failed;
    };
    const program_argv: [*:null]const ?[*:0]const u8 = @ptrCast(argv.ptr + 1 + program_index);

    // Die with the host, even when it is SIGKILLed.
    _ = linux.prctl(@intFromEnum(linux.PR.SET_PDEATHSIG), linux.SIG.KILL, 0, 0, 0);

    var in_pidns = false;
    if (plan.pidns) {
        in_pidns = enterPidNamespace();
        if (!in_pidns) {
            if (!report(&plan, "pidns", linux.E.PERM)) return exit_setup_failed;
        }
    }
    if (!in_pidns) {
        _ = linux.prctl(@intFromEnum(linux.PR.SET_CHILD_SUBREAPER), 1, 0, 0, 0);
    }

    const child = spawnSandboxed(&plan, program_argv, in_pidns) catch return exit_setup_failed;
    forward_to = child;
    installForwarding();
    const status = waitFor(child);
    // Everything the plugin started dies with it, setsid or not.
    if (!in_pidns) killDescendants();
    return status;
}

/// Report a missing kernel feature; returns whether the launch may go on.
fn report(plan: *const policy.Plan, feature: []const u8, errno: linux.E) bool {
    const fatal = plan.mode == .required;
    std.debug.print("pshm-sandbox {{\"missing\":\"{s}\",\"errno\":{d},\"fatal\":{}}}\n", .{ feature, @intFromEnum(errno), fatal });
    return !fatal;
}

/// unshare a PID namespace (with a user namespace when not root), then fork: the child is the
/// namespace's init; when it exits the kernel kills every process left in the namespace. This
/// process stays outside as the pid the host knows, and returns in the child's place only in
/// the child (true) — the parent waits and exits with the child's status.
fn enterPidNamespace() bool {
    const uid = linux.getuid();
    const gid = linux.getgid();
    var flags: usize = linux.CLONE.NEWPID;
    if (uid != 0) flags |= linux.CLONE.NEWUSER;
    if (linux.E.init(linux.unshare(flags)) != .SUCCESS) return false;
    if (uid != 0) {
        writeProc("/proc/self/setgroups", "deny");
        var buffer: [64]u8 = undefined;
        writeProc("/proc/self/uid_map", std.fmt.bufPrint(&buffer, "{d} {d} 1", .{ uid, uid }) catch unreachable);
        writeProc("/proc/self/gid_map", std.fmt.bufPrint(&buffer, "{d} {d} 1", .{ gid, gid }) catch unreachable);
    }
    const pid: isize = @bitCast(linux.fork());
    if (pid < 0) return false;
    if (pid == 0) {
        // Namespace init: dies when the outer launcher dies.
        _ = linux.prctl(@intFromEnum(linux.PR.SET_PDEATHSIG), linux.SIG.KILL, 0, 0, 0);
        return true;
    }
    forward_to = @intCast(pid);
    installForwarding();
    linux.exit(waitFor(@intCast(pid)));
}

fn writeProc(path: [*:0]const u8, text: []const u8) void {
    const fd: isize = @bitCast(linux.open(path, .{ .ACCMODE = .WRONLY }, 0));
    if (fd < 0) return;
    defer _ = linux.close(@intCast(fd));
    _ = linux.write(@intCast(fd), text.ptr, text.len);
}

fn spawnSandboxed(plan: *const policy.Plan, program_argv: [*:null]const ?[*:0]const u8, in_pidns: bool) !linux.pid_t {
    _ = in_pidns;
    const pid: isize = @bitCast(linux.fork());
    if (pid < 0) {
        std.debug.print("pshm-launch: fork failed (errno {d})\n", .{-pid});
        return error.ForkFailed;
    }
    if (pid > 0) return @intCast(pid);
    _ = linux.prctl(@intFromEnum(linux.PR.SET_PDEATHSIG), linux.SIG.KILL, 0, 0, 0);
    applySandbox(plan) catch linux.exit_group(exit_setup_failed);
    const envp: [*:null]const ?[*:0]const u8 = @ptrCast(std.os.environ.ptr);
    const errno = linux.E.init(linux.execve(program_argv[0].?, program_argv, envp));
    std.debug.print("pshm-launch: cannot exec {s} (errno {d}); give an absolute path that --exec grants\n", .{ program_argv[0].?, @intFromEnum(errno) });
    linux.exit_group(exit_setup_failed);
}

fn applySandbox(plan: *const policy.Plan) !void {
    try setLimits(plan);
    if (linux.E.init(linux.prctl(@intFromEnum(linux.PR.SET_NO_NEW_PRIVS), 1, 0, 0, 0)) != .SUCCESS) {
        if (!report(plan, "no_new_privs", linux.E.INVAL)) return error.Refused;
    }
    policy.applyLandlock(plan) catch |err| switch (err) {
        error.LandlockMissing => if (!report(plan, "landlock", linux.E.NOSYS)) return error.Refused,
        error.LandlockNetMissing => if (!report(plan, "landlock_net", linux.E.NOSYS)) return error.Refused,
        else => {
            std.debug.print("pshm-launch: landlock ruleset failed ({s}); check that every granted path exists\n", .{@errorName(err)});
            return error.Refused;
        },
    };
    policy.applySeccomp(plan) catch {
        if (!report(plan, "seccomp", linux.E.NOSYS)) return error.Refused;
    };
}

fn setLimits(plan: *const policy.Plan) !void {
    const mib: u64 = 1024 * 1024;
    const pairs = [_]struct { linux.rlimit_resource, u64 }{
        .{ .DATA, plan.data_mib * mib },
        .{ .AS, plan.as_mib * mib },
        .{ .NPROC, plan.nproc },
        .{ .NOFILE, plan.nofile },
    };
    for (pairs) |pair| {
        if (pair[1] == 0) continue;
        const limit: linux.rlimit = .{ .cur = pair[1], .max = pair[1] };
        const errno = linux.E.init(linux.setrlimit(pair[0], &limit));
        if (errno != .SUCCESS) {
            std.debug.print("pshm-launch: setrlimit {s} failed (errno {d})\n", .{ @tagName(pair[0]), @intFromEnum(errno) });
            return error.Refused;
        }
    }
}

fn forwardSignal(sig: i32) callconv(.c) void {
    if (forward_to > 0) _ = linux.kill(forward_to, sig);
}

fn installForwarding() void {
    const action: linux.Sigaction = .{
        .handler = .{ .handler = forwardSignal },
        .mask = linux.sigemptyset(),
        .flags = linux.SA.RESTART,
    };
    for ([_]u8{ linux.SIG.TERM, linux.SIG.INT, linux.SIG.HUP, linux.SIG.QUIT, linux.SIG.USR1, linux.SIG.USR2 }) |sig| {
        _ = linux.sigaction(sig, &action, null);
    }
}

/// Reaps every child (orphans reparent here) until `pid` exits; returns its exit code.
fn waitFor(pid: linux.pid_t) u8 {
    while (true) {
        var status: u32 = 0;
        const rc: isize = @bitCast(linux.waitpid(-1, &status, 0));
        if (rc < 0) {
            if (linux.E.init(@bitCast(rc)) == .INTR) continue;
            return exit_setup_failed;
        }
        if (rc != pid) continue;
        if (linux.W.IFEXITED(status)) return linux.W.EXITSTATUS(status);
        if (linux.W.IFSIGNALED(status)) return @intCast(128 + linux.W.TERMSIG(status));
    }
}

/// Without a PID namespace: orphans reparented to this subreaper are killed (with their process
/// groups), round after round, until none is left.
fn killDescendants() void {
    const rounds_max = 64;
    var round: u32 = 0;
    while (round < rounds_max) : (round += 1) {
        const self = linux.getpid();
        var found = false;
        var dir = std.fs.openDirAbsolute("/proc", .{ .iterate = true }) catch return;
        defer dir.close();
        var it = dir.iterate();
        while (it.next() catch null) |entry| {
            const pid = std.fmt.parseInt(linux.pid_t, entry.name, 10) catch continue;
            if (parentOf(pid) == self) {
                _ = linux.kill(pid, linux.SIG.KILL);
                found = true;
            }
        }
        if (!found) return;
        var status: u32 = 0;
        while (@as(isize, @bitCast(linux.waitpid(-1, &status, linux.W.NOHANG))) > 0) {}
        // Let their own orphans reparent here before the next round.
        std.Thread.sleep(std.time.ns_per_ms);
    }
}

fn parentOf(pid: linux.pid_t) linux.pid_t {
    var path_buffer: [64]u8 = undefined;
    const path = std.fmt.bufPrint(&path_buffer, "/proc/{d}/stat", .{pid}) catch return 0;
    var stat_buffer: [512]u8 = undefined;
    const file = std.fs.openFileAbsolute(path, .{}) catch return 0;
    defer file.close();
    const len = file.read(&stat_buffer) catch return 0;
    return policy.parseParentPid(stat_buffer[0..len]) orelse 0;
}

test {
    _ = policy;
}
