//! Builds libpluginshm for the host, cross-compiles it for the other supported
//! targets (`zig build cross`), runs the Zig unit tests (`zig build test`) and
//! builds the C example peer (`zig build peer`) and generates the TypeScript
//! and C definitions shared with the Zig code (`zig build gen`).

const std = @import("std");

const cross_targets = [_]std.Target.Query{
    .{ .cpu_arch = .x86_64, .os_tag = .macos },
    .{ .cpu_arch = .aarch64, .os_tag = .macos },
    .{ .cpu_arch = .x86_64, .os_tag = .windows },
};

/// What `make package` ships: each library lands in zig-out/native/<platform>-<arch>/ (Node's
/// process.platform and process.arch spelling, which src/native/library.ts looks up).
const package_targets = [_]struct { query: std.Target.Query, dir: []const u8 }{
    // glibc 2.28 (2018): old enough for every maintained glibc distribution.
    .{ .query = .{ .cpu_arch = .x86_64, .os_tag = .linux, .abi = .gnu, .glibc_version = .{ .major = 2, .minor = 28, .patch = 0 } }, .dir = "linux-x64" },
    .{ .query = .{ .cpu_arch = .aarch64, .os_tag = .linux, .abi = .gnu, .glibc_version = .{ .major = 2, .minor = 28, .patch = 0 } }, .dir = "linux-arm64" },
    .{ .query = .{ .cpu_arch = .x86_64, .os_tag = .macos }, .dir = "darwin-x64" },
    .{ .query = .{ .cpu_arch = .aarch64, .os_tag = .macos }, .dir = "darwin-arm64" },
    .{ .query = .{ .cpu_arch = .x86_64, .os_tag = .windows }, .dir = "win32-x64" },
};

pub fn build(b: *std.Build) void {
    const target = b.standardTargetOptions(.{});
    const optimize = b.standardOptimizeOption(.{});

    const lib = addLibrary(b, target, optimize);
    b.installArtifact(lib);
    b.installFile("zig/include/pluginshm.h", "include/pluginshm.h");
    b.installFile(generated_h, "include/pluginshm_generated.h");

    const tests = b.addTest(.{ .root_module = libraryModule(b, target, .Debug) });
    const test_step = b.step("test", "Run the Zig unit tests");
    test_step.dependOn(&b.addRunArtifact(tests).step);
    // The seeded random test of the ring reader against corrupted indices and headers (its own file).
    const ring_fuzz = b.addTest(.{ .root_module = b.createModule(.{
        .root_source_file = b.path("zig/ring_fuzz_test.zig"),
        .target = target,
        .optimize = .Debug,
        .link_libc = true,
    }) });
    test_step.dependOn(&b.addRunArtifact(ring_fuzz).step);

    // `zig build gen` writes what TypeScript and C share with the Zig code;
    // the gen tests (part of `zig build test`) fail when those files are stale.
    const gen_module = genModule(b, b.graph.host, .Debug);
    const gen = b.addExecutable(.{ .name = "gen", .root_module = gen_module });
    const run_gen = b.addRunArtifact(gen);
    run_gen.addArg(b.pathFromRoot(generated_ts));
    run_gen.addArg(b.pathFromRoot(generated_h));
    const gen_step = b.step("gen", "Generate src/native/_generated.ts and zig/include/pluginshm_generated.h");
    gen_step.dependOn(&run_gen.step);
    const gen_tests = b.addTest(.{ .root_module = genModule(b, target, .Debug) });
    test_step.dependOn(&b.addRunArtifact(gen_tests).step);

    const cross_step = b.step("cross", "Cross-compile the library for macOS and Windows");
    for (cross_targets) |query| {
        const cross_lib = addLibrary(b, b.resolveTargetQuery(query), .ReleaseSafe);
        const install = b.addInstallArtifact(cross_lib, .{
            .dest_dir = .{ .override = .{ .custom = b.fmt("cross/{s}", .{query.zigTriple(b.allocator) catch @panic("OOM")}) } },
        });
        cross_step.dependOn(&install.step);
    }

    const package_step = b.step("package", "Cross-compile the stripped libraries the npm/JSR package ships");
    for (package_targets) |entry| {
        const module = libraryModule(b, b.resolveTargetQuery(entry.query), .ReleaseFast);
        module.strip = true;
        const package_lib = b.addLibrary(.{ .name = "pluginshm", .linkage = .dynamic, .root_module = module });
        const install = b.addInstallArtifact(package_lib, .{
            .dest_dir = .{ .override = .{ .custom = b.fmt("native/{s}", .{entry.dir}) } },
            .implib_dir = .disabled,
            .pdb_dir = .disabled,
        });
        package_step.dependOn(&install.step);
        // The sandbox launcher ships beside the Linux libraries (src/host/sandbox.ts finds it there).
        if (entry.query.os_tag == .linux) {
            const launcher_module = b.createModule(.{
                .root_source_file = b.path("zig/launcher/main.zig"),
                .target = b.resolveTargetQuery(.{ .cpu_arch = entry.query.cpu_arch, .os_tag = .linux, .abi = .none }),
                .optimize = .ReleaseSafe,
            });
            launcher_module.strip = true;
            const launcher = b.addExecutable(.{ .name = "pshm-launch", .root_module = launcher_module });
            const install_launcher = b.addInstallArtifact(launcher, .{
                .dest_dir = .{ .override = .{ .custom = b.fmt("native/{s}", .{entry.dir}) } },
            });
            package_step.dependOn(&install_launcher.step);
        }
    }

    const peer = b.addExecutable(.{
        .name = "c_peer",
        .root_module = b.createModule(.{ .target = target, .optimize = optimize, .link_libc = true }),
    });
    peer.root_module.addCSourceFile(.{ .file = b.path("tests/peers/c_peer.c"), .flags = &.{ "-std=c11", "-Wall", "-Werror" } });
    peer.root_module.addIncludePath(b.path("zig/include"));
    peer.root_module.linkLibrary(lib);
    // Finds zig-out/lib/libpluginshm.so from zig-out/bin, wherever it is started.
    peer.root_module.addRPathSpecial("$ORIGIN/../lib");
    const peer_step = b.step("peer", "Build the C test peer");
    peer_step.dependOn(&b.addInstallArtifact(peer, .{}).step);

    addLauncher(b, target, optimize, test_step);
}

/// pshm-launch, the sandbox launcher (`zig build launcher`); no libc, so it runs before ld.so matters.
fn addLauncher(b: *std.Build, target: std.Build.ResolvedTarget, optimize: std.builtin.OptimizeMode, test_step: *std.Build.Step) void {
    if (target.result.os.tag != .linux) return;
    const module = b.createModule(.{ .root_source_file = b.path("zig/launcher/main.zig"), .target = target, .optimize = optimize });
    const launcher = b.addExecutable(.{ .name = "pshm-launch", .root_module = module });
    const launcher_step = b.step("launcher", "Build the sandbox launcher zig-out/bin/pshm-launch");
    launcher_step.dependOn(&b.addInstallArtifact(launcher, .{}).step);
    const launcher_tests = b.addTest(.{ .root_module = b.createModule(.{
        .root_source_file = b.path("zig/launcher/main.zig"),
        .target = target,
        .optimize = .Debug,
    }) });
    test_step.dependOn(&b.addRunArtifact(launcher_tests).step);
}

const generated_ts = "src/native/_generated.ts";
const generated_h = "zig/include/pluginshm_generated.h";

fn genModule(b: *std.Build, target: std.Build.ResolvedTarget, optimize: std.builtin.OptimizeMode) *std.Build.Module {
    const module = b.createModule(.{
        .root_source_file = b.path("zig/gen.zig"),
        .target = target,
        .optimize = optimize,
        .link_libc = true,
    });
    module.addAnonymousImport("generated_ts", .{ .root_source_file = b.path(generated_ts) });
    module.addAnonymousImport("generated_h", .{ .root_source_file = b.path(generated_h) });
    return module;
}

fn libraryModule(b: *std.Build, target: std.Build.ResolvedTarget, optimize: std.builtin.OptimizeMode) *std.Build.Module {
    // libc is linked everywhere: shm_open lives there on POSIX, and a library
    // without it crashes when dlopen()ed into a glibc process that uses threads.
    return b.createModule(.{
        .root_source_file = b.path("zig/abi.zig"),
        .target = target,
        .optimize = optimize,
        .link_libc = true,
    });
}

fn addLibrary(b: *std.Build, target: std.Build.ResolvedTarget, optimize: std.builtin.OptimizeMode) *std.Build.Step.Compile {
    return b.addLibrary(.{
        .name = "pluginshm",
        .linkage = .dynamic,
        .root_module = libraryModule(b, target, optimize),
    });
}
