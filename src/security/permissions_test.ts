import assert from "node:assert/strict";
import { test } from "../../tests/_harness.ts";
import {
  limitsSchema,
  narrowLimits,
  narrowPermissions,
  permissionsSchema,
  planSandbox,
  runtimeDataFloorMiB,
  type SandboxContext,
} from "./permissions.ts";

const ctx: SandboxContext = {
  runtime: "deno",
  runtimeBinary: "/opt/deno",
  launcher: "/opt/pshm-launch",
  pluginDir: "/plugins/p",
  entryPath: "/plugins/p/main.ts",
  packageDir: "/pkg",
  nativeLibrary: "/pkg/libpluginshm.so",
  sdkEnv: ["PLUGIN_SHM_TOKEN"],
  mode: "required",
};

test("permissions: no grants give Deno no write, net or run flag and never -A", () => {
  const plan = planSandbox(ctx, {});
  assert.ok(!plan.runtimeArgs.includes("-A"));
  assert.ok(!plan.runtimeArgs.some((a) => /^--allow-(write|net|run|all)/.test(a)));
  assert.ok(plan.runtimeArgs.includes("--allow-read=/plugins/p,/pkg,/pkg/libpluginshm.so"));
  assert.ok(!plan.args.includes("--inet"));
  assert.deepEqual(plan.args.slice(plan.args.indexOf("--") + 1, plan.args.indexOf("--") + 2), ["/opt/deno"]);
});

test("permissions: grants map to Deno flags and launcher options, relative paths from the plugin dir", () => {
  const plan = planSandbox(ctx, {
    read: ["./data"],
    write: ["state"],
    net: ["127.0.0.1:8080"],
    env: ["TZ"],
    run: ["/usr/bin/git"],
  }, { processesMax: 8, openFilesMax: 256, memoryMiB: 512 });
  assert.ok(plan.runtimeArgs.includes("--allow-write=/plugins/p/state"));
  assert.ok(plan.runtimeArgs.includes("--allow-net=127.0.0.1:8080"));
  assert.ok(plan.runtimeArgs.includes("--allow-run=/usr/bin/git"));
  assert.ok(plan.runtimeArgs.includes("--allow-env=PLUGIN_SHM_TOKEN,MSGPACKR_NATIVE_ACCELERATION_DISABLED,TZ"));
  for (const option of ["--ro=/plugins/p/data", "--rw=/plugins/p/state", "--exec=/usr/bin/git", "--inet"]) {
    assert.ok(plan.args.includes(option), option);
  }
  for (const option of ["--connect=8080", "--bind=8080", "--nproc=8", "--nofile=256"]) {
    assert.ok(plan.args.includes(option), option);
  }
  assert.ok(
    plan.args.includes(`--data-mib=${runtimeDataFloorMiB.deno}`),
    "the data backstop never goes below the floor",
  );
});

test("permissions: a Bun plugin gets the entry alone as runtime arguments", () => {
  const plan = planSandbox({ ...ctx, runtime: "bun", runtimeBinary: "/opt/bun" }, {});
  assert.deepEqual(plan.runtimeArgs, ["/plugins/p/main.ts"]);
});

test("permissions: the host narrows grants and limits but cannot widen them", () => {
  const granted = { read: ["/a", "/b"], net: ["h:1"] };
  assert.deepEqual(narrowPermissions(granted, { read: ["/b", "/c"] }), { read: ["/b"], net: ["h:1"] });
  assert.deepEqual(narrowPermissions(granted, { net: [] }), { read: ["/a", "/b"], net: [] });
  assert.deepEqual(narrowPermissions({}, { read: ["/etc"] }), {});
  assert.equal(narrowLimits({ memoryMiB: 512 }, { memoryMiB: 1024, processesMax: 4 }).memoryMiB, 512);
  assert.equal(narrowLimits({}, { processesMax: 4 }).processesMax, 4);
});

test("permissions: the schema refuses unknown keys, a portless net grant and a relative run grant", () => {
  assert.equal(permissionsSchema.safeParse({ read: ["./x"], write: [] }).success, true);
  for (const bad of [{ readd: [] }, { net: ["example.com"] }, { run: ["git"] }, { env: ["A-B"] }]) {
    assert.equal(permissionsSchema.safeParse(bad).success, false, JSON.stringify(bad));
  }
  assert.equal(limitsSchema.safeParse({ memoryMiB: 512, memorySoftMiB: 384 }).success, true);
  assert.equal(limitsSchema.safeParse({ memoryMiB: 256, memorySoftMiB: 384 }).success, false);
  assert.equal(limitsSchema.safeParse({ cpu: 1 }).success, false);
});

test("permissions: the tcp transport's port may be connected to, not bound, without a net grant", () => {
  const plan = planSandbox({ ...ctx, transportPort: 4100 }, {});
  assert.ok(plan.args.includes("--inet") && plan.args.includes("--connect=4100"));
  assert.ok(!plan.args.includes("--bind=4100"));
  assert.deepEqual(plan.runtimeArgs.filter((a) => a.startsWith("--allow-net")), ["--allow-net=127.0.0.1:4100"]);
});
