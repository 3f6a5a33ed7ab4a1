//! The launch plan (parsed from argv), the Landlock ruleset and the seccomp filter built from it.
//! Pure parts (parsing, the BPF program) are unit-tested; applying them needs the kernel.

const std = @import("std");
const linux = std.os.linux;
const builtin = @import("builtin");

/// Bounds of one plan: more grants than this is a caller bug, not a plugin's wish.
pub const paths_max = 128;
pub const ports_max = 64;

pub const Mode = enum { required, best_effort };

/// Which internet sockets a plugin may create: none, TCP only (an inspector's listening port), or any.
pub const Inet = enum { none, tcp, all };

pub const Plan = struct {
    mode: Mode = .required,
    ro: [paths_max][*:0]const u8 = undefined,
    ro_count: usize = 0,
    rw: [paths_max][*:0]const u8 = undefined,
    rw_count: usize = 0,
    exec: [paths_max][*:0]const u8 = undefined,
    exec_count: usize = 0,
    /// Directories whose entries may be listed (names only, no file contents): runtimes that resolve imports
    /// by listing each ancestor directory (Bun) need it on the directories that hold node_modules.
    list: [paths_max][*:0]const u8 = undefined,
    list_count: usize = 0,
    connect: [ports_max]u16 = undefined,
    connect_count: usize = 0,
    bind: [ports_max]u16 = undefined,
    bind_count: usize = 0,
    inet: Inet = .none,
    pidns: bool = true,
    data_mib: u64 = 0,
    as_mib: u64 = 0,
    nproc: u64 = 0,
    nofile: u64 = 0,
};

/// Parses options up to `--`; returns the index (in `args`) of the program.
pub fn parse(plan: *Plan, args: []const [*:0]const u8) !usize {
    for (args, 0..) |arg_z, index| {
        const arg = std.mem.span(arg_z);
        if (std.mem.eql(u8, arg, "--")) {
            if (index + 1 >= args.len) return error.MissingProgram;
            if (args[index + 1][0] != '/') return error.ProgramNotAbsolute;
            return index + 1;
        }
        if (std.mem.eql(u8, arg, "--inet")) {
            plan.inet = .all;
        } else if (std.mem.eql(u8, arg, "--inet=tcp")) {
            // The wider grant wins whatever the order.
            if (plan.inet == .none) plan.inet = .tcp;
        } else if (std.mem.eql(u8, arg, "--no-pidns")) {
            plan.pidns = false;
        } else if (value(arg_z, "--mode=")) |v| {
            const mode = std.mem.span(v);
            if (std.mem.eql(u8, mode, "required")) {
                plan.mode = .required;
            } else if (std.mem.eql(u8, mode, "best-effort")) {
                plan.mode = .best_effort;
            } else return error.BadMode;
        } else if (value(arg_z, "--ro=")) |v| {
            try push([*:0]const u8, &plan.ro, &plan.ro_count, v);
        } else if (value(arg_z, "--rw=")) |v| {
            try push([*:0]const u8, &plan.rw, &plan.rw_count, v);
        } else if (value(arg_z, "--exec=")) |v| {
            try push([*:0]const u8, &plan.exec, &plan.exec_count, v);
        } else if (value(arg_z, "--list=")) |v| {
            try push([*:0]const u8, &plan.list, &plan.list_count, v);
        } else if (value(arg_z, "--connect=")) |v| {
            try push(u16, &plan.connect, &plan.connect_count, try std.fmt.parseInt(u16, std.mem.span(v), 10));
        } else if (value(arg_z, "--bind=")) |v| {
            try push(u16, &plan.bind, &plan.bind_count, try std.fmt.parseInt(u16, std.mem.span(v), 10));
        } else if (value(arg_z, "--data-mib=")) |v| {
            plan.data_mib = try std.fmt.parseInt(u64, std.mem.span(v), 10);
        } else if (value(arg_z, "--as-mib=")) |v| {
            plan.as_mib = try std.fmt.parseInt(u64, std.mem.span(v), 10);
        } else if (value(arg_z, "--nproc=")) |v| {
            plan.nproc = try std.fmt.parseInt(u64, std.mem.span(v), 10);
        } else if (value(arg_z, "--nofile=")) |v| {
            plan.nofile = try std.fmt.parseInt(u64, std.mem.span(v), 10);
        } else return error.UnknownOption;
    }
    return error.MissingProgram;
}

fn value(arg: [*:0]const u8, prefix: []const u8) ?[*:0]const u8 {
    const span = std.mem.span(arg);
    if (!std.mem.startsWith(u8, span, prefix)) return null;
    if (span.len == prefix.len) return null;
    return arg + prefix.len;
}

fn push(comptime T: type, list: anytype, count: *usize, item: T) !void {
    if (count.* >= list.len) return error.TooManyGrants;
    list[count.*] = item;
    count.* += 1;
}

// ---- Landlock (uapi/linux/landlock.h) ----

const fs_execute: u64 = 1 << 0;
const fs_write_file: u64 = 1 << 1;
const fs_read_file: u64 = 1 << 2;
const fs_read_dir: u64 = 1 << 3;
const fs_refer: u64 = 1 << 13;
const fs_truncate: u64 = 1 << 14;
const fs_ioctl_dev: u64 = 1 << 15;
/// Rights that apply to a regular file; others on a file rule are EINVAL.
const fs_file_rights: u64 = fs_execute | fs_write_file | fs_read_file | fs_truncate | fs_ioctl_dev;
const net_bind_tcp: u64 = 1 << 0;
const net_connect_tcp: u64 = 1 << 1;
const scope_abstract_unix: u64 = 1 << 0;
const scope_signal: u64 = 1 << 1;
const create_ruleset_version: u32 = 1 << 0;
const rule_path_beneath: u32 = 1;
const rule_net_port: u32 = 2;

const RulesetAttr = extern struct { handled_access_fs: u64, handled_access_net: u64, scoped: u64 };
const PathBeneathAttr = packed struct { allowed_access: u64, parent_fd: i32 };
const NetPortAttr = extern struct { allowed_access: u64, port: u64 };

/// The filesystem rights Landlock knows at `abi` (each ABI adds some).
pub fn handledFs(abi: u32) u64 {
    std.debug.assert(abi >= 1);
    var mask: u64 = (1 << 13) - 1;
    if (abi >= 2) mask |= fs_refer;
    if (abi >= 3) mask |= fs_truncate;
    if (abi >= 5) mask |= fs_ioctl_dev;
    return mask;
}

pub fn applyLandlock(plan: *const Plan) !void {
    const abi_rc: isize = @bitCast(linux.syscall3(.landlock_create_ruleset, 0, 0, create_ruleset_version));
    if (abi_rc <= 0) return error.LandlockMissing;
    const abi: u32 = @intCast(abi_rc);
    const fs = handledFs(abi);
    const attr: RulesetAttr = .{
        .handled_access_fs = fs,
        .handled_access_net = if (abi >= 4) net_bind_tcp | net_connect_tcp else 0,
        .scoped = if (abi >= 6) scope_abstract_unix | scope_signal else 0,
    };
    const size: usize = if (abi >= 6) @sizeOf(RulesetAttr) else 2 * @sizeOf(u64);
    const ruleset_rc: isize = @bitCast(linux.syscall3(.landlock_create_ruleset, @intFromPtr(&attr), size, 0));
    if (ruleset_rc < 0) return error.LandlockRuleset;
    const ruleset: i32 = @intCast(ruleset_rc);
    defer _ = linux.close(ruleset);

    const read = fs_read_file | fs_read_dir;
    const write = fs & ~fs_execute;
    for (plan.ro[0..plan.ro_count]) |path| try addPath(ruleset, path, read & fs);
    for (plan.rw[0..plan.rw_count]) |path| try addPath(ruleset, path, write);
    for (plan.exec[0..plan.exec_count]) |path| try addPath(ruleset, path, (read | fs_execute) & fs);
    for (plan.list[0..plan.list_count]) |path| try addPath(ruleset, path, fs_read_dir & fs);
    if (abi >= 4) {
        for (plan.connect[0..plan.connect_count]) |port| try addPort(ruleset, port, net_connect_tcp);
        for (plan.bind[0..plan.bind_count]) |port| try addPort(ruleset, port, net_bind_tcp);
    }
    if (linux.E.init(linux.syscall2(.landlock_restrict_self, @intCast(ruleset), 0)) != .SUCCESS) return error.LandlockRestrict;
    // Without net rules the kernel cannot confine TCP: then only the seccomp family check holds.
    if (abi < 4 and (plan.connect_count > 0 or plan.bind_count > 0)) return error.LandlockNetMissing;
}

fn addPath(ruleset: i32, path: [*:0]const u8, rights: u64) !void {
    const fd_rc: isize = @bitCast(linux.open(path, .{ .PATH = true, .CLOEXEC = true }, 0));
    if (fd_rc < 0) {
        // A granted path that does not exist grants nothing; it is not an error for the plugin.
        if (linux.E.init(@bitCast(fd_rc)) == .NOENT) return;
        std.debug.print("pshm-launch: cannot open granted path {s} (errno {d})\n", .{ path, -fd_rc });
        return error.LandlockPath;
    }
    const fd: i32 = @intCast(fd_rc);
    defer _ = linux.close(fd);
    var st: linux.Stat = undefined;
    if (linux.E.init(linux.fstat(fd, &st)) != .SUCCESS) return error.LandlockPath;
    const is_dir = (st.mode & linux.S.IFMT) == linux.S.IFDIR;
    const attr: PathBeneathAttr = .{ .allowed_access = if (is_dir) rights else rights & fs_file_rights, .parent_fd = fd };
    const rc = linux.syscall4(.landlock_add_rule, @intCast(ruleset), rule_path_beneath, @intFromPtr(&attr), 0);
    if (linux.E.init(rc) != .SUCCESS) {
        std.debug.print("pshm-launch: landlock rule for {s} refused (errno {d})\n", .{ path, @intFromEnum(linux.E.init(rc)) });
        return error.LandlockPath;
    }
}

fn addPort(ruleset: i32, port: u16, rights: u64) !void {
    const attr: NetPortAttr = .{ .allowed_access = rights, .port = port };
    const rc = linux.syscall4(.landlock_add_rule, @intCast(ruleset), rule_net_port, @intFromPtr(&attr), 0);
    if (linux.E.init(rc) != .SUCCESS) return error.LandlockPort;
}

// ---- seccomp ----

const SockFilter = extern struct { code: u16, jt: u8, jf: u8, k: u32 };
const SockFprog = extern struct { len: u16, filter: [*]const SockFilter };

const bpf_ld_w_abs: u16 = 0x00 | 0x00 | 0x20;
const bpf_jeq_k: u16 = 0x05 | 0x10 | 0x00;
const bpf_jge_k: u16 = 0x05 | 0x30 | 0x00;
const bpf_jset_k: u16 = 0x05 | 0x40 | 0x00;
const bpf_ret_k: u16 = 0x06 | 0x00;
const bpf_alu_and_k: u16 = 0x04 | 0x50 | 0x00;
const ret_allow: u32 = 0x7fff0000;
const ret_kill_process: u32 = 0x80000000;
const ret_errno: u32 = 0x00050000;
const offset_nr = 0;
const offset_arch = 4;
const offset_arg0 = 16;
/// The low 32 bits of the second argument (little-endian targets only, see audit_arch).
const offset_arg1 = 24;

const audit_arch: u32 = switch (builtin.cpu.arch) {
    .x86_64 => 0xC000003E,
    .aarch64 => 0xB7 | 0x80000000 | 0x40000000,
    else => @compileError("pshm-launch: seccomp arch not supported"),
};

/// Syscalls no plugin needs: debugging or reading other processes, kernel and mount
/// administration, keyrings, eBPF, perf, namespaces (escaping the launcher's), io_uring
/// (it would bypass the socket family check).
const denied_names = [_][]const u8{
    "ptrace",          "process_vm_readv", "process_vm_writev", "mount",           "umount2",
    "pivot_root",      "chroot",           "bpf",               "kexec_load",      "kexec_file_load",
    "keyctl",          "add_key",          "request_key",       "perf_event_open", "unshare",
    "setns",           "init_module",      "finit_module",      "delete_module",   "swapon",
    "swapoff",         "reboot",           "open_by_handle_at", "userfaultfd",     "fsopen",
    "fsmount",         "move_mount",       "open_tree",         "fspick",          "mount_setattr",
    "pidfd_getfd",     "kcmp",             "io_uring_setup",    "io_uring_enter",  "io_uring_register",
    "process_madvise", "iopl",             "ioperm",
};

/// Namespace flags refused in clone(): a plugin must not leave the launcher's namespaces.
const clone_namespace_flags: u32 = linux.CLONE.NEWNS | linux.CLONE.NEWCGROUP | linux.CLONE.NEWUTS |
    linux.CLONE.NEWIPC | linux.CLONE.NEWUSER | linux.CLONE.NEWPID | linux.CLONE.NEWNET;

pub const filter_max = 160;
const af_unix = 1;
const af_inet = 2;
const af_inet6 = 10;
const errno_perm = 1;
const errno_nosys = 38;
const errno_afnosupport = 97;
const sock_stream = 1;
/// socket()'s type argument without SOCK_NONBLOCK and SOCK_CLOEXEC.
const sock_type_mask = 0xf;

fn nr(comptime name: []const u8) ?u32 {
    if (!@hasField(linux.SYS, name)) return null;
    return @intCast(@intFromEnum(@field(linux.SYS, name)));
}

fn stmt(code: u16, k: u32) SockFilter {
    return .{ .code = code, .jt = 0, .jf = 0, .k = k };
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) SockFilter {
    return .{ .code = code, .jt = jt, .jf = jf, .k = k };
}

/// Builds the filter into `out`; returns its length.
pub fn buildFilter(out: *[filter_max]SockFilter, inet: Inet) usize {
    var len: usize = 0;
    const emit = struct {
        fn f(o: *[filter_max]SockFilter, l: *usize, insn: SockFilter) void {
            std.debug.assert(l.* < filter_max);
            o[l.*] = insn;
            l.* += 1;
        }
    }.f;
    emit(out, &len, stmt(bpf_ld_w_abs, offset_arch));
    emit(out, &len, jump(bpf_jeq_k, audit_arch, 1, 0));
    emit(out, &len, stmt(bpf_ret_k, ret_kill_process));
    emit(out, &len, stmt(bpf_ld_w_abs, offset_nr));
    if (builtin.cpu.arch == .x86_64) {
        // x32 syscall numbers would dodge every check below.
        emit(out, &len, jump(bpf_jge_k, 0x40000000, 0, 1));
        emit(out, &len, stmt(bpf_ret_k, ret_errno | errno_perm));
    }
    inline for (denied_names) |name| {
        if (nr(name)) |number| {
            const errno: u32 = if (std.mem.startsWith(u8, name, "io_uring")) errno_nosys else errno_perm;
            emit(out, &len, jump(bpf_jeq_k, number, 0, 1));
            emit(out, &len, stmt(bpf_ret_k, ret_errno | errno));
        }
    }
    // clone3 passes flags in memory seccomp cannot read: ENOSYS makes libc fall back to clone.
    if (nr("clone3")) |number| {
        emit(out, &len, jump(bpf_jeq_k, number, 0, 1));
        emit(out, &len, stmt(bpf_ret_k, ret_errno | errno_nosys));
    }
    emit(out, &len, jump(bpf_jeq_k, nr("clone").?, 0, 4));
    emit(out, &len, stmt(bpf_ld_w_abs, offset_arg0));
    emit(out, &len, jump(bpf_jset_k, clone_namespace_flags, 0, 1));
    emit(out, &len, stmt(bpf_ret_k, ret_errno | errno_perm));
    emit(out, &len, stmt(bpf_ret_k, ret_allow));
    // socket and socketpair: AF_UNIX always, AF_INET/AF_INET6 only with the net grant (or, for an
    // inspector's port, of type SOCK_STREAM only).
    for ([_]u32{ nr("socket").?, nr("socketpair").? }) |number| {
        switch (inet) {
            .none, .all => {
                const families_count: u8 = if (inet == .all) 3 else 1;
                const block_len: u8 = 1 + families_count + 2;
                emit(out, &len, jump(bpf_jeq_k, number, 0, block_len));
                emit(out, &len, stmt(bpf_ld_w_abs, offset_arg0));
                const families = [_]u32{ af_unix, af_inet, af_inet6 };
                for (families[0..families_count], 0..) |family, index| {
                    emit(out, &len, jump(bpf_jeq_k, family, families_count - @as(u8, @intCast(index)), 0));
                }
                emit(out, &len, stmt(bpf_ret_k, ret_errno | errno_afnosupport));
                emit(out, &len, stmt(bpf_ret_k, ret_allow));
            },
            .tcp => {
                // 0: syscall?  1: family  2-4: unix → allow, inet/inet6 → type check  5: refuse the family
                // 6-8: type == SOCK_STREAM?  9: refuse the type  10: allow
                emit(out, &len, jump(bpf_jeq_k, number, 0, 10));
                emit(out, &len, stmt(bpf_ld_w_abs, offset_arg0));
                emit(out, &len, jump(bpf_jeq_k, af_unix, 7, 0));
                emit(out, &len, jump(bpf_jeq_k, af_inet, 2, 0));
                emit(out, &len, jump(bpf_jeq_k, af_inet6, 1, 0));
                emit(out, &len, stmt(bpf_ret_k, ret_errno | errno_afnosupport));
                emit(out, &len, stmt(bpf_ld_w_abs, offset_arg1));
                emit(out, &len, stmt(bpf_alu_and_k, sock_type_mask));
                emit(out, &len, jump(bpf_jeq_k, sock_stream, 1, 0));
                emit(out, &len, stmt(bpf_ret_k, ret_errno | errno_perm));
                emit(out, &len, stmt(bpf_ret_k, ret_allow));
            },
        }
    }
    emit(out, &len, stmt(bpf_ret_k, ret_allow));
    return len;
}

pub fn applySeccomp(plan: *const Plan) !void {
    var filter: [filter_max]SockFilter = undefined;
    const len = buildFilter(&filter, plan.inet);
    const prog: SockFprog = .{ .len = @intCast(len), .filter = &filter };
    const set_mode_filter = 1;
    if (linux.E.init(linux.seccomp(set_mode_filter, 0, &prog)) != .SUCCESS) return error.SeccompFailed;
}

/// The ppid field of /proc/PID/stat (after the parenthesised command, which may hold spaces).
pub fn parseParentPid(stat: []const u8) ?linux.pid_t {
    const close = std.mem.lastIndexOfScalar(u8, stat, ')') orelse return null;
    var fields = std.mem.tokenizeScalar(u8, stat[close + 1 ..], ' ');
    _ = fields.next() orelse return null; // state
    const ppid = fields.next() orelse return null;
    return std.fmt.parseInt(linux.pid_t, ppid, 10) catch null;
}

// ---- tests ----

/// A tiny BPF interpreter for the subset buildFilter emits, so the filter's decisions are tested.
fn run(filter: []const SockFilter, arch: u32, number: u32, arg0: u32) u32 {
    return run2(filter, arch, number, arg0, 0);
}

fn run2(filter: []const SockFilter, arch: u32, number: u32, arg0: u32, arg1: u32) u32 {
    var pc: usize = 0;
    var acc: u32 = 0;
    while (pc < filter.len) {
        const insn = filter[pc];
        switch (insn.code) {
            bpf_ld_w_abs => acc = switch (insn.k) {
                offset_nr => number,
                offset_arch => arch,
                offset_arg0 => arg0,
                offset_arg1 => arg1,
                else => unreachable,
            },
            bpf_alu_and_k => acc &= insn.k,
            bpf_ret_k => return insn.k,
            bpf_jeq_k, bpf_jge_k, bpf_jset_k => {
                const taken = switch (insn.code) {
                    bpf_jeq_k => acc == insn.k,
                    bpf_jge_k => acc >= insn.k,
                    else => acc & insn.k != 0,
                };
                pc += if (taken) insn.jt else insn.jf;
            },
            else => unreachable,
        }
        pc += 1;
    }
    unreachable;
}

test "filter denies ptrace and process_vm_readv, allows read" {
    var filter: [filter_max]SockFilter = undefined;
    const len = buildFilter(&filter, .none);
    try std.testing.expectEqual(ret_errno | errno_perm, run(filter[0..len], audit_arch, nr("ptrace").?, 0));
    try std.testing.expectEqual(ret_errno | errno_perm, run(filter[0..len], audit_arch, nr("process_vm_readv").?, 0));
    try std.testing.expectEqual(ret_allow, run(filter[0..len], audit_arch, nr("read").?, 0));
    try std.testing.expectEqual(ret_kill_process, run(filter[0..len], 0x40000003, nr("read").?, 0));
}

test "filter allows AF_UNIX always and AF_INET only with inet" {
    var filter: [filter_max]SockFilter = undefined;
    const closed = buildFilter(&filter, .none);
    try std.testing.expectEqual(ret_allow, run(filter[0..closed], audit_arch, nr("socket").?, af_unix));
    try std.testing.expectEqual(ret_errno | errno_afnosupport, run(filter[0..closed], audit_arch, nr("socket").?, af_inet));
    try std.testing.expectEqual(ret_errno | errno_afnosupport, run(filter[0..closed], audit_arch, nr("socketpair").?, af_inet6));
    const open = buildFilter(&filter, .all);
    try std.testing.expectEqual(ret_allow, run(filter[0..open], audit_arch, nr("socket").?, af_inet));
    try std.testing.expectEqual(ret_allow, run(filter[0..open], audit_arch, nr("socket").?, af_inet6));
    try std.testing.expectEqual(ret_errno | errno_afnosupport, run(filter[0..open], audit_arch, nr("socket").?, 16));
}

test "filter with inet=tcp allows TCP sockets only, whatever the flags" {
    var filter: [filter_max]SockFilter = undefined;
    const len = buildFilter(&filter, .tcp);
    const socket = nr("socket").?;
    const sock_dgram = 2;
    const sock_raw = 3;
    const nonblock_cloexec = 0o4000 | 0o2000000;
    try std.testing.expectEqual(ret_allow, run2(filter[0..len], audit_arch, socket, af_unix, sock_dgram));
    try std.testing.expectEqual(ret_allow, run2(filter[0..len], audit_arch, socket, af_inet, sock_stream));
    try std.testing.expectEqual(ret_allow, run2(filter[0..len], audit_arch, socket, af_inet6, sock_stream | nonblock_cloexec));
    try std.testing.expectEqual(ret_errno | errno_perm, run2(filter[0..len], audit_arch, socket, af_inet, sock_dgram));
    try std.testing.expectEqual(ret_errno | errno_perm, run2(filter[0..len], audit_arch, socket, af_inet6, sock_dgram | nonblock_cloexec));
    try std.testing.expectEqual(ret_errno | errno_perm, run2(filter[0..len], audit_arch, socket, af_inet, sock_raw));
    try std.testing.expectEqual(ret_errno | errno_afnosupport, run2(filter[0..len], audit_arch, socket, 16, sock_stream));
    try std.testing.expectEqual(ret_allow, run2(filter[0..len], audit_arch, nr("read").?, 0, 0));
}

test "filter refuses namespace flags in clone but allows threads" {
    var filter: [filter_max]SockFilter = undefined;
    const len = buildFilter(&filter, .none);
    try std.testing.expectEqual(ret_errno | errno_perm, run(filter[0..len], audit_arch, nr("clone").?, linux.CLONE.NEWUSER));
    try std.testing.expectEqual(ret_allow, run(filter[0..len], audit_arch, nr("clone").?, linux.CLONE.VM | linux.CLONE.THREAD));
    try std.testing.expectEqual(ret_errno | errno_nosys, run(filter[0..len], audit_arch, nr("clone3").?, 0));
}

test "parse reads grants up to -- and refuses a relative program" {
    var plan: Plan = .{};
    const args = [_][*:0]const u8{ "--ro=/etc", "--rw=/tmp/x", "--list=/srv", "--connect=8080", "--inet", "--nproc=8", "--mode=best-effort", "--", "/bin/true" };
    try std.testing.expectEqual(@as(usize, 8), try parse(&plan, &args));
    try std.testing.expectEqual(@as(usize, 1), plan.list_count);
    try std.testing.expectEqual(@as(usize, 1), plan.ro_count);
    try std.testing.expectEqual(@as(u16, 8080), plan.connect[0]);
    try std.testing.expectEqual(Inet.all, plan.inet);
    var tcp_plan: Plan = .{};
    const tcp_args = [_][*:0]const u8{ "--inet=tcp", "--bind=9229", "--", "/bin/true" };
    _ = try parse(&tcp_plan, &tcp_args);
    try std.testing.expectEqual(Inet.tcp, tcp_plan.inet);
    const both = [_][*:0]const u8{ "--inet", "--inet=tcp", "--", "/bin/true" };
    _ = try parse(&tcp_plan, &both);
    try std.testing.expectEqual(Inet.all, tcp_plan.inet);
    try std.testing.expectEqual(Mode.best_effort, plan.mode);
    const relative = [_][*:0]const u8{ "--", "true" };
    try std.testing.expectError(error.ProgramNotAbsolute, parse(&plan, &relative));
    const unknown = [_][*:0]const u8{ "--allow-all", "--", "/bin/true" };
    try std.testing.expectError(error.UnknownOption, parse(&plan, &unknown));
}

test "parseParentPid survives spaces and parentheses in the command" {
    try std.testing.expectEqual(@as(?linux.pid_t, 42), parseParentPid("7 (a b) c) S 42 7 7 0"));
    try std.testing.expectEqual(@as(?linux.pid_t, null), parseParentPid("garbage"));
}

test "handledFs grows with the ABI" {
    try std.testing.expect(handledFs(1) & fs_refer == 0);
    try std.testing.expect(handledFs(3) & fs_truncate != 0);
    try std.testing.expect(handledFs(7) & fs_ioctl_dev != 0);
}
