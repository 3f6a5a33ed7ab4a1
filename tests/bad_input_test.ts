import assert from "node:assert/strict";
import { closeSync, openSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { getNative, SegmentError, ShmChannel } from "../mod.ts";
import { L } from "../src/native/layout.ts";
import { launchEnv, wholeNumberFromEnv } from "../src/protocol/launch.ts";
import { matchesPattern, pattern, peerPath, runtime, shmSegments, startPeer, test } from "./_harness.ts";

function expectSegmentError(fn: () => unknown, code: string, message: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof SegmentError, String(e));
    assert.equal(e.code, code);
    assert.match(e.message, message);
    return true;
  });
}

function poke(name: string, offset: number, bytes: Uint8Array): void {
  const fd = openSync(`/dev/shm/${name}`, "r+");
  writeSync(fd, bytes, 0, bytes.length, offset);
  closeSync(fd);
}

function fakeSegment(bytes: Uint8Array): string {
  const name = `pshm-test${Math.random().toString(16).slice(2, 14)}`;
  writeFileSync(`/dev/shm/${name}`, bytes, { mode: 0o600 });
  return name;
}

function header(ringBytes: number): Uint8Array {
  const bytes = new Uint8Array(L.header_bytes);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, L.magic_lo, true);
  view.setUint32(4, L.magic_hi, true);
  view.setUint32(8, L.layout_version, true);
  view.setUint32(12, L.header_bytes, true);
  view.setBigUint64(16, BigInt(L.header_bytes + 2 * ringBytes), true);
  view.setUint32(24, ringBytes, true);
  return bytes;
}

test("a wrong token is refused with advice, and the right token still works once", async () => {
  const a = ShmChannel.create();
  const wrong = a.token.replace(/^./, (c) => (c === "0" ? "1" : "0"));
  expectSegmentError(() => ShmChannel.attach(a.name, wrong), "token_mismatch", /token does not match/);
  expectSegmentError(() => ShmChannel.attach(a.name, "abcd"), "token_mismatch", /token does not match/);
  const b = ShmChannel.attach(a.name, a.token);
  expectSegmentError(() => ShmChannel.attach(a.name, a.token), "not_found", /does not exist/);
  await a.send(pattern(1, 5));
  assert.ok(matchesPattern(1, await b.receive()));
  b.close();
  a.close();
});

test("a segment with the wrong magic is refused as not ours", () => {
  const a = ShmChannel.create();
  poke(a.name, 0, new Uint8Array(8));
  expectSegmentError(() => ShmChannel.attach(a.name, a.token), "bad_magic", /not a plugin-shm segment/);
  a.close();
});

test("a segment from another layout version is refused with upgrade advice", () => {
  const a = ShmChannel.create();
  poke(a.name, 8, new Uint8Array([99, 0, 0, 0]));
  expectSegmentError(() => ShmChannel.attach(a.name, a.token), "bad_layout_version", /same plugin-shm release/);
  a.close();
});

test("truncated segments are refused: shorter than a header, or shorter than their header says", () => {
  const tiny = fakeSegment(new Uint8Array(100));
  const short = fakeSegment(header(1 << 20));
  try {
    expectSegmentError(() => ShmChannel.attach(tiny, "00".repeat(32)), "truncated", /truncated/);
    expectSegmentError(() => ShmChannel.attach(short, "00".repeat(32)), "truncated", /truncated/);
  } finally {
    rmSync(`/dev/shm/${tiny}`);
    rmSync(`/dev/shm/${short}`);
  }
});

test("names that could escape /dev/shm and non-hex tokens are refused before any system call", () => {
  expectSegmentError(() => ShmChannel.attach("../../etc/passwd", "00"), "invalid_argument", /malformed/);
  assert.throws(() => ShmChannel.attach("pshm-abc", "zz"), TypeError);
  expectSegmentError(() => ShmChannel.attach("pshm-doesnotexist", "00".repeat(32)), "not_found", /does not exist/);
});

test("the sweep removes a segment whose creator was killed before anyone attached", async () => {
  const child = startPeer(runtime, peerPath("creator_peer.ts"), {});
  const name = await new Promise<string>((resolve, reject) => {
    child.child.stdout!.on("data", (d) => resolve(String(d).trim()));
    child.exited.then(() => reject(new Error(`creator exited early: ${child.stderr()}`)));
  });
  assert.ok(shmSegments().includes(name));
  getNative().sweep();
  assert.ok(shmSegments().includes(name), "a live creator's segment is left alone");
  child.child.kill("SIGKILL");
  await child.exited;
  assert.ok(getNative().sweep() >= 1);
  assert.ok(!shmSegments().includes(name));
}, { timeoutMs: 30_000 });

for (const which of ["deno", "bun", "node"] as const) {
  test(`a missing native library under ${which} names the command that builds it`, async () => {
    const child = startPeer(which, peerPath("load_only.ts"), { PLUGIN_SHM_LIB: "/nonexistent/libpluginshm.so" });
    const { code } = await child.exited;
    assert.equal(code, 3);
    assert.match(child.stderr(), /NativeLibraryError: Cannot load libpluginshm from \/nonexistent.*make build/);
  }, { timeoutMs: 30_000 });
}

test("a bad PLUGIN_SHM_LIVENESS_MS or PLUGIN_SHM_BLOCK_MICROS from the launching host is a RangeError naming the variable and the range", () => {
  const cases = [
    { variable: launchEnv.livenessCheckMs, min: 1, max: 3_600_000, unit: "milliseconds", bad: ["0", "99999999"] },
    { variable: launchEnv.blockMicros, min: 0, max: 100_000, unit: "microseconds", bad: ["100001"] },
  ];
  for (const { variable, min, max, unit, bad } of cases) {
    for (const value of [...bad, "abc", "1.5", "-1", " 5"]) {
      assert.throws(() => wholeNumberFromEnv(variable, value, min, max, unit), (e: unknown) => {
        assert.ok(e instanceof RangeError, String(e));
        assert.equal(e.message.startsWith(`${variable} must be a whole number of ${unit} from ${min} to ${max}`), true);
        assert.match(e.message, /unset it for the default/);
        return true;
      });
    }
    assert.equal(wholeNumberFromEnv(variable, String(max), min, max, unit), max);
    assert.equal(wholeNumberFromEnv(variable, undefined, min, max, unit), undefined);
    assert.equal(wholeNumberFromEnv(variable, "", min, max, unit), undefined);
  }
});
