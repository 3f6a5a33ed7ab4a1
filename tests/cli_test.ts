/**
 * The command line as a user meets it: real `cli.ts` processes under the
 * runtime running the tests, real plugins, a real control socket.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { parseCommand, UsageError } from "../src/cli/_args.ts";
import { stripAnsi } from "../src/cli/_output.ts";
import { examples, fixtures, processRunning, root, runtime, runtimes, test } from "./_harness.ts";

const cli = join(root, "cli.ts");
const version = JSON.parse(await import("node:fs").then((fs) => fs.readFileSync(join(root, "package.json"), "utf8")))
  .version;

/** cli.ts under the runtime running the tests (Node runs the compiled copy). */
function cliCommand(): string[] {
  if (runtime === "deno") return [runtimes.deno, "run", "-A", cli];
  if (runtime === "bun") return [runtimes.bun, cli];
  return [runtimes.node, join(root, "dist", "cli.js")];
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs cli.ts under the test's runtime; NO_COLOR unset unless given. */
function run(args: string[], options: { cwd?: string; env?: Record<string, string> } = {}): Promise<Run> {
  const argv = [...cliCommand(), ...args];
  const env: Record<string, string> = { ...process.env as Record<string, string>, ...options.env };
  const child = spawn(argv[0], argv.slice(1), { cwd: options.cwd ?? root, env, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (d) => (stdout += d));
  child.stderr!.on("data", (d) => (stderr += d));
  return new Promise((resolve) => child.on("close", (code) => resolve({ code, stdout, stderr })));
}

/** A plugin directory holding a Bun plugin with `methods` (source text of an object literal). */
function writePlugin(dir: string, name: string, methods: string, manifest: Record<string, unknown> = {}): void {
  mkdirSync(dir, { recursive: true });
  const sdk = pathToFileURL(join(root, "plugin.ts")).href;
  writeFileSync(
    join(dir, "plugin.json"),
    JSON.stringify({ name, version: "1.0.0", runtime: "bun", entry: "main.ts", ...manifest }),
  );
  writeFileSync(
    join(dir, "main.ts"),
    `import { definePlugin } from ${JSON.stringify(sdk)};\n` +
      `export default definePlugin({ name: ${JSON.stringify(name)}, version: "1.0.0", methods: ${methods} });\n`,
  );
}

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), "pshm-cli-"));
}

const commands = [
  "serve",
  "call",
  "ls",
  "status",
  "reload",
  "restart",
  "stop",
  "logs",
  "demo",
  "lock",
  "sign",
  "audit",
  "new",
  "test",
];

test("parseCommand refuses unknown flags with the closest known one, and extra arguments", () => {
  const spec = {
    name: "serve",
    summary: "",
    synopsis: "[dir…]",
    positionalsMin: 0,
    positionalsMax: 1,
    flags: { transport: { type: "string", description: "", choices: ["shm", "unix"] } },
  } as const;
  assert.throws(
    () => parseCommand(spec, ["--transprot", "shm"]),
    /unknown flag --transprot; did you mean --transport\?/,
  );
  assert.throws(() => parseCommand(spec, ["-x"]), UsageError);
  assert.throws(() => parseCommand(spec, ["a", "b"]), /takes at most \[dir…\]; unexpected "b"/);
  assert.throws(
    () => parseCommand(spec, ["--transport", "shn"]),
    /must be one of shm, unix, got "shn"; did you mean "shm"/,
  );
  assert.throws(() => parseCommand(spec, ["--transport"]), UsageError);
  assert.deepEqual(parseCommand(spec, ["--transport=unix", "dir"]).positionals, ["dir"]);
  assert.equal(parseCommand(spec, ["-h", "a", "b", "c"]).values.help, true, "help wins over a wrong count");
});

test("stripAnsi removes colour, cursor and title escapes and leaves text alone", () => {
  assert.equal(stripAnsi("\x1b[1m\x1b[31merror\x1b[0m: x\x1b[2K\x1b]0;title\x07 ü"), "error: x ü");
});

test("--help and -h work for the program and every command and exit 0 without doing anything", async () => {
  const main = await run(["--help"]);
  assert.equal(main.code, 0);
  for (const c of commands) assert.match(main.stdout, new RegExp(`^  ${c} `, "m"));
  assert.match(main.stdout, /Exit codes: 0 ok, 1 failure .*2 usage error/);
  for (const c of commands) {
    const help = await run([c, c === "call" ? "--help" : "-h"]);
    assert.equal(help.code, 0, `${c} -h: ${help.stderr}`);
    assert.match(help.stdout, new RegExp(`^cli\\.ts ${c}`), c);
    assert.match(help.stdout, /Exit codes/);
    assert.equal(help.stderr, "", `${c} -h writes nothing to stderr`);
  }
}, { timeoutMs: 120_000 });

test("--version works alone and after every command", async () => {
  for (const args of [["--version"], ...commands.map((c) => [c, "--version"])]) {
    const r = await run(args);
    assert.equal(r.code, 0, args.join(" "));
    assert.equal(r.stdout, `${version}\n`);
  }
}, { timeoutMs: 120_000 });

test("usage errors exit 2 with a suggestion: misspelt flag, command, extra and missing arguments", async () => {
  const cases: [string[], RegExp][] = [
    [["serve", "--transprot", "shm"], /unknown flag --transprot; did you mean --transport\?/],
    [["stats"], /unknown command "stats"; did you mean "status"\?/],
    [["status", "extra"], /status takes no arguments; unexpected "extra"/],
    [["call", "echo", "add", "[1,2]", "more"], /unexpected "more"/],
    [["call", "echo"], /call needs <plugin\|dir> <method>/],
    [["call", "echo", "add", "[1,"], /json-args is not JSON/],
    [["serve", "--transport", "sHm"], /did you mean "shm"\?/],
    [["logs", "-n", "zero"], /--lines must be a positive whole number/],
    [[], /no command given/],
  ];
  for (const [args, pattern] of cases) {
    const r = await run(args);
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr, pattern, args.join(" "));
    assert.equal(r.stdout, "", `${args.join(" ")} prints nothing on stdout`);
    assert.equal((r.stderr.match(/^error:/gm) ?? []).length, 1, "reported once");
  }
}, { timeoutMs: 120_000 });

test("ls /nonexistent exits 1 and says so", async () => {
  const r = await run(["ls", "/nonexistent"]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /\/nonexistent: does not exist/);
});

test("ls lists the examples and exits 0", async () => {
  const r = await run(["ls", "--json"]);
  assert.equal(r.code, 0, r.stderr);
  const { plugins, problems } = JSON.parse(r.stdout);
  assert.deepEqual(plugins.map((p: { name: string }) => p.name), ["echo", "kv", "transform"]);
  assert.deepEqual(problems, []);
});

test("ls shows each plugin's grants and limits, resolved against its directory", async () => {
  const dir = tempDir();
  try {
    writePlugin(join(dir, "a"), "granted", "{}", {
      permissions: { read: ["./data"], net: ["127.0.0.1:8080"] },
      limits: { memoryMiB: 256 },
    });
    writePlugin(join(dir, "b"), "plain", "{}");
    const text = await run(["ls", dir]);
    assert.equal(text.code, 0, text.stderr);
    assert.match(
      text.stdout,
      new RegExp(`grants: read=${join(dir, "a", "data")} net=127\\.0\\.0\\.1:8080 memoryMiB=256`),
    );
    assert.match(text.stdout, /grants: none/);
    const json = await run(["ls", "--json", dir]);
    const { plugins } = JSON.parse(json.stdout) as { plugins: { name: string; permissions?: unknown }[] };
    assert.deepEqual(plugins.find((p) => p.name === "granted")!.permissions, {
      read: [join(dir, "a", "data")],
      net: ["127.0.0.1:8080"],
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("ls validates fully and lists every problem with file and field, then exits 1", async () => {
  const dir = tempDir();
  try {
    writePlugin(join(dir, "a"), "dup", "{}");
    writePlugin(join(dir, "b"), "dup", "{}");
    writePlugin(join(dir, "c"), "no-entry", "{}", { entry: "missing.ts" });
    writePlugin(join(dir, "d"), "typo", "{}", { entrypoint: "main.ts", version: "1.0" });
    writePlugin(join(dir, "e"), "good", "{}", { version: "1.0.0-rc.1+build.5" });
    const r = await run(["ls", "--json", dir]);
    assert.equal(r.code, 1);
    const { plugins, problems } = JSON.parse(r.stdout) as {
      plugins: { name: string }[];
      problems: { file: string; field: string; message: string }[];
    };
    const seen = problems.map((p) => `${p.file.slice(dir.length + 1)} ${p.field}`).sort();
    assert.deepEqual(seen, [
      "a/plugin.json name",
      "b/plugin.json name",
      "c/plugin.json entry",
      "d/plugin.json entrypoint",
      "d/plugin.json version",
    ]);
    assert.ok(plugins.some((p) => p.name === "good"), "a pre-release version with build metadata passes");
    assert.match(r.stderr, /field "entrypoint" is not a known field; did you mean "entry"\?/);
    assert.match(r.stderr, /field "entry" file .*missing\.ts does not exist/);
    assert.match(r.stderr, /"dup" is also the name of/);
    assert.equal((r.stderr.match(/^error:/gm) ?? []).length, 5, "each problem once");
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test(
  "call prints exactly one JSON document on stdout, null for nothing, plugin output on stderr without escapes",
  async () => {
    const dir = tempDir();
    try {
      writePlugin(
        join(dir, "noisy"),
        "noisy",
        `{ nothing() { console.log("noise on stdout"); console.error("\\x1b[31mred noise\\x1b[0m"); },
         bytes: () => new Uint8Array([1, 2, 3]), obj: () => ({ a: [1, "x"] }) }`,
      );
      const nothing = await run(["call", "./noisy", "nothing"], { cwd: dir });
      assert.equal(nothing.code, 0, nothing.stderr);
      assert.equal(nothing.stdout, "null\n");
      assert.match(nothing.stderr, /\[noisy\] noise on stdout/);
      assert.match(nothing.stderr, /\[noisy\] red noise/);
      assert.ok(!nothing.stderr.includes("\x1b"), "ANSI codes stripped from plugin output");
      const obj = await run(["call", "./noisy", "obj"], { cwd: dir });
      assert.deepEqual(JSON.parse(obj.stdout), { a: [1, "x"] });
      const bytes = await run(["call", "./noisy", "bytes"], { cwd: dir });
      assert.deepEqual(JSON.parse(bytes.stdout), { bytesBase64: "AQID" });
    } finally {
      rmSync(dir, { recursive: true });
    }
  },
  { timeoutMs: 60_000 },
);

test("call <dir> resolves relative directories against the current directory, with spaces and non-ASCII", async () => {
  const dir = tempDir();
  try {
    writePlugin(join(dir, "plain"), "plain", "{ add: (a: number, b: number) => a + b }");
    writePlugin(join(dir, "with space", "adder"), "spaced", "{ add: (a: number, b: number) => a + b }");
    writePlugin(join(dir, "grüße", "名前"), "unicode", "{ add: (a: number, b: number) => a + b }");
    for (
      const [cwd, target] of [
        [dir, "./plain"],
        [dir, "plain/"],
        [dir, "with space/adder"],
        [join(dir, "with space"), "./adder"],
        [dir, "./grüße/名前"],
        [join(dir, "grüße", "名前"), "."],
        [join(dir, "with space", "adder"), "../../plain"],
      ]
    ) {
      const r = await run(["call", target, "add", "[2, 3]"], { cwd });
      assert.equal(r.code, 0, `${target} from ${cwd}: ${r.stderr}`);
      assert.equal(r.stdout, "5\n", target);
    }
    const examplesRelative = await run(["call", "examples/plugins/echo", "add", "[2, 3]"]);
    assert.equal(examplesRelative.stdout, "5\n", examplesRelative.stderr);
  } finally {
    rmSync(dir, { recursive: true });
  }
}, { timeoutMs: 120_000 });

test("call by name ignores a same-named folder in the current directory and hints at ./name", async () => {
  const dir = tempDir();
  try {
    writePlugin(join(dir, "kv"), "not-kv", "{ size: () => -1 }");
    const r = await run(["call", "kv", "size"], { cwd: dir });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "0\n", "the bundled kv, not ./kv");
    const missing = await run(["call", "nope", "x", "--dir", dir], { cwd: dir });
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /No plugin "nope"/);
    const hint = await run(["call", "kv", "size", "--dir", join(dir, "kv")], { cwd: dir });
    assert.equal(hint.code, 1);
    assert.match(hint.stderr, /No plugin "kv" .*found: not-kv; to use the directory .*kv, write \.\/kv/);
  } finally {
    rmSync(dir, { recursive: true });
  }
}, { timeoutMs: 60_000 });

test(
  "call failures exit 1 and are reported once: unknown method, remote error, plugin that dies at start",
  async () => {
    const dir = tempDir();
    try {
      writePlugin(
        join(dir, "dies"),
        "dies",
        `{ x: () => 1 }, onStart() { console.error("\\x1b[31mcannot start\\x1b[0m"); process.exit(4); }`,
      );
      const cases: [string[], RegExp][] = [
        [["call", "echo", "ad", "[1, 2]"], /plugin "echo" has no method "ad"; did you mean "add"\?/],
        [["call", "echo", "fail", '"on purpose"'], /RemoteError: echo: on purpose/],
        [["call", "./dies", "x"], /dies/],
      ];
      for (const [args, pattern] of cases) {
        const r = await run(args, { cwd: dir });
        assert.equal(r.code, 1, `${args.join(" ")}: ${r.stderr}`);
        assert.match(r.stderr, pattern);
        assert.equal(r.stdout, "", "nothing on stdout");
        assert.equal((r.stderr.match(/^error:/gm) ?? []).length, 1, `reported once: ${r.stderr}`);
        assert.ok(!r.stderr.includes("\x1b"), "no colour when stderr is not a terminal");
      }
    } finally {
      rmSync(dir, { recursive: true });
    }
  },
  { timeoutMs: 90_000 },
);

test("status, reload, restart, stop and logs drive a running serve through its 0600 control socket", async () => {
  const dir = tempDir();
  const socket = join(dir, "ctl", "control.sock");
  const argv = cliCommand();
  const serve = spawn(argv[0], [...argv.slice(1), "serve", examples, "--socket", socket], {
    cwd: root,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let serveErr = "";
  let serveOut = "";
  serve.stderr!.on("data", (d) => (serveErr += d));
  serve.stdout!.on("data", (d) => (serveOut += d));
  const exited = new Promise<number | null>((resolve) => serve.on("close", resolve));
  try {
    for (let i = 0; i < 300 && !/control socket/.test(serveErr); i++) await new Promise((r) => setTimeout(r, 100));
    assert.match(serveErr, /serving 3 plugin\(s\)/);
    assert.equal(statSync(socket).mode & 0o777, 0o600);
    assert.equal(statSync(join(dir, "ctl")).mode & 0o777, 0o700);

    const status = await run(["status", "--json", "--socket", socket]);
    assert.equal(status.code, 0, status.stderr);
    const plugins = JSON.parse(status.stdout) as { name: string; state: string; pid: number }[];
    assert.deepEqual(plugins.map((p) => `${p.name} ${p.state}`), ["echo running", "kv running", "transform running"]);
    const kvPid = plugins.find((p) => p.name === "kv")!.pid;

    const reload = await run(["reload", "kv", "--socket", socket]);
    assert.equal(reload.code, 0, reload.stderr);
    assert.match(reload.stdout, /^kv running — now 1\.0\.0; calls held/);

    const typo = await run(["restart", "ehco", "--socket", socket]);
    assert.equal(typo.code, 1);
    assert.match(typo.stderr, /no plugin "ehco" in this serve; did you mean "echo"\?/);

    const logs = await run(["logs", "kv", "-n", "3", "--socket", socket]);
    assert.equal(logs.code, 0, logs.stderr);
    const lines = logs.stdout.trim().split("\n");
    assert.equal(lines.length, 3);
    assert.ok(lines.every((l) => / (kv:|\[kv\]) /.test(l)), logs.stdout);
    assert.match(logs.stdout, /reloaded/);

    const follower = spawn(cliCommand()[0], [...cliCommand().slice(1), "logs", "-f", "-n", "1", "--socket", socket], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let followed = "";
    follower.stdout!.on("data", (d) => (followed += d));
    const followerClosed = new Promise((resolve) => follower.on("close", resolve));
    for (let i = 0; i < 100 && followed === ""; i++) await new Promise((r) => setTimeout(r, 50));
    assert.equal((await run(["reload", "echo", "--socket", socket])).code, 0);
    for (let i = 0; i < 100 && !/echo: reloaded/.test(followed); i++) await new Promise((r) => setTimeout(r, 50));
    assert.match(followed, /echo: reloaded: now 1\.0\.0/, "logs -f shows new lines as they happen");
    follower.kill("SIGINT");
    await followerClosed;

    const stopKv = await run(["stop", "kv", "--socket", socket]);
    assert.equal(stopKv.stdout, "stopped kv\n");
    assert.ok(!processRunning(kvPid), "the old kv process is gone");
    const restart = await run(["restart", "kv", "--socket", socket]);
    assert.equal(restart.code, 0, restart.stderr);
    assert.match(restart.stdout, /^kv running/);

    const stop = await run(["stop", "--socket", socket]);
    assert.equal(stop.stdout, "serve stopping\n");
    assert.equal(await exited, 0);
    assert.equal(serveOut, "", "serve writes its log to stderr only");
    const after = await run(["status", "--socket", socket]);
    assert.equal(after.code, 1);
    assert.match(after.stderr, /no serve is running/);
  } finally {
    serve.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  }
}, { timeoutMs: 120_000 });

test("a second serve on the same control socket is refused, and serve stops cleanly on SIGTERM", async () => {
  const dir = tempDir();
  const socket = join(dir, "control.sock");
  const argv = cliCommand();
  const empty = join(dir, "plugins");
  writePlugin(join(empty, "one"), "one", "{ ping: () => 'pong' }");
  const serve = spawn(argv[0], [...argv.slice(1), "serve", empty, "--socket", socket], { stdio: "pipe" });
  let err = "";
  serve.stderr!.on("data", (d) => (err += d));
  const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) =>
    serve.on("close", (code, signal) => resolve({ code, signal }))
  );
  try {
    for (let i = 0; i < 300 && !/control socket/.test(err); i++) await new Promise((r) => setTimeout(r, 100));
    const second = await run(["serve", empty, "--socket", socket]);
    assert.equal(second.code, 1);
    assert.match(second.stderr, /another serve is running with control socket/);
    serve.kill("SIGTERM");
    const status = await exited;
    // Deno's child_process reports the signal it sent even when the child caught it and exited 0
    // (checked with a plain script); Bun reports the real status.
    if (runtime === "bun") assert.deepEqual(status, { code: 0, signal: null }, err);
    assert.match(err, /SIGTERM received: stopping every plugin/);
    assert.match(err, /one: stopped: every instance exited/);
  } finally {
    serve.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  }
}, { timeoutMs: 90_000 });

test("the demo tells every part of the story and exits with --exit", async () => {
  const r = await run(["demo", "--exit"]);
  assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
  for (
    const part of [
      /A DEMO on this machine .*not a benchmark/,
      /make bench/,
      /1\. Plugins, each its own OS process/,
      /plugin call echo\.echo\(i\) over shared memory +p50 +[\d.]+ µs +p99 +[\d.]+ µs/,
      /raw unix-socket echo.* +p50 +[\d.]+ µs +p99 +[\d.]+ µs/,
      /exited with code 3 on purpose/,
      /restarted as pid \d+ in \d+ ms; echo\.add\(2, 3\) = 5/,
      /marked unresponsive/,
      /the stuck call failed with PluginStalledError\n/,
      /replaced by pid \d+/,
      /kv reloaded twice/,
      /\d+ calls during the reloads, 0 failed/,
      /kv still holds 100 of its 100 keys/,
      /4 MiB through transform\.upper and back in \d+ ms: \d+ MiB\/s, every byte uppercased/,
      /Story told in [\d.]+ s\.\n/,
    ]
  ) assert.match(r.stdout, part);
  assert.doesNotMatch(r.stdout, /FAILED/);
}, { timeoutMs: 120_000 });

test("colour only on a terminal, and never with NO_COLOR", async () => {
  // util-linux `script` gives the CLI a pseudo-terminal.
  const command = cliCommand().map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(" ");
  const onTty = (env: Record<string, string>) =>
    new Promise<string>((resolve) => {
      const child = spawn("script", ["-qec", `${command} ls /nonexistent`, "/dev/null"], {
        env: { ...process.env as Record<string, string>, ...env },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let out = "";
      child.stdout!.on("data", (d) => (out += d));
      child.on("close", () => resolve(out));
    });
  const coloured = await onTty({ NO_COLOR: "" });
  assert.ok(coloured.includes("\x1b[31merror:\x1b[0m /nonexistent: does not exist"), JSON.stringify(coloured));
  const plain = await onTty({ NO_COLOR: "1" });
  assert.match(plain, /error: \/nonexistent: does not exist/);
  assert.ok(!plain.includes("\x1b["), "NO_COLOR turns colour off on a terminal too");
}, { timeoutMs: 60_000 });

test(
  "serve reports a plugin that fails to start once, skips a broken manifest listing its problems, and serves on",
  async () => {
    const dir = tempDir();
    const socket = join(dir, "control.sock");
    const argv = cliCommand();
    const serve = spawn(argv[0], [
      ...argv.slice(1),
      "serve",
      join(fixtures, "exit_early"),
      join(fixtures, "bad_manifest"),
      "--socket",
      socket,
    ], { stdio: ["ignore", "pipe", "pipe"] });
    let err = "";
    let out = "";
    serve.stderr!.on("data", (d) => (err += d));
    serve.stdout!.on("data", (d) => (out += d));
    const closed = new Promise((resolve) => serve.on("close", resolve));
    try {
      for (let i = 0; i < 300 && !/control socket/.test(err); i++) await new Promise((r) => setTimeout(r, 100));
      assert.match(err, /serving 0 plugin\(s\)/);
      assert.equal((err.match(/exited with code 7/g) ?? []).length, 1, err);
      assert.match(err, /\[exit-early\] cannot start: the database is unreachable/);
      assert.match(err, /skipping .*bad_manifest.*\n\s+field "runtime" must be one of "deno", "bun", "node"/);
      const status = await run(["status", "--json", "--socket", socket]);
      assert.deepEqual(JSON.parse(status.stdout).map((p: { state: string }) => p.state), ["failed"]);
      assert.equal((await run(["stop", "--socket", socket])).code, 0);
      await closed;
      assert.equal(out, "");
    } finally {
      serve.kill("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    }
  },
  { timeoutMs: 60_000 },
);

test(
  "lock, call --integrity require, a tampered file refused naming it, sign with a cosign key and verify by policy, all in an audit log that verifies",
  async () => {
    const work = tempDir();
    try {
      const plugins = join(work, "plugins");
      writePlugin(join(plugins, "adder"), "adder", "{ add: (a: number, b: number) => a + b }");
      const lockFile = join(work, "plugin-shm.lock");
      const audit = join(work, "audit.jsonl");

      const locked = await run(["lock", plugins, "--out", lockFile]);
      assert.equal(locked.code, 0, locked.stderr);
      assert.match(locked.stdout, /^adder\s+1\.0\.0\s+sha256:[0-9a-f]{64}$/m);
      const checked = ["--dir", plugins, "--integrity", "require", "--lock", lockFile, "--audit", audit];
      const ok = await run(["call", "adder", "add", "[2, 3]", ...checked]);
      assert.equal(ok.code, 0, ok.stderr);
      assert.equal(ok.stdout.trim(), "5");
      assert.match((await run(["ls", plugins, "--lock", lockFile])).stdout, /trust: {2}locked/);

      // One changed byte: refused before any of its code runs, naming the file; the audit log says so.
      writeFileSync(join(plugins, "adder", "main.ts"), "// changed\n", { flag: "a" });
      const refused = await run(["call", "adder", "add", "[2, 3]", ...checked]);
      assert.equal(refused.code, 1);
      assert.match(stripAnsi(refused.stderr), /IntegrityError.*main\.ts/s);
      assert.match((await run(["ls", plugins, "--lock", lockFile])).stdout, /trust: {2}changed/);
      const verified = await run(["audit", "verify", audit]);
      assert.equal(verified.code, 0, verified.stderr);
      assert.match(verified.stdout, /^ok: \d+ records/);
      const tail = await run(["audit", "tail", audit, "-n", "50"]);
      assert.match(tail.stdout, /\tadder\tverified\t/);
      assert.match(tail.stdout, /\tadder\trefused\t/);
      const checkpoint = (await run(["audit", "checkpoint", audit])).stdout.trim();
      assert.match(checkpoint, /^\d+:[0-9a-f]{64}$/);
      assert.equal((await run(["audit", "verify", audit, "--checkpoint", checkpoint])).code, 0);

      // Signed with a cosign key, verified by a policy that trusts its public key.
      const sig = join(fixtures, "sigstore");
      const signed = await run(["sign", join(plugins, "adder"), "--key", join(sig, "cosign.key")], {
        env: { COSIGN_PASSWORD: "test" },
      });
      assert.equal(signed.code, 0, signed.stderr);
      assert.match(signed.stdout, /^signed sha256:[0-9a-f]{64} with key /);
      const policy = join(work, "trust.json");
      writeFileSync(policy, JSON.stringify({ keys: [join(sig, "cosign.pub")] }));
      const trusted = await run(["call", "adder", "add", "[4, 5]", "--dir", plugins, "--trust", policy]);
      assert.equal(trusted.code, 0, trusted.stderr);
      assert.equal(trusted.stdout.trim(), "9");
      assert.match((await run(["ls", plugins, "--trust", policy])).stdout, /trust: {2}no lock, signed by .*verified/);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  },
  { timeoutMs: 120_000 },
);

test("security flags and commands refuse bad input with what to do, exit 2", async () => {
  const work = tempDir();
  try {
    const noLock = await run(["call", "echo", "add", "[1, 2]", "--integrity", "require", "--lock", join(work, "nope")]);
    assert.equal(noLock.code, 2);
    assert.match(noLock.stderr, /does not exist; write it with "cli\.ts lock <dir>"/);
    const noTrust = await run(["call", "echo", "add", "[1, 2]", "--signatures", "require"]);
    assert.equal(noTrust.code, 2);
    assert.match(noTrust.stderr, /--signatures needs --trust/);
    const noKey = await run(["sign", examples]);
    assert.equal(noKey.code, 2);
    assert.match(noKey.stderr, /sign needs --key/);
    const badAction = await run(["audit", "fix", join(work, "a.jsonl")]);
    assert.equal(badAction.code, 2);
    assert.match(badAction.stderr, /unknown audit action "fix": verify, checkpoint or tail/);
    const badMode = await run(["serve", "--integrity", "maybe"]);
    assert.equal(badMode.code, 2);
    writeFileSync(join(work, "a.jsonl"), "not json\n");
    const broken = await run(["audit", "verify", join(work, "a.jsonl")]);
    assert.equal(broken.code, 1);
    assert.match(broken.stderr, /a\.jsonl/);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}, { timeoutMs: 120_000 });
