import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { connect } from "node:tls";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PluginHost } from "../mod.ts";
import { createAdminApp } from "../src/admin/app.ts";
import { AdminError } from "../src/admin/errors.ts";
import { serveAdmin } from "../src/admin/serve.ts";
import { resolveAdminToken } from "../src/admin/token.ts";
import { examples, test } from "./_harness.ts";

test("the admin token comes from the environment, else from a 0600 file it generates once", () => {
  const dir = mkdtempSync(join(tmpdir(), "pshm-token-"));
  try {
    const file = join(dir, "state", "admin-token");
    const generated = resolveAdminToken({ env: {}, file });
    assert.equal(generated.source, "generated");
    assert.ok(generated.token.length >= 40);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const again = resolveAdminToken({ env: {}, file });
    assert.deepEqual([again.source, again.token], ["file", generated.token]);
    const fromEnv = resolveAdminToken({ env: { PLUGIN_SHM_ADMIN_TOKEN: "x".repeat(20) }, file });
    assert.deepEqual([fromEnv.source, fromEnv.token], ["env", "x".repeat(20)]);
    assert.throws(() => resolveAdminToken({ env: { PLUGIN_SHM_ADMIN_TOKEN: "short" }, file }), (e: unknown) => {
      assert.ok(e instanceof AdminError && e.code === "token_too_short");
      return true;
    });
    chmodSync(file, 0o644);
    assert.throws(() => resolveAdminToken({ env: {}, file }), (e: unknown) => {
      assert.ok(e instanceof AdminError && e.code === "token_file_insecure");
      assert.match(e.message, /chmod 600/);
      return true;
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("serveAdmin serves on loopback over HTTP, refuses another address without TLS, and serves TLS", async () => {
  const host = new PluginHost({ dirs: [examples], logger: () => {} });
  const token = "serve-test-token-0123456789";
  const app = createAdminApp(host, { token });
  const dir = mkdtempSync(join(tmpdir(), "pshm-tls-"));
  try {
    const server = await serveAdmin(app);
    try {
      assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
      const res = await fetch(`${server.url}api/plugins`, { headers: { authorization: `Bearer ${token}` } });
      assert.equal(res.status, 200);
      assert.equal(((await res.json()) as { plugins: unknown[] }).plugins.length, 3);
      const refused = await fetch(`${server.url}api/plugins`);
      assert.equal(refused.status, 401);
      await refused.body?.cancel();
      // An event stream through the runtime's real server: the first event arrives, closing it ends it.
      const events = await fetch(`${server.url}api/events`, { headers: { authorization: `Bearer ${token}` } });
      assert.match(events.headers.get("content-type") ?? "", /text\/event-stream/);
      const reader = events.body!.getReader();
      let text = "";
      while (!text.includes("\n\n")) text += new TextDecoder().decode((await reader.read()).value);
      assert.match(text, /^event: hello\ndata: \{/);
      await reader.cancel();
    } finally {
      await server.close();
    }
    await assert.rejects(serveAdmin(app, { hostname: "0.0.0.0" }), (e: unknown) => {
      assert.ok(e instanceof AdminError && e.code === "tls_required");
      return true;
    });
    execFileSync("openssl", [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-days",
      "1",
      "-subj",
      "/CN=localhost",
      "-keyout",
      join(dir, "key.pem"),
      "-out",
      join(dir, "cert.pem"),
    ], { stdio: "ignore" });
    const cert = readFileSync(join(dir, "cert.pem"), "utf8");
    const tlsServer = await serveAdmin(app, {
      hostname: "0.0.0.0",
      tls: { cert, key: readFileSync(join(dir, "key.pem"), "utf8") },
    });
    try {
      assert.match(tlsServer.url, /^https:\/\/0\.0\.0\.0:\d+\/$/);
      // A raw TLS client trusting exactly this certificate: the handshake and an HTTP exchange succeed.
      const reply = await new Promise<string>((resolve, reject) => {
        const socket = connect({ host: "127.0.0.1", port: tlsServer.port, ca: cert, servername: "localhost" }, () => {
          socket.write(`GET /api/plugins HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`);
        });
        let text = "";
        socket.setEncoding("utf8");
        socket.on("data", (d) => (text += d));
        socket.on("end", () => resolve(text));
        socket.on("error", reject);
      });
      assert.match(reply, /^HTTP\/1\.1 401/);
      assert.match(reply, /missing_token/);
    } finally {
      await tlsServer.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await host.close();
  }
}, { timeoutMs: 60_000 });
