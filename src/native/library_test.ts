import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import process from "node:process";
import { createHash } from "node:crypto";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { root, runtimes, test } from "../../tests/_harness.ts";
import { NativeLibraryError } from "./errors.ts";
import { fetchRemoteLibrary, findLibrary, libraryEnv, libraryFileName, platformLibrary } from "./library.ts";

/** A real libpluginshm to copy around: whatever this checkout would open. */
const builtLibrary = findLibrary();
const noEnv = () => undefined;
const key = platformLibrary();

/** A package directory (sources layout) holding whichever of `native/` and `zig-out/` asked for. */
function fakePackage(parts: { native?: boolean; zigOut?: boolean; tamper?: boolean }): string {
  const dir = mkdtempSync(join(tmpdir(), "pshm-lib-"));
  mkdirSync(join(dir, "src/native"), { recursive: true });
  cpSync(join(root, "src"), join(dir, "src"), { recursive: true });
  const bytes = readFileSync(builtLibrary);
  if (parts.native) {
    mkdirSync(join(dir, "native", key, ".."), { recursive: true });
    const shipped = new Uint8Array(bytes);
    if (parts.tamper) shipped[shipped.length - 1] ^= 0xff;
    writeFileSync(join(dir, "native", key), shipped);
    const sha256 = createHash("sha256").update(bytes).digest("hex");
    writeFileSync(
      join(dir, "native/manifest.json"),
      JSON.stringify({ files: { [key]: { sha256, bytes: bytes.length } } }),
    );
  }
  if (parts.zigOut) {
    mkdirSync(join(dir, "zig-out/lib"), { recursive: true });
    writeFileSync(join(dir, "zig-out/lib", libraryFileName()), bytes);
  }
  return dir;
}

function moduleIn(dir: string): string {
  return pathToFileURL(join(dir, "src/native/library.ts")).href;
}

/** Serves a directory over real HTTP on 127.0.0.1; returns its base URL and the server. */
async function serve(dir: string): Promise<{ base: string; server: Server; requests: string[] }> {
  const requests: string[] = [];
  const server = createServer((request, response) => {
    const path = decodeURIComponent(new URL(request.url ?? "/", "http://x").pathname);
    requests.push(path);
    const file = join(dir, path);
    if (path.includes("..") || !existsSync(file)) {
      response.writeHead(404).end("not found");
      return;
    }
    response.writeHead(200).end(readFileSync(file));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address() as { port: number };
  return { base: `http://127.0.0.1:${address.port}/`, server, requests };
}

async function stop(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
}

test("PLUGIN_SHM_LIB wins over a prebuilt and a zig-out library", () => {
  const dir = fakePackage({ native: true, zigOut: true });
  try {
    const env = (name: string) => name === libraryEnv ? builtLibrary : undefined;
    assert.equal(findLibrary({ moduleUrl: moduleIn(dir), env }), builtLibrary);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a PLUGIN_SHM_LIB that points nowhere is used as given, with no fallback", () => {
  const dir = fakePackage({ native: true });
  try {
    const env = (name: string) => name === libraryEnv ? join(dir, "nope.so") : undefined;
    // Opening it fails with the path and the variable named (tests/bad_input_test.ts).
    assert.equal(findLibrary({ moduleUrl: moduleIn(dir), env }), join(dir, "nope.so"));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the package's prebuilt library for this platform comes before a zig-out build", () => {
  const dir = fakePackage({ native: true, zigOut: true });
  try {
    assert.equal(findLibrary({ moduleUrl: moduleIn(dir), env: noEnv }), join(dir, "native", key));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("compiled for Node (dist/src/native/), the package root one level up is searched too", () => {
  const dir = fakePackage({ native: true });
  try {
    const compiled = pathToFileURL(join(dir, "dist/src/native/library.js")).href;
    assert.equal(findLibrary({ moduleUrl: compiled, env: noEnv }), join(dir, "native", key));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("without a prebuilt library for this platform, a local zig-out build is used", () => {
  const dir = fakePackage({ zigOut: true });
  try {
    assert.equal(findLibrary({ moduleUrl: moduleIn(dir), env: noEnv }), join(dir, "zig-out/lib", libraryFileName()));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("another platform's prebuilt library is never picked", () => {
  const dir = fakePackage({ native: true });
  try {
    assert.throws(
      () => findLibrary({ moduleUrl: moduleIn(dir), env: noEnv, platform: "darwin", arch: "arm64" }),
      /Cannot find libpluginshm for darwin-arm64.*native\/darwin-arm64\/libpluginshm\.dylib \(missing\)/,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("when nothing is found, the error lists every place tried, in order, and what to do", () => {
  const dir = fakePackage({});
  try {
    assert.throws(() => findLibrary({ moduleUrl: moduleIn(dir), env: noEnv }), (error: NativeLibraryError) => {
      assert.ok(error instanceof NativeLibraryError);
      const message = error.message;
      const order = [
        "PLUGIN_SHM_LIB (not set)",
        join(dir, "native", key),
        join(dir, "zig-out/lib", libraryFileName()),
      ].map((place) => message.indexOf(place));
      assert.ok(order.every((at) => at >= 0), message);
      assert.deepEqual([...order].sort((a, b) => a - b), order, message);
      assert.match(message, /make build.*or set PLUGIN_SHM_LIB/);
      return true;
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a remote module fetches the library beside it, checks its digest, and caches it under the digest", async () => {
  const dir = fakePackage({ native: true });
  const cache = mkdtempSync(join(tmpdir(), "pshm-cache-"));
  const { base, server, requests } = await serve(dir);
  const env = (name: string) => name === "PLUGIN_SHM_CACHE_DIR" ? cache : undefined;
  try {
    const moduleUrl = `${base}src/native/library.ts`;
    const remote = await fetchRemoteLibrary(moduleUrl, { env });
    assert.ok("path" in remote, JSON.stringify(remote));
    const digest = createHash("sha256").update(readFileSync(builtLibrary)).digest("hex");
    assert.equal(remote.path, join(cache, digest, libraryFileName()));
    assert.deepEqual(readFileSync(remote.path), readFileSync(builtLibrary));
    assert.equal(findLibrary({ moduleUrl, env, remote }), remote.path);
    assert.deepEqual(requests, ["/native/manifest.json", `/native/${key}`]);
    // A second process finds the cached copy: only the manifest is fetched again.
    requests.length = 0;
    assert.deepEqual(await fetchRemoteLibrary(moduleUrl, { env }), remote);
    assert.deepEqual(requests, ["/native/manifest.json"]);
  } finally {
    await stop(server);
    rmSync(dir, { recursive: true, force: true });
    rmSync(cache, { recursive: true, force: true });
  }
});

test("a remote library whose bytes do not match the manifest is refused and not cached", async () => {
  const dir = fakePackage({ native: true, tamper: true });
  const cache = mkdtempSync(join(tmpdir(), "pshm-cache-"));
  const { base, server } = await serve(dir);
  const env = (name: string) => name === "PLUGIN_SHM_CACHE_DIR" ? cache : undefined;
  try {
    const moduleUrl = `${base}src/native/library.ts`;
    const remote = await fetchRemoteLibrary(moduleUrl, { env });
    assert.ok("tried" in remote);
    assert.throws(() => findLibrary({ moduleUrl, env, remote }), (error: NativeLibraryError) => {
      assert.equal(error.code, "native_library");
      assert.match(error.message, new RegExp(`${base}native/${key} \\(SHA-256 [0-9a-f]{64} does not match`));
      assert.match(error.message, /Tried, in order: PLUGIN_SHM_LIB \(not set\); http/);
      return true;
    });
    assert.deepEqual(readdirNames(cache), []);
  } finally {
    await stop(server);
    rmSync(dir, { recursive: true, force: true });
    rmSync(cache, { recursive: true, force: true });
  }
});

function readdirNames(dir: string): string[] {
  return spawnSync("ls", ["-A", dir], { encoding: "utf8" }).stdout.split("\n").filter(Boolean);
}

/** Runs a Deno script that imports the loader over http, as a JSR or URL import would. */
function importRemotely(base: string, cache: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const script = `import { getNative } from "${base}src/native/native.ts"; ` +
    `const native = getNative(); console.log(native.path); console.log(native.runtime);`;
  const child = spawn(runtimes.deno, ["eval", "--no-lock", script], {
    env: { PLUGIN_SHM_CACHE_DIR: cache, PATH: process.env.PATH ?? "", HOME: cache, DENO_DIR: join(cache, ".deno") },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk) => stdout += chunk);
  child.stderr.on("data", (chunk) => stderr += chunk);
  return new Promise((resolve) =>
    child.on("close", (code) => resolve({ code, stdout: stdout.trim(), stderr: stderr.trim() }))
  );
}

test("importing plugin-shm from a URL (Deno) fetches, verifies, caches and opens the library", async () => {
  const dir = fakePackage({ native: true });
  const cache = mkdtempSync(join(tmpdir(), "pshm-cache-"));
  const { base, server } = await serve(dir);
  try {
    const { code, stdout, stderr } = await importRemotely(base, cache);
    assert.equal(code, 0, stderr);
    const [path, opened] = stdout.split("\n");
    assert.match(path, new RegExp(`^${cache}/[0-9a-f]{64}/${libraryFileName()}$`));
    assert.equal(opened, "deno");
    assert.deepEqual(readFileSync(path), readFileSync(builtLibrary));
  } finally {
    await stop(server);
    rmSync(dir, { recursive: true, force: true });
    rmSync(cache, { recursive: true, force: true });
  }
});

test("importing plugin-shm from a URL (Deno) refuses a tampered library and says what it tried", async () => {
  const dir = fakePackage({ native: true, tamper: true });
  const cache = mkdtempSync(join(tmpdir(), "pshm-cache-"));
  const { base, server } = await serve(dir);
  try {
    const { code, stderr } = await importRemotely(base, cache);
    assert.notEqual(code, 0);
    assert.match(stderr, /NativeLibraryError: Cannot find libpluginshm/);
    assert.match(stderr, /does not match the manifest's/);
    assert.doesNotMatch(readdirNames(cache).join(" "), /[0-9a-f]{64}/);
  } finally {
    await stop(server);
    rmSync(dir, { recursive: true, force: true });
    rmSync(cache, { recursive: true, force: true });
  }
});
