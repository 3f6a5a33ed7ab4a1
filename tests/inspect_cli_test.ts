/**
 * `cli.ts serve --inspect <plugin>[:port]` as a user meets it: real serve
 * processes under the runtime running the tests, the real plugin and its
 * runtime's inspector, the URL printed; bad input refused before anything
 * starts, or (a port someone else holds) that one plugin fails while the
 * serve goes on.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fixtures, root, runtime, runtimes, test } from "./_harness.ts";

/** cli.ts under the runtime running the tests (Node runs the compiled copy). */
function cliCommand(): string[] {
  if (runtime === "deno") return [runtimes.deno, "run", "-A", join(root, "cli.ts")];
  if (runtime === "bun") return [runtimes.bun, join(root, "cli.ts")];
  return [runtimes.node, join(root, "dist", "cli.js")];
}

interface Serve {
  stderr(): string;
  exited: Promise<number | null>;
  kill(signal: NodeJS.Signals): void;
}

function serve(args: string[]): Serve {
  const argv = [...cliCommand(), "serve", ...args];
  const child = spawn(argv[0], argv.slice(1), {
    cwd: root,
    env: { ...process.env as Record<string, string>, NO_COLOR: "1" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr!.on("data", (d) => (stderr += d));
  child.stdout!.resume();
  const exited = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)));
  return { stderr: () => stderr, exited, kill: (signal) => child.kill(signal) };
}

async function until(what: string, check: () => boolean, limitMs = 30_000): Promise<void> {
  const started = Date.now();
  while (!check()) {
    if (Date.now() - started > limitMs) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const spinner = join(fixtures, "spinner");
const echo = join(root, "examples", "plugins", "echo");

test(
  "serve --inspect prints where to attach Chrome DevTools and VS Code, and the inspector answers there",
  async () => {
    const dir = mkdtempSync(join(tmpdir(), "pshm-inspect-cli-"));
    const server = serve([spinner, echo, "--inspect", "spinner", "--socket", join(dir, "control.sock")]);
    try {
      await until("serving", () => /serving \d plugin\(s\)/.test(server.stderr()));
      const err = server.stderr();
      assert.match(err, /serving 2 plugin\(s\)/);
      const line = err.split("\n").find((l) => l.includes("spinner: inspect"));
      assert.ok(line, err);
      assert.match(line, /deno inspector on 127\.0\.0\.1:\d+: open devtools:\/\/devtools\/bundled\/js_app\.html\?/);
      assert.match(line, /VS Code: attach \(type "node"\) to port \d+/);
      assert.ok(!/echo: inspect/.test(err), "only the plugin named gets an inspector");
      const port = Number(/inspector on 127\.0\.0\.1:(\d+)/.exec(line)![1]);
      const targets = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json() as {
        webSocketDebuggerUrl: string;
      }[];
      assert.equal(targets.length, 1);
      assert.equal(line.includes(targets[0].webSocketDebuggerUrl), true, "the printed URL is the inspector's");
    } finally {
      server.kill("SIGTERM");
      await server.exited;
      rmSync(dir, { recursive: true, force: true });
    }
  },
  { timeoutMs: 90_000 },
);

test(
  "serve --inspect with an unknown plugin or a bad port fails before anything starts, saying what to do",
  async () => {
    const dir = mkdtempSync(join(tmpdir(), "pshm-inspect-cli-"));
    try {
      const typo = serve([spinner, echo, "--inspect", "spiner", "--socket", join(dir, "a.sock")]);
      assert.equal(await typo.exited, 1);
      assert.match(
        typo.stderr(),
        /--inspect spiner: no plugin "spiner" in the served directories; did you mean "spinner"\?/,
      );
      assert.doesNotMatch(typo.stderr(), /started/, "nothing was started");
      const low = serve([spinner, "--inspect", "spinner:80", "--socket", join(dir, "b.sock")]);
      assert.equal(await low.exited, 1);
      assert.match(low.stderr(), /InspectError: Cannot inspect plugin "spinner" on port 80: give an integer from 1024/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
  { timeoutMs: 90_000 },
);

test(
  "serve --inspect on a port another process holds fails that plugin with the reason; the others serve",
  async () => {
    const dir = mkdtempSync(join(tmpdir(), "pshm-inspect-cli-"));
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve));
    const port = (taken.address() as { port: number }).port;
    const server = serve([spinner, echo, "--inspect", `spinner:${port}`, "--socket", join(dir, "c.sock")]);
    try {
      await until("serving", () => /serving \d plugin\(s\)/.test(server.stderr()));
      assert.match(server.stderr(), /serving 1 plugin\(s\)/);
      assert.match(
        server.stderr(),
        new RegExp(
          `spinner: failed: Cannot inspect plugin "spinner" on 127\\.0\\.0\\.1:${port}: another process listens`,
        ),
      );
    } finally {
      taken.close();
      server.kill("SIGTERM");
      await server.exited;
      rmSync(dir, { recursive: true, force: true });
    }
  },
  { timeoutMs: 90_000 },
);
