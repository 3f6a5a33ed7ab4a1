/**
 * The security commands as a user meets them: real `cli.ts` processes (serve,
 * stop, lock, sign, audit), real plugins, the verified copies on disk, and
 * every kind of bad input answered with a typed error that says what to do.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { pathToFileURL } from "node:url";
import { stripAnsi } from "../src/cli/_output.ts";
import { AuditLog } from "../src/security/audit.ts";
import { fixtures, root, runtime, runtimes, test } from "./_harness.ts";

const cli = join(root, "cli.ts");

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

function run(args: string[], env: Record<string, string> = {}): Promise<Run> {
  const argv = [...cliCommand(), ...args];
  const child = spawn(argv[0], argv.slice(1), {
    cwd: root,
    env: { ...process.env as Record<string, string>, NO_COLOR: "1", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (d) => (stdout += d));
  child.stderr!.on("data", (d) => (stderr += d));
  return new Promise((resolve) => child.on("close", (code) => resolve({ code, stdout, stderr: stripAnsi(stderr) })));
}

function writePlugin(dir: string, name: string): void {
  mkdirSync(dir, { recursive: true });
  const sdk = pathToFileURL(join(root, "plugin.ts")).href;
  writeFileSync(join(dir, "plugin.json"), JSON.stringify({ name, version: "1.0.0", runtime: "bun", entry: "main.ts" }));
  writeFileSync(
    join(dir, "main.ts"),
    `import { definePlugin } from ${JSON.stringify(sdk)};\n` +
      `export default definePlugin({ name: ${
        JSON.stringify(name)
      }, version: "1.0.0", methods: { ping: () => "pong" } });\n`,
  );
}

/** Everything under `dir` named like a verifier's private copy, at any depth below the run roots. */
function copiesIn(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((n) => n.startsWith("plugin-shm-verified-")).flatMap((n) =>
    readdirSync(join(dir, n)).map((c) => join(dir, n, c))
  );
}

async function until(what: string, ok: () => boolean, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test(
  "serve --integrity require serves the locked plugin, refuses the tampered one naming its file, removes a copy on stop and all at exit, and audits it all",
  async () => {
    const work = mkdtempSync(join(tmpdir(), "pshm-integrity-cli-"));
    // The serve's private copies go here, so this test sees only its own.
    const tmp = join(work, "tmp");
    mkdirSync(tmp);
    const plugins = join(work, "plugins");
    writePlugin(join(plugins, "good"), "good");
    writePlugin(join(plugins, "bad"), "bad");
    const lockFile = join(work, "plugin-shm.lock");
    const audit = join(work, "audit.jsonl");
    const socket = join(work, "control.sock");
    assert.equal((await run(["lock", plugins, "--out", lockFile])).code, 0);
    writeFileSync(join(plugins, "bad", "main.ts"), "// changed after the lock\n", { flag: "a" });

    const argv = cliCommand();
    const serve = spawn(
      argv[0],
      [
        ...argv.slice(1),
        ...["serve", plugins, "--socket", socket, "--integrity", "require", "--lock", lockFile, "--audit", audit],
      ],
      { cwd: root, env: { ...process.env as Record<string, string>, NO_COLOR: "1", TMPDIR: tmp }, stdio: "pipe" },
    );
    let err = "";
    serve.stderr!.on("data", (d) => (err += d));
    const exited = new Promise<void>((resolve) => serve.on("close", () => resolve()));
    try {
      await until("serving", () => /serving \d+ plugin/.test(err));
      assert.match(err, /serving 1 plugin/, err);
      assert.match(err, /bad.*main\.ts/, err);
      const status = await run(["status", "--socket", socket]);
      assert.match(status.stdout, /^good\s+running/m, status.stdout);
      assert.match(status.stdout, /^bad\s+failed/m, status.stdout);
      assert.equal(copiesIn(tmp).length, 1, "one private copy, the good plugin's");

      const stopped = await run(["stop", "good", "--socket", socket]);
      assert.equal(stopped.code, 0, stopped.stderr);
      assert.deepEqual(copiesIn(tmp), [], "stopped: its copy is gone while serve runs on");

      serve.kill("SIGTERM");
      await exited;
      assert.deepEqual(readdirSync(tmp), [], "serve exited: no run root left");
    } finally {
      serve.kill("SIGKILL");
      await exited;
    }
    try {
      const verified = await run(["audit", "verify", audit]);
      assert.equal(verified.code, 0, verified.stderr);
      const tail = (await run(["audit", "tail", audit, "-n", "100"])).stdout;
      for (const line of ["\tgood\tverified\t", "\tgood\tload\t", "\tgood\tunload\t", "\tbad\trefused\t"]) {
        assert.ok(tail.includes(line), `${JSON.stringify(line)} missing from\n${tail}`);
      }
      assert.equal(tail.split("\tbad\trefused\t").length, 2, `one refusal record, not two:\n${tail}`);
      assert.match(tail, /\tbad\trefused\t.*file_changed/);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  },
  { timeoutMs: 120_000 },
);

test(
  "serve --audit-required: once the audit log cannot be written (a full disk: /dev/full), new loads are refused and the running plugin keeps serving",
  async () => {
    const work = mkdtempSync(join(tmpdir(), "pshm-integrity-cli-"));
    const tmp = join(work, "tmp");
    mkdirSync(tmp);
    const plugins = join(work, "plugins");
    writePlugin(join(plugins, "good"), "good");
    const socket = join(work, "control.sock");
    const argv = cliCommand();
    const serve = spawn(
      argv[0],
      [...argv.slice(1), "serve", plugins, "--socket", socket, "--audit", "/dev/full", "--audit-required"],
      { cwd: root, env: { ...process.env as Record<string, string>, NO_COLOR: "1", TMPDIR: tmp }, stdio: "pipe" },
    );
    let err = "";
    serve.stderr!.on("data", (d) => (err += d));
    const exited = new Promise<void>((resolve) => serve.on("close", () => resolve()));
    try {
      await until("the audit failure", () => /serving 1 plugin/.test(err) && /AUDIT LOG FAILURE/.test(err));
      assert.match(err, /\/dev\/full cannot be written .*new plugin loads are refused until then/);
      const reload = await run(["reload", "good", "--socket", socket]);
      assert.equal(reload.code, 1, reload.stdout + reload.stderr);
      assert.match(reload.stderr, /\/dev\/full cannot be written/);
      const status = await run(["status", "--socket", socket]);
      assert.match(status.stdout, /^good\s+running/m, status.stdout);
      serve.kill("SIGTERM");
      await exited;
    } finally {
      serve.kill("SIGKILL");
      await exited;
      rmSync(work, { recursive: true, force: true });
    }
  },
  { timeoutMs: 120_000 },
);

test(
  "serve --signatures require: the plugin signed by a trusted key serves; unsigned, garbled and wrongly-signed ones are refused naming the failed check; ls says who and why",
  async () => {
    const work = mkdtempSync(join(tmpdir(), "pshm-integrity-cli-"));
    const sig = join(fixtures, "sigstore");
    const plugins = join(work, "plugins");
    for (const name of ["signed", "unsigned", "garbled", "stranger"]) writePlugin(join(plugins, name), name);
    const signed = await run(["sign", join(plugins, "signed"), "--key", join(sig, "cosign.key")], {
      COSIGN_PASSWORD: "test",
    });
    assert.equal(signed.code, 0, signed.stderr);
    writeFileSync(join(plugins, "garbled", "plugin.sigstore.json"), "{ not a bundle");
    // Signed by the trusted key, but for other bytes: the bundle of "signed" copied into "stranger".
    writeFileSync(
      join(plugins, "stranger", "plugin.sigstore.json"),
      readFileSync(join(plugins, "signed", "plugin.sigstore.json")),
    );
    const policy = join(work, "trust.json");
    writeFileSync(policy, JSON.stringify({ keys: [join(sig, "cosign.pub")] }));
    const socket = join(work, "control.sock");
    const tmp = join(work, "tmp");
    mkdirSync(tmp);
    const argv = cliCommand();
    const serve = spawn(argv[0], [...argv.slice(1), "serve", plugins, "--socket", socket, "--trust", policy], {
      cwd: root,
      env: { ...process.env as Record<string, string>, NO_COLOR: "1", TMPDIR: tmp },
      stdio: "pipe",
    });
    let err = "";
    serve.stderr!.on("data", (d) => (err += d));
    const exited = new Promise<void>((resolve) => serve.on("close", () => resolve()));
    try {
      await until("serving", () => /serving \d+ plugin/.test(err));
      assert.match(err, /serving 1 plugin/, err);
      const status = (await run(["status", "--socket", socket])).stdout;
      assert.match(status, /^signed\s+running/m, status);
      for (const name of ["unsigned", "garbled", "stranger"]) {
        assert.match(status, new RegExp(`^${name}\\s+failed`, "m"));
      }
      assert.match(err, /unsigned.*plugin\.sigstore\.json does not exist: the plugin is unsigned; sign it/);
      assert.match(err, /garbled.*plugin\.sigstore\.json/);
      assert.match(err, /stranger.*signs a different tree than this directory holds/);
      serve.kill("SIGTERM");
      await exited;
      assert.deepEqual(readdirSync(tmp), [], "no run root left");

      const ls = (await run(["ls", plugins, "--trust", policy])).stdout;
      const trustOf = (name: string) => new RegExp(`^${name} [^]*?trust: +(.*)$`, "m").exec(ls)?.[1];
      assert.match(trustOf("signed") ?? "", /^no lock, signed by key sha256:[0-9a-f]{12}…, verified$/, ls);
      assert.equal(trustOf("unsigned"), "no lock, unsigned", ls);
      assert.equal(trustOf("garbled"), "no lock, bundle_malformed", ls);
      assert.match(
        trustOf("stranger") ?? "",
        /^no lock, signed by key sha256:[0-9a-f]{12}… \(not verified\), digest_mismatch$/,
      );
    } finally {
      serve.kill("SIGKILL");
      await exited;
      rmSync(work, { recursive: true, force: true });
    }
  },
  { timeoutMs: 120_000 },
);

test("audit tail -f prints records as another process appends them, across a rotation, until Ctrl-C", async () => {
  const work = mkdtempSync(join(tmpdir(), "pshm-integrity-cli-"));
  const file = join(work, "audit.jsonl");
  const log = AuditLog.open(file, { rotateBytes: 600 });
  log.append({ actor: "cli", plugin: "first", action: "load", details: {} });
  await log.flush();
  const argv = cliCommand();
  const tail = spawn(argv[0], [...argv.slice(1), "audit", "tail", file, "-f", "-n", "5"], {
    cwd: root,
    env: { ...process.env as Record<string, string>, NO_COLOR: "1" },
    stdio: "pipe",
  });
  let out = "";
  tail.stdout!.on("data", (d) => (out += d));
  const closed = new Promise<number | null>((resolve) => tail.on("close", (code) => resolve(code)));
  try {
    await until("the first record", () => /\tfirst\tload\t/.test(out));
    for (let i = 0; i < 10; i++) log.append({ actor: "admin", plugin: `p${i}`, action: "reload", details: { i } });
    await log.flush();
    await until("the appended records", () => /\tp9\treload\t/.test(out));
    assert.ok(readdirSync(work).length > 1, "the log rotated while it was followed");
    const seqs = out.trim().split("\n").map((l) => Number(l.split("\t")[0]));
    assert.deepEqual(seqs, Array.from({ length: 11 }, (_, i) => i + 1), out);
    tail.kill("SIGINT");
    const code = await closed;
    if (runtime === "bun") assert.equal(code, 0);
  } finally {
    tail.kill("SIGKILL");
    await closed;
    await log.close();
    rmSync(work, { recursive: true, force: true });
  }
}, { timeoutMs: 60_000 });

test(
  "serve --admin --audit: an operator's restart through the admin API is recorded with actor admin, after the unload and load it caused",
  async () => {
    const work = mkdtempSync(join(tmpdir(), "pshm-integrity-cli-"));
    const plugins = join(work, "plugins");
    writePlugin(join(plugins, "good"), "good");
    const audit = join(work, "audit.jsonl");
    const token = "integrity-test-token-0123456789abcdef";
    const argv = cliCommand();
    const serve = spawn(
      argv[0],
      [
        ...argv.slice(1),
        "serve",
        plugins,
        "--socket",
        join(work, "c.sock"),
        "--admin",
        "127.0.0.1:0",
        "--audit",
        audit,
      ],
      { cwd: root, env: { ...process.env as Record<string, string>, NO_COLOR: "1", PLUGIN_SHM_ADMIN_TOKEN: token } },
    );
    let err = "";
    serve.stderr!.on("data", (d) => (err += d));
    serve.stdout!.resume();
    const exited = new Promise<void>((resolve) => serve.on("close", () => resolve()));
    try {
      await until("the admin API", () => /admin API and dashboard at \S+/.test(err) && /serving 1 plugin/.test(err));
      const url = /admin API and dashboard at (\S+)/.exec(err)![1];
      const res = await fetch(`${url}api/plugins/good/restart`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify({ reason: "rotating keys" }),
      });
      assert.equal(res.status, 200, await res.text());
      serve.kill("SIGTERM");
      await exited;
    } finally {
      serve.kill("SIGKILL");
      await exited;
    }
    try {
      const records = (await run(["audit", "tail", audit, "-n", "100"])).stdout.trim().split("\n").map((l) =>
        l.split("\t")
      );
      const operator = records.find((r) => r[2] === "admin");
      assert.ok(operator, records.map((r) => r.join(" ")).join("\n"));
      assert.deepEqual(operator.slice(3, 5), ["good", "restart"]);
      assert.match(operator[5], /"outcome":"ok"/);
      assert.match(operator[5], /"reason":"rotating keys"/);
      // The host's side of it, recorded before the action (which is recorded when done): unload, then load again.
      const before = records.slice(0, records.indexOf(operator)).map((r) => `${r[2]} ${r[3]} ${r[4]}`);
      assert.deepEqual(before.slice(-2), ["host good unload", "host good load"], before.join("\n"));
      assert.equal((await run(["audit", "verify", audit])).code, 0);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  },
  { timeoutMs: 120_000 },
);

test("an edited audit record is found by audit verify, naming it, and a cut tail by --checkpoint", async () => {
  const work = mkdtempSync(join(tmpdir(), "pshm-integrity-cli-"));
  try {
    const plugins = join(work, "plugins");
    writePlugin(join(plugins, "one"), "one");
    const audit = join(work, "audit.jsonl");
    const lockFile = join(work, "plugin-shm.lock");
    assert.equal((await run(["lock", plugins, "--out", lockFile])).code, 0);
    for (let i = 0; i < 2; i++) {
      const called = await run(["call", "one", "ping", "--dir", plugins, "--lock", lockFile, "--audit", audit]);
      assert.equal(called.code, 0, called.stderr);
    }
    const checkpoint = (await run(["audit", "checkpoint", audit])).stdout.trim();
    const lines = readFileSync(audit, "utf8").split("\n").slice(0, -1);
    assert.ok(lines.length >= 4, lines.join("\n"));

    writeFileSync(audit, lines.slice(0, -1).join("\n") + "\n");
    assert.equal((await run(["audit", "verify", audit])).code, 0, "a cut tail alone still chains");
    const cut = await run(["audit", "verify", audit, "--checkpoint", checkpoint]);
    assert.equal(cut.code, 1);
    assert.match(cut.stderr, /AuditError: .*audit\.jsonl/);

    const edited = lines.map((l, i) => (i === 1 ? l.replace('"one"', '"two"') : l));
    writeFileSync(audit, edited.join("\n") + "\n");
    const bad = await run(["audit", "verify", audit]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /AuditError: .*audit\.jsonl/);
    assert.match(bad.stderr, /audit\.jsonl:3: .*record 2 was edited/, "names the record where the chain breaks");
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}, { timeoutMs: 120_000 });

test(
  "bad locks, trust policies, keys, checkpoints and directories each give a typed error naming the file and what to do",
  async () => {
    const work = mkdtempSync(join(tmpdir(), "pshm-integrity-cli-"));
    try {
      const sig = join(fixtures, "sigstore");
      const file = (name: string, text: string) => {
        writeFileSync(join(work, name), text);
        return join(work, name);
      };
      mkdirSync(join(work, "empty"));
      const call = ["call", "echo", "echo", '["x"]'];
      const cases: { args: string[]; env?: Record<string, string>; code: number; error: RegExp }[] = [
        {
          args: [...call, "--integrity", "require", "--lock", file("shape.lock", '{"version":1,"plugins":5}')],
          code: 1,
          error: /IntegrityError: .*shape\.lock is malformed: .*regenerate it with `plugin-shm lock`/,
        },
        {
          args: [...call, "--lock", file("text.lock", "not json")],
          code: 1,
          error: /IntegrityError: .*text\.lock is malformed: not valid JSON.*regenerate it/s,
        },
        {
          args: [...call, "--trust", file("keys.json", '{"keys":5}')],
          code: 1,
          error: /SignatureError: .*keys\.json: "keys" must be a list/,
        },
        {
          args: [
            ...call,
            "--trust",
            file("root.json", '{"identities":[{"issuer":"https://i","subject":"s"}],"trustedRoot":"gone.json"}'),
          ],
          code: 1,
          error: /SignatureError: .*gone\.json cannot be read as JSON.*point "trustedRoot"/,
        },
        {
          args: ["sign", join(sig, "plugin"), "--key", join(sig, "cosign.key"), "--out", join(work, "b.json")],
          env: { COSIGN_PASSWORD: "wrong" },
          code: 1,
          error: /SignatureError: .*cosign\.key: wrong password.*set COSIGN_PASSWORD/,
        },
        {
          args: ["sign", join(sig, "plugin"), "--key", join(sig, "cosign.pub"), "--out", join(work, "b.json")],
          code: 1,
          error: /SignatureError: .*cosign\.pub is not a cosign private key.*cosign generate-key-pair/,
        },
        {
          args: ["audit", "verify", join(work, "a.jsonl"), "--checkpoint", "junk"],
          code: 2,
          error: /--checkpoint must be <seq>:<64 hex digits> as printed by "audit checkpoint", got "junk"/,
        },
        {
          args: ["audit", "verify", join(work, "missing.jsonl")],
          code: 1,
          error: /AuditError: .*missing\.jsonl does not exist/,
        },
        { args: ["audit", "tail", join(work, "a.jsonl"), "-n", "0"], code: 2, error: /--lines must be a positive/ },
        {
          args: ["lock", join(work, "nowhere")],
          code: 1,
          error: /IntegrityError: .*nowhere is not a directory; pass plugin directories/,
        },
        { args: [...call, "--audit-required"], code: 2, error: /--audit-required needs --audit <file>/ },
        {
          args: ["lock", join(work, "empty")],
          code: 1,
          error: /IntegrityError: no plugin .* in .*empty; nothing to lock/,
        },
      ];
      for (const c of cases) {
        const r = await run(c.args, c.env);
        assert.equal(r.code, c.code, `${c.args.join(" ")}\n${r.stderr}`);
        assert.match(r.stderr, c.error, c.args.join(" "));
      }
      assert.equal(existsSync(join(work, "empty", "plugin-shm.lock")), false, "nothing written for an empty dir");
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  },
  { timeoutMs: 180_000 },
);
