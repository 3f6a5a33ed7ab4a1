/**
 * The pure parts of debugging and blame: self time from a V8 profile, the
 * runtime flags and sandbox arguments an inspected plugin gets, and the
 * WebSocket framing of the inspector client against a real server.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createHash } from "node:crypto";
import { createServer, type Socket } from "node:net";
import { Buffer } from "node:buffer";
import { test } from "../../tests/_harness.ts";
import { type CpuProfile, describeBlame, pruneProfiles, topSelfTime } from "./_blame.ts";
import { CdpSession } from "./_cdp.ts";
import { checkInspectPort, inspectFlag } from "./_inspect.ts";
import { InspectError } from "./errors.ts";
import { withRuntimeFlags } from "./launch_plan.ts";
import { planSandbox, type SandboxContext } from "./sandbox_plan.ts";

const frame = (id: number, functionName: string, line = 0) => ({
  id,
  callFrame: { functionName, url: `file:///p/main.ts`, lineNumber: line, columnNumber: 0 },
});

test("topSelfTime sums self time per function, busiest first, without V8's pseudo-functions", () => {
  const profile: CpuProfile = {
    nodes: [frame(1, "(root)"), frame(2, "outer", 9), frame(3, "spinForever", 2), frame(4, "(idle)")],
    startTime: 0,
    endTime: 10_000,
    samples: [3, 3, 3, 2, 4, 3],
    timeDeltas: [0, 1000, 1000, 1000, 1000, 1000],
  };
  const top = topSelfTime(profile);
  assert.deepEqual(top.map((f) => [f.functionName, f.line]), [["spinForever", 3], ["outer", 10]]);
  assert.ok(top[0].selfMs > top[1].selfMs);
  assert.ok(top[0].share > 0.5 && top[0].share < 1);
  const line = describeBlame({ stack: [top[0]], top, sampledMs: 10, profilePath: "/tmp/x.cpuprofile" });
  assert.match(line, /^stuck in spinForever \(main\.ts:3\); self time over 10 ms: spinForever \(main\.ts:3\) \d+ %/);
});

test("pruneProfiles keeps the newest profiles and leaves other files alone", () => {
  const dir = mkdtempSync(join(tmpdir(), "pshm-prune-"));
  try {
    for (let i = 0; i < 5; i++) {
      writeFileSync(join(dir, `p-${i}.cpuprofile`), "{}");
      utimesSync(join(dir, `p-${i}.cpuprofile`), 1000 + i, 1000 + i);
    }
    writeFileSync(join(dir, "notes.txt"), "mine");
    pruneProfiles(dir, 2);
    assert.deepEqual(readdirSync(dir).sort(), ["notes.txt", "p-3.cpuprofile", "p-4.cpuprofile"]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("topSelfTime of a profile without samples is empty", () => {
  assert.deepEqual(topSelfTime({ nodes: [frame(1, "(root)")], startTime: 0, endTime: 0 }), []);
});

test("inspect flags: Deno after run, Bun with its secret path, Node on demand only sets the port", () => {
  const endpoint = { host: "127.0.0.1", port: 9333 };
  assert.deepEqual(withRuntimeFlags("deno", ["run", "-A", "e.ts"], [inspectFlag("deno", endpoint)]), [
    "run",
    "--inspect=127.0.0.1:9333",
    "-A",
    "e.ts",
  ]);
  assert.equal(inspectFlag("bun", { ...endpoint, path: "s3cret" }), "--inspect=127.0.0.1:9333/s3cret");
  assert.equal(inspectFlag("node", { ...endpoint, onDemand: true }), "--inspect-port=127.0.0.1:9333");
  assert.equal(inspectFlag("node", endpoint), "--inspect=127.0.0.1:9333");
});

test("an inspect port below 1024, above 65535 or not an integer is an InspectError bad_port", () => {
  for (const port of [0, 80, 1023, 65536, 1.5, "9229", null]) {
    assert.throws(
      () => checkInspectPort("kv", port),
      (e: unknown) => e instanceof InspectError && e.code === "bad_port",
    );
  }
  assert.equal(checkInspectPort("kv", 9229), 9229);
});

const context: SandboxContext = {
  runtime: "node",
  runtimeBinary: "/usr/bin/node",
  launcher: "/x/pshm-launch",
  pluginDir: "/p",
  entryPath: "/x/_launch.js",
  packageDir: "/x",
  nativeLibrary: "/x/lib.so",
  sdkEnv: [],
  mode: "required",
};

test("planSandbox: an inspected plugin may create TCP sockets and bind its inspector port, nothing more", () => {
  const plain = planSandbox(context, {});
  assert.ok(!plain.args.some((a) => a.startsWith("--inet") || a.startsWith("--bind") || a.startsWith("--connect")));
  const inspected = planSandbox({ ...context, inspect: { host: "127.0.0.1", port: 9444 } }, {});
  const launcherArgs = inspected.args.slice(0, inspected.args.indexOf("--"));
  assert.deepEqual(launcherArgs.filter((a) => /^--(inet|bind|connect)/.test(a)), ["--inet=tcp", "--bind=9444"]);
  assert.deepEqual(inspected.runtimeArgs, ["--inspect=127.0.0.1:9444", "/x/_launch.js"]);
  // A net grant already opens every socket type: the inspector adds only its bind.
  const granted = planSandbox({ ...context, inspect: { host: "127.0.0.1", port: 9444 } }, { net: ["127.0.0.1:80"] });
  const grantedArgs = granted.args.slice(0, granted.args.indexOf("--"));
  assert.deepEqual(grantedArgs.filter((a) => /^--(inet|bind|connect)/.test(a)), [
    "--inet",
    "--connect=80",
    "--bind=80",
    "--bind=9444",
  ]);
  const deno = planSandbox({ ...context, runtime: "deno", inspect: { host: "127.0.0.1", port: 9444 } }, {});
  assert.deepEqual(deno.runtimeArgs.slice(0, 3), ["run", "--no-prompt", "--inspect=127.0.0.1:9444"]);
});

/** A one-connection WebSocket server that echoes CDP requests as responses, fragmenting big ones. */
async function echoServer(): Promise<{ url: string; close(): void }> {
  const server = createServer((socket: Socket) => {
    let head = Buffer.alloc(0);
    let upgraded = false;
    let buffer = Buffer.alloc(0);
    socket.on("data", (chunk: Buffer) => {
      if (!upgraded) {
        head = Buffer.concat([head, chunk]);
        const end = head.indexOf("\r\n\r\n");
        if (end < 0) return;
        const key = /sec-websocket-key: (.+)/i.exec(head.toString())![1].trim();
        const accept = createHash("sha1").update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest("base64");
        socket.write(
          `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
            `Sec-WebSocket-Accept: ${accept}\r\n\r\n`,
        );
        upgraded = true;
        chunk = head.subarray(end + 4);
      }
      buffer = Buffer.concat([buffer, chunk]);
      while (buffer.length >= 2) {
        let length = buffer[1] & 0x7f, offset = 2;
        if (length === 126) (length = buffer.readUInt16BE(2), offset = 4);
        else if (length === 127) (length = Number(buffer.readBigUInt64BE(2)), offset = 10);
        if (buffer.length < offset + 4 + length) return;
        const opcode = buffer[0] & 0x0f;
        const mask = buffer.subarray(offset, offset + 4);
        const payload = Buffer.from(buffer.subarray(offset + 4, offset + 4 + length).map((b, i) => b ^ mask[i & 3]));
        buffer = buffer.subarray(offset + 4 + length);
        if (opcode !== 0x1) continue; // the client's close frame
        const request = JSON.parse(payload.toString());
        const reply = Buffer.from(JSON.stringify({ id: request.id, result: { echo: request.params } }));
        // Two fragments (text, then continuation), with a ping between: the client must reassemble.
        const half = reply.length >> 1;
        socket.write(frame_(0x1, reply.subarray(0, half), false));
        socket.write(frame_(0x9, Buffer.from("hi"), true));
        socket.write(frame_(0x0, reply.subarray(half), true));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  return { url: `ws://127.0.0.1:${port}/x`, close: () => server.close() };
}

function frame_(opcode: number, payload: Buffer, fin: boolean): Buffer {
  const length = payload.length;
  const header = length < 126 ? Buffer.alloc(2) : length < 65536 ? Buffer.alloc(4) : Buffer.alloc(10);
  header[0] = (fin ? 0x80 : 0) | opcode;
  if (length < 126) header[1] = length;
  else if (length < 65536) (header[1] = 126, header.writeUInt16BE(length, 2));
  else (header[1] = 127, header.writeBigUInt64BE(BigInt(length), 2));
  return Buffer.concat([header, payload]);
}

test("the inspector client frames small, 16-bit and 64-bit lengths and reassembles fragmented replies", async () => {
  const server = await echoServer();
  const session = await CdpSession.open(server.url);
  try {
    for (const size of [10, 1000, 100_000]) {
      const text = "x".repeat(size);
      const result = await session.send<{ echo: { text: string } }>("Echo.echo", { text });
      assert.equal(result.echo.text, text);
    }
  } finally {
    await session.close();
    server.close();
  }
});
